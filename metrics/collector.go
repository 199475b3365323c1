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

// statsSource is what the collector needs of a pool; it does not depend on T.
type statsSource interface {
	Stats() tidepool.Stats
}

// collector turns one Stats snapshot per scrape into const metrics, following
// statsRows and reasonRows. Its fields are set by newCollector and only read
// afterwards, by any number of concurrent Collect calls.
type collector struct {
	p statsSource
	// descs holds the description of each gauge and counter family, by
	// name (without the tidepool_ prefix), in table order.
	descs  map[string]*prometheus.Desc
	order  []*prometheus.Desc
	closed *prometheus.Desc
	hist   *prometheus.Desc
	// histBounds are tidepool.WaitBuckets in seconds.
	histBounds []float64
}

// NewCollector returns a Prometheus collector for p; register it with a
// prometheus.Registerer. Every metric carries the const label pool with the
// pool's Config.Name, so pools of one process need distinct names: registering
// two collectors with the same labels fails with a duplicate-registration
// error. The metrics are listed in the package comment, each with the Stats
// field it exports.
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
	c := &collector{p: p, descs: map[string]*prometheus.Desc{}}
	for _, r := range statsRows {
		if (r.Type != gauge && r.Type != counter) || c.descs[r.name] != nil {
			continue
		}
		var labels []string
		if r.labelName != "" {
			labels = []string{r.labelName}
		}
		d := desc(r.name, r.help, labels...)
		c.descs[r.name] = d
		c.order = append(c.order, d)
	}
	c.closed = desc(closedName, closedHelp, "reason")
	c.hist = desc(histName, histHelp)
	bounds := tidepool.WaitBuckets()
	c.histBounds = make([]float64, len(bounds))
	for i, b := range bounds {
		c.histBounds[i] = b.Seconds()
	}
	return c
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.order {
		ch <- d
	}
	ch <- c.closed
	ch <- c.hist
}

// Collect sends the metrics of one Stats snapshot.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for _, r := range statsRows {
		if r.Type != gauge && r.Type != counter {
			continue
		}
		var labels []string
		if r.labelName != "" {
			labels = []string{r.labelValue}
		}
		ch <- prometheus.MustNewConstMetric(c.descs[r.name], r.valueType(), r.value(&s), labels...)
	}
	for _, r := range reasonRows {
		ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(r.count(&s.Closed)), r.Reason.String())
	}

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
	ch <- prometheus.MustNewConstHistogram(c.hist, cum, s.WaitDuration.Seconds(), buckets)
}
