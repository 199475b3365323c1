package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is the pooled value: a plain struct, nothing to close.
type fakeConn struct{ n int }

// newPool returns a pool of fakeConns that dials instantly, closed when the
// test ends.
func newPool(t *testing.T, cfg tidepool.Config[fakeConn]) *tidepool.Pool[fakeConn] {
	t.Helper()
	var dials atomic.Int64
	cfg.Dial = func(context.Context) (fakeConn, error) { return fakeConn{n: int(dials.Add(1))}, nil }
	if cfg.Name == "" {
		cfg.Name = "admin-test"
	}
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("tidepool.New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func acquire(t *testing.T, p *tidepool.Pool[fakeConn]) tidepool.Conn[fakeConn] {
	t.Helper()
	h, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h
}

// do sends one request to h and returns the recorded response.
func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body: %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

// errorText decodes an {"error": "..."} body.
func errorText(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("body is not {\"error\": \"...\"}: %v", err)
	}
	return e.Error
}

func decodeStats(t *testing.T, rec *httptest.ResponseRecorder) tidepool.Stats {
	t.Helper()
	var s tidepool.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("decoding Stats: %v; body: %s", err, rec.Body)
	}
	return s
}

func TestStatsServesThePoolsStatsAsJSON(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, Name: "orders"})
	h1, h2 := acquire(t, p), acquire(t, p)
	h2.Release()
	defer h1.Release()

	// The dial that served a waiter is still being booked for a moment
	// (Dialing): compare once the pool is still.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Dialing != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	rec := do(Handler(p), http.MethodGet, "/stats", "")
	wantStatus(t, rec, http.StatusOK)
	got := decodeStats(t, rec)
	if want := p.Stats(); got != want {
		t.Errorf("GET /stats = %+v\nwant p.Stats() = %+v", got, want)
	}
	if got.Name != "orders" || got.MaxSize != 4 || got.InUse != 1 || got.Idle != 1 || got.Acquires != 2 {
		t.Errorf("GET /stats = %+v; want name orders, max 4, 1 in use, 1 idle, 2 acquires", got)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

func TestConnsListsHeldConnectionsLongestHeldFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, TrackAcquireSite: true})
		h := Handler(p)

		rec := do(h, http.MethodGet, "/conns", "")
		wantStatus(t, rec, http.StatusOK)
		if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
			t.Errorf("GET /conns with nothing held = %s, want []", body)
		}

		older := acquire(t, p)
		time.Sleep(3 * time.Second)
		newer := acquire(t, p)
		time.Sleep(time.Second)
		idle := acquire(t, p)
		idle.Release()

		rec = do(h, http.MethodGet, "/conns", "")
		wantStatus(t, rec, http.StatusOK)
		var got []tidepool.HeldConn
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("decoding /conns: %v", err)
		}
		if len(got) != 2 {
			t.Fatalf("GET /conns listed %d connections, want the 2 held: %+v", len(got), got)
		}
		if got[0].ID != older.ID() || got[0].HeldFor != 4*time.Second ||
			got[1].ID != newer.ID() || got[1].HeldFor != time.Second {
			t.Errorf("GET /conns = %+v; want conn %d held 4s then conn %d held 1s", got, older.ID(), newer.ID())
		}
		for _, c := range got {
			if !strings.Contains(c.AcquiredAt, "TestConnsListsHeldConnectionsLongestHeldFirst") {
				t.Errorf("conn %d acquired_at = %q, want the acquiring test's stack", c.ID, c.AcquiredAt)
			}
		}
		older.Release()
		newer.Release()
	})
}

func TestResizeAdoptsNewBoundsAndAnswersTheNewStats(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	rec := do(Handler(p), http.MethodPost, "/resize", `{"min": 1, "max": 6}`)
	wantStatus(t, rec, http.StatusOK)
	got := decodeStats(t, rec)
	if got.MinIdle != 1 || got.MaxSize != 6 || got.Resizes != 1 {
		t.Errorf("POST /resize answered min %d max %d resizes %d, want 1, 6, 1", got.MinIdle, got.MaxSize, got.Resizes)
	}
	if s := p.Stats(); s.MinIdle != 1 || s.MaxSize != 6 {
		t.Errorf("pool bounds after resize = [%d, %d], want [1, 6]", s.MinIdle, s.MaxSize)
	}
}

