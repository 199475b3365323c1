package results

import "math"

// Score is one pool's result in a scenario as a factor of the baseline's, so
// that higher is always better: 2 means twice as good as the baseline.
type Score struct {
	Pool   string
	Factor float64 // NaN when the pool has no result
	Raw    float64 // the median the factor comes from
}

// Headline says which metric a scenario is scored on.
type Headline struct {
	Unit         string
	LowerBetter  bool
	Baseline     string  // the pool that scores 1, or "" for a constant
	BaselineText string  // how the chart names the baseline
	Constant     float64 // the baseline value when Baseline is ""
	Title        string
}

// Headlines maps each scenario to its headline metric.
var Headlines = map[string]Headline{
	S1: {Unit: "ns/op", LowerBetter: true, Baseline: "puddle", BaselineText: "puddle", Title: "S1 one goroutine, acquire+release"},
	S2: {Unit: "ns/op", LowerBetter: true, Baseline: "puddle", BaselineText: "puddle", Title: "S2 parallel, nobody waits"},
	S3: {Unit: "ops/s", Baseline: "puddle", BaselineText: "puddle", Title: "S3 64 goroutines on 4 conns: throughput"},
	S4: {Unit: "ops/s", Baseline: "puddle", BaselineText: "puddle", Title: "S4 loopback TCP, 32 goroutines on 8 conns"},
	S5: {Unit: "ok-ops/s", Baseline: "puddle", BaselineText: "puddle", Title: "S5 cancellation churn: successful ops/s"},
	S6: {Unit: "serve-ns", LowerBetter: true, Constant: S6DialLatencyNs + S6SlackNs, BaselineText: "the 2 ms budget", Title: "S6 resize under load: time to serve 32 waiters"},
	S7: {Unit: "B/idle-conn", LowerBetter: true, Baseline: "puddle", BaselineText: "puddle", Title: "S7 memory per idle connection"},
}

// Scores returns every pool's score in a scenario, in the order the pools ran.
func Scores(s *Set, scenario string) []Score {
	h := Headlines[scenario]
	base := h.Constant
	if h.Baseline != "" {
		base, _ = s.Median(scenario, h.Baseline, h.Unit)
	}
	var out []Score
	for _, p := range s.Pools(scenario) {
		v, ok := s.Median(scenario, p, h.Unit)
		f := math.NaN()
		if ok {
			if h.LowerBetter {
				f = base / v
			} else {
				f = v / base
			}
		}
		if scenario == S6 && !ok {
			if fr, ok := s.Median(scenario, p, "served-frac"); ok && fr < 1 {
				f = 0 // did not serve the waiters at all
			}
		}
		out = append(out, Score{Pool: p, Factor: f, Raw: v})
	}
	return out
}
