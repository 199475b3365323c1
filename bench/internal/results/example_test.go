package results_test

import (
	"fmt"
	"strings"

	"github.com/tidepool-go/tidepool/bench/internal/results"
)

// A goal is judged at every point of the sweep (here GOMAXPROCS 1 and 2) and
// is met only where it holds at all of them; the verdict names the worst.
func ExampleGoal_Judge() {
	s, err := results.Parse(strings.NewReader(`
BenchmarkS3Contended/pool=puddle      1  1 ns/op   700000 ops/s
BenchmarkS3Contended/pool=tidepool    1  1 ns/op  1400000 ops/s
BenchmarkS3Contended/pool=puddle-2    1  1 ns/op   800000 ops/s
BenchmarkS3Contended/pool=tidepool-2  1  1 ns/op  1000000 ops/s
`))
	if err != nil {
		panic(err)
	}
	for _, g := range results.Goals {
		if g.ID != "S3.ops" {
			continue
		}
		v := g.Judge(s)
		fmt.Printf("%s (%s, %s): met=%v; worst at %s: %.2f×\n", v.ID, g.RatioText(), g.Want, v.Met, v.Worst.Key.Where(), v.Worst.Value)
	}
	// Output:
	// S3.ops (tidepool ÷ puddle, ≥ 1.5× puddle's): met=false; worst at cpu=2: 1.25×
}
