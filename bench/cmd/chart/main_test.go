package main

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/tidepool-go/tidepool/bench/internal/results"
)

const run = `BenchmarkS1Single/pool=puddle 100 90 ns/op
BenchmarkS1Single/pool=tidepool 100 30 ns/op
BenchmarkS2Parallel/gpp=1/pool=tidepool 100 30 ns/op
BenchmarkS2Parallel/gpp=1/pool=mutex 100 20 ns/op
BenchmarkS2Parallel/gpp=4/pool=tidepool 100 35 ns/op
BenchmarkS2Parallel/gpp=4/pool=mutex 100 22 ns/op
BenchmarkS2Parallel/gpp=1/pool=tidepool-2 100 60 ns/op
BenchmarkS2Parallel/gpp=1/pool=mutex-2 100 40 ns/op
BenchmarkS6ResizeUnderLoad/pool=tidepool-2 1 3000000 ns/op 0.998 served-frac
BenchmarkS6ResizeUnderLoad/pool=sql-2 1 256000000 ns/op 0 served-frac
BenchmarkS8Redis/op=get/pool=redigo-2 100 1 ns/op 40000 ops/s
BenchmarkS8Redis/op=get/pool=tidepool-2 100 1 ns/op 41000 ops/s
`

func TestChartIsWellFormedSVGWithBarsAndScalingPlots(t *testing.T) {
	s, err := results.Parse(strings.NewReader(run))
	if err != nil {
		t.Fatal(err)
	}
	out := render(s)
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed XML: %v\n%s", err, out)
			}
			break
		}
	}
	for _, want := range []string{
		"S1 one goroutine, acquire+release, GOMAXPROCS 1", // a bar group
		"3.00×", // tidepool's S1 score: 90/30
		"S8 redigo on Redis, 32 goroutines on 8 conns (op=get), GOMAXPROCS 2",
		"waiters never served",                       // S6 sql
		"GOMAXPROCS 1</text>", "GOMAXPROCS 2</text>", // one scaling plot per GOMAXPROCS
		"<polyline",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("chart contains NaN or Inf coordinates:\n%s", out)
	}
}
