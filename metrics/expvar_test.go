package metrics

import (
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tidepool-go/tidepool"
)

// varSeq makes expvar names unique across runs of one test binary
// (go test -count=N): expvar names are process-wide and cannot be unpublished.
var varSeq atomic.Int64

func varName(base string) string { return fmt.Sprintf("%s_%d", base, varSeq.Add(1)) }

func TestPublishExpvarServesLiveStatsAsJSON(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{Name: "expvar-live", MaxSize: 3})
	name := varName("tidepool_test_live")
	if err := PublishExpvar(name, p); err != nil {
		t.Fatalf("PublishExpvar: %v", err)
	}
	read := func() tidepool.Stats {
		t.Helper()
		v := expvar.Get(name)
		if v == nil {
			t.Fatal("expvar.Get found nothing under the published name")
		}
		var s tidepool.Stats
		if err := json.Unmarshal([]byte(v.String()), &s); err != nil {
			t.Fatalf("expvar value is not Stats JSON: %v: %s", err, v.String())
		}
		return s
	}
	if s := read(); s.Name != "expvar-live" || s.MaxSize != 3 || s.InUse != 0 || s.Acquires != 0 {
		t.Errorf("before any Acquire: %+v", s)
	}
	h := acquire(t, p)
	// Each read is a fresh snapshot, not the value at Publish.
	if s, want := read(), p.Stats(); s != want || s.InUse != 1 || s.Acquires != 1 {
		t.Errorf("with one held: expvar %+v\nwant p.Stats() %+v", s, want)
	}
	h.Release()

	// And it is in /debug/vars, next to the standard memstats.
	rec := httptest.NewRecorder()
	expvar.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/vars", nil))
	var vars map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &vars); err != nil {
		t.Fatalf("/debug/vars is not JSON: %v", err)
	}
	var s tidepool.Stats
	if err := json.Unmarshal(vars[name], &s); err != nil || s.Name != "expvar-live" || s.Idle != 1 {
		t.Errorf("/debug/vars %s = %s (err %v), want the pool's Stats with 1 idle", name, vars[name], err)
	}
}

func TestPublishExpvarRefusesATakenNameWithoutPanicking(t *testing.T) {
	a := newPool(t, tidepool.Config[fakeConn]{Name: "first"})
	b := newPool(t, tidepool.Config[fakeConn]{Name: "second"})
	dup := varName("tidepool_test_dup")
	if err := PublishExpvar(dup, a); err != nil {
		t.Fatalf("first PublishExpvar: %v", err)
	}
	err := PublishExpvar(dup, b)
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second PublishExpvar of the same name: %v, want ErrNameTaken", err)
	}
	var s tidepool.Stats
	if err := json.Unmarshal([]byte(expvar.Get(dup).String()), &s); err != nil || s.Name != "first" {
		t.Errorf("after the refused publish the name reports %q (err %v), want the first pool", s.Name, err)
	}
	// A name taken by somebody else's expvar counts too.
	foreign := varName("tidepool_test_foreign")
	expvar.NewInt(foreign)
	if err := PublishExpvar(foreign, a); !errors.Is(err, ErrNameTaken) {
		t.Errorf("PublishExpvar over an expvar.Int: %v, want ErrNameTaken", err)
	}
}
