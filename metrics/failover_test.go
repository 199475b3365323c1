package metrics

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
)

// Both sides' pool metrics carry their side label; the failover metrics say
// which side serves, and count the switches.
func TestFailoverCollectorExportsBothSidesAndTheSwitches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dial := func(context.Context) (fakeConn, error) { return fakeConn{}, nil }
		p, err := failover.New(context.Background(), failover.Config[fakeConn]{
			Name:      "sessions",
			Primary:   tidepool.Config[fakeConn]{Dial: dial, MaxSize: 4},
			Secondary: tidepool.Config[fakeConn]{Dial: dial, MaxSize: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		c := NewFailoverCollector(p, WithConstLabels(prometheus.Labels{"region": "eu"}))
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)

		if err := p.SwitchTo(failover.Secondary); err != nil {
			t.Fatal(err)
		}
		h, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
		compareShard(t, c, `
# HELP tidepool_acquires_total Successful acquisitions.
# TYPE tidepool_acquires_total counter
tidepool_acquires_total{pool="sessions",region="eu",side="primary"} 0
tidepool_acquires_total{pool="sessions",region="eu",side="secondary"} 1
# HELP tidepool_connections_max Most connections the pool may hold (MaxSize, after any Resize).
# TYPE tidepool_connections_max gauge
tidepool_connections_max{pool="sessions",region="eu",side="primary"} 4
tidepool_connections_max{pool="sessions",region="eu",side="secondary"} 2
# HELP tidepool_failover_serving 1 for the side new Acquires try first, 0 for the other.
# TYPE tidepool_failover_serving gauge
tidepool_failover_serving{pool="sessions",region="eu",side="primary"} 0
tidepool_failover_serving{pool="sessions",region="eu",side="secondary"} 1
# HELP tidepool_failover_pinned 1 while an operator has forced the secondary (no probes).
# TYPE tidepool_failover_pinned gauge
tidepool_failover_pinned{pool="sessions",region="eu"} 1
# HELP tidepool_failover_switches_total Switches to the secondary.
# TYPE tidepool_failover_switches_total counter
tidepool_failover_switches_total{pool="sessions",region="eu"} 1
# HELP tidepool_failover_restores_total Switches back to the primary.
# TYPE tidepool_failover_restores_total counter
tidepool_failover_restores_total{pool="sessions",region="eu"} 0
# HELP tidepool_failover_primary_failures_total Acquires the primary could not serve, by kind.
# TYPE tidepool_failover_primary_failures_total counter
tidepool_failover_primary_failures_total{kind="dial_error",pool="sessions",region="eu"} 0
tidepool_failover_primary_failures_total{kind="exhausted",pool="sessions",region="eu"} 0
tidepool_failover_primary_failures_total{kind="timeout",pool="sessions",region="eu"} 0
`, "tidepool_acquires_total", "tidepool_connections_max", "tidepool_failover_serving", "tidepool_failover_pinned",
			"tidepool_failover_switches_total", "tidepool_failover_restores_total", "tidepool_failover_primary_failures_total")

		if err := p.SwitchTo(failover.Primary); err != nil {
			t.Fatal(err)
		}
		compareShard(t, c, `
# HELP tidepool_failover_serving 1 for the side new Acquires try first, 0 for the other.
# TYPE tidepool_failover_serving gauge
tidepool_failover_serving{pool="sessions",region="eu",side="primary"} 1
tidepool_failover_serving{pool="sessions",region="eu",side="secondary"} 0
# HELP tidepool_failover_restores_total Switches back to the primary.
# TYPE tidepool_failover_restores_total counter
tidepool_failover_restores_total{pool="sessions",region="eu"} 1
`, "tidepool_failover_serving", "tidepool_failover_restores_total")
		if _, err := reg.Gather(); err != nil {
			t.Errorf("Gather from a pedantic registry: %v", err)
		}
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})
}
