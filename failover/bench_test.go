package failover_test

import (
	"context"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
)

// BenchmarkAcquireRelease is the cost of failover on the fast path:
// Acquire+Release of an idle connection through a plain pool, and through a
// failover pool whose primary serves (one atomic load and the pool's own
// fast path).
//
//	go test -run '^$' -bench AcquireRelease -benchmem ./failover/
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	f := newFixture()
	b.Run("plain", func(b *testing.B) {
		p, err := tidepool.New(ctx, f.prim.config())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
	b.Run("failover", func(b *testing.B) {
		f.cfg.Logger = nil
		p, err := failover.New(ctx, f.cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
}
