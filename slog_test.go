package tidepool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
)

// recorder is a slog.Handler that keeps every record with the attributes of
// its handler chain resolved, and counts Enabled and Handle calls. Handlers
// derived by WithAttrs and WithGroup share the parent's store.
type recorder struct {
	st     *recStore
	level  slog.Leveler
	prefix []string    // open groups, outermost first
	attrs  []slog.Attr // from WithAttrs, already inside their groups
}

type recStore struct {
	mu      sync.Mutex
	entries []recEntry
	enabled atomic.Int64
	handled atomic.Int64
}

// recEntry is one record: its level, message and attributes (WithAttrs ones
// first), with groups as nested slog.Values.
type recEntry struct {
	level slog.Level
	msg   string
	attrs []slog.Attr
}

func newRecorder(level slog.Leveler) *recorder { return &recorder{st: &recStore{}, level: level} }

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool {
	r.st.enabled.Add(1)
	return l >= r.level.Level()
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.st.handled.Add(1)
	var own []slog.Attr
	rec.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	attrs := append(cloneAttrs(r.attrs), nest(r.prefix, own)...)
	r.st.mu.Lock()
	r.st.entries = append(r.st.entries, recEntry{level: rec.Level, msg: rec.Message, attrs: attrs})
	r.st.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(cloneAttrs(r.attrs), nest(r.prefix, as)...)
	return &c
}

func (r *recorder) WithGroup(name string) slog.Handler {
	c := *r
	c.prefix = append(append([]string(nil), r.prefix...), name)
	return &c
}

func cloneAttrs(a []slog.Attr) []slog.Attr { return append([]slog.Attr(nil), a...) }

// nest wraps attrs in the open groups.
func nest(groups []string, attrs []slog.Attr) []slog.Attr {
	for i := len(groups) - 1; i >= 0; i-- {
		attrs = []slog.Attr{{Key: groups[i], Value: slog.GroupValue(attrs...)}}
	}
	return attrs
}

func (r *recorder) all() []recEntry {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	return append([]recEntry(nil), r.st.entries...)
}

func attrMap(attrs []slog.Attr) map[string]slog.Value {
	m := map[string]slog.Value{}
	for _, a := range attrs {
		m[a.Key] = a.Value
	}
	return m
}

type strStringer struct{ s string }

func (s strStringer) String() string { return s.s }

type nilStringer struct{ s *string }

func (n *nilStringer) String() string { return *n.s }

type point struct{ X, Y int }

func (p point) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("x", p.X)
	enc.AddDuration("after", time.Duration(p.Y)*time.Second)
	return nil
}

