package results

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// A run of two rounds: S1 and S2 at -cpu 1,2, S3–S8 at GOMAXPROCS 2.
const sample = `goos: linux
goarch: amd64
pkg: github.com/tidepool-go/tidepool/bench
BenchmarkS1Single/pool=puddle     	 100	  90.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=tidepool   	 100	  20.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=mutex      	 100	  18.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=puddle-2   	 100	 120.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=tidepool-2 	 100	  50.0 ns/op	 0 B/op	 1 allocs/op
BenchmarkS1Single/pool=mutex-2    	 100	  20.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS2Parallel/gpp=1/pool=tidepool      	 100	  30.0 ns/op	 0 allocs/op
BenchmarkS2Parallel/gpp=1/pool=mutex         	 100	  40.0 ns/op	 0 allocs/op
BenchmarkS2Parallel/gpp=16/pool=tidepool-2   	 100	  90.0 ns/op	 0 allocs/op
BenchmarkS2Parallel/gpp=16/pool=mutex-2      	 100	  60.0 ns/op	 0 allocs/op
BenchmarkS3Contended/pool=puddle-2   	 100	 1200 ns/op	 800000 ops/s	 0.999 fairness	 900000 p99.9-wait-ns
BenchmarkS3Contended/pool=tidepool-2 	 100	 1000 ns/op	1300000 ops/s	 0.960 fairness	 400000 p99.9-wait-ns
BenchmarkS4Sockets/pool=tidepool-2 	 100	 17000 ns/op	 58000 ops/s
BenchmarkS4Sockets/pool=chan-2     	 100	 16000 ns/op	 60000 ops/s
BenchmarkS4Sockets/pool=mutex-2    	 100	 16500 ns/op	 59000 ops/s
BenchmarkS4Sockets/pool=dial-per-request-2 	 100	 60000 ns/op	 16000 ops/s
--- BENCH: BenchmarkS5CancelChurn/pool=tidepool-2
    bench_test.go:1: lost 1 of 4 connections
BenchmarkS5CancelChurn/pool=puddle-2   	 100	 1000 ns/op	 70000 ok-ops/s	 0 lost
BenchmarkS5CancelChurn/pool=tidepool-2 	 100	  500 ns/op	210000 ok-ops/s	 1 lost
BenchmarkS8Postgres/op=select/pool=pgxpool-2  	 100	 70000 ns/op	 14000 ops/s	 1000000 p99-ns	 10 allocs/op
BenchmarkS8Postgres/op=select/pool=tidepool-2 	 100	 71000 ns/op	 13800 ops/s	 1020000 p99-ns	  8 allocs/op
BenchmarkS7IdleMemory/pool=tidepool-2 	 1	 5 ns/op	 5000 B/idle-conn
PASS
goos: linux
BenchmarkS1Single/pool=puddle     	 100	 110.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=tidepool   	 100	  40.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=mutex      	 100	  22.0 ns/op	 0 B/op	 0 allocs/op
PASS
`

