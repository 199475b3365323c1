package results

import (
	"fmt"
	"math"
	"strings"
)

// Goal is one goal a run is judged on: a metric of tidepool's, alone or
// divided by another pool's, against a limit, at every key of a scenario (every
// GOMAXPROCS and goroutine count swept). It is met when it holds at every key.
type Goal struct {
	// ID is stable across runs; reasons.md refers to goals by it.
	ID string
	// Issue is the issue whose table states the goal (8), or 0 for the
	// targets the harness kept from earlier work.
	Issue    int
	Scenario string
	// Variant restricts the goal to keys with this Variant ("" for all).
	Variant string
	// What is measured and what it must be, in words.
	What, Want string
	// Unit is the metric, as the benchmark reports it.
	Unit string
	// Other is the pool tidepool is divided by; "" when the goal bounds
	// tidepool's own value. Several pools joined by "|" mean the best of them
	// for this goal's direction (the highest for AtLeast, the lowest for AtMost).
	Other string
	// Limit is the bound on the judged value (tidepool's value, or the ratio).
	Limit float64
	// AtMost: the value must be ≤ Limit; otherwise ≥ Limit.
	AtMost bool
}

// Point is a goal judged at one key.
type Point struct {
	Key Key
	// Tidepool is tidepool's median; Other the other pool's (NaN without one)
	// and OtherName which pool that was.
	Tidepool, Other float64
	OtherName       string
	// Value is what is judged: Tidepool/Other, or Tidepool.
	Value float64
	Met   bool
	// Missing: tidepool or the other pool has no result at this key.
	Missing bool
}

// margin is how far p is from failing its goal: > 1 misses, and the larger the
// worse. It orders points to find the worst.
func (g Goal) margin(p Point) float64 {
	switch {
	case p.Missing:
		return math.Inf(1)
	case g.Limit == 0:
		return p.Value // bounded by 0: the larger the worse
	case g.AtMost:
		return p.Value / g.Limit
	default:
		return g.Limit / p.Value
	}
}

// Verdict is a goal judged on a whole run.
type Verdict struct {
	Goal
	// Points are the keys judged, in KeysOf order.
	Points []Point
	// Worst is the point furthest from the goal (a missing one first).
	Worst Point
	// Met: every point met. Missing: no point had data.
	Met, Missing bool
}

// RatioText says what a verdict's Value is, e.g. "tidepool ÷ puddle".
func (g Goal) RatioText() string {
	if g.Other == "" {
		return "tidepool"
	}
	if strings.Contains(g.Other, "|") {
		return "tidepool ÷ best of " + strings.ReplaceAll(g.Other, "|", ", ")
	}
	return "tidepool ÷ " + g.Other
}

// Judge evaluates g at every key of its scenario in s.
func (g Goal) Judge(s *Set) Verdict {
	v := Verdict{Goal: g, Met: true, Missing: true}
	worst := math.Inf(-1)
	for _, k := range s.KeysOf(g.Scenario) {
		if g.Variant != "" && k.Variant != g.Variant {
			continue
		}
		p := g.point(s, k)
		v.Points = append(v.Points, p)
		if !p.Missing {
			v.Missing = false
		}
		if !p.Met {
			v.Met = false
		}
		if m := g.margin(p); m > worst || len(v.Points) == 1 {
			worst, v.Worst = m, p
		}
	}
	if v.Missing {
		v.Met = false
	}
	if len(v.Points) == 0 {
		v.Worst = Point{Tidepool: math.NaN(), Other: math.NaN(), Value: math.NaN(), Missing: true}
	}
	return v
}

func (g Goal) point(s *Set, k Key) Point {
	t, okT := s.Median(k, "tidepool", g.Unit)
	p := Point{Key: k, Tidepool: t, Other: math.NaN()}
	if g.Other == "" {
		p.Value, p.Missing = t, !okT
	} else {
		found := false
		for _, name := range strings.Split(g.Other, "|") {
			o, ok := s.Median(k, name, g.Unit)
			if !ok {
				continue
			}
			better := o > p.Other
			if g.AtMost {
				better = o < p.Other
			}
			if !found || better {
				p.Other, p.OtherName, found = o, name, true
			}
		}
		p.Value, p.Missing = t/p.Other, !okT || !found
		if t == 0 && p.Other == 0 {
			p.Value = 1 // 0 allocations against 0: level
		}
	}
	if !p.Missing {
		if g.AtMost {
			p.Met = p.Value <= g.Limit
		} else {
			p.Met = p.Value >= g.Limit
		}
	}
	return p
}

// Level is how close tidepool must come to a pool to count as level with it:
// within 3 %, the tolerance issue 8 gives S4 ("≥ 0.97× the best").
const Level = 0.97