// Every kind of zap field arrives in slog with its kind and value: the ones
// the pool logs (string, int, int64, uint64, duration, bool, error) and the
// rest, for callers and helpers who log through the same logger.
func TestSlogLoggerKeepsEveryFieldKind(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	dialErr := fmt.Errorf("dial: %w", io.ErrUnexpectedEOF)
	type want struct {
		kind slog.Kind
		v    any // compared with Value.Any(); for groups, the group's attr map
	}
	for _, tc := range []struct {
		name  string
		field zap.Field
		key   string
		want  want
	}{
		{"string", zap.String("event", "conn.dialed"), "event", want{slog.KindString, "conn.dialed"}},
		{"int", zap.Int("max", 16), "max", want{slog.KindInt64, int64(16)}},
		{"int64", zap.Int64("live", -3), "live", want{slog.KindInt64, int64(-3)}},
		{"int32", zap.Int32("i32", 7), "i32", want{slog.KindInt64, int64(7)}},
		{"int8", zap.Int8("i8", -8), "i8", want{slog.KindInt64, int64(-8)}},
		{"uint64", zap.Uint64("conn_id", 1<<63+5), "conn_id", want{slog.KindUint64, uint64(1<<63 + 5)}},
		{"uint", zap.Uint("u", 9), "u", want{slog.KindUint64, uint64(9)}},
		{"uint8", zap.Uint8("u8", 255), "u8", want{slog.KindUint64, uint64(255)}},
		{"uintptr", zap.Uintptr("p", 0x10), "p", want{slog.KindUint64, uint64(0x10)}},
		{"bool true", zap.Bool("forced", true), "forced", want{slog.KindBool, true}},
		{"bool false", zap.Bool("forced", false), "forced", want{slog.KindBool, false}},
		{"duration", zap.Duration("took", 1500*time.Microsecond), "took", want{slog.KindDuration, 1500 * time.Microsecond}},
		{"float64", zap.Float64("ratio", 0.25), "ratio", want{slog.KindFloat64, 0.25}},
		{"float32", zap.Float32("f32", 0.5), "f32", want{slog.KindFloat64, 0.5}},
		{"time", zap.Time("at", at), "at", want{slog.KindTime, at}},
		{"time outside UnixNano range", zap.Time("old", time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)), "old",
			want{slog.KindTime, time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"error", zap.Error(dialErr), "error", want{slog.KindAny, dialErr}},
		{"named error", zap.NamedError("cause", dialErr), "cause", want{slog.KindAny, dialErr}},
		{"stringer", zap.Stringer("reason", strStringer{"shrink"}), "reason", want{slog.KindString, "shrink"}},
		{"panicking stringer", zap.Stringer("bad", (*nilStringer)(nil)), "bad", want{slog.KindString, "<nil>"}},
		{"byte string", zap.ByteString("bs", []byte("raw")), "bs", want{slog.KindString, "raw"}},
		{"binary", zap.Binary("bin", []byte{1, 2}), "bin", want{slog.KindAny, []byte{1, 2}}},
		{"complex128", zap.Complex128("c", 1+2i), "c", want{slog.KindString, "1+2i"}},
		{"complex64", zap.Complex64("c64", 1-2i), "c64", want{slog.KindString, "1-2i"}},
		{"reflected struct", zap.Any("retired", tidepool.ClosedCounts{Shrink: 2}), "retired",
			want{slog.KindAny, tidepool.ClosedCounts{Shrink: 2}}},
		{"object", zap.Object("pt", point{1, 2}), "pt",
			want{slog.KindGroup, map[string]any{"x": int64(1), "after": 2 * time.Second}}},
		{"array", zap.Ints("ns", []int{1, 2}), "ns", want{slog.KindAny, []any{1, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(slog.LevelDebug)
			tidepool.SlogLogger(slog.New(rec)).Info("x", tc.field)
			es := rec.all()
			if len(es) != 1 || len(es[0].attrs) != 1 || es[0].attrs[0].Key != tc.key {
				t.Fatalf("recorded %+v, want one entry with one attribute %q", es, tc.key)
			}
			v := es[0].attrs[0].Value
			if v.Kind() != tc.want.kind {
				t.Fatalf("%s: kind %v, want %v (value %v)", tc.key, v.Kind(), tc.want.kind, v)
			}
			var got any
			if v.Kind() == slog.KindGroup {
				m := map[string]any{}
				for k, gv := range attrMap(v.Group()) {
					m[k] = gv.Any()
				}
				got = m
			} else {
				got = v.Any()
			}
			if !reflect.DeepEqual(got, tc.want.v) {
				t.Errorf("%s = %#v (%T), want %#v (%T)", tc.key, got, got, tc.want.v, tc.want.v)
			}
			if err, ok := got.(error); ok && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: the error value lost its chain: %v", tc.key, err)
			}
		})
	}
}

