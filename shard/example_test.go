package shard_test

import (
	"context"
	"fmt"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

// backendConn stands for a connection to one shard's server.
type backendConn struct{ addr string }

// dialer pools connections to addr.
func dialer(addr string) tidepool.Config[backendConn] {
	return tidepool.Config[backendConn]{
		MaxSize: 8,
		Dial:    func(context.Context) (backendConn, error) { return backendConn{addr: addr}, nil },
	}
}

// Route each key to its shard's pool; grow the shard set at run time.
func ExampleNew() {
	ctx := context.Background()
	p, err := shard.New(ctx, shard.Config[backendConn]{
		Name: "cache",
		Shards: []shard.Shard[backendConn]{
			{Name: "a", Config: dialer("10.0.0.1:6379")},
			{Name: "b", Config: dialer("10.0.0.2:6379")},
			{Name: "c", Config: dialer("10.0.0.3:6379")},
		},
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	for _, key := range []string{"user:1", "user:2", "user:3"} {
		c, err := p.Acquire(ctx, key)
		if err != nil {
			panic(err) // an *shard.Error naming the shard
		}
		fmt.Println(key, "→ shard", c.Shard(), "at", c.Value().addr)
		c.Release()
	}

	// A fourth shard takes over about a quarter of the keys, and only those.
	if err := p.AddShard(ctx, shard.Shard[backendConn]{Name: "d", Config: dialer("10.0.0.4:6379")}); err != nil {
		panic(err)
	}
	// Resize one shard; the others do not notice.
	if err := p.Resize("d", 1, 16); err != nil {
		panic(err)
	}
	fmt.Println(p.Shards())
	// Output:
	// user:1 → shard a at 10.0.0.1:6379
	// user:2 → shard b at 10.0.0.2:6379
	// user:3 → shard a at 10.0.0.1:6379
	// [a b c d]
}

// Locate tells where a key lives without a pool: here, which of 10 000 keys
// a fifth shard would take over.
func ExampleLocate() {
	before := []string{"a", "b", "c", "d"}
	after := append(before, "e")
	moved, elsewhere := 0, 0
	for i := range 10000 {
		key := fmt.Sprintf("user:%d", i)
		if was, now := shard.Locate(key, before), shard.Locate(key, after); was != now {
			moved++
			if now != "e" {
				elsewhere++
			}
		}
	}
	fmt.Printf("%d of 10000 keys move, all of them to e (%d elsewhere)\n", moved, elsewhere)
	// Output:
	// 2072 of 10000 keys move, all of them to e (0 elsewhere)
}
