package results

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// synthetic builds a CPU profile whose samples have the given stacks (leaf
// first) and values in ns.
func synthetic(stacks [][]string, values []int64) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	fns := map[string]*profile.Function{}
	for i, st := range stacks {
		var locs []*profile.Location
		for _, name := range st {
			fn, ok := fns[name]
			if !ok {
				fn = &profile.Function{ID: uint64(len(fns) + 1), Name: name}
				fns[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{1, values[i]}})
	}
	return p
}

const (
	tpGet    = "github.com/tidepool-go/tidepool/bench.(*Tidepool[go.shape.*uint8]).Get"
	tpPut    = "github.com/tidepool-go/tidepool/bench.(*Tidepool[go.shape.*uint8]).Put"
	tpSlow   = "github.com/tidepool-go/tidepool.(*Pool[go.shape.*uint8]).acquireSlow"
	tpRec    = "github.com/tidepool-go/tidepool/reconciler.(*Reconciler[go.shape.*uint8]).run"
	driveFn  = "github.com/tidepool-go/tidepool/bench.Drive.func1"
	opFn     = "github.com/tidepool-go/tidepool/bench.PgSelect"
	pgxQuery = "github.com/jackc/pgx/v5.(*Conn).Query"
)

func TestSummarizeAttributesSamplesToGetPutBackgroundOrTheClient(t *testing.T) {
	p := synthetic([][]string{
		{"runtime.futex", tpSlow, tpGet, driveFn},                            // waiting in Get: 30
		{"runtime.futexwakeup", tpPut, driveFn},                              // hand-off in Put: 10
		{"runtime.mallocgc", tpRec},                                          // background: 20
		{"internal/runtime/syscall/linux.Syscall6", pgxQuery, opFn, driveFn}, // the client: 40
	}, []int64{30e6, 10e6, 20e6, 40e6})
	s := Summarize(p, "tidepool")
	if s.Total != 100*time.Millisecond {
		t.Errorf("Total = %v, want 100ms", s.Total)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"Get", s.Get, 0.3}, {"Put", s.Put, 0.1}, {"Background", s.Background, 0.2}, {"InPool", s.InPool, 0.6}} {
		if c.got < c.want-1e-9 || c.got > c.want+1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(s.Top) != 3 || s.Top[0].Func != "runtime.futex" || s.Top[0].Share != 0.5 {
		t.Errorf("Top = %+v, want runtime.futex first with half of the pool's 60ms", s.Top)
	}
	// Another pool's profile does not claim tidepool's background code.
	if s := Summarize(p, "pgxpool"); s.Background != 0 {
		t.Errorf("pgxpool's summary counts tidepool's reconciler as its background: %v", s.Background)
	}
}

func TestSummarizeProfileReadsTheBenchmarkFromTheFileName(t *testing.T) {
	p := synthetic([][]string{{"runtime.futex", tpGet}}, []int64{10e6})
	path := filepath.Join(t.TempDir(), "BenchmarkS8Postgres_op=select_pool=tidepool-2.pprof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := SummarizeProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Key{S8Postgres, "op=select", 2}); s.Key != want || s.Pool != "tidepool" || s.Get != 1 {
		t.Fatalf("summary = %+v, want key %v, pool tidepool, all in Get", s, want)
	}
	if _, err := SummarizeProfile(filepath.Join(t.TempDir(), "whatever.pprof")); err == nil {
		t.Fatal("a profile not named after a benchmark was accepted")
	}
}

func TestShortFuncDropsShapesAndImportPaths(t *testing.T) {
	for in, want := range map[string]string{
		tpSlow: "tidepool.(*Pool[…]).acquireSlow",
		"github.com/tidepool-go/tidepool/bench.s8[go.shape.interface { Close() error },go.shape.struct { p *github.com/x/y.Pool[a.b] }].func1": "bench.s8[…].func1",
		"internal/runtime/syscall/linux.Syscall6": "linux.Syscall6",
		"runtime.futex": "runtime.futex",
		"github.com/jackc/pgx/v5/pgxpool.(*Pool).Acquire": "pgxpool.(*Pool).Acquire",
	} {
		if got := ShortFunc(in); got != want {
			t.Errorf("ShortFunc(%q) = %q, want %q", in, got, want)
		}
	}
}