// Skipped fields vanish, a namespace nests what follows it (in With as in a
// single entry), a logger name and a stack trace become attributes, and the
// levels map onto slog's.
func TestSlogLoggerKeepsStructureNamesAndLevels(t *testing.T) {
	rec := newRecorder(slog.LevelDebug)
	log := tidepool.SlogLogger(slog.New(rec).With("service", "orders")).
		With(zap.String("pool", "db"), zap.Namespace("conn"), zap.Int("shard", 3)).Named("reconciler")
	log.Warn("conn.retired", zap.Skip(), zap.Error(nil), zap.Uint64("id", 7), zap.Namespace("detail"), zap.String("reason", "health"))
	es := rec.all()
	if len(es) != 1 {
		t.Fatalf("recorded %d entries, want 1", len(es))
	}
	e := es[0]
	if e.msg != "conn.retired" || e.level != slog.LevelWarn {
		t.Errorf("entry %q at %v, want conn.retired at WARN", e.msg, e.level)
	}
	got := flatten("", e.attrs)
	want := map[string]any{
		"service": "orders", "pool": "db", "conn.shard": int64(3), "conn.logger": "reconciler",
		"conn.id": uint64(7), "conn.detail.reason": "health",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes %v\nwant %v", got, want)
	}

	for zl, sl := range map[zapcore.Level]slog.Level{
		zapcore.DebugLevel: slog.LevelDebug, zapcore.InfoLevel: slog.LevelInfo, zapcore.WarnLevel: slog.LevelWarn,
		zapcore.ErrorLevel: slog.LevelError, zapcore.DPanicLevel: slog.LevelError + 1,
	} {
		rec := newRecorder(slog.LevelDebug)
		if ce := tidepool.SlogLogger(slog.New(rec)).Check(zl, "m"); ce != nil {
			ce.Write()
		}
		if es := rec.all(); len(es) != 1 || es[0].level != sl {
			t.Errorf("zap %v arrived as %+v, want one entry at %v", zl, es, sl)
		}
	}

	rec = newRecorder(slog.LevelDebug)
	tidepool.SlogLogger(slog.New(rec)).WithOptions(zap.AddStacktrace(zapcore.ErrorLevel)).Error("boom")
	if st, ok := attrMap(rec.all()[0].attrs)["stacktrace"]; !ok || !strings.Contains(st.String(), "TestSlogLoggerKeepsStructureNamesAndLevels") {
		t.Errorf("stacktrace attribute %v, want the calling test's stack", st)
	}
}

// flatten turns nested groups into dotted keys with plain values.
func flatten(prefix string, attrs []slog.Attr) map[string]any {
	m := map[string]any{}
	for _, a := range attrs {
		k := prefix + a.Key
		if a.Value.Kind() == slog.KindGroup {
			for fk, fv := range flatten(k+".", a.Value.Group()) {
				m[fk] = fv
			}
			continue
		}
		m[k] = a.Value.Any()
	}
	return m
}

func TestSlogLoggerPanicsOnNil(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil *slog.Logger") {
			t.Errorf("SlogLogger(nil) recovered %v, want a panic naming the nil logger", r)
		}
	}()
	tidepool.SlogLogger(nil)
}

// driveLifecycle runs a pool through the events of the log schema — dials,
// a wait, a destroy, a resize, a leak, a failed health check, an outage and
// its recovery, a close — in a synctest bubble, with cfg.Logger set by the
// caller.
func driveLifecycle(t *testing.T, logger *zap.Logger) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		cfg := b.config()
		cfg.Name = "orders"
		cfg.Logger = logger
		cfg.MinIdle = 1
		cfg.LeakThreshold = 5 * time.Second
		failCheck := make(chan struct{})
		cfg.Check = func(ctx context.Context, c *fakeConn) error {
			select {
			case <-failCheck:
				return errors.New("ping: broken pipe")
			default:
				return nil
			}
		}
		cfg.HealthInterval = time.Second
		p := newPool(t, cfg)

		h := mustAcquire(t, p)
		go func() { time.Sleep(time.Millisecond); h.Destroy() }()
		held := mustAcquire(t, p) // waits for a fresh dial: acquire.waited
		time.Sleep(6 * time.Second)
		held.Release() // held past LeakThreshold: leak_suspected, leak_released
		if err := p.Resize(0, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		close(failCheck)
		time.Sleep(2 * time.Second) // failed checks retire the idle connections
		synctest.Wait()
		b.down.Store(true)
		if _, err := p.Acquire(context.Background()); !errors.Is(err, tidepool.ErrDial) {
			t.Fatalf("Acquire with backend down: %v", err)
		}
		b.down.Store(false)
		time.Sleep(10 * time.Second)
		mustAcquire(t, p).Release()
		closePool(t, p)
	})
}

// zapValue is what zap's observer reports for an attribute's value: the slog
// value with an error as its text, a group as a map.
func zapValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindGroup:
		m := map[string]any{}
		for _, a := range v.Group() {
			m[a.Key] = zapValue(a.Value)
		}
		return m
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return v.Any()
}

// serialCore writes each entry to all of its (teed) cores under one lock.
type serialCore struct {
	zapcore.Core
	mu *sync.Mutex
}

func (c *serialCore) With(fields []zapcore.Field) zapcore.Core {
	return &serialCore{Core: c.Core.With(fields), mu: c.mu}
}

func (c *serialCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *serialCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Core.Write(e, fields)
}

