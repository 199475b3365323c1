package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidepool-go/tidepool"
)

// Option configures a collector.
type Option func(*options)

type options struct {
	labels prometheus.Labels
}

// WithConstLabels adds constant labels to every metric of the collector, for
// example the database a pool talks to. A "pool" label here replaces the
// pool's name.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) {
		for k, v := range l {
			o.labels[k] = v
		}
	}
}

// closedReasons pairs each retirement reason with its count in ClosedCounts.
var closedReasons = []struct {
	reason tidepool.Reason
	count  func(tidepool.ClosedCounts) int64
}{
	{tidepool.ReasonLifetime, func(c tidepool.ClosedCounts) int64 { return c.Lifetime }},
	{tidepool.ReasonIdle, func(c tidepool.ClosedCounts) int64 { return c.Idle }},
	{tidepool.ReasonHealth, func(c tidepool.ClosedCounts) int64 { return c.Health }},
	{tidepool.ReasonShrink, func(c tidepool.ClosedCounts) int64 { return c.Shrink }},
	{tidepool.ReasonDestroyed, func(c tidepool.ClosedCounts) int64 { return c.Destroyed }},
	{tidepool.ReasonClose, func(c tidepool.ClosedCounts) int64 { return c.Close }},
	{tidepool.ReasonExcessIdle, func(c tidepool.ClosedCounts) int64 { return c.ExcessIdle }},
}

// statsSource is what the collector needs of a pool; it does not depend on T.
type statsSource interface {
	Stats() tidepool.Stats
}

// collector turns one Stats snapshot per scrape into const metrics. Its fields
// are set by NewCollector and only read afterwards, by any number of
// concurrent Collect calls.
type collector struct {
	p statsSource

	connections, connMax, connMinIdle, connMaxIdle, connCeiling *prometheus.Desc
	dialing, waiting, pendingShrink                             *prometheus.Desc
	acquires, waited, waitSeconds, canceled                     *prometheus.Desc
	dials, dialErrors, closed                                   *prometheus.Desc
	healthChecks, healthFailures, resizes                       *prometheus.Desc
	leaksSuspected, leaksHeld, waitHist                         *prometheus.Desc
	// histBounds are tidepool.WaitBuckets in seconds.
	histBounds []float64
}

// NewCollector returns a Prometheus collector for p; register it with a
// prometheus.Registerer. Every metric carries the const label pool with the
// pool's Config.Name, so pools of one process need distinct names: registering
// two collectors with the same labels fails with a duplicate-registration
// error. The metrics are listed in the package comment.
//
// Each scrape takes one p.Stats() snapshot — O(connections), no lock that
// Acquire or Release take — and builds about 30 const metrics from it. The wait
// histogram costs the pool nothing on its hot path: the pool only records waits
// on its wait path, in fixed buckets (tidepool.WaitBuckets), and the collector
// turns those per-bucket counts into Prometheus' cumulative ones.
func NewCollector[T any](p *tidepool.Pool[T], opts ...Option) prometheus.Collector {
	return newCollector(p, opts...)
}