func TestResizeWithOneBoundKeepsTheOther(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 8, MinIdle: 1})
	h := Handler(p)

	wantStatus(t, do(h, http.MethodPost, "/resize", `{"max": 5}`), http.StatusOK)
	if s := p.Stats(); s.MinIdle != 1 || s.MaxSize != 5 {
		t.Errorf(`after {"max": 5}: bounds [%d, %d], want [1, 5]`, s.MinIdle, s.MaxSize)
	}
	wantStatus(t, do(h, http.MethodPost, "/resize", `{"min": 3}`), http.StatusOK)
	if s := p.Stats(); s.MinIdle != 3 || s.MaxSize != 5 {
		t.Errorf(`after {"min": 3}: bounds [%d, %d], want [3, 5]`, s.MinIdle, s.MaxSize)
	}
}

// refusalCase is a resize request the handler must refuse without changing
// the pool.
type refusalCase struct{ name, body, want string }

// checkRefusals sends each case's body to a fresh pool made with cfg, in its
// own bubble so that the pool is still between the two Stats snapshots, and
// checks the status, that the error contains want, and that nothing changed.
func checkRefusals(t *testing.T, cfg tidepool.Config[fakeConn], status int, cases []refusalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPool(t, cfg)
				synctest.Wait()
				before := p.Stats()
				rec := do(Handler(p), http.MethodPost, "/resize", tc.body)
				synctest.Wait()
				wantStatus(t, rec, status)
				if msg := errorText(t, rec); !strings.Contains(msg, tc.want) {
					t.Errorf("error = %q, want it to contain %q", msg, tc.want)
				}
				if after := p.Stats(); after != before {
					t.Errorf("a refused resize changed the pool:\nbefore %+v\nafter  %+v", before, after)
				}
			})
		})
	}
}

func TestResizeRejectsMalformedBodiesAndChangesNothing(t *testing.T) {
	checkRefusals(t, tidepool.Config[fakeConn]{MaxSize: 4, MinIdle: 1}, http.StatusBadRequest, []refusalCase{
		{"empty body", "", "empty request body"},
		{"blank body", "  \n", "empty request body"},
		{"not JSON", "min=1&max=2", "invalid JSON body"},
		{"truncated JSON", `{"min": 1,`, "invalid JSON body"},
		{"array", `[1, 2]`, "invalid JSON body"},
		{"unknown field", `{"min": 1, "max": 2, "idle": 3}`, `unknown field "idle"`},
		{"no bounds", `{}`, `neither "min" nor "max"`},
		{"string value", `{"min": "1", "max": 2}`, `"min" must be a non-negative integer, got "1"`},
		{"fraction", `{"min": 1, "max": 2.5}`, `"max" must be a non-negative integer, got 2.5`},
		{"exponent", `{"min": 1, "max": 1e1}`, `"max" must be a non-negative integer, got 1e1`},
		{"null", `{"min": null, "max": 2}`, `"min" must be a non-negative integer, got null`},
		{"bool", `{"min": 1, "max": true}`, `"max" must be a non-negative integer, got true`},
		{"negative min", `{"min": -1, "max": 2}`, `"min" must not be negative, got -1`},
		{"negative max", `{"max": -3}`, `"max" must not be negative, got -3`},
		{"huge", `{"max": 99999999999999999999}`, `"max" is out of range`},
		{"above int32", `{"max": 4294967296}`, `"max" is out of range`},
		{"trailing data", `{"min": 1, "max": 2} {"min": 0}`, "unexpected data after the JSON object"},
	})
}

func TestResizeThePoolRefusesIs422WithThePoolsErrorAndChangesNothing(t *testing.T) {
	const prefix = "tidepool: invalid resize: " // the pool's ErrInvalidResize text
	if !strings.HasPrefix(prefix, tidepool.ErrInvalidResize.Error()) {
		t.Fatalf("ErrInvalidResize is now %q; update this test", tidepool.ErrInvalidResize)
	}
	checkRefusals(t, tidepool.Config[fakeConn]{MaxSize: 4, MinIdle: 2, SizeCeiling: 16}, http.StatusUnprocessableEntity, []refusalCase{
		{"min above max", `{"min": 5, "max": 3}`, prefix + "min = 5: must be in [0, max=3]"},
		{"min alone above current max", `{"min": 9}`, prefix + "min = 9: must be in [0, max=4] (max not given: kept at its current 4)"},
		{"max alone below current min", `{"max": 1}`, prefix + "min = 2: must be in [0, max=1] (min not given: kept at its current 2)"},
		{"above ceiling", `{"max": 17}`, prefix + "max = 17: must be in [0, SizeCeiling=16]"},
	})
}

