// Command chart reads the bench module's `go test -bench` output and writes an
// SVG with two parts: bars of every pool's headline score per scenario and
// GOMAXPROCS, relative to the baseline (puddle; the client's own pool in S8;
// the 2 ms budget in S6) on a log scale where right is better, with a tick
// where tidepool must reach to meet its goal; and, per GOMAXPROCS, S2's ns per
// acquire+release against goroutines, one line per pool, so that the scaling
// shows at a glance. It needs nothing but the standard library and
// internal/results; run.sh writes bench/chart.svg with it.
//
// Usage: go run ./cmd/chart results.txt > chart.svg
package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/tidepool-go/tidepool/bench/internal/results"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chart results.txt > chart.svg")
		os.Exit(2)
	}
	s, err := results.ParseFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(render(s))
}

// headline says which metric a scenario's bars show and against what.
type headline struct {
	unit        string
	lowerBetter bool
	baseline    string  // pool scoring 1, or "" for a constant
	constant    float64 // the baseline value when baseline is ""
	title       string
}

var headlines = map[string]headline{
	results.S1:         {unit: "ns/op", lowerBetter: true, baseline: "puddle", title: "S1 one goroutine, acquire+release"},
	results.S3:         {unit: "ops/s", baseline: "puddle", title: "S3 64 goroutines on 4 conns: throughput"},
	results.S4:         {unit: "ops/s", baseline: "puddle", title: "S4 loopback TCP, 32 goroutines on 8 conns"},
	results.S5:         {unit: "ok-ops/s", baseline: "puddle", title: "S5 cancellation churn: successful ops/s"},
	results.S6:         {unit: "serve-ns", lowerBetter: true, constant: results.S6DialLatencyNs + results.S6SlackNs, title: "S6 resize under load: time to serve 32 waiters (vs the 2 ms budget)"},
	results.S7:         {unit: "B/idle-conn", lowerBetter: true, baseline: "puddle", title: "S7 memory per idle connection"},
	results.S8Postgres: {unit: "ops/s", baseline: "pgxpool", title: "S8 pgx on PostgreSQL, 32 goroutines on 8 conns"},
	results.S8Redis:    {unit: "ops/s", baseline: "redigo", title: "S8 redigo on Redis, 32 goroutines on 8 conns"},
}

// target returns where tidepool's bar must reach for the key's headline goal
// (0: no marker).
func target(s *results.Set, k results.Key) float64 {
	med := func(pool, unit string) float64 { v, _ := s.Median(k, pool, unit); return v }
	switch k.Scenario {
	case results.S1:
		return 3
	case results.S3:
		return 1.5
	case results.S5:
		return 2
	case results.S6:
		return 1
	case results.S8Postgres, results.S8Redis:
		return results.Level
	case results.S4:
		best := math.Max(med("chan", "ops/s"), med("mutex", "ops/s"))
		return results.Level * best / med("puddle", "ops/s")
	case results.S7:
		return med("puddle", "B/idle-conn") / results.S7BytesPerConn
	}
	return 0
}

var colors = map[string]string{
	"tidepool": "#1f77b4", "puddle": "#ff7f0e", "sql": "#2ca02c", "chan": "#9467bd",
	"mutex": "#8c564b", "dial-per-request": "#d62728", "pgxpool": "#e377c2", "redigo": "#bcbd22",
}

func color(pool string) string {
	if c, ok := colors[pool]; ok {
		return c
	}
	return "#999"
}

const (
	width    = 980
	left     = 330 // room for the labels
	right    = 40
	rowH     = 16
	groupGap = 30
	top      = 60
	plotW    = 440 // one scaling plot
	plotH    = 260
)

type row struct {
	pool   string
	factor float64 // NaN: no result; 0: S6 waiters not all served (see served)
	served float64 // S6's served-frac when factor is 0
}

type group struct {
	title  string
	rows   []row
	target float64
}

func groups(s *results.Set) []group {
	var gs []group
	for _, k := range s.Keys() {
		h, ok := headlines[k.Scenario]
		if !ok {
			continue
		}
		g := group{title: fmt.Sprintf("%s%s, GOMAXPROCS %d", h.title, variant(k), k.Procs), target: target(s, k)}
		base := h.constant
		if h.baseline != "" {
			base, _ = s.Median(k, h.baseline, h.unit)
		}
		for _, p := range s.Pools(k) {
			v, ok := s.Median(k, p, h.unit)
			r := row{pool: p, factor: math.NaN()}
			if ok {
				r.factor = v / base
				if h.lowerBetter {
					r.factor = base / v
				}
			} else if fr, ok := s.Median(k, p, "served-frac"); ok && fr < 1 {
				r.factor, r.served = 0, fr
			}
			g.rows = append(g.rows, r)
		}
		gs = append(gs, g)
	}
	return gs
}

func variant(k results.Key) string {
	if k.Variant == "" {
		return ""
	}
	return " (" + k.Variant + ")"
}

