package bench

import (
	"context"
	"sync"
)

// ChanPool is the simplest pool there is: a buffered channel holding the idle
// connections, of fixed size. Waiters are the channel's receivers (FIFO in the
// runtime); a cancelled Get simply stops receiving, so it cannot lose anything.
type ChanPool[R any] struct {
	ch    chan R
	close func(R)
	once  sync.Once
}

// NewChanPool returns a channel pool holding spec.Size dialed connections.
func NewChanPool[R any](ctx context.Context, spec Spec[R]) (Pool[R, R], error) {
	p := &ChanPool[R]{ch: make(chan R, spec.Size), close: spec.Close}
	for range spec.Size {
		v, err := spec.Dial(ctx)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.ch <- v
	}
	return p, nil
}

// Get receives an idle connection, or waits for one within ctx.
func (p *ChanPool[R]) Get(ctx context.Context) (R, error) {
	select {
	case v := <-p.ch:
		return v, nil
	default:
	}
	select {
	case v := <-p.ch:
		return v, nil
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Put sends the connection back. It never blocks: the channel has room for
// every connection.
func (p *ChanPool[R]) Put(v R) { p.ch <- v }

// Value returns v: the handle is the connection.
func (p *ChanPool[R]) Value(v R) R { return v }

// Close closes the idle connections. Call it when none is held.
func (p *ChanPool[R]) Close() {
	p.once.Do(func() {
		for {
			select {
			case v := <-p.ch:
				if p.close != nil {
					p.close(v)
				}
			default:
				return
			}
		}
	})
}
