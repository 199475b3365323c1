package fleet

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestOptionsRejectBadValuesNamingTheField(t *testing.T) {
	p := &fakePool{}
	good := Options{Name: "f", Budget: 10, Pool: p}
	for _, tc := range []struct {
		field string
		mod   func(*Options)
	}{
		{"Name", func(o *Options) { o.Name = "a/b" }},
		{"Name", func(o *Options) { o.Name = "" }},
		{"Budget", func(o *Options) { o.Budget = 0 }},
		{"MinPerMember", func(o *Options) { o.MinPerMember = 11 }},
		{"MinPerMember", func(o *Options) { o.MinPerMember = -1 }},
		{"Pool", func(o *Options) { o.Pool = nil }},
		{"Member", func(o *Options) { o.Member = "x y" }},
		{"LeaseTTL", func(o *Options) { o.LeaseTTL = 1500 * time.Millisecond }},
		{"LeaseTTL", func(o *Options) { o.LeaseTTL = 5 * time.Second; o.BackendIdleTimeout = 4 * time.Second }},
		{"RenewInterval", func(o *Options) { o.RenewInterval = -time.Second }},
		{"DemandWindow", func(o *Options) { o.DemandWindow = 10 * time.Millisecond }},
	} {
		o := good
		tc.mod(&o)
		_, err := o.normalize()
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field+" = ") {
			t.Errorf("%s: got %v, want ErrInvalidOptions naming %s", tc.field, err, tc.field)
		}
	}
	o, err := good.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if o.LeaseTTL != DefaultLeaseTTL || o.RenewInterval != time.Second || o.FenceMargin != time.Second || o.Member == "" {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestJoinRefusesAFleetStoredWithAnotherBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		defer st.close()
		s := newSim(t, 10)
		defer s.close()
		a, err := join(t.Context(), &memClient{s: st}, simOptions("sim", 10, 1, s.pool("a"), "a"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = join(t.Context(), &memClient{s: st}, simOptions("sim", 12, 1, s.pool("b"), "b"))
		if !errors.Is(err, ErrConfigMismatch) {
			t.Fatalf("join with budget 12 into a fleet of 10: %v, want ErrConfigMismatch", err)
		}
		_, err = join(t.Context(), &memClient{s: st}, simOptions("sim", 10, 1, s.pool("a2"), "a"))
		if err == nil || !strings.Contains(err.Error(), "already registered") {
			t.Fatalf("join with a taken member id: %v", err)
		}
		if err := a.Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := a.Leave(t.Context()); !errors.Is(err, ErrLeft) {
			t.Fatalf("second Leave: %v, want ErrLeft", err)
		}
	})
}

// TestEveryGrantChangeIsLoggedOnceWithTheFleetsDemands checks the log
// schema: one fleet.granted per change, with old, new, demands and budget;
// fleet.fenced, fleet.lease_lost and a rejoining fleet.joined when cut off.
func TestEveryGrantChangeIsLoggedOnceWithTheFleetsDemands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.InfoLevel)
		st := newMemStore()
		s := newSim(t, 10)
		pa, pb := s.pool("a"), s.pool("b")
		pa.setDemand(8)
		pb.setDemand(2)
		ca, cb := &memClient{s: st}, &memClient{s: st}
		oa := simOptions("sim", 10, 1, pa, "a")
		oa.Logger = zap.New(core)
		a, err := join(t.Context(), ca, oa)
		if err != nil {
			t.Fatal(err)
		}
		b, err := join(t.Context(), cb, simOptions("sim", 10, 1, pb, "b"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		ca.sever()
		time.Sleep(7 * time.Second)
		ca.heal()
		time.Sleep(3 * time.Second)

		granted := logs.FilterMessage(EventGranted).All()
		if int64(len(granted)) != a.Stats().GrantChanges || len(granted) < 3 {
			t.Fatalf("%d fleet.granted entries, %d grant changes", len(granted), a.Stats().GrantChanges)
		}
		prev := 0
		for _, e := range granted {
			f := e.ContextMap()
			if f["event"] != EventGranted || f["fleet"] != "sim" || f["member"] != "a" || f["budget"] != int64(10) {
				t.Fatalf("fleet.granted fields: %v", f)
			}
			if f["old"] == f["new"] {
				t.Fatalf("fleet.granted without a change: %v", f)
			}
			if d, ok := f["demands"].(map[string]int); !ok || len(d) == 0 {
				t.Fatalf("fleet.granted demands: %T %v", f["demands"], f["demands"])
			}
			if f["old"] != int64(prev) {
				t.Errorf("fleet.granted old = %v, but the previous entry's new was %d", f["old"], prev)
			}
			prev = int(f["new"].(int64))
		}
		for _, ev := range []string{EventJoined, EventFenced, EventLeaseLost, EventRenewFailed} {
			if n := logs.FilterMessage(ev).Len(); n == 0 {
				t.Errorf("no %s entry", ev)
			}
		}
		joined := logs.FilterMessage(EventJoined).All()
		if len(joined) != 2 || joined[1].ContextMap()["rejoin"] != true {
			t.Errorf("fleet.joined entries: %d (want 2, the second a rejoin)", len(joined))
		}
		for _, m := range []*Member{a, b} {
			if err := m.Leave(t.Context()); err != nil {
				t.Error(err)
			}
		}
		if n := logs.FilterMessage(EventLeft).Len(); n != 1 {
			t.Errorf("%d fleet.left entries", n)
		}
		if maxSeen, over := s.close(); over > 0 {
			t.Errorf("backend saw %d, budget 10", maxSeen)
		}
		st.close()
	})
}

func TestHandlerServesTheFleetViewAndMetricsExportIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		s := newSim(t, 10)
		pa, pb := s.pool("a"), s.pool("b")
		pa.setDemand(7)
		a, err := join(t.Context(), &memClient{s: st}, simOptions("sim", 10, 1, pa, "a"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := join(t.Context(), &memClient{s: st}, simOptions("sim", 10, 1, pb, "b"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)

		h := Handler(a)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		var got Stats
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
			t.Fatalf("GET: %d %v %s", rec.Code, err, rec.Body)
		}
		if got.Members != 2 || len(got.View) != 2 || got.Grant != 7 || got.View[0].ID != "a" || got.View[0].Demand != 7 || got.Claimed != 10 {
			t.Fatalf("fleet view: %+v", got)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?format=text", nil))
		body, _ := io.ReadAll(rec.Body)
		if !strings.Contains(string(body), "budget 10") || !strings.Contains(string(body), "member") {
			t.Fatalf("text view:\n%s", body)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("POST: %d", rec.Code)
		}

		c := NewCollector(a)
		reg := prometheus.NewPedanticRegistry()
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(c); n != len(collectorMetrics) {
			t.Fatalf("%d metrics, want %d", n, len(collectorMetrics))
		}
		want := `
# HELP tidepool_fleet_grant Connections this member's pool may hold now.
# TYPE tidepool_fleet_grant gauge
tidepool_fleet_grant{fleet="sim",member="a"} 7
# HELP tidepool_fleet_members Members in this member's view of the fleet.
# TYPE tidepool_fleet_members gauge
tidepool_fleet_members{fleet="sim",member="a"} 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tidepool_fleet_grant", "tidepool_fleet_members"); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*Member{a, b} {
			if err := m.Leave(t.Context()); err != nil {
				t.Error(err)
			}
		}
		s.close()
		st.close()
	})
}
