package metrics

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidepool-go/tidepool"
)

// BenchmarkScrape measures one scrape of a pool of 64 connections, half of
// them held: one Stats snapshot plus the const metrics built from it.
func BenchmarkScrape(b *testing.B) {
	var n atomic.Int64
	p, err := tidepool.New(context.Background(), tidepool.Config[fakeConn]{
		MaxSize: 64,
		Dial:    func(context.Context) (fakeConn, error) { return fakeConn{n: n.Add(1)}, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	held := make([]tidepool.Conn[fakeConn], 64)
	for i := range held {
		if held[i], err = p.Acquire(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	for _, h := range held[32:] {
		h.Release()
	}
	defer func() {
		for _, h := range held[:32] {
			h.Release()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatsAlone is the Stats snapshot that BenchmarkScrape includes, for
// comparison.
func BenchmarkStatsAlone(b *testing.B) {
	var n atomic.Int64
	p, err := tidepool.New(context.Background(), tidepool.Config[fakeConn]{
		MaxSize: 64, MinIdle: 64,
		Dial: func(context.Context) (fakeConn, error) { return fakeConn{n: n.Add(1)}, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Stats()
	}
}
