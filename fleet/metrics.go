package fleet

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a member's numbers to Prometheus, labelled with the fleet
// and member: gauges tidepool_fleet_budget, _grant, _claim, _share, _demand,
// _slots, _members, _claimed, _fenced; counters tidepool_fleet_renewals_total,
// _renew_failures_total, _fences_total, _lease_losses_total,
// _grant_changes_total. Each scrape costs one Stats call.
type Collector struct {
	m     *Member
	descs map[string]*prometheus.Desc
}

var collectorMetrics = []struct {
	name, help string
	counter    bool
	get        func(Stats) float64
}{
	{"budget", "Connections all members together may have open.", false, func(s Stats) float64 { return float64(s.Budget) }},
	{"grant", "Connections this member's pool may hold now.", false, func(s Stats) float64 { return float64(s.Grant) }},
	{"claim", "Connections reserved in etcd for this member.", false, func(s Stats) float64 { return float64(s.Claim) }},
	{"share", "This member's max-min fair share in its latest view.", false, func(s Stats) float64 { return float64(s.Target) }},
	{"demand", "This member's published demand (peak in use + waiting over the demand window).", false, func(s Stats) float64 { return float64(s.Demand) }},
	{"slots", "Connections of this member's pool the backend may see.", false, func(s Stats) float64 { return float64(s.Slots) }},
	{"members", "Members in this member's view of the fleet.", false, func(s Stats) float64 { return float64(s.Members) }},
	{"claimed", "Sum of all members' claims in this member's view.", false, func(s Stats) float64 { return float64(s.Claimed) }},
	{"fenced", "1 while the member's pool is fenced (lease deadline passed).", false, func(s Stats) float64 {
		if s.Fenced {
			return 1
		}
		return 0
	}},
	{"renewals_total", "Lease renewals that succeeded.", true, func(s Stats) float64 { return float64(s.Renewals) }},
	{"renew_failures_total", "Lease renewals that failed.", true, func(s Stats) float64 { return float64(s.RenewFailures) }},
	{"fences_total", "Times the pool fenced itself.", true, func(s Stats) float64 { return float64(s.Fences) }},
	{"lease_losses_total", "Times the lease was found expired.", true, func(s Stats) float64 { return float64(s.LeaseLosses) }},
	{"grant_changes_total", "Changes of the grant (one fleet.granted entry each).", true, func(s Stats) float64 { return float64(s.GrantChanges) }},
}

// NewCollector returns a prometheus.Collector for m; register it once.
func NewCollector(m *Member) *Collector {
	c := &Collector{m: m, descs: make(map[string]*prometheus.Desc)}
	labels := prometheus.Labels{"fleet": m.o.Name, "member": m.o.Member}
	for _, cm := range collectorMetrics {
		c.descs[cm.name] = prometheus.NewDesc("tidepool_fleet_"+cm.name, cm.help, nil, labels)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, cm := range collectorMetrics {
		ch <- c.descs[cm.name]
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	for _, cm := range collectorMetrics {
		t := prometheus.GaugeValue
		if cm.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[cm.name], t, cm.get(s))
	}
}