func TestResizeOfAClosedPoolIs503(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rec := do(Handler(p), http.MethodPost, "/resize", `{"min": 0, "max": 2}`)
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if msg := errorText(t, rec); msg != tidepool.ErrClosed.Error() {
		t.Errorf("error = %q, want %q", msg, tidepool.ErrClosed)
	}
	// Stats stay readable after Close.
	wantStatus(t, do(Handler(p), http.MethodGet, "/stats", ""), http.StatusOK)
}

func TestResizeOnAReadOnlyHandlerIs403AndChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
		h := Handler(p, ReadOnly())
		synctest.Wait()
		before := p.Stats()
		rec := do(h, http.MethodPost, "/resize", `{"min": 0, "max": 2}`)
		wantStatus(t, rec, http.StatusForbidden)
		if msg := errorText(t, rec); !strings.Contains(msg, "read-only") {
			t.Errorf("error = %q, want it to say read-only", msg)
		}
		synctest.Wait()
		if after := p.Stats(); after != before {
			t.Errorf("a read-only handler changed the pool:\nbefore %+v\nafter  %+v", before, after)
		}
		wantStatus(t, do(h, http.MethodGet, "/stats", ""), http.StatusOK)
		wantStatus(t, do(h, http.MethodGet, "/conns", ""), http.StatusOK)
	})
}

func TestOversizedBodyIs413AndChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
		synctest.Wait()
		before := p.Stats()
		body := `{"min": 0, "max": 2` + strings.Repeat(" ", MaxBodyBytes) + `}`
		rec := do(Handler(p), http.MethodPost, "/resize", body)
		wantStatus(t, rec, http.StatusRequestEntityTooLarge)
		errorText(t, rec)
		synctest.Wait()
		if after := p.Stats(); after != before {
			t.Errorf("an oversized request changed the pool:\nbefore %+v\nafter  %+v", before, after)
		}
		// Exactly MaxBodyBytes is accepted.
		body = `{"min": 0, "max": 2}`
		body += strings.Repeat(" ", MaxBodyBytes-len(body))
		wantStatus(t, do(Handler(p), http.MethodPost, "/resize", body), http.StatusOK)
	})
}

func TestWrongMethodIs405WithAllowHeader(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	h := Handler(p)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/resize", "POST"},
		{http.MethodPut, "/resize", "POST"},
		{http.MethodPost, "/stats", "GET, HEAD"},
		{http.MethodDelete, "/conns", "GET, HEAD"},
		{http.MethodGet, "/reset", "POST"},
	} {
		rec := do(h, tc.method, tc.path, "")
		wantStatus(t, rec, http.StatusMethodNotAllowed)
		if a := rec.Header().Get("Allow"); a != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, a, tc.allow)
		}
		if msg := errorText(t, rec); !strings.Contains(msg, tc.method) {
			t.Errorf("%s %s: error = %q, want it to name the method", tc.method, tc.path, msg)
		}
	}
	if s := p.Stats(); s.Resizes != 0 || s.MaxSize != 4 {
		t.Errorf("a refused method changed the pool: %+v", s)
	}
}

func TestUnknownPathIs404(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	for _, path := range []string{"/", "/stat", "/stats/", "/resize/now", "/debug/pool/stats"} {
		rec := do(Handler(p), http.MethodGet, path, "")
		wantStatus(t, rec, http.StatusNotFound)
		if msg := errorText(t, rec); !strings.Contains(msg, path) {
			t.Errorf("GET %s: error = %q, want it to name the path", path, msg)
		}
	}
}

// brokenPool is a pool whose Resize fails in a way the handler does not know.
type brokenPool struct{ pool }

func (brokenPool) Resize(int, int) error { return errors.New("reconciler on fire") }

func TestResizeFailingForAnUnknownReasonIs500(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	rec := do(newHandler(brokenPool{p}), http.MethodPost, "/resize", `{"min": 0, "max": 2}`)
	wantStatus(t, rec, http.StatusInternalServerError)
	if msg := errorText(t, rec); msg != "reconciler on fire" {
		t.Errorf("error = %q, want the pool's error", msg)
	}
}