// The pool's own events reach slog with the same names, levels and fields as
// zap's: the same run is logged to zap's observer and, through SlogLogger, to
// a recording handler, and the two are compared entry by entry. New events
// and fields are covered as the pool gains them.
func TestSlogLoggerCarriesThePoolsEventsUnchanged(t *testing.T) {
	obs, zlogs := observer.New(zapcore.DebugLevel)
	rec := newRecorder(slog.LevelDebug)
	// One lock around both writes of an entry: goroutines that log at once
	// must reach the two sinks in the same order.
	tee := &serialCore{Core: zapcore.NewTee(obs, tidepool.SlogLogger(slog.New(rec)).Core()), mu: new(sync.Mutex)}
	driveLifecycle(t, zap.New(tee))

	zs, ss := zlogs.All(), rec.all()
	if len(zs) != len(ss) {
		t.Fatalf("zap logged %d entries, slog got %d", len(zs), len(ss))
	}
	levels := map[zapcore.Level]slog.Level{zapcore.DebugLevel: slog.LevelDebug, zapcore.InfoLevel: slog.LevelInfo,
		zapcore.WarnLevel: slog.LevelWarn, zapcore.ErrorLevel: slog.LevelError}
	kinds := map[string]slog.Kind{}
	events := map[string]bool{}
	for i, z := range zs {
		s := ss[i]
		if s.msg != z.Message || s.level != levels[z.Level] {
			t.Errorf("entry %d: slog %q at %v, zap %q at %v", i, s.msg, s.level, z.Message, z.Level)
			continue
		}
		events[s.msg] = true
		got := map[string]any{}
		for _, a := range s.attrs {
			got[a.Key] = zapValue(a.Value)
			kinds[a.Key] = a.Value.Kind()
		}
		if want := z.ContextMap(); !reflect.DeepEqual(got, want) {
			t.Errorf("entry %d %q:\nslog %v\nzap  %v", i, z.Message, got, want)
		}
	}
	for _, ev := range []string{"pool.started", "conn.dialed", "acquire.waited", "conn.retired", "conn.leak_suspected",
		"conn.leak_released", "resize.requested", "resize.adopted", "resize.reached", "conn.check_failed",
		"conn.dial_failed", "pool.recovered", "pool.close_started", "pool.closed"} {
		if !events[ev] {
			t.Errorf("the run logged no %s entry; logged %v", ev, events)
		}
	}
	for key, want := range map[string]slog.Kind{
		"event": slog.KindString, "pool": slog.KindString, "reason": slog.KindString,
		"conn_id": slog.KindUint64, "max": slog.KindInt64, "slots": slog.KindInt64, "attempt": slog.KindInt64,
		"took": slog.KindDuration, "age": slog.KindDuration, "retry_in": slog.KindDuration,
		"waited": slog.KindDuration, "held": slog.KindDuration, "threshold": slog.KindDuration,
		"forced": slog.KindBool, "error": slog.KindAny,
	} {
		if kinds[key] != want {
			t.Errorf("field %q arrived as %v, want %v", key, kinds[key], want)
		}
	}
}

// Through slog's JSON handler, with the service's own attributes: every
// entry is a JSON object whose msg is its event, durations are integers of
// nanoseconds, errors their text under "error".
func TestSlogLoggerThroughTheJSONHandler(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	driveLifecycle(t, tidepool.SlogLogger(slog.New(h).With("service", "checkout")))

	seen := map[string]map[string]json.RawMessage{}
	for i, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
		}
		var msg, event, pool, service string
		_ = json.Unmarshal(e["msg"], &msg)
		_ = json.Unmarshal(e["event"], &event)
		_ = json.Unmarshal(e["pool"], &pool)
		_ = json.Unmarshal(e["service"], &service)
		if msg == "" || msg != event || pool != "orders" || service != "checkout" || e["time"] == nil || e["level"] == nil {
			t.Errorf("line %d: want time, level, msg = event, pool orders, service checkout: %s", i+1, line)
		}
		seen[msg] = e
	}
	isNanos := func(raw json.RawMessage) bool {
		var n int64
		return len(raw) > 0 && raw[0] != '"' && !bytes.ContainsAny(raw, ".e") && json.Unmarshal(raw, &n) == nil
	}
	for ev, keys := range map[string][]string{
		"conn.dialed": {"took"}, "conn.retired": {"age"}, "conn.dial_failed": {"took", "retry_in"},
		"acquire.waited": {"waited"}, "conn.leak_released": {"held"}, "pool.closed": {"took"},
	} {
		for _, k := range keys {
			if raw := seen[ev][k]; !isNanos(raw) {
				t.Errorf("%s %s = %s, want an integer of nanoseconds", ev, k, raw)
			}
		}
	}
	if got := string(seen["conn.leak_released"]["held"]); got != "6000000000" {
		t.Errorf(`conn.leak_released "held" = %s, want 6000000000 (6s in nanoseconds)`, got)
	}
	if got := string(seen["conn.dial_failed"]["error"]); got != `"backend: connection refused"` {
		t.Errorf(`conn.dial_failed "error" = %s, want the dial error's text`, got)
	}
	if got := string(seen["conn.check_failed"]["level"]); got != `"WARN"` {
		t.Errorf("conn.check_failed level = %s, want WARN", got)
	}
}

