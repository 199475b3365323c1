package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidepool-go/tidepool/failover"
)

// failoverCollector exports both sides' pool metrics with a side label, plus
// the failover pool's own. Its set of metrics is fixed, so it is a checked
// collector. mu serializes Collect calls: they share the sides' snapshots.
type failoverCollector struct {
	p interface{ Stats() failover.Stats }

	serving, pinned, switches, restores, fellOver, bothDown *prometheus.Desc
	failures, probes, probeFailures                         *prometheus.Desc

	mu    sync.Mutex
	sides [2]member // by failover.Side; their snapshots are guarded by mu
}

// NewFailoverCollector returns a Prometheus collector for a failover pool:
// for each side, every metric NewCollector exports for a pool, with the const
// labels pool (the side's pool name) and side ("primary" or "secondary"); and
// for the failover pool, labelled pool:
//
//	tidepool_failover_serving{side}                    gauge   1 for the side new Acquires try first, 0 for the other
//	tidepool_failover_pinned                           gauge   1 while an operator has forced the secondary
//	tidepool_failover_switches_total                   counter switches to the secondary
//	tidepool_failover_restores_total                   counter switches back to the primary
//	tidepool_failover_fell_over_total                  counter Acquires served by the side not tried first
//	tidepool_failover_both_down_total                  counter Acquires that neither side could serve
//	tidepool_failover_primary_failures_total{kind}     counter primary failures: dial_error, timeout, exhausted
//	tidepool_failover_probes_total                     counter probes of the primary
//	tidepool_failover_probe_failures_total             counter probes that got no answer
//
// Alert on rate(tidepool_failover_switches_total[5m]) > 0, or on
// tidepool_failover_serving{side="secondary"} == 1 for longer than an outage
// should last. opts add const labels to all of them ("side" in opts is
// replaced). Each scrape takes one p.Stats() snapshot; scrapes are serialized.
func NewFailoverCollector[T any](p *failover.Pool[T], opts ...Option) prometheus.Collector {
	return newFailoverCollector(p, opts...)
}

func newFailoverCollector(p interface{ Stats() failover.Stats }, opts ...Option) *failoverCollector {
	s := p.Stats()
	o := options{labels: prometheus.Labels{"pool": s.Name}}
	for _, opt := range opts {
		opt(&o)
	}
	delete(o.labels, "side")
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tidepool_failover_"+name, help, labels, o.labels)
	}
	c := &failoverCollector{
		p:             p,
		serving:       desc("serving", "1 for the side new Acquires try first, 0 for the other.", "side"),
		pinned:        desc("pinned", "1 while an operator has forced the secondary (no probes)."),
		switches:      desc("switches_total", "Switches to the secondary."),
		restores:      desc("restores_total", "Switches back to the primary."),
		fellOver:      desc("fell_over_total", "Acquires the side tried first could not serve and the other side served."),
		bothDown:      desc("both_down_total", "Acquires that neither side could serve."),
		failures:      desc("primary_failures_total", "Acquires the primary could not serve, by kind.", "kind"),
		probes:        desc("probes_total", "Probes of the primary."),
		probeFailures: desc("probe_failures_total", "Probes of the primary that got no answer."),
	}
	for i, st := range [2]failover.Side{failover.Primary, failover.Secondary} {
		src := &snapshot{s: s.Primary}
		if st == failover.Secondary {
			src.s = s.Secondary
		}
		side := append(append([]Option(nil), opts...), WithConstLabels(prometheus.Labels{"side": st.String()}))
		c.sides[i] = member{src: src, c: newCollector(src, side...)}
	}
	return c
}

// Describe sends every metric's description.
func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.serving, c.pinned, c.switches, c.restores, c.fellOver, c.bothDown,
		c.failures, c.probes, c.probeFailures} {
		ch <- d
	}
	for _, m := range c.sides {
		m.c.Describe(ch)
	}
}

// Collect sends the metrics of one Stats snapshot.
func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sides[failover.Primary].src.s = s.Primary
	c.sides[failover.Secondary].src.s = s.Secondary
	for _, m := range c.sides {
		m.c.Collect(ch)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, side := range []failover.Side{failover.Primary, failover.Secondary} {
		v := 0.0
		if s.Serving == side {
			v = 1
		}
		gauge(c.serving, v, side.String())
	}
	pinned := 0.0
	if s.Pinned {
		pinned = 1
	}
	gauge(c.pinned, pinned)
	counter(c.switches, s.Switches)
	counter(c.restores, s.Restores)
	counter(c.fellOver, s.FellOver)
	counter(c.bothDown, s.BothDown)
	counter(c.failures, s.PrimaryFailures.DialErrors, "dial_error")
	counter(c.failures, s.PrimaryFailures.Timeouts, "timeout")
	counter(c.failures, s.PrimaryFailures.Exhausted, "exhausted")
	counter(c.probes, s.Probes)
	counter(c.probeFailures, s.ProbeFailures)
}
