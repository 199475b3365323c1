package redigopool

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/examples/internal/testserver"
)

// BenchmarkHandOut measures one Acquire and Release of an idle connection
// (no command) on one goroutine: tidepool with no hooks, then the recipe
// with the peek alone, with its defaults (peek, PING after 1 s unseen), and
// with a PING on every hand-out; "GET" adds one command to the defaults, for
// scale. Compare them as ratios: the machine is shared.
//
//	go test -run '^$' -bench HandOut -benchtime 20000x ./redigo/
func BenchmarkHandOut(b *testing.B) {
	srv := testserver.RedisFor(b)
	plain := func(o Options) tidepool.Config[redis.Conn] {
		c := Config(srv.Addr(), o)
		return tidepool.Config[redis.Conn]{Dial: c.Dial, Close: c.Close}
	}
	for _, bc := range []struct {
		name string
		cfg  tidepool.Config[redis.Conn]
		get  bool
	}{
		{"no hooks", plain(Options{}), false},
		{"peek only", Config(srv.Addr(), Options{PingIdle: -1}), false},
		{"defaults", Config(srv.Addr(), Options{}), false},
		{"PING every hand-out", Config(srv.Addr(), Options{PingIdle: time.Nanosecond}), false},
		{"defaults + GET", Config(srv.Addr(), Options{}), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			bc.cfg.MaxSize, bc.cfg.MinIdle = 1, 1
			p, err := tidepool.New(ctx, bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			b.ReportAllocs()
			for b.Loop() {
				h, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if bc.get {
					if _, err := h.Value().Do("GET", "k"); err != nil {
						b.Fatal(err)
					}
				}
				h.Release()
			}
		})
	}
}
