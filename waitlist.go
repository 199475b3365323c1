package tidepool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidepool-go/tidepool/conn"
)

// errEvicted tells a waiter that it was skipped because its context had ended;
// it reports its context's error.
var errEvicted = errors.New("tidepool: waiter evicted: context done")

// waitResult is what a waiter receives: a connection held under lease, or err.
type waitResult[T any] struct {
	c     *conn.Conn[T]
	lease uint64
	err   error
}

// waiter is one Acquire waiting for a connection. Recycled through a sync.Pool
// so that waiting allocates nothing in steady state.
type waiter[T any] struct {
	// ch receives exactly one result, from whoever unlinks the waiter from the
	// list. Buffered, so that the sender never blocks (vitess #20308).
	ch chan waitResult[T]
	// timer bounds the wait by Config.AcquireTimeout; created on first use
	// and reused with the waiter. Only the waiting goroutine touches it.
	timer *time.Timer
	// Guarded by waitlist.mu.
	ctx        context.Context
	prev, next *waiter[T]
	listed     bool
	// dialed is set once the reconcile loop started a dial carrying this
	// waiter's context values.
	dialed bool
}

// waitlist is the FIFO of waiting Acquires. It is not on the hot path: only an
// Acquire that finds no idle connection, and a Release or dial that finds
// waiters (n > 0), take its mutex.
type waitlist[T any] struct {
	// n is the number of listed waiters; written under mu, read without it by
	// Release to decide whether to look here at all.
	n  atomic.Int64
	mu sync.Mutex
	// head is the oldest waiter; guarded by mu.
	head, tail *waiter[T]
	free       sync.Pool
}

func (l *waitlist[T]) get(ctx context.Context) *waiter[T] {
	w, _ := l.free.Get().(*waiter[T])
	if w == nil {
		w = &waiter[T]{ch: make(chan waitResult[T], 1)}
	}
	w.ctx = ctx
	return w
}

// put recycles a waiter that is unlisted and whose result was received.
func (l *waitlist[T]) put(w *waiter[T]) {
	w.ctx = nil
	w.dialed = false
	l.free.Put(w)
}

// pushLocked appends w. Caller holds mu.
func (l *waitlist[T]) pushLocked(w *waiter[T]) {
	w.prev, w.next, w.listed = l.tail, nil, true
	if l.tail == nil {
		l.head = w
	} else {
		l.tail.next = w
	}
	l.tail = w
	l.n.Add(1)
}

// unlinkLocked removes w. Caller holds mu.
func (l *waitlist[T]) unlinkLocked(w *waiter[T]) {
	if w.prev == nil {
		l.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		l.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
	l.n.Add(-1)
}

// handOff gives c, held under lease by the caller, to the oldest waiter whose
// context is still live, waking expired ones with errEvicted on the way. It
// reports false, keeping c, if nobody waits. The lease moves to the waiter
// without passing through Idle, so nobody can take c in between.
func (l *waitlist[T]) handOff(c *conn.Conn[T], lease uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := l.head; w != nil; w = l.head {
		if w.ctx.Err() != nil {
			l.unlinkLocked(w)
			w.ch <- waitResult[T]{err: errEvicted}
			continue
		}
		c.Uncount() // tentative: the waiter counts it once its checks pass
		nl, ok := c.Transfer(lease)
		if !ok {
			// Retired under its holder (Close's deadline, an expired
			// lease): not ours to give any more, and the waiter waits on.
			c.Recount()
			return true
		}
		l.unlinkLocked(w)
		w.ch <- waitResult[T]{c: c, lease: nl}
		return true
	}
	return false
}

// fail wakes up to n waiters, oldest first, with err and returns how many.
func (l *waitlist[T]) fail(err error, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	woke := 0
	for w := l.head; w != nil && woke < n; w = l.head {
		l.unlinkLocked(w)
		w.ch <- waitResult[T]{err: err}
		woke++
	}
	return woke
}

// dialContext returns the context of the oldest waiter that has no dial
// started for it yet, and marks it; context.Background() if there is none.
func (l *waitlist[T]) dialContext() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := l.head; w != nil; w = w.next {
		if !w.dialed {
			w.dialed = true
			return w.ctx
		}
	}
	return context.Background()
}
