package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidepool-go/tidepool"
)

// rowType says how a Stats field is exported.
type rowType int

const (
	gauge   rowType = iota // a gauge series
	counter                // a counter series (name ends in _total)
	// histogram: the field is part of tidepool_acquire_wait_seconds.
	histogram
	// byReason: tidepool_closed_total, one series per reasonRows entry.
	byReason
	// poolLabel: not a series; the value of the pool label of every series.
	poolLabel
	// derived: no series of its own; Metric is the query that gives it.
	derived
)

// statsRow says how one field of tidepool.Stats is exported. statsRows is the
// single table the collector is built from, and the tests check it against
// tidepool.Stats by reflection: a Stats field without a row fails them.
type statsRow struct {
	// Field is the tidepool.Stats field.
	Field string
	// Metric is what an operator queries: a series name, a series with its
	// label, or for derived rows a PromQL expression.
	Metric string
	Type   rowType
	// For gauges and counters: the family name without the tidepool_
	// prefix, the label that tells its series apart (if any) and this
	// series' value of it, the help text, and the value.
	name       string
	labelName  string
	labelValue string
	help       string
	value      func(s *tidepool.Stats) float64
}

// Help texts of families with more than one row.
const (
	helpConnections = "Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held)."
	helpStuck       = "User callbacks still running past their timeout, by callback (their dials count as failed, their checks' connections are retired)."
)

// statsRows maps every field of tidepool.Stats to its metric, in Stats order.
var statsRows = []statsRow{
	{Field: "Name", Metric: `pool="<Name>" on every series`, Type: poolLabel},
	row("MaxSize", gauge, "connections_max", "Most connections the pool may hold (MaxSize, after any Resize).",
		func(s *tidepool.Stats) float64 { return float64(s.MaxSize) }),
	row("MinIdle", gauge, "connections_min_idle", "Idle connections the pool keeps warm (MinIdle, after any Resize).",
		func(s *tidepool.Stats) float64 { return float64(s.MinIdle) }),
	row("MaxIdle", gauge, "connections_max_idle", "Most idle connections the pool keeps; a release beyond it closes the connection.",
		func(s *tidepool.Stats) float64 { return float64(s.MaxIdle) }),
	row("SizeCeiling", gauge, "connections_size_ceiling", "Largest MaxSize that Resize accepts.",
		func(s *tidepool.Stats) float64 { return float64(s.SizeCeiling) }),
	row("Slots", gauge, "slots", "Connections the backend may see: dialing, live and closing. At most MaxSize, except pending_shrink.",
		func(s *tidepool.Stats) float64 { return float64(s.Slots) }),
	{Field: "Total", Metric: "sum without (state) (tidepool_connections)", Type: derived, name: "connections",
		value: func(s *tidepool.Stats) float64 { return float64(s.Total) }},
	labelled(row("Idle", gauge, "connections", helpConnections,
		func(s *tidepool.Stats) float64 { return float64(s.Idle) }), "state", "idle"),
	labelled(row("Checking", gauge, "connections", helpConnections,
		func(s *tidepool.Stats) float64 { return float64(s.Checking) }), "state", "checking"),
	labelled(row("InUse", gauge, "connections", helpConnections,
		func(s *tidepool.Stats) float64 { return float64(s.InUse) }), "state", "in_use"),
	row("Dialing", gauge, "dialing", "Dials in flight.",
		func(s *tidepool.Stats) float64 { return float64(s.Dialing) }),
	labelled(row("StuckDials", gauge, "stuck_callbacks", helpStuck,
		func(s *tidepool.Stats) float64 { return float64(s.StuckDials) }), "callback", "dial"),
	row("Closing", gauge, "closing", "Retired connections whose Close has not returned (they still hold their slot).",
		func(s *tidepool.Stats) float64 { return float64(s.Closing) }),
	labelled(row("StuckChecks", gauge, "stuck_callbacks", helpStuck,
		func(s *tidepool.Stats) float64 { return float64(s.StuckChecks) }), "callback", "check"),
	row("Waiting", gauge, "waiting", "Acquire calls waiting for a connection.",
		func(s *tidepool.Stats) float64 { return float64(s.Waiting) }),
	row("PendingShrink", gauge, "pending_shrink", "In-use connections above the max after a shrink; they close on release.",
		func(s *tidepool.Stats) float64 { return float64(s.PendingShrink) }),
	row("Acquires", counter, "acquires_total", "Successful acquisitions.",
		func(s *tidepool.Stats) float64 { return float64(s.Acquires) }),
	row("WaitedAcquires", counter, "waited_acquires_total", "Successful acquisitions that had to wait for a connection.",
		func(s *tidepool.Stats) float64 { return float64(s.WaitedAcquires) }),
	{Field: "WaitDuration", Metric: "tidepool_acquire_wait_seconds_sum", Type: histogram},
	row("CanceledAcquires", counter, "canceled_acquires_total", "Acquire calls whose context ended, or that timed out, while waiting.",
		func(s *tidepool.Stats) float64 { return float64(s.CanceledAcquires) }),
	row("RejectedAcquires", counter, "rejected_acquires_total", "Acquire calls refused at once because MaxWaiters were waiting.",
		func(s *tidepool.Stats) float64 { return float64(s.RejectedAcquires) }),
	row("Dials", counter, "dials_total", "Connections dialed.",
		func(s *tidepool.Stats) float64 { return float64(s.Dials) }),
	row("DialErrors", counter, "dial_errors_total", "Dials that failed.",
		func(s *tidepool.Stats) float64 { return float64(s.DialErrors) }),
	{Field: "Closed", Metric: "tidepool_closed_total{reason}", Type: byReason},
	row("HealthChecks", counter, "health_checks_total", "Health checks run on idle connections.",
		func(s *tidepool.Stats) float64 { return float64(s.HealthChecks) }),
	row("HealthFailures", counter, "health_failures_total", "Health checks that failed (the connection was retired).",
		func(s *tidepool.Stats) float64 { return float64(s.HealthFailures) }),
	row("AcquireChecks", counter, "acquire_checks_total", "Checks run on idle connections before handing them out.",
		func(s *tidepool.Stats) float64 { return float64(s.AcquireChecks) }),
	row("AcquireCheckFailures", counter, "acquire_check_failures_total", "Checks on acquire that failed (the connection was retired, the Acquire moved on).",
		func(s *tidepool.Stats) float64 { return float64(s.AcquireCheckFailures) }),
	row("CallbackPanics", counter, "callback_panics_total", "User callbacks that panicked (recovered; the callback counted as failed).",
		func(s *tidepool.Stats) float64 { return float64(s.CallbackPanics) }),
	row("CallbackTimeouts", counter, "callback_timeouts_total", "User callbacks that ran past their timeout (counted as failed).",
		func(s *tidepool.Stats) float64 { return float64(s.CallbackTimeouts) }),
	row("Resizes", counter, "resizes_total", "Resize calls adopted by the pool.",
		func(s *tidepool.Stats) float64 { return float64(s.Resizes) }),
	row("Resets", counter, "resets_total", "Reset calls.",
		func(s *tidepool.Stats) float64 { return float64(s.Resets) }),
	row("Hijacked", counter, "hijacked_total", "Connections taken out of the pool for good by Hijack.",
		func(s *tidepool.Stats) float64 { return float64(s.Hijacked) }),
	row("LeaksSuspected", counter, "leaks_suspected_total", "Hand-outs held longer than the leak threshold.",
		func(s *tidepool.Stats) float64 { return float64(s.LeaksSuspected) }),
	row("LeaksHeld", gauge, "leaks_held", "Connections held longer than the leak threshold and not yet released.",
		func(s *tidepool.Stats) float64 { return float64(s.LeaksHeld) }),
	{Field: "WaitHistogram", Metric: "tidepool_acquire_wait_seconds_bucket", Type: histogram},
}