// TestHandlerServesRealHTTPUnderAPrefix drives the handler through a real
// server on 127.0.0.1, mounted the way the docs say, with curl's default
// content type.
func TestHandlerServesRealHTTPUnderAPrefix(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	mux := http.NewServeMux()
	mux.Handle("/debug/pool/", http.StripPrefix("/debug/pool", Handler(p)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()

	resp, err := srv.Client().Post(srv.URL+"/debug/pool/resize", "application/x-www-form-urlencoded",
		strings.NewReader(`{"min":2,"max":32}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	var s tidepool.Stats
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || s.MinIdle != 2 || s.MaxSize != 32 {
		t.Fatalf("POST /debug/pool/resize: status %d, stats %+v, err %v; want 200 with bounds [2, 32]", resp.StatusCode, s, err)
	}

	resp, err = srv.Client().Head(srv.URL + "/debug/pool/stats")
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /debug/pool/stats: status %d, want 200", resp.StatusCode)
	}
}

// resettable is a pool with Reset: it counts the calls, and its Stats name
// says how many resets came before the snapshot.
type resettable struct {
	pool
	resets atomic.Int64
}

func (r *resettable) Reset() { r.resets.Add(1) }

func (r *resettable) Stats() tidepool.Stats {
	s := r.pool.Stats()
	s.Name = fmt.Sprintf("after %d resets", r.resets.Load())
	return s
}

func TestResetCallsThePoolsResetAndAnswersTheStatsAfterIt(t *testing.T) {
	p := &resettable{pool: newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})}
	h := newHandler(p)
	rec := do(h, http.MethodPost, "/reset", "")
	wantStatus(t, rec, http.StatusOK)
	if n := p.resets.Load(); n != 1 {
		t.Fatalf("POST /reset called Reset %d times, want 1", n)
	}
	if s := decodeStats(t, rec); s.Name != "after 1 resets" || s.MaxSize != 4 {
		t.Errorf("POST /reset answered %+v, want the Stats taken after the reset", s)
	}
	// A body is ignored, and a second reset is a second Reset.
	wantStatus(t, do(h, http.MethodPost, "/reset", `{"why": "rotation"}`), http.StatusOK)
	if n := p.resets.Load(); n != 2 {
		t.Errorf("after two POST /reset, Reset called %d times, want 2", n)
	}
}

func TestResetOnAReadOnlyHandlerIs403AndDoesNotReset(t *testing.T) {
	p := &resettable{pool: newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})}
	rec := do(newHandler(p, ReadOnly()), http.MethodPost, "/reset", "")
	wantStatus(t, rec, http.StatusForbidden)
	if msg := errorText(t, rec); !strings.Contains(msg, "read-only") || !strings.Contains(msg, "reset") {
		t.Errorf("error = %q, want it to say read-only and reset", msg)
	}
	if n := p.resets.Load(); n != 0 {
		t.Errorf("a read-only handler called Reset %d times", n)
	}
}

func TestResetWithTheWrongMethodIs405AndDoesNotReset(t *testing.T) {
	p := &resettable{pool: newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})}
	h := newHandler(p)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		rec := do(h, m, "/reset", "")
		wantStatus(t, rec, http.StatusMethodNotAllowed)
		if a := rec.Header().Get("Allow"); a != "POST" {
			t.Errorf("%s /reset: Allow = %q, want POST", m, a)
		}
	}
	if n := p.resets.Load(); n != 0 {
		t.Errorf("refused methods called Reset %d times", n)
	}
}

// With a real *tidepool.Pool, POST /reset through admin.Handler retires the
// idle connection and the answer counts the reset.
func TestResetOfARealPoolRetiresItsIdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
		acquire(t, p).Release()
		synctest.Wait()
		rec := do(Handler(p), http.MethodPost, "/reset", "")
		wantStatus(t, rec, http.StatusOK)
		var s struct {
			Resets int64 `json:"resets"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Resets != 1 {
			t.Errorf("POST /reset answered resets=%d (err %v), want 1: %s", s.Resets, err, rec.Body)
		}
		synctest.Wait()
		if st := p.Stats(); st.Idle != 0 || st.Closed.Total() != 1 {
			t.Errorf("after POST /reset: %d idle, %d retired; want 0 and 1", st.Idle, st.Closed.Total())
		}
	})
}
