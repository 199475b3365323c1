package tidepool_test

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/netconn"
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

// BenchmarkAcquireReleaseNetconn is the cost of the check on acquire over a
// real loopback TCP connection: netconn.Config (CheckOnAcquire on, Check
// netconn.Alive: one non-blocking peek per hand-out) against the same pool
// with the check off. The difference of the two is the price per hand-out.
func BenchmarkAcquireReleaseNetconn(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	for _, check := range []bool{false, true} {
		name := "check-off"
		if check {
			name = "check-on-acquire-alive"
		}
		b.Run(name, func(b *testing.B) {
			cfg := netconn.Config(netconn.Options{Address: ln.Addr().String()})
			cfg.CheckOnAcquire = check
			cfg.MinIdle, cfg.MaxSize = 1, 1
			p, err := tidepool.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				h, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			}
		})
	}
}
