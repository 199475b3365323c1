// Command chart reads the bench module's `go test -bench` output and writes an
// SVG bar chart of every pool's score per scenario, relative to the baseline
// (puddle; for S6, the 2 ms budget), on a log scale where higher is better.
// It needs nothing but the standard library; run.sh writes bench/chart.svg
// with it.
//
// Usage: go run ./cmd/chart bench.txt > chart.svg
package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"

	"github.com/tidepool-go/tidepool/bench/internal/results"
)

// targetFactor is where tidepool's bar must reach, as a score, for the
// scenario's target to be met (0: no marker).
var targetFactor = map[string]float64{
	results.S1: 3, results.S2: 3, results.S3: 1.5, results.S5: 1.5, results.S6: 1,
	results.S7: 0, // S7's target is absolute (4 KiB); the marker is computed below
}

var colors = map[string]string{
	"tidepool": "#1f77b4", "puddle": "#ff7f0e", "sql": "#2ca02c", "chan": "#9467bd",
	"mutex": "#8c564b", "ideal": "#7f7f7f", "dial-per-request": "#d62728",
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chart bench.txt > chart.svg")
		os.Exit(2)
	}
	s, err := results.ParseFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(render(s))
}

const (
	width    = 960
	left     = 330 // room for the labels
	right    = 40
	rowH     = 16
	groupGap = 30
	top      = 60
)

func render(s *results.Set) string {
	type row struct {
		label  string
		pool   string
		factor float64
	}
	type group struct {
		title  string
		rows   []row
		target float64
	}
	var groups []group
	lo, hi := 0.5, 2.0
	for _, sc := range s.Scenarios {
		h, ok := results.Headlines[sc]
		if !ok {
			continue
		}
		g := group{title: h.Title + " (vs " + h.BaselineText + ")", target: targetFactor[sc]}
		if sc == results.S7 {
			if base, ok := s.Median(sc, "puddle", h.Unit); ok {
				g.target = base / results.S7BytesPerConn
			}
		}
		if sc == results.S4 {
			if ideal, ok := s.Median(sc, "ideal", h.Unit); ok {
				if base, ok := s.Median(sc, "puddle", h.Unit); ok {
					g.target = 0.97 * ideal / base
				}
			}
		}
		for _, x := range results.Scores(s, sc) {
			g.rows = append(g.rows, row{label: x.Pool, pool: x.Pool, factor: x.Factor})
			if x.Factor > 0 && !math.IsInf(x.Factor, 0) {
				lo, hi = math.Min(lo, x.Factor), math.Max(hi, x.Factor)
			}
		}
		if g.target > 0 {
			lo, hi = math.Min(lo, g.target), math.Max(hi, g.target)
		}
		groups = append(groups, g)
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	x := func(v float64) float64 {
		return left + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(width-left-right)
	}
	height := top + 40
	for _, g := range groups {
		height += groupGap + rowH*len(g.rows)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">tidepool vs other Go pools: score relative to the baseline (log scale; right of 1× is better)</text>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="42" fill="#555">Medians of bench/RESULTS.md. Black tick: where tidepool must reach to meet the scenario's target.</text>`+"\n")
	// Grid: one line per power of ten, and at 1.
	for v := lo; v <= hi*1.0001; v *= 10 {
		for _, m := range []float64{1, 2, 5} {
			w := v * m
			if w > hi*1.0001 {
				break
			}
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			if w == 1 {
				stroke = "#333"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(w), top, x(w), height-30, stroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g×</text>`+"\n", x(w), height-14, w)
		}
	}
	y := top
	for _, g := range groups {
		y += groupGap
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y-8, html.EscapeString(g.title))
		for i, r := range g.rows {
			ry := y + i*rowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, ry+12, html.EscapeString(r.label))
			c := colors[r.pool]
			if c == "" {
				c = "#999"
			}
			switch {
			case math.IsNaN(r.factor):
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999">not run (cannot resize)</text>`+"\n", left+4, ry+12)
			case r.factor == 0:
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#d62728">waiters never served</text>`+"\n", left+4, ry+12)
			default:
				// Bars grow from the baseline (1×): right is better, left worse.
				x0, x1 := math.Min(x(1), x(r.factor)), math.Max(x(1), x(r.factor))
				w := math.Max(x1-x0, 1)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ry+2, w, rowH-4, c)
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%.2f×</text>`+"\n", x1+4, ry+12, r.factor)
			}
			if r.pool == "tidepool" && g.target > 0 {
				tx := x(g.target)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="3"/>`+"\n", tx, ry, tx, ry+rowH)
			}
		}
		y += rowH * len(g.rows)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
