// Package shard is a pool of pools for a sharded backend: one tidepool.Pool
// per shard, and Acquire(ctx, key) routes each key to its shard's pool.
//
//	p, err := shard.New(ctx, shard.Config[*resp.Conn]{
//		Name: "cache",
//		Shards: []shard.Shard[*resp.Conn]{
//			{Name: "0", Config: redisConfig("10.0.0.1:6379")},
//			{Name: "1", Config: redisConfig("10.0.0.2:6379")},
//		},
//		Logger: logger,
//	})
//	c, err := p.Acquire(ctx, "user:42") // a connection of the shard "user:42" maps to
//	defer c.Release()
//
// # What it owns
//
// The routing table (an immutable snapshot behind an atomic pointer, replaced
// whole when shards are added or removed), the shard set's mutex, the shards
// being removed, and three counters. Each shard's pool owns everything else:
// its Config (address, sizes, health checks, timeouts), its reconcile loop,
// its connections, its Stats. Shards are resized, watched and closed one by
// one.
//
// # Routing
//
// Keys map to shards by rendezvous (highest random weight) hashing of the
// key and the shard's name (see hash.go and Locate): the mapping depends only
// on the key and the set of names. Adding a shard to n moves about 1/(n+1) of
// the keys, all of them to the new shard; removing one moves only its own
// keys. Lookup costs O(shards) (about 1 ns per shard) and allocates nothing.
//
// # Isolation
//
// Acquire shares nothing with other shards on its way: it loads the routing
// table (read-only), picks the shard and calls that shard's pool. There is no
// lock, queue, counter or goroutine common to two shards' Acquires, so a shard
// whose backend is paused, slow or refusing holds up only the Acquires for its
// own keys; those fail by their own deadline (or promptly, while that shard's
// dials fail) with an *Error that names the shard.
//
// # Goroutines
//
// The package starts none of its own that outlive a call: New starts one
// goroutine per shard to build the pools concurrently, and Close one per shard
// to close them; both wait for them. Each shard's pool runs its own goroutines
// (reconcile loop, watchers), which its Close stops. Acquire, Resize, Stats,
// ShardOf and Shards run on the caller's goroutine and may be called from any
// number of goroutines; AddShard, RemoveShard and Close serialize their
// changes to the shard set on a mutex that Acquire never takes.
//
// # Logs and metrics
//
// The pool logs its own events (the Event constants) with "pool"; every
// shard's pool logs its lifecycle events with "pool" and "shard". The
// metrics package exports one set of tidepool_* metrics per shard with a
// shard label (metrics.NewShardCollector), and the admin package serves the
// shards' stats and resizes one shard (admin.ShardHandler).
package shard
