package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tidepool-go/tidepool"
)

// Accept headers of a Prometheus server that prefers OpenMetrics, and of a
// client that only speaks the classic text format.
const (
	acceptOpenMetrics = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptText        = "text/plain;version=0.0.4"
)

// scrape serves c through promhttp, with OpenMetrics enabled, as a scrape with
// the given Accept header, and returns the body and its content type.
func scrape(t *testing.T, c prometheus.Collector, accept string) (string, expfmt.Format) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.PanicOnError}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	// Not expfmt.ResponseFormat: it knows only the text and protobuf types.
	return rec.Body.String(), expfmt.Format(rec.Header().Get("Content-Type"))
}

// exposition problems: what prometheus/common's decoder (the parser behind
// promtool check metrics) says of the body in its negotiated format, what
// promlint (promtool check metrics' rules) says, and what checkOpenMetrics
// says of an OpenMetrics body. It returns the family names decoded.
func expositionProblems(body string, format expfmt.Format) (families []string, problems []string) {
	dec := expfmt.NewDecoder(strings.NewReader(body), format)
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if err == io.EOF {
			break
		}
		if err != nil {
			problems = append(problems, "decode: "+err.Error())
			break
		}
		families = append(families, mf.GetName())
	}
	lint, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		problems = append(problems, "promlint: "+err.Error())
	}
	openMetrics := format.FormatType() == expfmt.TypeOpenMetrics
	for _, p := range lint {
		// promlint reads OpenMetrics with the classic parser, which takes
		// a counter's samples (name_total) for a family apart from its
		// HELP line (name): promtool check metrics says "no help text" of
		// every OpenMetrics counter. Only that artefact is dropped.
		if openMetrics && p.Text == "no help text" && strings.HasSuffix(p.Metric, "_total") &&
			strings.Contains(body, "# HELP "+strings.TrimSuffix(p.Metric, "_total")+" ") {
			continue
		}
		problems = append(problems, fmt.Sprintf("promlint: %s: %s", p.Metric, p.Text))
	}
	if openMetrics {
		problems = append(problems, checkOpenMetrics(body)...)
	}
	return families, problems
}

// checkOpenMetrics applies the OpenMetrics 1.0 rules that a duplicate family
// breaks: each family's metadata (TYPE, HELP, UNIT) appears once, the
// family's samples follow it without another family in between, every
// sample's name is the family name plus a suffix its type allows, and the
// exposition ends with "# EOF".
func checkOpenMetrics(body string) []string {
	suffixes := map[string][]string{
		"counter":   {"_total", "_created"},
		"gauge":     {""},
		"histogram": {"_bucket", "_count", "_sum", "_created"},
		"summary":   {"", "_count", "_sum", "_created"},
		"unknown":   {""},
		"info":      {"_info"},
		"stateset":  {""},
	}
	var problems []string
	meta := map[string]bool{}   // "TYPE name"
	closed := map[string]bool{} // families another family has followed
	fam, typ := "", ""
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		if line == "# EOF" {
			if n != len(lines) {
				problems = append(problems, fmt.Sprintf("line %d: # EOF before the end", n))
			}
			continue
		}
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" {
			key := f[1] + " " + f[2]
			if meta[key] {
				problems = append(problems, fmt.Sprintf("line %d: second %s line for family %q", n, f[1], f[2]))
			}
			meta[key] = true
			if f[2] != fam {
				if closed[f[2]] {
					problems = append(problems, fmt.Sprintf("line %d: family %q continues after another family", n, f[2]))
				}
				if fam != "" {
					closed[fam] = true
				}
				fam, typ = f[2], "unknown"
			}
			if f[1] == "TYPE" && len(f) == 4 {
				typ = f[3]
			}
			continue
		}
		name := line
		if j := strings.IndexAny(line, "{ "); j >= 0 {
			name = line[:j]
		}
		ok := false
		for _, s := range suffixes[typ] {
			ok = ok || name == fam+s
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("line %d: sample %q is not a %s sample of family %q", n, name, typ, fam))
		}
	}
	if len(lines) == 0 || lines[len(lines)-1] != "# EOF" {
		problems = append(problems, "no # EOF at the end")
	}
	return problems
}

// busyPool returns a pool with waits, retirements and a histogram to show.
func busyPool(t *testing.T) *tidepool.Pool[fakeConn] {
	t.Helper()
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, MaxIdle: 1})
	h1, h2 := acquire(t, p), acquire(t, p)
	h1.Release()
	h2.Release() // over MaxIdle: closed as excess_idle
	acquire(t, p).Destroy()
	return p
}