func parse(t *testing.T, text string) *Set {
	t.Helper()
	s, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseNameSplitsScenarioParametersPoolAndProcs(t *testing.T) {
	for _, c := range []struct {
		name string
		key  Key
		pool string
		ok   bool
	}{
		{"BenchmarkS1Single/pool=tidepool", Key{S1, "", 1}, "tidepool", true},
		{"BenchmarkS1Single/pool=tidepool-2", Key{S1, "", 2}, "tidepool", true},
		{"BenchmarkS2Parallel/gpp=16/pool=mutex-64", Key{S2, "gpp=16", 64}, "mutex", true},
		{"BenchmarkS8Postgres/op=select/pool=pgxpool-2", Key{S8Postgres, "op=select", 2}, "pgxpool", true},
		{"BenchmarkS4Sockets/pool=dial-per-request", Key{S4, "", 1}, "dial-per-request", true},
		{"BenchmarkS4Sockets/pool=dial-per-request-8", Key{S4, "", 8}, "dial-per-request", true},
		{"BenchmarkCostTimeNow-2", Key{"CostTimeNow", "", 2}, "", false},
		{"TestSomething", Key{}, "", false},
	} {
		k, pool, ok := ParseName(c.name)
		if ok != c.ok || (ok && (k != c.key || pool != c.pool)) {
			t.Errorf("ParseName(%q) = %+v, %q, %v; want %+v, %q, %v", c.name, k, pool, ok, c.key, c.pool, c.ok)
		}
	}
}

func TestParseTakesMediansPerKeyPoolAndUnitAcrossRounds(t *testing.T) {
	s := parse(t, sample)
	k1, k2 := Key{S1, "", 1}, Key{S1, "", 2}
	if got, _ := s.Median(k1, "puddle", "ns/op"); got != 100 {
		t.Errorf("S1 cpu=1 puddle median = %v, want 100 (of 90 and 110)", got)
	}
	if got, _ := s.Median(k2, "puddle", "ns/op"); got != 120 {
		t.Errorf("S1 cpu=2 puddle median = %v, want 120: cpu=1 and cpu=2 samples must not mix", got)
	}
	if n := s.Samples(k1, "tidepool", "ns/op"); n != 2 {
		t.Errorf("S1 cpu=1 tidepool has %d samples, want 2 (one per round)", n)
	}
	if got := s.Pools(k1); strings.Join(got, ",") != "puddle,tidepool,mutex" {
		t.Errorf("pools = %v, want them in the order they ran", got)
	}
	if got := s.Procs(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("Procs() = %v, want [1 2]", got)
	}
	ks := s.KeysOf(S2)
	if len(ks) != 2 || ks[0].Goroutines() != 1 || ks[1].Goroutines() != 32 {
		t.Errorf("S2 keys = %v, want gpp=1 at cpu 1 (1 goroutine), then gpp=16 at cpu 2 (32)", ks)
	}
	if _, ok := s.Median(k1, "tidepool", "lost"); ok {
		t.Error("a unit that was never reported has a median")
	}
}

func verdicts(s *Set) map[string]Verdict {
	out := map[string]Verdict{}
	for _, v := range JudgeAll(s) {
		out[v.ID] = v
	}
	return out
}

func TestGoalsAreJudgedAtEveryPointAndReportTheWorst(t *testing.T) {
	vs := verdicts(parse(t, sample))
	// S1 vs puddle: cpu=1 30/100 = 0.3 (met), cpu=2 50/120 = 0.417 (missed).
	v := vs["S1.puddle"]
	if v.Met || v.Missing || len(v.Points) != 2 || v.Worst.Key.Procs != 2 {
		t.Fatalf("S1.puddle: met=%v missing=%v points=%d worst=%v; want missed at cpu=2 of 2 points", v.Met, v.Missing, len(v.Points), v.Worst.Key)
	}
	if math.Abs(v.Worst.Value-50.0/120) > 1e-9 || !v.Points[0].Met {
		t.Errorf("S1.puddle: worst value %v (want 0.4167), cpu=1 met=%v (want true)", v.Worst.Value, v.Points[0].Met)
	}
	// S1 vs mutex: cpu=1 30/20 = 1.5 (met, at the limit), cpu=2 2.5 (missed).
	if v := vs["S1.mutex"]; v.Met || !v.Points[0].Met {
		t.Errorf("S1.mutex: met=%v, cpu=1 met=%v; want missed overall, met at cpu=1 (1.5× is within ≤ 1.5×)", v.Met, v.Points[0].Met)
	}
	// One alloc at cpu=2.
	if v := vs["S1.allocs"]; v.Met || v.Worst.Value != 1 {
		t.Errorf("S1.allocs: met=%v worst=%v; want missed with 1 alloc", v.Met, v.Worst.Value)
	}
	// S2: 0.75× at 1 goroutine, 1.5× at 32.
	if v := vs["S2.mutex"]; v.Met || v.Worst.Key.Goroutines() != 32 || v.Worst.Value != 1.5 {
		t.Errorf("S2.mutex: met=%v worst=%v at %d goroutines; want missed, 1.5 at 32", v.Met, v.Worst.Value, v.Worst.Key.Goroutines())
	}
	// S3: 1.625× puddle met; fairness 0.96 met; p99.9 0.44× met.
	for _, id := range []string{"S3.ops", "S3.fairness", "S3.p999"} {
		if v := vs[id]; !v.Met {
			t.Errorf("%s: missed (worst %+v), want met", id, v.Worst)
		}
	}
	// S4: best hand-written is chan (60000): 58000/60000 = 0.967 < 0.97.
	if v := vs["S4.best"]; v.Met || v.Worst.OtherName != "chan" || math.Abs(v.Worst.Value-58.0/60) > 1e-9 {
		t.Errorf("S4.best: met=%v other=%s value=%v; want missed against chan at 0.967", v.Met, v.Worst.OtherName, v.Worst.Value)
	}
	// S5: 3× puddle met, 1 lost missed.
	if v := vs["S5.ops"]; !v.Met {
		t.Errorf("S5.ops: missed at %v, want met (3×)", v.Worst.Value)
	}
	if v := vs["S5.lost"]; v.Met || v.Worst.Value != 1 {
		t.Errorf("S5.lost: met=%v value=%v, want missed with 1 lost", v.Met, v.Worst.Value)
	}
	// S8 select: 13800/14000 = 0.986 ≥ 0.97 met; p99 1.02 ≤ 1.031 met; 8 ≤ 10 allocs met.
	for _, id := range []string{"S8.pg-select.ops", "S8.pg-select.p99", "S8.pg-select.allocs"} {
		if v := vs[id]; !v.Met || len(v.Points) != 1 || v.Points[0].Key.Variant != "op=select" {
			t.Errorf("%s: met=%v points=%v; want met on op=select alone", id, v.Met, v.Points)
		}
	}
	// No data for the tx op, S6; 5000 B > 4 KiB for S7.
	if v := vs["S8.pg-tx.ops"]; !v.Missing || v.Met {
		t.Errorf("S8.pg-tx.ops without data: met=%v missing=%v, want missing", v.Met, v.Missing)
	}
	if v := vs["S6.serve"]; !v.Missing {
		t.Errorf("S6.serve without data: missing=%v", v.Missing)
	}
	if v := vs["S7.bytes"]; v.Met || v.Missing {
		t.Errorf("S7.bytes: 5000 B: met=%v missing=%v, want missed", v.Met, v.Missing)
	}
}

func TestAGoalMissingTidepoolAtOnePointIsNotMet(t *testing.T) {
	s := parse(t, `BenchmarkS3Contended/pool=puddle 1 1 ns/op 100 ops/s 1 fairness
BenchmarkS3Contended/pool=tidepool 1 1 ns/op 200 ops/s 1 fairness
BenchmarkS3Contended/pool=puddle-2 1 1 ns/op 100 ops/s 1 fairness
`)
	v := verdicts(s)["S3.ops"]
	if v.Met || v.Missing || !v.Worst.Missing || v.Worst.Key.Procs != 2 {
		t.Fatalf("S3.ops with tidepool absent at cpu=2: met=%v missing=%v worst=%+v; want missed, worst = the missing point", v.Met, v.Missing, v.Worst)
	}
}

func TestZeroAgainstZeroAllocationsIsLevel(t *testing.T) {
	s := parse(t, `BenchmarkS8Redis/op=get/pool=redigo-2 1 1 ns/op 0 allocs/op
BenchmarkS8Redis/op=get/pool=tidepool-2 1 1 ns/op 0 allocs/op
`)
	if v := verdicts(s)["S8.redis-get.allocs"]; !v.Met {
		t.Fatalf("0 allocs against 0: met=%v value=%v, want met", v.Met, v.Worst.Value)
	}
}

func TestReasonsAreReadByGoalID(t *testing.T) {
	rs, err := ParseReasons(strings.NewReader(`# Reasons
Lines that are not "- ID: reason" are ignored.

- S3.fairness: the hand-off lets a releasing goroutine barge (profile: profiles/x.txt)
- ` + "`S5.ops`" + `: cancellation costs a timer per Get
- not an id: with spaces
- S1.mutex:
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || !strings.HasPrefix(rs["S3.fairness"], "the hand-off") || rs["S5.ops"] != "cancellation costs a timer per Get" {
		t.Fatalf("reasons = %q", rs)
	}
}

func TestReportShowsVerdictsReasonsAndReadmeLines(t *testing.T) {
	r := NewReport(parse(t, sample), Reasons{"S1.puddle": "one more CAS than puddle's fast path"})
	r.Rounds = 2
	var b bytes.Buffer
	r.WriteAll(&b)
	out := b.String()
	for _, want := range []string{
		"| `S1.puddle` |", "one more CAS than puddle's fast path", // a miss with its reason
		"_reason to be written: `- S1.mutex: …` in bench/reasons.md_", // a miss without one
		"| `S3.ops` |", "| met |",
		"| 2 | 32 | S2, 16×P |",    // the scaling table's row at cpu=2, gpp=16
		"0.30–0.42× puddle's time", // README: S1 ratios over both GOMAXPROCS
		"with 1 connection lost",   // README: S5
		"0.99× pgxpool's throughput",
		"In the last full run of `bench/run.sh` (2 rounds, GOMAXPROCS 1 and 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestFormatUnitPicksTheScale(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{66, "ns/op", "66 ns"},
		{1569, "ns/op", "1.57 µs"},
		{851200, "p99.9-wait-ns", "851 µs"},
		{825230, "ops/s", "825k"},
		{0.9266, "fairness", "0.927"},
		{3338, "B/idle-conn", "3338 B"},
		{math.NaN(), "ops/s", "–"},
	} {
		if got := FormatUnit(c.v, c.unit); got != c.want {
			t.Errorf("FormatUnit(%v, %s) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}
