package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

// snapshot is a statsSource that returns the Stats it was last given. The
// pool-of-pools collectors set it, under their mutex, to one shard's or side's
// part of a single snapshot before they collect that pool's metrics.
type snapshot struct{ s tidepool.Stats }

func (s *snapshot) Stats() tidepool.Stats { return s.s }

// member is the collector of one pool inside a pool of pools.
type member struct {
	src *snapshot
	c   *collector
}

// shardCollector exports every shard's pool metrics with a shard label, plus
// the sharded pool's own. Shards come and go, so it is an unchecked collector
// (Describe sends nothing). mu serializes Collect calls: they share the
// per-shard collectors and their snapshots.
type shardCollector struct {
	p    interface{ Stats() shard.Stats }
	opts []Option

	shards, draining, added, removed, rerouted *prometheus.Desc

	mu      sync.Mutex
	members map[string]*member // by shard name; guarded by mu
}

// NewShardCollector returns a Prometheus collector for a sharded pool: for
// each shard, every metric NewCollector exports for a pool, with the const
// labels pool (the shard pool's name) and shard (the shard's name); and for
// the sharded pool, labelled pool:
//
//	tidepool_shards                          gauge   shards serving
//	tidepool_shard_draining{shard}           gauge   1 while RemoveShard closes the shard's pool
//	tidepool_shards_added_total              counter shards added by AddShard
//	tidepool_shards_removed_total            counter shard removals finished
//	tidepool_shard_rerouted_acquires_total   counter Acquires routed again after meeting a removed shard
//
// opts add const labels to all of them (a "shard" label in opts is replaced
// by each shard's name). Shards are added and removed at run time, so the
// collector is unchecked: it describes no metric up front, and a registry
// accepts it next to any other; two collectors that export the same pool and
// shard names make the scrape fail.
//
// Each scrape takes one p.Stats() snapshot — O(connections of all shards), no
// lock that Acquire takes — and scrapes are serialized.
func NewShardCollector[T any](p *shard.Pool[T], opts ...Option) prometheus.Collector {
	return newShardCollector(p, opts...)
}

func newShardCollector(p interface{ Stats() shard.Stats }, opts ...Option) *shardCollector {
	o := options{labels: prometheus.Labels{"pool": p.Stats().Name}}
	for _, opt := range opts {
		opt(&o)
	}
	delete(o.labels, "shard")
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tidepool_"+name, help, labels, o.labels)
	}
	return &shardCollector{
		p:        p,
		opts:     opts,
		shards:   desc("shards", "Shards serving."),
		draining: desc("shard_draining", "1 while RemoveShard is closing the shard's pool.", "shard"),
		added:    desc("shards_added_total", "Shards added by AddShard."),
		removed:  desc("shards_removed_total", "Shard removals finished."),
		rerouted: desc("shard_rerouted_acquires_total", "Acquires that met a removed shard and were routed again."),
		members:  map[string]*member{},
	}
}

// Describe sends nothing: the collector is unchecked.
func (c *shardCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the metrics of one Stats snapshot.
func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	serving := 0
	seen := make(map[string]bool, len(s.Shards))
	for _, sh := range s.Shards {
		seen[sh.Shard] = true
		m := c.members[sh.Shard]
		if m == nil || m.src.s.Name != sh.Name {
			src := &snapshot{s: sh.Stats}
			opts := append(append([]Option(nil), c.opts...), WithConstLabels(prometheus.Labels{"shard": sh.Shard}))
			m = &member{src: src, c: newCollector(src, opts...)}
			c.members[sh.Shard] = m
		}
		m.src.s = sh.Stats
		m.c.Collect(ch)
		draining := 0.0
		if sh.Draining {
			draining = 1
		} else {
			serving++
		}
		ch <- prometheus.MustNewConstMetric(c.draining, prometheus.GaugeValue, draining, sh.Shard)
	}
	for name := range c.members {
		if !seen[name] {
			delete(c.members, name) // removed: its metrics go with it
		}
	}
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(serving))
	ch <- prometheus.MustNewConstMetric(c.added, prometheus.CounterValue, float64(s.Added))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(s.Removed))
	ch <- prometheus.MustNewConstMetric(c.rerouted, prometheus.CounterValue, float64(s.Rerouted))
}
