package metrics

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tidepool-go/tidepool"
)

// Every field of tidepool.Stats has exactly one row in statsRows, and every
// row names a field that exists. A new Stats field fails this test until it
// has a metric (or a row saying how to get it from the others).
func TestEveryStatsFieldHasAMetric(t *testing.T) {
	rows := map[string]int{}
	for _, r := range statsRows {
		rows[r.Field]++
	}
	st := reflect.TypeFor[tidepool.Stats]()
	for i := range st.NumField() {
		f := st.Field(i)
		switch rows[f.Name] {
		case 0:
			t.Errorf("tidepool.Stats.%s has no metric: add a row for it to statsRows in metrics/table.go "+
				"(and to the metric tables of metrics/doc.go and docs/operations.md)", f.Name)
		case 1:
		default:
			t.Errorf("tidepool.Stats.%s has %d rows in statsRows, want 1", f.Name, rows[f.Name])
		}
		delete(rows, f.Name)
	}
	for name := range rows {
		t.Errorf("statsRows has a row for %q, which tidepool.Stats does not have", name)
	}
}

// Every retirement reason — every field of tidepool.ClosedCounts and every
// tidepool.Reason but "none" — has its series of tidepool_closed_total, and
// the label is the reason's name, which is also the field's JSON name and
// the reason field of conn.retired log entries.
func TestEveryRetirementReasonHasASeries(t *testing.T) {
	byField := map[string]reasonRow{}
	byReason := map[tidepool.Reason]bool{}
	for _, r := range reasonRows {
		if _, dup := byField[r.Field]; dup {
			t.Errorf("reasonRows has two rows for ClosedCounts.%s", r.Field)
		}
		byField[r.Field] = r
		byReason[r.Reason] = true
	}
	ct := reflect.TypeFor[tidepool.ClosedCounts]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		r, ok := byField[f.Name]
		if !ok {
			t.Errorf("tidepool.ClosedCounts.%s has no series: add a row for it to reasonRows in metrics/table.go", f.Name)
			continue
		}
		if tag := strings.Split(f.Tag.Get("json"), ",")[0]; r.Reason.String() != tag {
			t.Errorf("ClosedCounts.%s (json %q) is exported under reason=%q", f.Name, tag, r.Reason.String())
		}
		delete(byField, f.Name)
	}
	for name := range byField {
		t.Errorf("reasonRows has a row for %q, which tidepool.ClosedCounts does not have", name)
	}
	// Reasons are small integers; whatever String gives for an unused one
	// marks the end of the list.
	invalid := tidepool.Reason(255).String()
	for i := 1; i < 255; i++ {
		r := tidepool.Reason(i)
		if r.String() != invalid && !byReason[r] {
			t.Errorf("retirement reason %q (%d) has no series of tidepool_closed_total", r, i)
		}
	}
}

// statsFunc is a statsSource that returns a fixed snapshot.
type statsFunc func() tidepool.Stats

func (f statsFunc) Stats() tidepool.Stats { return f() }

// distinctStats fills every number of a Stats (nested and array ones too)
// with a different value, so that a metric reading the wrong field shows.
func distinctStats() tidepool.Stats {
	var s tidepool.Stats
	n := int64(1000)
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				fill(v.Field(i))
			}
		case reflect.Array, reflect.Slice:
			for i := range v.Len() {
				fill(v.Index(i))
			}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n += 17
			v.SetInt(n)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			n += 17
			v.SetUint(uint64(n))
		case reflect.Float32, reflect.Float64:
			n += 17
			v.SetFloat(float64(n) + 0.5)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.String:
			v.SetString("synthetic")
		}
	}
	fill(reflect.ValueOf(&s).Elem())
	s.Total = s.Idle + s.Checking + s.InUse // as the pool guarantees
	return s
}

// fieldValue is what a metric of Stats field name must show: the number, or
// seconds for a duration.
func fieldValue(v reflect.Value) float64 {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return time.Duration(v.Int()).Seconds()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint())
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Bool:
		if v.Bool() {
			return 1
		}
		return 0
	}
	panic("fieldValue of a " + v.Kind().String())
}

