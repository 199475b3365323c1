package fleet

import (
	"context"
	"time"

	"github.com/tidepool-go/tidepool"
)

// Pool is what a fleet member needs of its pool; a *tidepool.Pool[T] has these
// methods (NewPool makes one that rests at nothing).
//
// The member relies on exactly these promises:
//   - Lease(max, until): until `until` (monotonic clock) the pool may hold up
//     to max connections; at `until` the pool itself, before any further
//     dial, falls back to its Resize max and closes the connections above it
//     at once. Lease(0, time.Time{}) cancels the lease. This is the fence: it
//     holds even if the member's goroutines are late or the process was
//     frozen and resumed.
//   - ResizeWait(ctx, min, max): the Resize bounds (the member keeps them at
//     (0, 0): nothing without a lease), then wait until the pool's slots are
//     at most max, closing held connections above it when ctx ends.
//   - Stats: InUse, Waiting and WaitedAcquires for the demand, and the slots
//     (read through slotsOf): connections the backend may see, counted from
//     the moment a dial starts until that connection's Close has returned.
type Pool interface {
	Lease(max int, until time.Time) error
	ResizeWait(ctx context.Context, min, max int) error
	Stats() tidepool.Stats
}