func newCollector(p statsSource, opts ...Option) *collector {
	o := options{labels: prometheus.Labels{"pool": p.Stats().Name}}
	for _, opt := range opts {
		opt(&o)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tidepool_"+name, help, labels, o.labels)
	}
	c := &collector{
		p:           p,
		connections: desc("connections", "Live connections, by state: idle (queued or under a health check) or in_use (held).", "state"),
		connMax:     desc("connections_max", "Most connections the pool may hold (MaxSize, after any Resize)."),
		connMinIdle: desc("connections_min_idle", "Idle connections the pool keeps warm (MinIdle, after any Resize)."),
		connMaxIdle: desc("connections_max_idle", "Most idle connections the pool keeps; a release beyond it closes the connection."),
		connCeiling: desc("connections_size_ceiling", "Largest MaxSize that Resize accepts."),

		dialing:       desc("dialing", "Dials in flight."),
		waiting:       desc("waiting", "Acquire calls waiting for a connection."),
		pendingShrink: desc("pending_shrink", "In-use connections above the max after a shrink; they close on release."),

		acquires:    desc("acquires_total", "Successful acquisitions."),
		waited:      desc("waited_acquires_total", "Successful acquisitions that had to wait for a connection."),
		waitSeconds: desc("acquire_wait_seconds_total", "Total time successful acquisitions waited for a connection."),
		canceled:    desc("canceled_acquires_total", "Acquire calls whose context ended, or that timed out, while waiting."),

		dials:      desc("dials_total", "Connections dialed."),
		dialErrors: desc("dial_errors_total", "Dials that failed."),
		closed:     desc("closed_total", "Connections retired, by reason.", "reason"),

		healthChecks:   desc("health_checks_total", "Health checks run on idle connections."),
		healthFailures: desc("health_failures_total", "Health checks that failed (the connection was retired)."),
		resizes:        desc("resizes_total", "Resize calls adopted by the pool."),

		leaksSuspected: desc("leaks_suspected_total", "Hand-outs held longer than the leak threshold."),
		leaksHeld:      desc("leaks_held", "Connections held longer than the leak threshold and not yet released."),
		waitHist:       desc("acquire_wait_seconds", "How long acquisitions that had to wait waited (those that found an idle connection are not counted)."),
	}
	bounds := tidepool.WaitBuckets()
	c.histBounds = make([]float64, len(bounds))
	for i, b := range bounds {
		c.histBounds[i] = b.Seconds()
	}
	return c
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connections, c.connMax, c.connMinIdle, c.connMaxIdle, c.connCeiling,
		c.dialing, c.waiting, c.pendingShrink,
		c.acquires, c.waited, c.waitSeconds, c.canceled,
		c.dials, c.dialErrors, c.closed,
		c.healthChecks, c.healthFailures, c.resizes,
		c.leaksSuspected, c.leaksHeld, c.waitHist,
	} {
		ch <- d
	}
}

// Collect sends the metrics of one Stats snapshot.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	gauge(c.connections, float64(s.Idle), "idle")
	gauge(c.connections, float64(s.InUse), "in_use")
	gauge(c.connMax, float64(s.MaxSize))
	gauge(c.connMinIdle, float64(s.MinIdle))
	gauge(c.connMaxIdle, float64(s.MaxIdle))
	gauge(c.connCeiling, float64(s.SizeCeiling))
	gauge(c.dialing, float64(s.Dialing))
	gauge(c.waiting, float64(s.Waiting))
	gauge(c.pendingShrink, float64(s.PendingShrink))

	counter(c.acquires, float64(s.Acquires))
	counter(c.waited, float64(s.WaitedAcquires))
	counter(c.waitSeconds, s.WaitDuration.Seconds())
	counter(c.canceled, float64(s.CanceledAcquires))
	counter(c.dials, float64(s.Dials))
	counter(c.dialErrors, float64(s.DialErrors))
	for _, r := range closedReasons {
		counter(c.closed, float64(r.count(s.Closed)), r.reason.String())
	}
	counter(c.healthChecks, float64(s.HealthChecks))
	counter(c.healthFailures, float64(s.HealthFailures))
	counter(c.resizes, float64(s.Resizes))
	counter(c.leaksSuspected, float64(s.LeaksSuspected))
	gauge(c.leaksHeld, float64(s.LeaksHeld))

	// Stats.WaitHistogram counts per bucket; Prometheus wants, for each upper
	// bound, the count of observations at or below it. The last Stats bucket
	// (over the largest bound) is only in the total count, i.e. in +Inf.
	buckets := make(map[float64]uint64, len(c.histBounds))
	var cum uint64
	for i, le := range c.histBounds {
		cum += uint64(s.WaitHistogram[i])
		buckets[le] = cum
	}
	cum += uint64(s.WaitHistogram[len(c.histBounds)])
	ch <- prometheus.MustNewConstHistogram(c.waitHist, cum, s.WaitDuration.Seconds(), buckets)
}