// The wait histogram: buckets from Stats.WaitHistogram, sum from
// Stats.WaitDuration, count the total of the buckets (= WaitedAcquires).
const (
	histName = "acquire_wait_seconds"
	histHelp = "How long acquisitions that had to wait waited (those that found an idle connection are not counted)."
)

// The retirement counter: tidepool_closed_total{reason="<Reason>"}.
const (
	closedName = "closed_total"
	closedHelp = "Connections retired, by reason."
)

// reasonRow pairs a retirement reason (its label value, Reason.String(), the
// same word as the reason field of the conn.retired log entry) with its count
// in tidepool.ClosedCounts.
type reasonRow struct {
	Field  string // the tidepool.ClosedCounts field
	Reason tidepool.Reason
	count  func(c *tidepool.ClosedCounts) int64
}

// reasonRows maps every field of tidepool.ClosedCounts, and so every
// retirement reason, to its series of tidepool_closed_total.
var reasonRows = []reasonRow{
	{"Lifetime", tidepool.ReasonLifetime, func(c *tidepool.ClosedCounts) int64 { return c.Lifetime }},
	{"Idle", tidepool.ReasonIdle, func(c *tidepool.ClosedCounts) int64 { return c.Idle }},
	{"Health", tidepool.ReasonHealth, func(c *tidepool.ClosedCounts) int64 { return c.Health }},
	{"Shrink", tidepool.ReasonShrink, func(c *tidepool.ClosedCounts) int64 { return c.Shrink }},
	{"Destroyed", tidepool.ReasonDestroyed, func(c *tidepool.ClosedCounts) int64 { return c.Destroyed }},
	{"Close", tidepool.ReasonClose, func(c *tidepool.ClosedCounts) int64 { return c.Close }},
	{"ExcessIdle", tidepool.ReasonExcessIdle, func(c *tidepool.ClosedCounts) int64 { return c.ExcessIdle }},
	{"Reset", tidepool.ReasonReset, func(c *tidepool.ClosedCounts) int64 { return c.Reset }},
	{"Vetoed", tidepool.ReasonVetoed, func(c *tidepool.ClosedCounts) int64 { return c.Vetoed }},
	{"LateDial", tidepool.ReasonLateDial, func(c *tidepool.ClosedCounts) int64 { return c.LateDial }},
}

func row(field string, t rowType, name, help string, value func(*tidepool.Stats) float64) statsRow {
	return statsRow{Field: field, Metric: "tidepool_" + name, Type: t, name: name, help: help, value: value}
}

func labelled(r statsRow, label, value string) statsRow {
	r.labelName, r.labelValue = label, value
	r.Metric += `{` + label + `="` + value + `"}`
	return r
}

// valueType is the Prometheus type of a gauge or counter row.
func (r statsRow) valueType() prometheus.ValueType {
	if r.Type == counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}
