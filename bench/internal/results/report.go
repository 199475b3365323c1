package results

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Report renders a run's results as the Markdown sections of RESULTS.md.
type Report struct {
	Set      *Set
	Verdicts []Verdict
	Reasons  Reasons
	// Profiles are the S8 CPU profile summaries (none when profiling was off).
	Profiles []ProfileSummary
	// S8Configs describe how S8 configures each pool: {pool, text}.
	S8Configs [][2]string
	// Rounds is how many times run.sh ran the suite (for the README lines).
	Rounds int
	// ReasonsFile is where reasons are written, as the report names it.
	ReasonsFile string
}

// NewReport judges s and returns its report.
func NewReport(s *Set, reasons Reasons) *Report {
	return &Report{Set: s, Verdicts: JudgeAll(s), Reasons: reasons, ReasonsFile: "bench/reasons.md"}
}

// WriteAll writes every section, each under a "##" heading.
func (r *Report) WriteAll(w io.Writer) {
	fmt.Fprintln(w, "## Goals of issue 8")
	fmt.Fprintln(w)
	r.WriteGoals(w, 8)
	fmt.Fprintln(w, "## Scaling: ns per acquire+release against goroutines and GOMAXPROCS (S1, S2)")
	fmt.Fprintln(w)
	r.WriteScaling(w)
	fmt.Fprintln(w, "## S3: 64 goroutines on 4 connections")
	fmt.Fprintln(w)
	r.WriteS3(w, S3)
	fmt.Fprintln(w, "## S3Parked: S3 with every holder yielding its CPU once per hold")
	fmt.Fprintln(w)
	r.WriteS3(w, S3Parked)
	fmt.Fprintln(w, "## S4 and S5: sockets, cancellation churn")
	fmt.Fprintln(w)
	r.WriteS4S5(w)
	fmt.Fprintln(w, "## S8: real clients against real servers")
	fmt.Fprintln(w)
	r.WriteS8(w)
	fmt.Fprintln(w, "## Targets kept from earlier work (S6, S7)")
	fmt.Fprintln(w)
	r.WriteGoals(w, 0)
	r.WriteS6S7(w)
	fmt.Fprintln(w, "## Lines for the README")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The README's Performance section quotes these ratios; paste this paragraph there after a full run:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```markdown")
	r.WriteReadme(w)
	fmt.Fprintln(w, "```")
}

// verdictText is a verdict's last columns: the verdict and the reason.
func (r *Report) verdictText(v Verdict) (string, string) {
	switch {
	case v.Missing:
		return "no data", r.Reasons[v.ID]
	case v.Met:
		return "met", ""
	}
	reason := r.Reasons[v.ID]
	if reason == "" {
		reason = fmt.Sprintf("_reason to be written: `- %s: …` in %s_", v.ID, r.ReasonsFile)
	}
	return "**missed**", reason
}