// Each row's series carries the value of its own Stats field: the snapshot
// has a different number in every field, and each series is compared with
// the field the table names (read by reflection, not through the row).
func TestEachMetricCarriesItsStatsField(t *testing.T) {
	s := distinctStats()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(statsFunc(func() tidepool.Stats { return s })))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	families := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		families[mf.GetName()] = mf
		for _, m := range mf.GetMetric() {
			if pool := labelOf(m, "pool"); pool != s.Name {
				t.Errorf("%s: pool label %q, want the Name field %q", mf.GetName(), pool, s.Name)
			}
		}
	}
	// series finds the value of family name's series with label=value.
	series := func(name, label, value string) (float64, bool) {
		for _, m := range families["tidepool_"+name].GetMetric() {
			if label == "" || labelOf(m, label) == value {
				switch {
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue(), true
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue(), true
				}
			}
		}
		return 0, false
	}
	sv := reflect.ValueOf(s)
	for _, r := range statsRows {
		field := sv.FieldByName(r.Field)
		switch r.Type {
		case gauge, counter:
			got, ok := series(r.name, r.labelName, r.labelValue)
			if want := fieldValue(field); !ok || got != want {
				t.Errorf("%s = %v (found %v), want Stats.%s = %v", r.Metric, got, ok, r.Field, want)
			}
			if mt := families["tidepool_"+r.name].GetType(); (r.Type == counter) != (mt == dto.MetricType_COUNTER) {
				t.Errorf("%s has type %v, want %v", r.Metric, mt, r.Type)
			}
		case derived:
			var sum float64
			for _, m := range families["tidepool_"+r.name].GetMetric() {
				sum += m.GetGauge().GetValue()
			}
			if want := fieldValue(field); sum != want {
				t.Errorf("%s = %v, want Stats.%s = %v", r.Metric, sum, r.Field, want)
			}
		case byReason:
			for _, rr := range reasonRows {
				got, ok := series(closedName, "reason", rr.Reason.String())
				if want := fieldValue(field.FieldByName(rr.Field)); !ok || got != want {
					t.Errorf("tidepool_%s{reason=%q} = %v (found %v), want Stats.Closed.%s = %v",
						closedName, rr.Reason, got, ok, rr.Field, want)
				}
			}
		case histogram, poolLabel:
			// Checked below, and above (the pool label of every series).
		default:
			t.Errorf("row %s has an unknown type %v", r.Field, r.Type)
		}
	}

	hf := families["tidepool_"+histName]
	if hf == nil || len(hf.GetMetric()) != 1 {
		t.Fatalf("no single tidepool_%s histogram: %v", histName, hf)
	}
	h := hf.GetMetric()[0].GetHistogram()
	if h.GetSampleSum() != s.WaitDuration.Seconds() {
		t.Errorf("histogram sum %v, want Stats.WaitDuration %v", h.GetSampleSum(), s.WaitDuration.Seconds())
	}
	var cum uint64
	buckets := tidepool.WaitBuckets()
	for i, b := range h.GetBucket() {
		cum += uint64(s.WaitHistogram[i])
		if b.GetCumulativeCount() != cum || b.GetUpperBound() != buckets[i].Seconds() {
			t.Errorf("bucket %d: le=%v count %d, want le=%v count %d (cumulative Stats.WaitHistogram)",
				i, b.GetUpperBound(), b.GetCumulativeCount(), buckets[i].Seconds(), cum)
		}
	}
	cum += uint64(s.WaitHistogram[len(buckets)])
	if h.GetSampleCount() != cum {
		t.Errorf("histogram count %d, want the sum of Stats.WaitHistogram %d", h.GetSampleCount(), cum)
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// The package comment and docs/operations.md list every metric with the
// Stats field it exports.
func TestDocsListEveryMetric(t *testing.T) {
	pkgDoc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	jsonName := map[string]string{}
	st := reflect.TypeFor[tidepool.Stats]()
	for i := range st.NumField() {
		jsonName[st.Field(i).Name] = strings.Split(st.Field(i).Tag.Get("json"), ",")[0]
	}
	// A line of the doc that mentions both the metric and the field.
	hasLine := func(doc []byte, metric, field string) bool {
		for _, line := range strings.Split(string(doc), "\n") {
			if strings.Contains(line, metric) && strings.Contains(line, field) {
				return true
			}
		}
		return false
	}
	for _, r := range statsRows {
		if r.Type == poolLabel {
			continue
		}
		metric := r.Metric
		if r.Type == derived {
			metric = "tidepool_" + r.name
		}
		if !hasLine(pkgDoc, metric, r.Field) {
			t.Errorf("metrics/doc.go has no line naming %s and Stats.%s", metric, r.Field)
		}
		if !hasLine(ops, metric, "`"+jsonName[r.Field]) {
			t.Errorf("docs/operations.md has no table line naming %s and the Stats field `%s`", metric, jsonName[r.Field])
		}
	}
	for _, r := range reasonRows {
		if !strings.Contains(string(ops), "`"+r.Reason.String()+"`") {
			t.Errorf("docs/operations.md does not list the reason %q", r.Reason)
		}
	}
}
