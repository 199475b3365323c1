package fleet

import (
	"context"
	"fmt"

	"github.com/tidepool-go/tidepool"
)

// restMax is the Resize max a member's pool rests at: what it may hold with no
// valid lease. Zero: any floor kept while fenced would be capacity outside
// every claim once the lease expires.
const restMax = 0

func errMinIdle(n int) error {
	return fmt.Errorf("%w: Config.MinIdle = %d: a fleet member's pool keeps no warm minimum (it may hold nothing until granted)", ErrInvalidOptions, n)
}

// slotsOf returns the connections the backend may see for p: Stats.Slots,
// counted by the pool from the moment a dial starts until that connection's
// Close has returned.
func slotsOf(_ Pool, s tidepool.Stats) int { return s.Slots }

// NewPool creates a pool ready to join a fleet and returns it with the Pool to
// put in Options.Pool (the same pool). Config.MinIdle must be 0. The pool
// holds nothing (Resize(0, 0)) until the member is granted connections; use
// it like any pool afterwards.
func NewPool[T any](ctx context.Context, cfg tidepool.Config[T]) (*tidepool.Pool[T], Pool, error) {
	if cfg.MinIdle != 0 {
		return nil, nil, errMinIdle(cfg.MinIdle)
	}
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := p.Resize(0, restMax); err != nil {
		_ = p.Close(ctx)
		return nil, nil, err
	}
	return p, p, nil
}
