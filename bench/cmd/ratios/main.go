// Command ratios reads the bench module's `go test -bench` output and writes,
// as Markdown on stdout, the table of the targets (tidepool against
// puddle, or against the ideal, each marked met or missed) and every pool's
// score relative to the baseline per scenario. run.sh puts both in RESULTS.md.
//
// Usage: go run ./cmd/ratios bench.txt
package main

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/tidepool-go/tidepool/bench/internal/results"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ratios bench.txt")
		os.Exit(2)
	}
	s, err := results.ParseFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var b strings.Builder
	writeTargets(&b, s)
	b.WriteString("\n")
	writeScores(&b, s)
	fmt.Print(b.String())
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func writeTargets(b *strings.Builder, s *results.Set) {
	b.WriteString("| scenario | what | target | tidepool | baseline | ratio | verdict |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	met, total := 0, 0
	for _, t := range results.Targets(s) {
		verdict := "**missed**"
		switch {
		case t.Missing:
			verdict = "no data"
		case t.Met:
			verdict = "met"
			met++
		}
		total++
		base := "–"
		if !math.IsNaN(t.Other) {
			base = fmt.Sprintf("%s %s", t.OtherName, num(t.Other))
		}
		ratio := fmt.Sprintf("%s = %.3f", t.RatioText, t.Ratio)
		if math.IsNaN(t.Ratio) {
			ratio = "–"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s %s | %s | %s | %s |\n",
			t.Scenario, t.What, t.Want, num(t.Tidepool), t.Unit, base, ratio, verdict)
	}
	fmt.Fprintf(b, "\n%d of %d targets met. Values are medians over the -count runs.\n", met, total)
}

func writeScores(b *strings.Builder, s *results.Set) {
	b.WriteString("Every pool relative to the baseline (higher is better; the baseline scores 1):\n\n")
	b.WriteString("| scenario | metric | baseline | pool scores |\n|---|---|---|---|\n")
	for _, sc := range s.Scenarios {
		h, ok := results.Headlines[sc]
		if !ok {
			continue
		}
		var parts []string
		for _, x := range results.Scores(s, sc) {
			parts = append(parts, fmt.Sprintf("%s %s", x.Pool, num(x.Factor)))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", sc, h.Unit, h.BaselineText, strings.Join(parts, ", "))
	}
}
