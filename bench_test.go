package tidepool_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/tidepool-go/tidepool"
)

func benchPool(b *testing.B, size int) *tidepool.Pool[*fakeConn] {
	be := newBackend()
	cfg := be.config()
	cfg.MaxSize = size
	cfg.MinIdle = size
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// BenchmarkAcquireRelease measures the pool's fast path and its contended path.
// Run with -benchmem: the idle-connection cases allocate nothing.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		p := benchPool(b, 8)
		b.ReportAllocs()
		for b.Loop() {
			h, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			h.Release()
		}
	})
	b.Run("parallel-no-wait", func(b *testing.B) {
		p := benchPool(b, runtime.GOMAXPROCS(0))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			}
		})
	})
	b.Run("64-goroutines-4-conns", func(b *testing.B) {
		p := benchPool(b, 4)
		b.ReportAllocs()
		b.SetParallelism(64 / runtime.GOMAXPROCS(0))
		var sink atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				sink.Add(h.Value().id)
				h.Release()
			}
		})
	})
}
