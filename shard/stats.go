package shard

import "github.com/tidepool-go/tidepool"

// Stats is a snapshot of a sharded pool: its own counters and one
// tidepool.Stats per shard, each read on its own (shards are not stopped
// together, so the snapshot is per shard, not across them).
type Stats struct {
	// Name is Config.Name.
	Name string `json:"name"`
	// Shards has the serving shards in the order they were added, then the
	// shards being removed (Draining), in no particular order.
	Shards []ShardStats `json:"shards"`
	// Added counts shards added by AddShard; Removed those whose removal
	// finished.
	Added   int64 `json:"shards_added"`
	Removed int64 `json:"shards_removed"`
	// Rerouted counts Acquires that met a shard being removed and were routed
	// again to the key's new shard.
	Rerouted int64 `json:"rerouted_acquires"`
}

// ShardStats is one shard's pool's Stats, with the shard's name. In JSON the
// pool's fields are inline beside "shard" and "draining".
type ShardStats struct {
	// Shard is the shard's name.
	Shard string `json:"shard"`
	// Draining is true while RemoveShard is closing the shard's pool.
	Draining bool `json:"draining"`
	tidepool.Stats
}

// Stats returns a snapshot: O(connections of all shards), and no lock that
// Acquire takes (it takes the shard set's mutex for a moment, to read the
// routing table and the shards being removed together).
func (p *Pool[T]) Stats() Stats {
	// Read the table and the draining set together, so that a shard being
	// removed right now is listed once.
	p.mu.Lock()
	t := p.table.Load()
	draining := make([]*member[T], 0, len(p.draining))
	for _, d := range p.draining {
		draining = append(draining, d.m)
	}
	p.mu.Unlock()
	s := Stats{
		Name:     p.name,
		Shards:   make([]ShardStats, 0, len(t.members)+len(draining)),
		Added:    p.added.Load(),
		Removed:  p.removed.Load(),
		Rerouted: p.rerouted.Load(),
	}
	for _, m := range t.members {
		s.Shards = append(s.Shards, ShardStats{Shard: m.name, Stats: m.pool.Stats()})
	}
	for _, m := range draining {
		s.Shards = append(s.Shards, ShardStats{Shard: m.name, Draining: true, Stats: m.pool.Stats()})
	}
	return s
}
