package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

// serveMulti sends one request to h and returns the recorded response.
func serveMulti(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// expect checks the status and, for errors, that the message holds want.
func expectMulti(t *testing.T, rec *httptest.ResponseRecorder, status int, want string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d, want %d; body: %s", rec.Code, status, rec.Body)
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if want != "" && !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body %s lacks %q", rec.Body, want)
	}
}

func newShards(t *testing.T) *shard.Pool[fakeConn] {
	t.Helper()
	dial := func(context.Context) (fakeConn, error) { return fakeConn{}, nil }
	p, err := shard.New(context.Background(), shard.Config[fakeConn]{Name: "cache", Shards: []shard.Shard[fakeConn]{
		{Name: "a", Config: tidepool.Config[fakeConn]{Dial: dial, MaxSize: 4}},
		{Name: "7", Config: tidepool.Config[fakeConn]{Dial: dial, MaxSize: 4}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

type shardJSON struct {
	Shard   string `json:"shard"`
	MinIdle int    `json:"min_idle"`
	MaxSize int    `json:"max_size"`
	InUse   int    `json:"in_use"`
}

func decodeShard(t *testing.T, rec *httptest.ResponseRecorder) shardJSON {
	t.Helper()
	var s shardJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return s
}

func TestShardHandlerServesStatsPerShard(t *testing.T) {
	p := newShards(t)
	h := ShardHandler(p)
	rec := serveMulti(h, http.MethodGet, "/stats", "")
	expectMulti(t, rec, http.StatusOK, "")
	var all struct {
		Name   string      `json:"name"`
		Shards []shardJSON `json:"shards"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &all); err != nil || all.Name != "cache" || len(all.Shards) != 2 ||
		all.Shards[0].Shard != "a" || all.Shards[1].Shard != "7" {
		t.Errorf("GET /stats = %s (%v)", rec.Body, err)
	}
	rec = serveMulti(h, http.MethodGet, "/stats?shard=7", "")
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeShard(t, rec); s.Shard != "7" || s.MaxSize != 4 {
		t.Errorf("GET /stats?shard=7 = %s", rec.Body)
	}
	expectMulti(t, serveMulti(h, http.MethodGet, "/stats?shard=zz", ""), http.StatusNotFound, `shard \"zz\" of pool \"cache\": shard: no such shard`)
}

func TestShardHandlerListsOneShardsHeldConnections(t *testing.T) {
	p := newShards(t)
	h := ShardHandler(p)
	key := "k"
	for i := 0; p.ShardOf(key) != "a"; i++ {
		key = "k" + multiItoa(i)
	}
	c, err := p.Acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	rec := serveMulti(h, http.MethodGet, "/conns?shard=a", "")
	expectMulti(t, rec, http.StatusOK, "")
	var held []tidepool.HeldConn
	if err := json.Unmarshal(rec.Body.Bytes(), &held); err != nil || len(held) != 1 || held[0].ID != c.ID() {
		t.Errorf("GET /conns?shard=a = %s", rec.Body)
	}
	rec = serveMulti(h, http.MethodGet, "/conns?shard=7", "")
	expectMulti(t, rec, http.StatusOK, "")
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("GET /conns?shard=7 = %s, want []", rec.Body)
	}
	expectMulti(t, serveMulti(h, http.MethodGet, "/conns", ""), http.StatusBadRequest, "which shard?")
	expectMulti(t, serveMulti(h, http.MethodGet, "/conns?shard=zz", ""), http.StatusNotFound, "no such shard")
}

func TestShardHandlerResizesOneShard(t *testing.T) {
	p := newShards(t)
	h := ShardHandler(p)
	rec := serveMulti(h, http.MethodPost, "/resize?shard=a", `{"max": 6}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeShard(t, rec); s.Shard != "a" || s.MaxSize != 6 || s.MinIdle != 0 {
		t.Errorf("POST /resize?shard=a {max 6} = %s", rec.Body)
	}
	rec = serveMulti(h, http.MethodPost, "/resize", `{"shard": "a", "min": 2}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeShard(t, rec); s.MinIdle != 2 || s.MaxSize != 6 {
		t.Errorf("POST /resize {shard a, min 2} = %s, want min 2 and the max kept at 6", rec.Body)
	}
	rec = serveMulti(h, http.MethodPost, "/resize", `{"shard": 7, "min": 1, "max": 5}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeShard(t, rec); s.Shard != "7" || s.MaxSize != 5 {
		t.Errorf("POST /resize {shard 7 as a number} = %s", rec.Body)
	}
	for _, st := range p.Stats().Shards {
		if want := map[string]int{"a": 6, "7": 5}[st.Shard]; st.MaxSize != want {
			t.Errorf("shard %s max %d, want %d", st.Shard, st.MaxSize, want)
		}
	}
}

func TestShardHandlerRefusesBadResizesAndChangesNothing(t *testing.T) {
	p := newShards(t)
	h := ShardHandler(p)
	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/resize", `{"max": 5}`, http.StatusBadRequest, "which shard?"},
		{"/resize?shard=a", `{"shard": "7", "max": 5}`, http.StatusBadRequest, `shard \"a\" in the query but \"7\" in the body`},
		{"/resize?shard=a&shard=7", `{"max": 5}`, http.StatusBadRequest, "more than once"},
		{"/resize", `{"shard": true, "max": 5}`, http.StatusBadRequest, `\"shard\" must be a string or a non-negative integer`},
		{"/resize?shard=a", `{}`, http.StatusBadRequest, "neither"},
		{"/resize?shard=a", `{"max": "5"}`, http.StatusBadRequest, `\"max\" must be a non-negative integer`},
		{"/resize?shard=a", `{"max": 5, "extra": 1}`, http.StatusBadRequest, "unknown field"},
		{"/resize?shard=a", ``, http.StatusBadRequest, "empty request body"},
		{"/resize?shard=zz", `{"max": 5}`, http.StatusNotFound, "no such shard"},
		{"/resize?shard=a", `{"min": 9, "max": 2}`, http.StatusUnprocessableEntity, `shard \"a\" of pool \"cache\": tidepool: invalid resize`},
		{"/resize?shard=a", `{"min": 9}`, http.StatusUnprocessableEntity, "(max not given: kept at its current 4)"},
		{"/resize?shard=a", `{"max": 1}` + strings.Repeat(" ", MaxBodyBytes), http.StatusRequestEntityTooLarge, "over"},
	} {
		t.Run(tc.path+" "+tc.body[:min(len(tc.body), 30)], func(t *testing.T) {
			expectMulti(t, serveMulti(h, http.MethodPost, tc.path, tc.body), tc.status, tc.want)
		})
	}
	for _, st := range p.Stats().Shards {
		if st.MaxSize != 4 || st.Resizes != 0 {
			t.Errorf("shard %s changed: max %d, %d resizes", st.Shard, st.MaxSize, st.Resizes)
		}
	}
	expectMulti(t, serveMulti(h, http.MethodGet, "/resize?shard=a", ""), http.StatusMethodNotAllowed, "use POST")
	expectMulti(t, serveMulti(h, http.MethodPost, "/stats", ""), http.StatusMethodNotAllowed, "")
	expectMulti(t, serveMulti(h, http.MethodGet, "/nope", ""), http.StatusNotFound, "no such path")
	expectMulti(t, serveMulti(ShardHandler(p, ReadOnly()), http.MethodPost, "/resize?shard=a", `{"max": 5}`), http.StatusForbidden, "read-only")
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectMulti(t, serveMulti(h, http.MethodPost, "/resize?shard=a", `{"max": 5}`), http.StatusServiceUnavailable, "closed")
	expectMulti(t, serveMulti(h, http.MethodGet, "/conns?shard=a", ""), http.StatusServiceUnavailable, "closed")
}

func multiItoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
