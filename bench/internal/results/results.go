package results

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Set holds every sample of a benchmark run: scenario → pool → unit → samples
// (one per -count), plus the order in which scenarios and pools appeared.
type Set struct {
	samples   map[string]map[string]map[string][]float64
	Scenarios []string
	pools     map[string][]string
}

// ParseFile parses the benchmark output in the named file.
func ParseFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads `go test -bench` output. Lines that are not benchmark results are
// skipped. A result line's name must be Benchmark<Scenario>/pool=<name>[-procs].
func Parse(r io.Reader) (*Set, error) {
	s := &Set{samples: map[string]map[string]map[string][]float64{}, pools: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line (e.g. "--- BENCH:")
		}
		scenario, pool, ok := strings.Cut(strings.TrimPrefix(f[0], "Benchmark"), "/pool=")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(pool, '-'); i > 0 {
			if _, err := strconv.Atoi(pool[i+1:]); err == nil {
				pool = pool[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("results: %q: bad value %q", f[0], f[i])
			}
			s.add(scenario, pool, f[i+1], v)
		}
	}
	return s, sc.Err()
}

func (s *Set) add(scenario, pool, unit string, v float64) {
	byPool, ok := s.samples[scenario]
	if !ok {
		byPool = map[string]map[string][]float64{}
		s.samples[scenario] = byPool
		s.Scenarios = append(s.Scenarios, scenario)
	}
	byUnit, ok := byPool[pool]
	if !ok {
		byUnit = map[string][]float64{}
		byPool[pool] = byUnit
		s.pools[scenario] = append(s.pools[scenario], pool)
	}
	byUnit[unit] = append(byUnit[unit], v)
}

// Pools returns the pools of a scenario in the order they ran.
func (s *Set) Pools(scenario string) []string { return s.pools[scenario] }

// Median returns the median of a metric's samples, and false if there are none.
func (s *Set) Median(scenario, pool, unit string) (float64, bool) {
	xs := slices.Clone(s.samples[scenario][pool][unit])
	if len(xs) == 0 {
		return math.NaN(), false
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2], true
	}
	return (xs[n/2-1] + xs[n/2]) / 2, true
}

// Samples returns how many samples a metric has.
func (s *Set) Samples(scenario, pool, unit string) int { return len(s.samples[scenario][pool][unit]) }

// Scenario names as the benchmarks spell them.
const (
	S1 = "S1Single"
	S2 = "S2Parallel"
	S3 = "S3Contended"
	S4 = "S4Sockets"
	S5 = "S5CancelChurn"
	S6 = "S6ResizeUnderLoad"
	S7 = "S7IdleMemory"
)

// Target is one of the targets, judged on a Set.
type Target struct {
	Scenario string
	// What is measured and what it must be, in words.
	What, Want string
	// Tidepool and Other are the two values compared (Other is puddle's, or
	// the ideal's in S4; NaN when the target compares with a constant).
	Tidepool, Other float64
	OtherName       string
	Unit            string
	// Ratio is the number judged (tidepool/other, or tidepool/limit).
	Ratio float64
	// RatioText says what Ratio is, e.g. "tidepool ÷ puddle".
	RatioText string
	Met       bool
	// Missing is set when the run has no data for the target.
	Missing bool
}

// Budgets of the targets.
const (
	S6DialLatencyNs = 1e6
	S6SlackNs       = 1e6
	S7BytesPerConn  = 4096
)

// Targets judges every target of the issue on s.
func Targets(s *Set) []Target {
	var ts []Target
	cmp := func(sc, what, want, unit, other string, ok func(r float64) bool, ratioText string) {
		t, okT := s.Median(sc, "tidepool", unit)
		o, okO := s.Median(sc, other, unit)
		r := t / o
		ts = append(ts, Target{Scenario: sc, What: what, Want: want, Tidepool: t, Other: o, OtherName: other,
			Unit: unit, Ratio: r, RatioText: ratioText, Met: okT && okO && ok(r), Missing: !okT || !okO})
	}
	abs := func(sc, what, want, unit string, limit float64, other string) {
		t, okT := s.Median(sc, "tidepool", unit)
		o, _ := s.Median(sc, other, unit)
		r, text := t/limit, fmt.Sprintf("tidepool ÷ %g", limit)
		if limit == 0 {
			r, text = t, "tidepool's value"
		}
		ts = append(ts, Target{Scenario: sc, What: what, Want: want, Tidepool: t, Other: o, OtherName: other,
			Unit: unit, Ratio: r, RatioText: text, Met: okT && t <= limit, Missing: !okT})
	}
	le := func(x float64) func(float64) bool { return func(r float64) bool { return r <= x } }
	ge := func(x float64) func(float64) bool { return func(r float64) bool { return r >= x } }

	cmp(S1, "ns per acquire+release, 1 goroutine", "≤ 1/3 of puddle", "ns/op", "puddle", le(1.0/3), "tidepool ÷ puddle")
	abs(S1, "allocations per acquire+release", "0", "allocs/op", 0, "puddle")
	cmp(S2, "ns per acquire+release, GOMAXPROCS goroutines", "≤ 1/3 of puddle", "ns/op", "puddle", le(1.0/3), "tidepool ÷ puddle")
	abs(S2, "allocations per acquire+release", "0", "allocs/op", 0, "puddle")
	cmp(S3, "throughput, 64 goroutines on 4 conns", "≥ 1.5× puddle", "ops/s", "puddle", ge(1.5), "tidepool ÷ puddle")
	t, okT := s.Median(S3, "tidepool", "fairness")
	o, _ := s.Median(S3, "puddle", "fairness")
	ts = append(ts, Target{Scenario: S3, What: "fairness (Jain's index over per-goroutine ops)", Want: "≥ 0.95",
		Tidepool: t, Other: o, OtherName: "puddle", Unit: "fairness", Ratio: t, RatioText: "tidepool's index",
		Met: okT && t >= 0.95, Missing: !okT})
	cmp(S3, "p99 acquire wait", "≤ puddle's", "p99-wait-ns", "puddle", le(1), "tidepool ÷ puddle")
	cmp(S4, "throughput over loopback TCP, 32 goroutines on 8 conns", "≥ 97% of the pre-dialed ideal", "ops/s", "ideal", ge(0.97), "tidepool ÷ ideal")
	abs(S5, "connections lost after cancellation churn", "0", "lost", 0, "puddle")
	cmp(S5, "successful ops/s under cancellation churn", "≥ 1.5× puddle", "ok-ops/s", "puddle", ge(1.5), "tidepool ÷ puddle")
	t, okT = s.Median(S6, "tidepool", "serve-ns")
	ts = append(ts, Target{Scenario: S6, What: "Resize to 36 until 32 waiters served (1 ms dial)", Want: "≤ dial latency + 1 ms",
		Tidepool: t, Other: math.NaN(), OtherName: "-", Unit: "serve-ns",
		Ratio: (t - S6DialLatencyNs) / S6SlackNs, RatioText: "(tidepool − 1 ms dial) ÷ 1 ms",
		Met: okT && t <= S6DialLatencyNs+S6SlackNs, Missing: !okT})
	abs(S7, "bytes per idle connection at 10,000, watcher goroutine included", "≤ 4 KiB", "B/idle-conn", S7BytesPerConn, "puddle")
	return ts
}