// Every family a scrape of the collector may contain, sorted.
func wantFamilies() []string {
	names := map[string]bool{"tidepool_" + histName: true, "tidepool_" + closedName: true}
	for _, r := range statsRows {
		if r.Type == gauge || r.Type == counter {
			names["tidepool_"+r.name] = true
		}
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// The OpenMetrics exposition, which Prometheus negotiates first, parses
// without a second HELP or TYPE for any family, passes promtool's lint rules,
// and holds exactly the collector's families. Before the counter of total
// wait time was folded into the histogram's _sum, the counter's OpenMetrics
// family (tidepool_acquire_wait_seconds, its name without _total) collided
// with the histogram's.
func TestOpenMetricsExpositionHasOneFamilyPerName(t *testing.T) {
	body, format := scrape(t, NewCollector(busyPool(t)), acceptOpenMetrics)
	if format.FormatType() != expfmt.TypeOpenMetrics {
		t.Fatalf("negotiated %q, want OpenMetrics", format)
	}
	families, problems := expositionProblems(body, format)
	for _, p := range problems {
		t.Error(p)
	}
	sort.Strings(families)
	// The decoder names a counter family by its samples' name (with _total).
	if want := wantFamilies(); strings.Join(families, " ") != strings.Join(want, " ") {
		t.Errorf("OpenMetrics families:\n%v\nwant\n%v", families, want)
	}
	if !strings.Contains(body, "# TYPE tidepool_acquires counter\n") || !strings.Contains(body, "\ntidepool_acquires_total{") {
		t.Errorf("the OpenMetrics body does not look like OpenMetrics counters:\n%s", body)
	}
}

// The classic text format (what the registry's own lint and older scrapers
// read) parses and passes the same rules.
func TestTextExpositionPassesLint(t *testing.T) {
	c := NewCollector(busyPool(t))
	body, format := scrape(t, c, acceptText)
	if format.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("negotiated %q, want the text format", format)
	}
	families, problems := expositionProblems(body, format)
	for _, p := range problems {
		t.Error(p)
	}
	sort.Strings(families)
	if want := wantFamilies(); strings.Join(families, " ") != strings.Join(want, " ") {
		t.Errorf("text families:\n%v\nwant\n%v", families, want)
	}
	lint, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lint {
		t.Errorf("testutil lint: %s: %s", p.Metric, p.Text)
	}
}

// clashing reproduces the old exposition: a counter named like the histogram
// plus _total.
type clashing struct{ counter, hist *prometheus.Desc }

func (c clashing) Describe(ch chan<- *prometheus.Desc) { ch <- c.counter; ch <- c.hist }
func (c clashing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, 0.03)
	ch <- prometheus.MustNewConstHistogram(c.hist, 1, 0.03, map[float64]uint64{0.05: 1})
}

// The checks above would catch the clash: each of the three reports it.
func TestExpositionChecksCatchACounterClashingWithAHistogram(t *testing.T) {
	c := clashing{
		counter: prometheus.NewDesc("tidepool_acquire_wait_seconds_total", "Total wait.", nil, nil),
		hist:    prometheus.NewDesc("tidepool_acquire_wait_seconds", "Waits.", nil, nil),
	}
	body, format := scrape(t, c, acceptOpenMetrics)
	_, problems := expositionProblems(body, format)
	var decode, lint, own bool
	for _, p := range problems {
		decode = decode || strings.HasPrefix(p, "decode:") && strings.Contains(p, "second HELP line")
		lint = lint || strings.HasPrefix(p, "promlint:")
		own = own || strings.Contains(p, "second TYPE line")
	}
	if !decode || !lint || !own {
		t.Errorf("problems found in the clashing exposition: %q; want the decoder's, promlint's and checkOpenMetrics' ("+
			"decoder %v, promlint %v, own %v)\n%s", problems, decode, lint, own, body)
	}
}

// checkOpenMetrics itself: families interleaved, a sample outside its
// family's suffixes, and a missing # EOF are reported.
func TestCheckOpenMetricsReportsBrokenStructure(t *testing.T) {
	body := strings.Join([]string{
		"# TYPE a counter", "a_total 1",
		"# TYPE b gauge", "b 1", "b_sum 2",
		"# TYPE a counter", "a_total 2",
	}, "\n") + "\n"
	got := strings.Join(checkOpenMetrics(body), "\n")
	for _, want := range []string{`sample "b_sum" is not a gauge sample of family "b"`,
		`second TYPE line for family "a"`, `family "a" continues after another family`, "no # EOF"} {
		if !strings.Contains(got, want) {
			t.Errorf("checkOpenMetrics did not report %q; reported:\n%s", want, got)
		}
	}
	if p := checkOpenMetrics("# TYPE a counter\na_total 1\n# EOF\n"); len(p) != 0 {
		t.Errorf("a valid exposition: %v", p)
	}
}
