package shard_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

// BenchmarkAcquireRelease is the cost of routing: Acquire+Release of an idle
// connection through a plain pool, and through a sharded pool of 8 (the key
// hashed and 8 shards scored on every Acquire).
//
//	go test -run '^$' -bench AcquireRelease -benchmem ./shard/
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	cfg := func() tidepool.Config[*fakeConn] {
		return tidepool.Config[*fakeConn]{MaxSize: 4, MinIdle: 1,
			Dial: func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil }}
	}
	b.Run("plain", func(b *testing.B) {
		p, err := tidepool.New(ctx, cfg())
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
	b.Run("sharded-8", func(b *testing.B) {
		var shards []shard.Shard[*fakeConn]
		for i := range 8 {
			shards = append(shards, shard.Shard[*fakeConn]{Name: strconv.Itoa(i), Config: cfg()})
		}
		p, err := shard.New(ctx, shard.Config[*fakeConn]{Shards: shards})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Acquire(ctx, "user:12345678")
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
}
