package queue

import (
	"runtime"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"
)

// Queue is a bounded lock-free FIFO with an exact length.
type Queue[E any] struct {
	q   *xsync.MPMCQueueOf[E]
	n   atomic.Int64 // items pushed minus items popped, each counted after its CAS
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
//
// It dequeues without reserving: the count is only consulted when a dequeue
// fails, to tell an empty queue (count ≤ 0) from contention or from an item
// whose taker has not yet uncounted it, both of which last nanoseconds.
// (Mixing reserved and unreserved dequeues is what must never happen: an
// unreserved one can take the item a reservation counted on.)
func (q *Queue[E]) Pop() (e E, ok bool) {
	for spins := 0; ; spins++ {
		if e, ok = q.q.TryDequeue(); ok {
			q.n.Add(-1)
			return e, true
		}
		if q.n.Load() <= 0 {
			return e, false
		}
		backoff(spins)
	}
}

// Len returns the number of items in the queue. While a Pop is half-way it
// may lag by that item; it never reports less than zero.
func (q *Queue[E]) Len() int { return int(max(q.n.Load(), 0)) }

// Cap returns the queue's capacity.
func (q *Queue[E]) Cap() int { return q.cap }

func backoff(spins int) {
	if spins > 4 {
		runtime.Gosched()
	}
}
