package bench

import (
	"context"

	"github.com/jackc/puddle/v2"
)

// Puddle adapts a *puddle.Pool (github.com/jackc/puddle/v2). Its size is fixed
// at construction: puddle has no way to change MaxSize.
type Puddle[R any] struct {
	P *puddle.Pool[R]
}

// NewPuddle returns a puddle pool of spec.Size resources, all created.
func NewPuddle[R any](ctx context.Context, spec Spec[R]) (Pool[R, *puddle.Resource[R]], error) {
	cfg := &puddle.Config[R]{
		Constructor: spec.Dial,
		Destructor:  func(R) {},
		MaxSize:     int32(spec.Size),
	}
	if spec.Close != nil {
		cfg.Destructor = spec.Close
	}
	p, err := puddle.NewPool(cfg)
	if err != nil {
		return nil, err
	}
	for range spec.Size {
		if err := p.CreateResource(ctx); err != nil {
			p.Close()
			return nil, err
		}
	}
	return &Puddle[R]{P: p}, nil
}

// Get calls Acquire.
func (p *Puddle[R]) Get(ctx context.Context) (*puddle.Resource[R], error) { return p.P.Acquire(ctx) }

// Put calls Release.
func (p *Puddle[R]) Put(h *puddle.Resource[R]) { h.Release() }

// Value calls the resource's Value.
func (p *Puddle[R]) Value(h *puddle.Resource[R]) R { return h.Value() }

// Close closes the pool.
func (p *Puddle[R]) Close() { p.P.Close() }
