package results

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkS1Single/pool=puddle-2   	 100	  90.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=tidepool-2 	 100	  20.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=puddle-2   	 100	 110.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkS1Single/pool=tidepool-2 	 100	  40.0 ns/op	 0 B/op	 1 allocs/op
BenchmarkS1Single/pool=tidepool-2 	 100	  35.0 ns/op	 0 B/op	 1 allocs/op
--- BENCH: BenchmarkS6ResizeUnderLoad/pool=sql-2
BenchmarkS7IdleMemory/pool=tidepool-2 	 1	 5 ns/op	 5000 B/idle-conn
PASS
`

func TestParseTakesMediansPerScenarioPoolAndUnit(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Median(S1, "puddle", "ns/op"); got != 100 {
		t.Errorf("puddle median = %v, want 100", got)
	}
	if got, _ := s.Median(S1, "tidepool", "ns/op"); got != 35 {
		t.Errorf("tidepool median = %v, want 35", got)
	}
	if got := s.Pools(S1); len(got) != 2 || got[0] != "puddle" {
		t.Errorf("pools = %v, want [puddle tidepool]", got)
	}
}

func TestTargetsJudgeMetAndMissedFromTheNumbers(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	byWhat := map[string]Target{}
	for _, tg := range Targets(s) {
		byWhat[tg.Scenario+"|"+tg.Unit] = tg
	}
	// 35 ns vs 100 ns: 0.35 > 1/3, missed; one alloc: missed; 5000 B > 4 KiB: missed.
	for _, k := range []string{S1 + "|ns/op", S1 + "|allocs/op", S7 + "|B/idle-conn"} {
		if tg := byWhat[k]; tg.Met || tg.Missing {
			t.Errorf("%s: met=%v missing=%v, want missed with data", k, tg.Met, tg.Missing)
		}
	}
	if tg := byWhat[S3+"|ops/s"]; !tg.Missing || tg.Met {
		t.Errorf("S3 without data: met=%v missing=%v, want missing", tg.Met, tg.Missing)
	}
	s2, _ := Parse(strings.NewReader("BenchmarkS1Single/pool=puddle-2 1 90 ns/op 0 allocs/op\nBenchmarkS1Single/pool=tidepool-2 1 29 ns/op 0 allocs/op\n"))
	for _, tg := range Targets(s2) {
		if tg.Scenario == S1 && !tg.Met {
			t.Errorf("S1 %s: 29 vs 90 ns and 0 allocs should be met", tg.Unit)
		}
	}
}
