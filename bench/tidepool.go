package bench

import (
	"context"

	"github.com/tidepool-go/tidepool"
)

// Tidepool adapts a *tidepool.Pool. Its handle is the tidepool.Conn value.
type Tidepool[R any] struct {
	P *tidepool.Pool[R]
}

// NewTidepool returns a tidepool of spec.Size connections, all dialed
// (MinIdle = MaxSize).
func NewTidepool[R any](ctx context.Context, spec Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
	return newTidepool(ctx, spec, nil)
}

// TidepoolWith returns a constructor like NewTidepool that lets tune change the
// config before New (S7 sets Check and MaxLifetime there).
func TidepoolWith[R any](tune func(*tidepool.Config[R])) func(context.Context, Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
	return func(ctx context.Context, spec Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
		return newTidepool(ctx, spec, tune)
	}
}

func newTidepool[R any](ctx context.Context, spec Spec[R], tune func(*tidepool.Config[R])) (*Tidepool[R], error) {
	cfg := tidepool.Config[R]{
		Dial:    spec.Dial,
		MaxSize: spec.Size,
		MinIdle: spec.Size,
	}
	if spec.Close != nil {
		cfg.Close = func(v R) error { spec.Close(v); return nil }
	}
	if tune != nil {
		tune(&cfg)
	}
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Tidepool[R]{P: p}, nil
}

// Get calls Acquire.
func (t *Tidepool[R]) Get(ctx context.Context) (tidepool.Conn[R], error) { return t.P.Acquire(ctx) }

// Put calls Release.
func (t *Tidepool[R]) Put(h tidepool.Conn[R]) { h.Release() }

// Value calls the handle's Value.
func (t *Tidepool[R]) Value(h tidepool.Conn[R]) R { return h.Value() }

// Close closes the pool, waiting for it to finish.
func (t *Tidepool[R]) Close() { _ = t.P.Close(context.Background()) }

// Resize keeps MinIdle and sets MaxSize.
func (t *Tidepool[R]) Resize(max int) error {
	return t.P.Resize(min(t.P.Stats().MinIdle, max), max)
}

// Waiting returns Stats().Waiting.
func (t *Tidepool[R]) Waiting() int { return t.P.Stats().Waiting }