// WriteGoals writes the table of the goals of one issue (0: the earlier
// targets) and a line counting those met.
func (r *Report) WriteGoals(w io.Writer, issue int) {
	fmt.Fprintln(w, "| goal | scenario | measured | wanted | tidepool (worst point) | compared with | judged value | at every point | verdict | reason for a miss |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	met, total := 0, 0
	for _, v := range r.Verdicts {
		if v.Issue != issue {
			continue
		}
		total++
		if v.Met {
			met++
		}
		verdict, reason := r.verdictText(v)
		other := "–"
		if v.Other != "" && !math.IsNaN(v.Worst.Other) {
			other = v.Worst.OtherName + " " + FormatUnit(v.Worst.Other, v.Unit)
		}
		var every []string
		for _, p := range v.Points {
			every = append(every, p.Key.Where()+": "+r.judged(v.Goal, p))
		}
		at, tp := "–", "–"
		if len(v.Points) > 0 {
			at = v.Worst.Key.Where() + ": " + r.judged(v.Goal, v.Worst)
		}
		if !math.IsNaN(v.Worst.Tidepool) {
			tp = FormatUnit(v.Worst.Tidepool, v.Unit)
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			v.ID, v.Scenario, v.What, v.Want, tp, other, at, strings.Join(every, "; "), verdict, reason)
	}
	fmt.Fprintf(w, "\n%d of %d goals met. Values are medians over the rounds; a goal is met when it holds at every point swept (every GOMAXPROCS and goroutine count); \"judged value\" is %s at the worst point.\n\n",
		met, total, "the ratio (or tidepool's own value)")
}

// judged formats the judged value of a point.
func (r *Report) judged(g Goal, p Point) string {
	if p.Missing {
		return "no data"
	}
	if g.Other != "" {
		return fmt.Sprintf("%.3g×", p.Value)
	}
	return FormatUnit(p.Value, g.Unit)
}

// poolsOf returns the pools that ran in any of the keys, in order of appearance.
func (r *Report) poolsOf(keys []Key) []string {
	var out []string
	for _, k := range keys {
		for _, p := range r.Set.Pools(k) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (r *Report) cell(k Key, pool, unit string) string {
	v, ok := r.Set.Median(k, pool, unit)
	if !ok {
		return "–"
	}
	return FormatUnit(v, unit)
}

func (r *Report) ratio(k Key, a, b, unit string) string {
	x, okA := r.Set.Median(k, a, unit)
	y, okB := r.Set.Median(k, b, unit)
	if !okA || !okB || y == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3g×", x/y)
}

// WriteScaling writes ns/op of every pool against GOMAXPROCS and goroutines:
// S1 (one goroutine) and S2 (gpp × GOMAXPROCS goroutines, as many connections).
func (r *Report) WriteScaling(w io.Writer) {
	keys := append(r.Set.KeysOf(S1), r.Set.KeysOf(S2)...)
	slices.SortStableFunc(keys, func(a, b Key) int {
		if a.Procs != b.Procs {
			return a.Procs - b.Procs
		}
		return a.Goroutines() - b.Goroutines()
	})
	if len(keys) == 0 {
		fmt.Fprintln(w, "No S1/S2 results in this run.")
		fmt.Fprintln(w)
		return
	}
	pools := r.poolsOf(keys)
	fmt.Fprintf(w, "| GOMAXPROCS | goroutines | scenario | %s | tidepool ÷ mutex | tidepool ÷ puddle | tidepool allocs/op |\n", strings.Join(pools, " | "))
	fmt.Fprintf(w, "|---|---|---|%s---|---|---|\n", strings.Repeat("---|", len(pools)))
	for _, k := range keys {
		name := "S1"
		if k.Scenario == S2 {
			v, _ := k.Param("gpp")
			name = "S2, " + v + "×P"
		}
		var cells []string
		for _, p := range pools {
			cells = append(cells, r.cell(k, p, "ns/op"))
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s |\n", k.Procs, k.Goroutines(), name, strings.Join(cells, " | "),
			r.ratio(k, "tidepool", "mutex", "ns/op"), r.ratio(k, "tidepool", "puddle", "ns/op"), r.cell(k, "tidepool", "allocs/op"))
	}
	fmt.Fprintln(w, "\nS2 runs as many connections as goroutines, so nobody waits: a pool's cost per op should stay flat (or fall) as goroutines grow at a fixed GOMAXPROCS; across GOMAXPROCS it shows what sharing cache lines between cores costs.")
	fmt.Fprintln(w)
}

// WriteS3 writes the throughput, fairness and waits of scenario (S3 or
// S3Parked) per GOMAXPROCS.
func (r *Report) WriteS3(w io.Writer, scenario string) {
	keys := r.Set.KeysOf(scenario)
	if len(keys) == 0 {
		fmt.Fprintf(w, "No %s results in this run.\n", scenario)
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "| GOMAXPROCS | pool | ops/s | × puddle | fairness | p50 wait | p99 wait | p99.9 wait | allocs/op |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	work := math.NaN()
	for _, k := range keys {
		for _, p := range r.Set.Pools(k) {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.Procs, p,
				r.cell(k, p, "ops/s"), r.ratio(k, p, "puddle", "ops/s"), r.cell(k, p, "fairness"),
				r.cell(k, p, "p50-wait-ns"), r.cell(k, p, "p99-wait-ns"), r.cell(k, p, "p99.9-wait-ns"), r.cell(k, p, "allocs/op"))
			if v, ok := r.Set.Median(k, p, "work-ns"); ok {
				work = v
			}
		}
	}
	fmt.Fprintf(w, "\nEach hold is %s of work on the connection (calibrated at start-up; FakeConn.Work). Waits are measured on one op in 16 of every goroutine, with the clock read inside the hold paid for by as much less work.", FormatUnit(work, "work-ns"))
	if scenario == S3Parked {
		fmt.Fprint(w, " Each holder also calls runtime.Gosched once after its work, as a holder waiting on I/O would give up its CPU: the connections run out and every pool's waiters' order shows (not a goal; see the S3 fairness reason).")
	}
	fmt.Fprint(w, "\n\n")
}

// WriteS4S5 writes S4's and S5's per-pool results.
func (r *Report) WriteS4S5(w io.Writer) {
	for _, k := range r.Set.KeysOf(S4) {
		fmt.Fprintf(w, "S4, loopback TCP echo, 32 goroutines on 8 connections (GOMAXPROCS %d):\n\n", k.Procs)
		fmt.Fprintln(w, "| pool | ops/s | × puddle | × best hand-written (chan, mutex) | allocs/op |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		best := math.NaN()
		for _, p := range []string{"chan", "mutex"} {
			if v, ok := r.Set.Median(k, p, "ops/s"); ok && !(v <= best) {
				best = v
			}
		}
		for _, p := range r.Set.Pools(k) {
			v, ok := r.Set.Median(k, p, "ops/s")
			xb := "–"
			if ok && !math.IsNaN(best) {
				xb = fmt.Sprintf("%.3g×", v/best)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", p, r.cell(k, p, "ops/s"), r.ratio(k, p, "puddle", "ops/s"), xb, r.cell(k, p, "allocs/op"))
		}
		fmt.Fprintln(w)
	}
	for _, k := range r.Set.KeysOf(S5) {
		fmt.Fprintf(w, "S5, cancellation churn, 32 goroutines on 4 connections, half of them with 5 µs deadlines (GOMAXPROCS %d):\n\n", k.Procs)
		fmt.Fprintln(w, "| pool | successful ops/s | × puddle | expired Gets per op | connections lost | stalled Gets | allocs/op |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, p := range r.Set.Pools(k) {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", p, r.cell(k, p, "ok-ops/s"), r.ratio(k, p, "puddle", "ok-ops/s"),
				r.cell(k, p, "expired/op"), r.cell(k, p, "lost"), r.cell(k, p, "stalled"), r.cell(k, p, "allocs/op"))
		}
		fmt.Fprintln(w)
	}
}

// WriteS6S7 writes every pool's S6 and S7 headline.
func (r *Report) WriteS6S7(w io.Writer) {
	fmt.Fprintln(w, "| scenario | pool | metric | value |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, sc := range []struct{ scenario, unit string }{{S6, "serve-ns"}, {S6, "served-frac"}, {S7, "B/idle-conn"}, {S7, "goroutines/conn"}} {
		for _, k := range r.Set.KeysOf(sc.scenario) {
			for _, p := range r.Set.Pools(k) {
				if _, ok := r.Set.Median(k, p, sc.unit); ok {
					fmt.Fprintf(w, "| %s | %s | %s | %s |\n", sc.scenario, p, sc.unit, r.cell(k, p, sc.unit))
				}
			}
		}
	}
	fmt.Fprintln(w)
}

func (r *Report) profile(k Key, pool string) (ProfileSummary, bool) {
	for _, p := range r.Profiles {
		if p.Key == k && p.Pool == pool {
			return p, true
		}
	}
	return ProfileSummary{}, false
}

// WriteS8 writes S8's results per op, with the pools' configurations and,
// when profiles were taken, where the pool's CPU time went.
func (r *Report) WriteS8(w io.Writer) {
	keys := append(r.Set.KeysOf(S8Postgres), r.Set.KeysOf(S8Redis)...)
	if len(keys) == 0 {
		fmt.Fprintln(w, "No S8 results in this run: the servers were not available (the benchmark output in results.txt says why).")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "| scenario | pool | ops/s | × client's pool | p50 latency | p99 latency | allocs/op | B/op | in Get | in Put | holding | CPU in the pool's code: all (Get / Put / background) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	var tops []string
	for _, k := range keys {
		client := ClientPool[k.Scenario]
		for _, p := range r.Set.Pools(k) {
			cpu := "–"
			if ps, ok := r.profile(k, p); ok {
				cpu = fmt.Sprintf("%.1f%% (%.1f / %.1f / %.1f) of %v", 100*ps.InPool, 100*ps.Get, 100*ps.Put, 100*ps.Background, ps.Total)
				var fs []string
				for _, f := range ps.Top {
					fs = append(fs, fmt.Sprintf("`%s` %.0f%%", f.Func, 100*f.Share))
				}
				if len(fs) > 0 {
					tops = append(tops, fmt.Sprintf("- %s %s, %s: %s", k.Scenario, k.Variant, p, strings.Join(fs, ", ")))
				}
			}
			fmt.Fprintf(w, "| %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.Scenario, k.Variant, p,
				r.cell(k, p, "ops/s"), r.ratio(k, p, client, "ops/s"), r.cell(k, p, "p50-ns"), r.cell(k, p, "p99-ns"),
				r.cell(k, p, "allocs/op"), r.cell(k, p, "B/op"), r.cell(k, p, "get-ns"), r.cell(k, p, "put-ns"), r.cell(k, p, "hold-ns"), cpu)
		}
	}
	fmt.Fprintln(w, `
"in Get", "in Put" and "holding" are the mean time of an op spent in the pool's acquire (mostly waiting: 32 goroutines share 8 connections), in its release, and holding the connection (the client's round trips). The CPU column comes from a separate profiling pass (run.sh, PROFILE=1) that profiles only the timed region of each S8 benchmark: the share of CPU samples under the adapter's Get or Put, or in the pool's own code elsewhere (its background goroutines), of all samples of the process (the servers run in other processes).`)
	if len(tops) > 0 {
		fmt.Fprintln(w, "\nWhere each pool's CPU time went (leaf functions of its samples, share of the pool's time):")
		fmt.Fprintln(w)
		for _, t := range tops {
			fmt.Fprintln(w, t)
		}
	}
	if len(r.S8Configs) > 0 {
		fmt.Fprintln(w, "\nHow S8 configures each pool:")
		fmt.Fprintln(w)
		for _, c := range r.S8Configs {
			fmt.Fprintf(w, "- **%s**: %s\n", c[0], c[1])
		}
	}
	fmt.Fprintln(w)
}

// verdict returns the verdict of a goal by ID.
func (r *Report) verdict(id string) (Verdict, bool) {
	for _, v := range r.Verdicts {
		if v.ID == id {
			return v, true
		}
	}
	return Verdict{}, false
}

// span formats the range of a goal's judged values over its points: "0.44×"
// or "0.41–0.44×"; "?" without data.
func (r *Report) span(id string) string {
	v, ok := r.verdict(id)
	if !ok {
		return "?"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range v.Points {
		if !p.Missing {
			lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
		}
	}
	if math.IsInf(lo, 1) {
		return "?"
	}
	suffix := "×"
	if v.Other == "" {
		suffix = ""
	}
	f := func(x float64) string {
		if v.Other == "" && (v.Unit == "allocs/op" || v.Unit == "lost") {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.2f", x)
	}
	if f(lo) == f(hi) {
		return f(lo) + suffix
	}
	return f(lo) + "–" + f(hi) + suffix
}

// WriteReadme writes the paragraph the README quotes.
func (r *Report) WriteReadme(w io.Writer) {
	procs := r.Set.Procs()
	ps := make([]string, len(procs))
	for i, p := range procs {
		ps[i] = fmt.Sprint(p)
	}
	gs := []int{}
	if v, ok := r.verdict("S2.mutex"); ok {
		for _, p := range v.Points {
			gs = append(gs, p.Key.Goroutines())
		}
	}
	grange := "?"
	if len(gs) > 0 {
		grange = fmt.Sprintf("%d–%d", slices.Min(gs), slices.Max(gs))
	}
	met, total := 0, 0
	for _, v := range r.Verdicts {
		if v.Issue == 8 {
			total++
			if v.Met {
				met++
			}
		}
	}
	rounds := fmt.Sprintf("%d rounds", r.Rounds)
	if r.Rounds == 1 {
		rounds = "1 round"
	}
	fmt.Fprintf(w, "In the last full run of `bench/run.sh` (%s, GOMAXPROCS %s; every pool in one process, side by side:\n", rounds, strings.Join(ps, " and "))
	fmt.Fprintf(w, "[bench/RESULTS.md](bench/RESULTS.md)), tidepool took %s puddle's time and %s the mutex+slice pool's\n", r.span("S1.puddle"), r.span("S1.mutex"))
	fmt.Fprintf(w, "per acquire+release on one goroutine (%s allocs/op), and %s the mutex+slice pool's with %s goroutines\n", r.span("S1.allocs"), r.span("S2.mutex"), grange)
	fmt.Fprintf(w, "in parallel and nobody waiting. With 64 goroutines on 4 connections it served %s puddle's throughput with\n", r.span("S3.ops"))
	fmt.Fprintf(w, "fairness %s and a p99.9 wait %s puddle's; over loopback TCP (32 goroutines, 8 connections) %s the best\n", r.span("S3.fairness"), r.span("S3.p999"), r.span("S4.best"))
	lost := r.span("S5.lost") + " connections"
	if lost == "1 connections" {
		lost = "1 connection"
	}
	fmt.Fprintf(w, "hand-written pool; under cancellation churn %s puddle's successful throughput with %s lost.\n", r.span("S5.ops"), lost)
	fmt.Fprintf(w, "With real clients (32 goroutines on 8 connections) it reached %s pgxpool's throughput on a one-row\n", r.span("S8.pg-select.ops"))
	fmt.Fprintf(w, "SELECT and %s on a short transaction, and %s redigo's own pool on GET and %s on SET.\n", r.span("S8.pg-tx.ops"), r.span("S8.redis-get.ops"), r.span("S8.redis-set.ops"))
	fmt.Fprintf(w, "%d of the %d goals of issue 8 are met; RESULTS.md gives the reason for each miss.\n", met, total)
}

// FormatUnit formats a value of a benchmark unit for a table.
func FormatUnit(v float64, unit string) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch {
	case unit == "ns/op" || strings.HasSuffix(unit, "-ns"):
		return formatNs(v)
	case strings.HasSuffix(unit, "ops/s"):
		return formatCount(v)
	case unit == "fairness":
		return fmt.Sprintf("%.3f", v)
	case unit == "allocs/op" || unit == "lost" || unit == "stalled":
		return fmt.Sprintf("%.0f", v)
	case strings.HasPrefix(unit, "B/"):
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func formatNs(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.3g s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.3g ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3g µs", v/1e3)
	}
	return fmt.Sprintf("%.3g ns", v)
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
