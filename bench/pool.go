package bench

import (
	"context"
	"errors"
)

// Pool is what every pool under test offers the scenarios. R is the connection
// type and H the pool's handle for one acquired connection (a value type for
// tidepool, a pointer for the others), kept generic so that no adapter pays for
// boxing its handle into an interface.
type Pool[R, H any] interface {
	// Get acquires a connection, waiting within ctx if none is free.
	Get(ctx context.Context) (H, error)
	// Put releases a connection acquired by Get.
	Put(h H)
	// Value returns the connection behind h.
	Value(h H) R
	// Close closes the pool and its connections.
	Close()
}

// Resizer is a pool whose maximum size can change while it runs.
type Resizer interface {
	// Resize sets the pool's maximum size.
	Resize(max int) error
}

// WaitCounter is a pool that can tell how many Gets have gone to wait.
type WaitCounter interface {
	// Waiting returns the number of Gets waiting now. Adapters whose pool only
	// counts waits cumulatively return that count, which is the same thing on a
	// fresh pool where no waiter has been served yet (how S6 uses it).
	Waiting() int
}

// Spec describes the connections a pool holds: Size of them, made by Dial and
// closed by Close. Every adapter dials Size connections before it returns, so
// that a scenario starts with a full pool.
type Spec[R any] struct {
	Size  int
	Dial  func(ctx context.Context) (R, error)
	Close func(R)
}

// ErrFixedSize is returned by Resize on the hand-written pools, whose size is
// set at construction.
var ErrFixedSize = errors.New("bench: pool has a fixed size")

// prefill gets n connections from p and puts them back, so that they are dialed.
func prefill[R, H any](ctx context.Context, p Pool[R, H], n int) error {
	hs := make([]H, 0, n)
	defer func() {
		for _, h := range hs {
			p.Put(h)
		}
	}()
	for range n {
		h, err := p.Get(ctx)
		if err != nil {
			return err
		}
		hs = append(hs, h)
	}
	return nil
}