// How a 1.5 ms duration looks in each logger the docs list (README log
// schema, docs/operations.md): the encoder or handler decides, not the pool.
func TestDurationEncodingAsDocumented(t *testing.T) {
	zapJSON := func(enc zapcore.DurationEncoder) func(io.Writer) *zap.Logger {
		return func(w io.Writer) *zap.Logger {
			cfg := zap.NewProductionEncoderConfig()
			if enc != nil {
				cfg.EncodeDuration = enc
			}
			return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(cfg), zapcore.AddSync(w), zapcore.InfoLevel))
		}
	}
	for _, tc := range []struct {
		name string
		log  func(io.Writer) *zap.Logger
		want string
	}{
		{"zap production JSON", zapJSON(nil), `"took":0.0015`},
		{"zap StringDurationEncoder", zapJSON(zapcore.StringDurationEncoder), `"took":"1.5ms"`},
		{"zap NanosDurationEncoder", zapJSON(zapcore.NanosDurationEncoder), `"took":1500000`},
		{"slog JSONHandler", func(w io.Writer) *zap.Logger {
			return tidepool.SlogLogger(slog.New(slog.NewJSONHandler(w, nil)))
		}, `"took":1500000`},
		{"slog TextHandler", func(w io.Writer) *zap.Logger {
			return tidepool.SlogLogger(slog.New(slog.NewTextHandler(w, nil)))
		}, `took=1.5ms`},
	} {
		var buf bytes.Buffer
		tc.log(&buf).Info("conn.dialed", zap.String("event", "conn.dialed"), zap.Duration("took", 1500*time.Microsecond))
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, strings.TrimSpace(buf.String()), tc.want)
		}
	}
}

// A level the handler does not enable costs one Enabled call: the entry never
// reaches Handle and nothing allocates; the pool's debug event appears once
// the handler's level is lowered at run time.
func TestSlogLoggerHonoursTheHandlersLevel(t *testing.T) {
	var level slog.LevelVar // Info
	rec := newRecorder(&level)
	log := tidepool.SlogLogger(slog.New(rec)).With(zap.String("pool", "orders"))

	if ce := log.Check(zap.DebugLevel, "acquire.waited"); ce != nil {
		t.Error("Check at Debug returned an entry while the handler is at Info")
	}
	// The pool logs its only hot-ish event, acquire.waited, through Check, as
	// zap recommends for disabled levels: that costs no allocation.
	waited := 3 * time.Millisecond
	allocs := testing.AllocsPerRun(1000, func() {
		if ce := log.Check(zap.DebugLevel, "acquire.waited"); ce != nil {
			ce.Write(zap.String("event", "acquire.waited"), zap.Uint64("conn_id", 7), zap.Duration("waited", waited))
		}
	})
	if allocs != 0 {
		t.Errorf("a disabled Debug entry through Check allocates %v times, want 0", allocs)
	}
	// Logger.Debug with fields costs what it costs on any zap core (the
	// variadic slice escapes into zap's API): no more through slog.
	debug := func(l *zap.Logger) func() {
		return func() {
			l.Debug("acquire.waited", zap.String("event", "acquire.waited"), zap.Uint64("conn_id", 7), zap.Duration("waited", waited))
		}
	}
	zapCore := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	if viaSlog, viaZap := testing.AllocsPerRun(1000, debug(log)), testing.AllocsPerRun(1000, debug(zapCore)); viaSlog > viaZap {
		t.Errorf("a disabled Debug call allocates %v times through slog, %v through a zap JSON core", viaSlog, viaZap)
	}
	if n := rec.st.handled.Load(); n != 0 {
		t.Errorf("Handle called %d times for disabled entries, want 0", n)
	}
	if rec.st.enabled.Load() == 0 {
		t.Error("the handler's Enabled was never asked")
	}

	// The pool's acquire.waited is a Debug entry: absent at Info, present
	// once the service lowers its level.
	waits := func() int {
		n := 0
		for _, e := range rec.all() {
			if e.msg == "acquire.waited" {
				n++
			}
		}
		return n
	}
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		cfg := b.config()
		cfg.Logger = tidepool.SlogLogger(slog.New(rec))
		p := newPool(t, cfg)
		mustAcquire(t, p).Release() // waits for its dial
		if n := waits(); n != 0 {
			t.Errorf("%d acquire.waited entries at Info, want 0", n)
		}
		level.Set(slog.LevelDebug)
		mustAcquire(t, p).Destroy() // the idle one: no wait
		mustAcquire(t, p).Release() // waits for a new dial
		if n := waits(); n != 1 {
			t.Errorf("%d acquire.waited entries after lowering the level to Debug, want 1", n)
		}
		closePool(t, p)
	})
}