// Goals are the goals a run is judged on: issue 8's table, then the targets
// kept from earlier work (S6, S7).
var Goals = func() []Goal {
	gs := []Goal{
		{ID: "S1.puddle", Issue: 8, Scenario: S1, What: "ns per acquire+release, 1 goroutine", Want: "≤ 1/3 of puddle's",
			Unit: "ns/op", Other: "puddle", Limit: 1.0 / 3, AtMost: true},
		{ID: "S1.mutex", Issue: 8, Scenario: S1, What: "ns per acquire+release, 1 goroutine", Want: "≤ 1.5× the mutex+slice pool's",
			Unit: "ns/op", Other: "mutex", Limit: 1.5, AtMost: true},
		{ID: "S1.allocs", Issue: 8, Scenario: S1, What: "allocations per acquire+release", Want: "0",
			Unit: "allocs/op", Limit: 0, AtMost: true},
		{ID: "S2.mutex", Issue: 8, Scenario: S2, What: "ns per acquire+release, nobody waits, every goroutine count", Want: "≤ the mutex+slice pool's",
			Unit: "ns/op", Other: "mutex", Limit: 1, AtMost: true},
		{ID: "S2.allocs", Issue: 8, Scenario: S2, What: "allocations per acquire+release", Want: "0",
			Unit: "allocs/op", Limit: 0, AtMost: true},
		{ID: "S3.ops", Issue: 8, Scenario: S3, What: "throughput, 64 goroutines on 4 conns, ~300 ns work", Want: "≥ 1.5× puddle's",
			Unit: "ops/s", Other: "puddle", Limit: 1.5},
		{ID: "S3.fairness", Issue: 8, Scenario: S3, What: "fairness (Jain's index over per-goroutine ops)", Want: "≥ 0.95",
			Unit: "fairness", Limit: 0.95},
		{ID: "S3.p999", Issue: 8, Scenario: S3, What: "p99.9 wait in acquire", Want: "≤ puddle's",
			Unit: "p99.9-wait-ns", Other: "puddle", Limit: 1, AtMost: true},
		{ID: "S4.best", Issue: 8, Scenario: S4, What: "loopback TCP echo, 32 goroutines on 8 conns", Want: "≥ 0.97× the best hand-written pool on the same 8 conns",
			Unit: "ops/s", Other: "chan|mutex", Limit: Level},
		{ID: "S5.ops", Issue: 8, Scenario: S5, What: "successful ops/s under cancellation churn", Want: "≥ 2× puddle's",
			Unit: "ok-ops/s", Other: "puddle", Limit: 2},
		{ID: "S5.lost", Issue: 8, Scenario: S5, What: "connections lost to cancelled acquires", Want: "0",
			Unit: "lost", Limit: 0, AtMost: true},
	}
	for _, sc := range []struct{ scenario, short, op, what string }{
		{S8Postgres, "pg-select", "op=select", "pgx: SELECT of one small row"},
		{S8Postgres, "pg-tx", "op=tx", "pgx: BEGIN; UPDATE; SELECT; COMMIT"},
		{S8Redis, "redis-get", "op=get", "redigo: GET"},
		{S8Redis, "redis-set", "op=set", "redigo: SET"},
	} {
		client := ClientPool[sc.scenario]
		gs = append(gs,
			Goal{ID: "S8." + sc.short + ".ops", Issue: 8, Scenario: sc.scenario, Variant: sc.op,
				What: sc.what + ", throughput, 32 goroutines on 8 conns", Want: fmt.Sprintf("level with %s (≥ %.2f×)", client, Level),
				Unit: "ops/s", Other: client, Limit: Level},
			Goal{ID: "S8." + sc.short + ".p99", Issue: 8, Scenario: sc.scenario, Variant: sc.op,
				What: sc.what + ", p99 latency of the whole op", Want: fmt.Sprintf("level with %s (≤ %.2f×)", client, 1/Level),
				Unit: "p99-ns", Other: client, Limit: 1 / Level, AtMost: true},
			Goal{ID: "S8." + sc.short + ".allocs", Issue: 8, Scenario: sc.scenario, Variant: sc.op,
				What: sc.what + ", allocations per op (client's included)", Want: "≤ " + client + "'s",
				Unit: "allocs/op", Other: client, Limit: 1, AtMost: true},
		)
	}
	gs = append(gs,
		Goal{ID: "S6.served", Scenario: S6, What: "waiters served within 250 ms of the Resize", Want: "all of them",
			Unit: "served-frac", Limit: 1},
		Goal{ID: "S6.serve", Scenario: S6, What: "Resize to 36 until 32 waiters are served (1 ms dial)", Want: "≤ 2 ms (dial latency + 1 ms)",
			Unit: "serve-ns", Limit: S6DialLatencyNs + S6SlackNs, AtMost: true},
		Goal{ID: "S7.bytes", Scenario: S7, What: "bytes per idle connection at 10,000, watcher goroutine included", Want: "≤ 4 KiB",
			Unit: "B/idle-conn", Limit: S7BytesPerConn, AtMost: true},
	)
	return gs
}()

// Budgets of the targets kept from earlier work.
const (
	S6DialLatencyNs = 1e6
	S6SlackNs       = 1e6
	S7BytesPerConn  = 4096
)

// JudgeAll judges every goal on s.
func JudgeAll(s *Set) []Verdict {
	vs := make([]Verdict, len(Goals))
	for i, g := range Goals {
		vs[i] = g.Judge(s)
	}
	return vs
}
