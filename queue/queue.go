package queue

import (
	"runtime"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"
)

// Queue is a bounded lock-free FIFO with an exact length.
type Queue[E any] struct {
	q   *xsync.MPMCQueueOf[E]
	n   atomic.Int64 // items published and not yet reserved by a Pop
	cap int
}

// New returns an empty queue that holds at most capacity items.
// It panics if capacity < 1.
func New[E any](capacity int) *Queue[E] {
	if capacity < 1 {
		panic("tidepool/queue: capacity must be at least 1")
	}
	return &Queue[E]{q: xsync.NewMPMCQueueOf[E](capacity), cap: capacity}
}

// Push appends e. It returns false only if the queue holds Cap items already;
// a spurious failure of the underlying queue is retried, not reported.
func (q *Queue[E]) Push(e E) bool {
	for spins := 0; !q.q.TryEnqueue(e); spins++ {
		if q.n.Load() >= int64(q.cap) {
			return false
		}
		backoff(spins)
	}
	q.n.Add(1)
	return true
}

// Pop removes and returns the oldest item, or ok=false when the queue is empty.
func (q *Queue[E]) Pop() (e E, ok bool) {
	// Reserve first: a dequeue without a reservation could take an item that
	// another Pop has reserved, leaving that one spinning on an empty queue.
	// The price is that an item a Push has published but not yet counted
	// (a few nanoseconds) is not seen; the pool's callers re-check after they
	// list themselves as waiters, so nothing is lost.
	for {
		n := q.n.Load()
		if n <= 0 {
			return e, false
		}
		if q.n.CompareAndSwap(n, n-1) {
			break
		}
	}
	// One published item is ours; the dequeue can only fail on contention or
	// while an earlier ticket's producer has not yet published.
	for spins := 0; ; spins++ {
		if e, ok = q.q.TryDequeue(); ok {
			return e, true
		}
		backoff(spins)
	}
}

// Len returns the number of items in the queue.
func (q *Queue[E]) Len() int { return int(q.n.Load()) }

// Cap returns the queue's capacity.
func (q *Queue[E]) Cap() int { return q.cap }

func backoff(spins int) {
	if spins > 4 {
		runtime.Gosched()
	}
}
