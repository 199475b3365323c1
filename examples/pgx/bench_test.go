package pgxconnpool_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool"
	pgxconnpool "github.com/tidepool-go/tidepool/examples/pgx"
)

// BenchmarkHandOut measures one Acquire and Release of an idle connection
// (no query) on one goroutine: tidepool with no hooks, the recipe with its
// defaults (a hand-out idle under 1 s is not pinged, so only AfterRelease
// runs), and with a ping on every hand-out; "SELECT 1" adds one query to the
// defaults, for scale. Compare them as ratios: the machine is shared.
//
//	go test -run '^$' -bench HandOut -benchtime 5000x ./pgx/
func BenchmarkHandOut(b *testing.B) {
	cc, err := pgx.ParseConfig(serverFor(b))
	if err != nil {
		b.Fatal(err)
	}
	recipe := func(o pgxconnpool.Options) tidepool.Config[*pgx.Conn] { return pgxconnpool.Config(cc, o) }
	plain := recipe(pgxconnpool.Options{})
	plain = tidepool.Config[*pgx.Conn]{Dial: plain.Dial, Close: plain.Close}
	for _, bc := range []struct {
		name    string
		cfg     tidepool.Config[*pgx.Conn]
		select1 bool
	}{
		{"no hooks", plain, false},
		{"defaults", recipe(pgxconnpool.Options{}), false},
		{"ping every hand-out", recipe(pgxconnpool.Options{PingIdle: -1}), false},
		{"defaults + SELECT 1", recipe(pgxconnpool.Options{}), true},
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
				if bc.select1 {
					if _, err := h.Value().Exec(ctx, "SELECT 1"); err != nil {
						b.Fatal(err)
					}
				}
				h.Release()
			}
		})
	}
}
