package bench

import (
	"context"
	"sync"
)

// MutexPool is the textbook pool: a mutex over a slice of idle connections (a
// LIFO stack) and a FIFO of waiters, each with a one-slot channel that Put hands
// the connection to directly. Fixed size.
type MutexPool[R any] struct {
	close func(R)
	free  sync.Pool // of *mpWaiter[R], so waiting allocates nothing in steady state

	mu sync.Mutex
	// Guarded by mu.
	idle    []R
	waiters []*mpWaiter[R] // oldest first
}

type mpWaiter[R any] struct {
	ch chan R // receives exactly one connection from Put, after it unlisted the waiter
}

// NewMutexPool returns a mutex pool holding spec.Size dialed connections.
func NewMutexPool[R any](ctx context.Context, spec Spec[R]) (Pool[R, R], error) {
	p := &MutexPool[R]{close: spec.Close, idle: make([]R, 0, spec.Size), waiters: make([]*mpWaiter[R], 0, 64)}
	for range spec.Size {
		v, err := spec.Dial(ctx)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.idle = append(p.idle, v)
	}
	return p, nil
}

// Get pops an idle connection, or lists itself as a waiter and waits within ctx.
func (p *MutexPool[R]) Get(ctx context.Context) (R, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		v := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return v, nil
	}
	w, _ := p.free.Get().(*mpWaiter[R])
	if w == nil {
		w = &mpWaiter[R]{ch: make(chan R, 1)}
	}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	select {
	case v := <-w.ch:
		p.free.Put(w)
		return v, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			p.free.Put(w)
			var zero R
			return zero, ctx.Err()
		}
	}
	p.mu.Unlock()
	// A Put unlisted us and handed us a connection as we gave up: pass it on.
	p.Put(<-w.ch)
	p.free.Put(w)
	var zero R
	return zero, ctx.Err()
}

// Put hands the connection to the oldest waiter, or pushes it on the idle stack.
func (p *MutexPool[R]) Put(v R) {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		copy(p.waiters, p.waiters[1:])
		p.waiters = p.waiters[:len(p.waiters)-1]
		p.mu.Unlock()
		w.ch <- v
		return
	}
	p.idle = append(p.idle, v)
	p.mu.Unlock()
}

// Value returns v: the handle is the connection.
func (p *MutexPool[R]) Value(v R) R { return v }

// Close closes the idle connections. Call it when none is held.
func (p *MutexPool[R]) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	if p.close != nil {
		for _, v := range idle {
			p.close(v)
		}
	}
}