// BenchmarkSlogLogger compares one pool event (conn.retired, 5 fields and the
// pool's name) through SlogLogger into slog's JSON handler with zap's
// production JSON core, and a disabled Debug entry through each.
func BenchmarkSlogLogger(b *testing.B) {
	fields := []zap.Field{zap.String("event", "conn.retired"), zap.Uint64("conn_id", 42),
		zap.String("reason", "health"), zap.Duration("age", 90*time.Second), zap.Error(io.ErrUnexpectedEOF)}
	zapJSON := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	viaSlog := tidepool.SlogLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	for _, l := range []struct {
		name string
		log  *zap.Logger
	}{{"zap-json", zapJSON}, {"slog-json", viaSlog}} {
		log := l.log.With(zap.String("pool", "orders"))
		b.Run(l.name+"/enabled", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				log.Info("conn.retired", fields...)
			}
		})
		b.Run(l.name+"/disabled", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ce := log.Check(zap.DebugLevel, "acquire.waited"); ce != nil {
					ce.Write(fields...)
				}
			}
		})
	}
}

// A service that logs with log/slog hands its logger to the pool in one line;
// the pool's events then go through the service's handler, with its
// attributes, as JSON objects whose msg is the event's name.
func ExampleSlogLogger() {
	handler := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		// Only to keep this example's output stable: no timestamps, and
		// durations (integers of nanoseconds) rounded down to the second.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.DurationValue(a.Value.Duration().Truncate(time.Second))
			}
			return a
		},
	})
	logger := slog.New(handler).With("service", "checkout")

	ctx := context.Background()
	p, err := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:    func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		MaxSize: 2,
		Name:    "orders-db",
		Logger:  tidepool.SlogLogger(logger), // the one line
	})
	if err != nil {
		panic(err)
	}
	_ = p.Resize(0, 4)
	_ = p.Close(ctx)
	// Output:
	// {"level":"INFO","msg":"pool.started","service":"checkout","pool":"orders-db","event":"pool.started","min_idle":0,"max_size":2,"warm_in_background":false}
	// {"level":"INFO","msg":"resize.requested","service":"checkout","pool":"orders-db","event":"resize.requested","min":0,"max":4}
	// {"level":"INFO","msg":"resize.adopted","service":"checkout","pool":"orders-db","event":"resize.adopted","old_min":0,"old_max":2,"min":0,"max":4,"slots":0,"waiting":0}
	// {"level":"INFO","msg":"resize.reached","service":"checkout","pool":"orders-db","event":"resize.reached","min":0,"max":4,"open":0,"idle":0,"took":0}
	// {"level":"INFO","msg":"pool.close_started","service":"checkout","pool":"orders-db","event":"pool.close_started","waiters_failed":0,"open":0,"dialing":0}
	// {"level":"INFO","msg":"pool.closed","service":"checkout","pool":"orders-db","event":"pool.closed","took":0,"forced":false}
}
