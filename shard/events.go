package shard

// Log events of a sharded pool. Each is one zap entry whose message equals its
// "event" field; every entry carries "pool" (Config.Name). The shards' own
// pools log their usual events (pool.started, conn.dialed, ...) through the
// same logger with a "shard" field added.
const (
	// EventStarted: New built every shard. Fields: shards (the names).
	EventStarted = "shards.started"
	// EventAdded: AddShard put a new shard in the routing table. Fields:
	// shard, shards (how many serve now), min_idle, max_size, took.
	EventAdded = "shard.added"
	// EventRemoveStarted: RemoveShard took a shard out of the routing table;
	// its pool is closing, waiting for held connections. Fields: shard,
	// shards (how many serve now), in_use.
	EventRemoveStarted = "shard.remove_started"
	// EventRemoved: the removed shard's pool has closed. Fields: shard, took,
	// forced (whether held connections were closed under their holders).
	EventRemoved = "shard.removed"
	// EventClosed: Close closed every shard. Fields: took, forced.
	EventClosed = "shards.closed"
)