func render(s *results.Set) string {
	gs := groups(s)
	lo, hi := 0.5, 2.0
	for _, g := range gs {
		for _, r := range g.rows {
			if r.factor > 0 && !math.IsInf(r.factor, 0) {
				lo, hi = math.Min(lo, r.factor), math.Max(hi, r.factor)
			}
		}
		if g.target > 0 && !math.IsInf(g.target, 0) {
			lo, hi = math.Min(lo, g.target), math.Max(hi, g.target)
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	x := func(v float64) float64 {
		return left + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(width-left-right)
	}
	barsH := top + 40
	for _, g := range gs {
		barsH += groupGap + rowH*len(g.rows)
	}
	procs := s.Procs()
	scaling := len(s.KeysOf(results.S2)) > 0
	height := barsH
	if scaling {
		height += 60 + (plotH+70)*((len(procs)+1)/2)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">tidepool vs other Go pools: score relative to the baseline (log scale; right of 1× is better)</text>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="42" fill="#555">Medians of bench/RESULTS.md. Baseline: puddle; in S8 the client's own pool. Black tick: where tidepool must reach to meet its goal.</text>`+"\n")
	for v := lo; v <= hi*1.0001; v *= 10 {
		for _, m := range []float64{1, 2, 5} {
			w := v * m
			if w > hi*1.0001 {
				break
			}
			stroke := "#eee"
			switch {
			case w == 1:
				stroke = "#333"
			case m == 1:
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(w), top, x(w), barsH-30, stroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g×</text>`+"\n", x(w), barsH-14, w)
		}
	}
	y := top
	for _, g := range gs {
		y += groupGap
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y-8, html.EscapeString(g.title))
		for i, r := range g.rows {
			ry := y + i*rowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, ry+12, html.EscapeString(r.pool))
			switch {
			case math.IsNaN(r.factor):
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999">no result</text>`+"\n", left+4, ry+12)
			case r.factor == 0 && r.served == 0:
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#d62728">waiters never served</text>`+"\n", left+4, ry+12)
			case r.factor == 0:
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#d62728">not all waiters served (%.1f%%)</text>`+"\n", left+4, ry+12, 100*r.served)
			default:
				x0, x1 := math.Min(x(1), x(r.factor)), math.Max(x(1), x(r.factor))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ry+2, math.Max(x1-x0, 1), rowH-4, color(r.pool))
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%.2f×</text>`+"\n", x1+4, ry+12, r.factor)
			}
			if r.pool == "tidepool" && g.target > 0 && !math.IsInf(g.target, 0) {
				tx := x(g.target)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="3"/>`+"\n", tx, ry, tx, ry+rowH)
			}
		}
		y += rowH * len(g.rows)
	}
	if scaling {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-size="16" font-weight="bold">S2: ns per acquire+release against goroutines, as many connections as goroutines (log-log; flat is good)</text>`+"\n", barsH+30)
		for i, p := range procs {
			px := 60 + (i%2)*(plotW+60)
			py := barsH + 60 + (i/2)*(plotH+70)
			scalingPlot(&b, s, p, px, py)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// scalingPlot draws S2's ns/op against goroutines at one GOMAXPROCS, one line
// per pool, with its top-left corner at (px, py).
func scalingPlot(b *strings.Builder, s *results.Set, procs, px, py int) {
	var keys []results.Key
	for _, k := range s.KeysOf(results.S2) {
		if k.Procs == procs {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	var pools []string
	gmin, gmax := math.Inf(1), math.Inf(-1)
	vmin, vmax := math.Inf(1), math.Inf(-1)
	for _, k := range keys {
		g := float64(k.Goroutines())
		gmin, gmax = math.Min(gmin, g), math.Max(gmax, g)
		for _, p := range s.Pools(k) {
			if !slices.Contains(pools, p) {
				pools = append(pools, p)
			}
			if v, ok := s.Median(k, p, "ns/op"); ok && v > 0 {
				vmin, vmax = math.Min(vmin, v), math.Max(vmax, v)
			}
		}
	}
	if math.IsInf(vmin, 0) {
		return
	}
	if gmax == gmin {
		gmax = gmin * 2
	}
	vlo := math.Pow(10, math.Floor(math.Log10(vmin)))
	vhi := math.Pow(10, math.Ceil(math.Log10(vmax)))
	if vhi == vlo {
		vhi = vlo * 10
	}
	gx := func(g float64) float64 {
		return float64(px) + math.Log2(g/gmin)/math.Log2(gmax/gmin)*float64(plotW-120)
	}
	vy := func(v float64) float64 {
		return float64(py+plotH) - (math.Log10(v)-math.Log10(vlo))/(math.Log10(vhi)-math.Log10(vlo))*float64(plotH)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">GOMAXPROCS %d</text>`+"\n", px, py-10, procs)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#ccc"/>`+"\n", px, py, plotW-120, plotH)
	for v := vlo; v <= vhi*1.0001; v *= 10 {
		for _, m := range []float64{1, 2, 5} {
			w := v * m
			if w > vhi*1.0001 {
				break
			}
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", px, vy(w), px+plotW-120, vy(w))
			fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%g ns</text>`+"\n", px-4, vy(w)+4, w)
		}
	}
	for _, k := range keys {
		g := float64(k.Goroutines())
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%d</text>`+"\n", gx(g), py+plotH+16, k.Goroutines())
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">goroutines</text>`+"\n", px+(plotW-120)/2, py+plotH+32)
	for i, p := range pools {
		var pts []string
		for _, k := range keys {
			if v, ok := s.Median(k, p, "ns/op"); ok && v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", gx(float64(k.Goroutines())), vy(v)))
			}
		}
		sw := 1.5
		if p == "tidepool" {
			sw = 3
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"/>`+"\n", strings.Join(pts, " "), color(p), sw)
		for _, pt := range pts {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], color(p))
		}
		ly := py + 12 + i*16
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%.1f"/>`+"\n", px+plotW-110, ly-4, px+plotW-90, ly-4, color(p), sw)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", px+plotW-86, ly, html.EscapeString(p))
	}
}
