package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
)

func newFailover(t *testing.T) *failover.Pool[fakeConn] {
	t.Helper()
	dial := func(context.Context) (fakeConn, error) { return fakeConn{}, nil }
	p, err := failover.New(context.Background(), failover.Config[fakeConn]{
		Name:      "sessions",
		Primary:   tidepool.Config[fakeConn]{Dial: dial, MaxSize: 4},
		Secondary: tidepool.Config[fakeConn]{Dial: dial, MaxSize: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

type failoverJSON struct {
	Serving  string `json:"serving"`
	Pinned   bool   `json:"pinned"`
	Switches int64  `json:"switches"`
	Restores int64  `json:"restores"`
	Primary  struct {
		MaxSize int `json:"max_size"`
	}
	Secondary struct {
		MaxSize int `json:"max_size"`
		MinIdle int `json:"min_idle"`
	}
}

func decodeFailover(t *testing.T, body []byte) failoverJSON {
	t.Helper()
	var s failoverJSON
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return s
}

// An operator forces the secondary, sees it serve, and forces the primary
// back.
func TestFailoverHandlerForcesASwitchAndShowsWhichSideServes(t *testing.T) {
	p := newFailover(t)
	h := FailoverHandler(p)
	rec := serveMulti(h, http.MethodGet, "/stats", "")
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeFailover(t, rec.Body.Bytes()); s.Serving != "primary" || s.Pinned {
		t.Errorf("GET /stats = %s, want the primary serving", rec.Body)
	}
	rec = serveMulti(h, http.MethodPost, "/switch", `{"to": "secondary"}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeFailover(t, rec.Body.Bytes()); s.Serving != "secondary" || !s.Pinned || s.Switches != 1 {
		t.Errorf("POST /switch secondary = %s", rec.Body)
	}
	c, err := p.Acquire(context.Background())
	if err != nil || c.Side() != failover.Secondary {
		t.Fatalf("Acquire after the forced switch: %v on %v", err, c.Side())
	}
	rec = serveMulti(h, http.MethodGet, "/conns?side=secondary", "")
	expectMulti(t, rec, http.StatusOK, "")
	var held []tidepool.HeldConn
	if err := json.Unmarshal(rec.Body.Bytes(), &held); err != nil || len(held) != 1 || held[0].ID != c.ID() {
		t.Errorf("GET /conns?side=secondary = %s", rec.Body)
	}
	c.Release()
	rec = serveMulti(h, http.MethodPost, "/switch", `{"to": "primary"}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeFailover(t, rec.Body.Bytes()); s.Serving != "primary" || s.Pinned || s.Restores != 1 {
		t.Errorf("POST /switch primary = %s", rec.Body)
	}
}

func TestFailoverHandlerResizesOneSide(t *testing.T) {
	p := newFailover(t)
	h := FailoverHandler(p)
	rec := serveMulti(h, http.MethodPost, "/resize?side=secondary", `{"max": 3}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeFailover(t, rec.Body.Bytes()); s.Secondary.MaxSize != 3 || s.Secondary.MinIdle != 1 || s.Primary.MaxSize != 4 {
		t.Errorf("POST /resize?side=secondary {max 3} = %s", rec.Body)
	}
	rec = serveMulti(h, http.MethodPost, "/resize", `{"side": "primary", "min": 1, "max": 6}`)
	expectMulti(t, rec, http.StatusOK, "")
	if s := decodeFailover(t, rec.Body.Bytes()); s.Primary.MaxSize != 6 {
		t.Errorf("POST /resize {side primary} = %s", rec.Body)
	}
}

func TestFailoverHandlerRefusesBadRequests(t *testing.T) {
	p := newFailover(t)
	h := FailoverHandler(p)
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{http.MethodPost, "/switch", `{"to": "tertiary"}`, http.StatusBadRequest, `no side \"tertiary\"`},
		{http.MethodPost, "/switch", `{}`, http.StatusBadRequest, `\"to\" not given`},
		{http.MethodPost, "/switch", `{"to": 1}`, http.StatusBadRequest, `must be \"primary\" or \"secondary\"`},
		{http.MethodPost, "/switch", `{"to": "primary", "why": "x"}`, http.StatusBadRequest, "unknown field"},
		{http.MethodGet, "/switch", ``, http.StatusMethodNotAllowed, "use POST"},
		{http.MethodGet, "/conns", ``, http.StatusBadRequest, "which side?"},
		{http.MethodGet, "/conns?side=left", ``, http.StatusBadRequest, `no side \"left\"`},
		{http.MethodPost, "/resize", `{"max": 3}`, http.StatusBadRequest, "which side?"},
		{http.MethodPost, "/resize?side=primary", `{"side": "secondary", "max": 3}`, http.StatusBadRequest, "in the query but"},
		{http.MethodPost, "/resize?side=primary", `{"min": 7, "max": 3}`, http.StatusUnprocessableEntity, `failover pool \"sessions\": primary: tidepool: invalid resize`},
		{http.MethodPost, "/resize?side=primary", `{"min": -1}`, http.StatusBadRequest, "must not be negative"},
		{http.MethodGet, "/nope", ``, http.StatusNotFound, "no such path"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			expectMulti(t, serveMulti(h, tc.method, tc.path, tc.body), tc.status, tc.want)
		})
	}
	if st := p.Stats(); st.Serving != failover.Primary || st.Switches != 0 || st.Primary.Resizes != 0 {
		t.Errorf("refused requests changed the pool: %+v", st)
	}
	ro := FailoverHandler(p, ReadOnly())
	expectMulti(t, serveMulti(ro, http.MethodPost, "/switch", `{"to": "secondary"}`), http.StatusForbidden, "read-only")
	expectMulti(t, serveMulti(ro, http.MethodPost, "/resize?side=primary", `{"max": 2}`), http.StatusForbidden, "read-only")
	expectMulti(t, serveMulti(ro, http.MethodGet, "/stats", ""), http.StatusOK, `"serving":"primary"`)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := serveMulti(h, http.MethodPost, "/switch", `{"to": "secondary"}`)
	expectMulti(t, rec, http.StatusServiceUnavailable, "closed")
	if !strings.Contains(serveMulti(h, http.MethodPost, "/resize?side=primary", `{"max": 2}`).Body.String(), "closed") {
		t.Error("resize after Close does not say the pool is closed")
	}
}
