package metrics

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

func newShardPool(t *testing.T, names ...string) *shard.Pool[fakeConn] {
	t.Helper()
	var shards []shard.Shard[fakeConn]
	for _, n := range names {
		shards = append(shards, shard.Shard[fakeConn]{Name: n, Config: tidepool.Config[fakeConn]{
			MaxSize: 4,
			Dial:    func(context.Context) (fakeConn, error) { return fakeConn{}, nil },
		}})
	}
	p, err := shard.New(context.Background(), shard.Config[fakeConn]{Name: "cache", Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// keyOn returns a key that maps to shard s of p.
func keyOn(p *shard.Pool[fakeConn], s string) string {
	for i := 0; ; i++ {
		if k := "k" + itoa(i); p.ShardOf(k) == s {
			return k
		}
	}
}

func compareShard(t *testing.T, c prometheus.Collector, want string, names ...string) {
	t.Helper()
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// Every shard's pool metrics carry its shard label; shards added appear,
// shards being removed are marked draining, removed ones disappear.
func TestShardCollectorLabelsEveryShardAndFollowsTheShardSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShardPool(t, "a", "b")
		c := NewShardCollector(p, WithConstLabels(prometheus.Labels{"db": "sessions", "shard": "ignored"}))
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		c2, err := p.Acquire(context.Background(), keyOn(p, "b"))
		if err != nil {
			t.Fatal(err)
		}
		compareShard(t, c, `
# HELP tidepool_acquires_total Successful acquisitions.
# TYPE tidepool_acquires_total counter
tidepool_acquires_total{db="sessions",pool="cache",shard="a"} 0
tidepool_acquires_total{db="sessions",pool="cache",shard="b"} 1
# HELP tidepool_shards Shards serving.
# TYPE tidepool_shards gauge
tidepool_shards{db="sessions",pool="cache"} 2
# HELP tidepool_shard_draining 1 while RemoveShard is closing the shard's pool.
# TYPE tidepool_shard_draining gauge
tidepool_shard_draining{db="sessions",pool="cache",shard="a"} 0
tidepool_shard_draining{db="sessions",pool="cache",shard="b"} 0
`, "tidepool_acquires_total", "tidepool_shards", "tidepool_shard_draining")

		removed := make(chan error, 1)
		go func() { removed <- p.RemoveShard(context.Background(), "b") }()
		synctest.Wait() // b drains: its connection is held
		compareShard(t, c, `
# HELP tidepool_connections Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held).
# TYPE tidepool_connections gauge
tidepool_connections{db="sessions",pool="cache",shard="a",state="checking"} 0
tidepool_connections{db="sessions",pool="cache",shard="a",state="idle"} 0
tidepool_connections{db="sessions",pool="cache",shard="a",state="in_use"} 0
tidepool_connections{db="sessions",pool="cache",shard="b",state="checking"} 0
tidepool_connections{db="sessions",pool="cache",shard="b",state="idle"} 0
tidepool_connections{db="sessions",pool="cache",shard="b",state="in_use"} 1
# HELP tidepool_shards Shards serving.
# TYPE tidepool_shards gauge
tidepool_shards{db="sessions",pool="cache"} 1
# HELP tidepool_shard_draining 1 while RemoveShard is closing the shard's pool.
# TYPE tidepool_shard_draining gauge
tidepool_shard_draining{db="sessions",pool="cache",shard="a"} 0
tidepool_shard_draining{db="sessions",pool="cache",shard="b"} 1
`, "tidepool_connections", "tidepool_shards", "tidepool_shard_draining")
		c2.Release()
		if err := <-removed; err != nil {
			t.Fatal(err)
		}
		if err := p.AddShard(context.Background(), shard.Shard[fakeConn]{Name: "c", Config: tidepool.Config[fakeConn]{
			Dial: func(context.Context) (fakeConn, error) { return fakeConn{}, nil },
		}}); err != nil {
			t.Fatal(err)
		}
		compareShard(t, c, `
# HELP tidepool_connections_max Most connections the pool may hold (MaxSize, after any Resize).
# TYPE tidepool_connections_max gauge
tidepool_connections_max{db="sessions",pool="cache",shard="a"} 4
tidepool_connections_max{db="sessions",pool="cache",shard="c"} 8
# HELP tidepool_shards_added_total Shards added by AddShard.
# TYPE tidepool_shards_added_total counter
tidepool_shards_added_total{db="sessions",pool="cache"} 1
# HELP tidepool_shards_removed_total Shard removals finished.
# TYPE tidepool_shards_removed_total counter
tidepool_shards_removed_total{db="sessions",pool="cache"} 1
# HELP tidepool_shard_rerouted_acquires_total Acquires that met a removed shard and were routed again.
# TYPE tidepool_shard_rerouted_acquires_total counter
tidepool_shard_rerouted_acquires_total{db="sessions",pool="cache"} 0
`, "tidepool_connections_max", "tidepool_shards_added_total", "tidepool_shards_removed_total", "tidepool_shard_rerouted_acquires_total")

		// The registry gathers it next to a plain pool's collector.
		reg.MustRegister(NewCollector(newPool(t, tidepool.Config[fakeConn]{Name: "other"})))
		if _, err := reg.Gather(); err != nil {
			t.Errorf("Gather: %v", err)
		}
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})
}
