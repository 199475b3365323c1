package failover_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
	"github.com/tidepool-go/tidepool/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The switching logic runs in synctest bubbles: fake time, fake backends, so
// every duration below is exact and no test sleeps in real time.

type fakeConn struct {
	side   string
	id     int64
	closed atomic.Bool
}

// backend is a fake server: dials succeed at once, fail (down) or hang until
// their context ends (hang).
type backend struct {
	name  string
	down  atomic.Bool
	hang  atomic.Bool
	dials atomic.Int64
	mu    sync.Mutex
	conns []*fakeConn
}

var errRefused = errors.New("connect: connection refused")

func (b *backend) dial(ctx context.Context) (*fakeConn, error) {
	n := b.dials.Add(1)
	if b.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.down.Load() {
		return nil, errRefused
	}
	c := &fakeConn{side: b.name, id: n}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	return c, nil
}

func (b *backend) config() tidepool.Config[*fakeConn] {
	return tidepool.Config[*fakeConn]{
		Dial:           b.dial,
		Close:          func(c *fakeConn) error { c.closed.Store(true); return nil },
		MaxSize:        4,
		DialBackoff:    10 * time.Millisecond,
		DialBackoffMax: 50 * time.Millisecond,
	}
}

// Settings of the tests: three failures within 10 s switch; the first probe
// comes 2 s after a switch, then one every 500 ms.
const (
	threshold     = 3
	window        = 10 * time.Second
	attempt       = 100 * time.Millisecond
	holdTime      = 2 * time.Second
	probeInterval = 500 * time.Millisecond
)

type fixture struct {
	prim, sec *backend
	cfg       failover.Config[*fakeConn]
	logs      *observer.ObservedLogs
}

func newFixture() *fixture {
	f := &fixture{prim: &backend{name: "primary"}, sec: &backend{name: "secondary"}}
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	f.cfg = failover.Config[*fakeConn]{
		Name:           "sessions",
		Primary:        f.prim.config(),
		Secondary:      f.sec.config(),
		Logger:         zap.New(core),
		Threshold:      threshold,
		Window:         window,
		AttemptTimeout: attempt,
		HoldTime:       holdTime,
		ProbeInterval:  probeInterval,
		ProbeTimeout:   200 * time.Millisecond,
	}
	return f
}

func (f *fixture) start(t *testing.T) *failover.Pool[*fakeConn] {
	t.Helper()
	p, err := failover.New(context.Background(), f.cfg)
	if err != nil {
		t.Fatalf("failover.New: %v", err)
	}
	t.Cleanup(func() {
		// Bounded: a test that failed holding a connection must not hang.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// events returns the failover.* events logged so far, in order.
func (f *fixture) events() []string {
	var ev []string
	for _, e := range f.logs.All() {
		if strings.HasPrefix(e.Message, "failover.") && e.Message != failover.EventStarted {
			ev = append(ev, e.Message)
		}
	}
	return ev
}

func (f *fixture) entries(event string) []map[string]any {
	var out []map[string]any
	for _, e := range f.logs.FilterMessage(event).All() {
		out = append(out, e.ContextMap())
	}
	return out
}

func acquire(t *testing.T, p *failover.Pool[*fakeConn], want failover.Side) {
	t.Helper()
	c, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	backendSide := c.Value().side
	c.Release()
	if c.Side() != want || backendSide != want.String() {
		t.Fatalf("Acquire served by %s (backend %s), want %s", c.Side(), backendSide, want)
	}
}

func TestHealthyPrimaryServesAndTheSecondaryStaysWarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		for range 10 {
			acquire(t, p, failover.Primary)
		}
		st := p.Stats()
		if st.Serving != failover.Primary || st.Switches != 0 || st.FellOver != 0 {
			t.Errorf("Stats = serving %s, %d switches, %d fell over; want primary, 0, 0", st.Serving, st.Switches, st.FellOver)
		}
		if st.Secondary.Idle != 1 || st.Secondary.MinIdle != 1 || st.Secondary.Acquires != 0 {
			t.Errorf("secondary: %d idle (min %d), %d acquires; want 1 warm idle connection, unused",
				st.Secondary.Idle, st.Secondary.MinIdle, st.Secondary.Acquires)
		}
		if st.Primary.Acquires != 10 || st.Primary.Name != "sessions" {
			t.Errorf("primary Stats: %d acquires, name %q; want 10, sessions", st.Primary.Acquires, st.Primary.Name)
		}
	})
}

// Three dial errors within the window switch new Acquires to the secondary;
// each of the three Acquires that met them is served by the secondary, and
// after the switch the primary is not tried at all.
func TestDialErrorsPastTheThresholdSwitchAndLoseNoAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		f.prim.down.Store(true)
		for i := range threshold {
			acquire(t, p, failover.Secondary)
			if got, want := p.Serving(), failover.Primary; i < threshold-1 && got != want {
				t.Fatalf("serving %s after %d failures, want %s", got, i+1, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if p.Serving() != failover.Secondary {
			t.Fatalf("serving %s after %d dial errors, want secondary", p.Serving(), threshold)
		}
		dials := f.prim.dials.Load()
		for range 5 {
			acquire(t, p, failover.Secondary)
		}
		if d := f.prim.dials.Load(); d != dials {
			t.Errorf("the primary was dialed %d more times after the switch, want 0", d-dials)
		}
		st := p.Stats()
		if st.Switches != 1 || st.FellOver != threshold || st.PrimaryFailures.DialErrors != threshold || st.Window.Total() != 0 {
			t.Errorf("Stats: %d switches, %d fell over, failures %+v, window %+v; want 1, %d, %d dial errors, empty window",
				st.Switches, st.FellOver, st.PrimaryFailures, st.Window, threshold, threshold)
		}
		sw := f.entries(failover.EventSwitched)
		if len(sw) != 1 {
			t.Fatalf("%d failover.switched entries, want 1", len(sw))
		}
		e := sw[0]
		if e["from"] != "primary" || e["to"] != "secondary" || e["reason"] != failover.ReasonThreshold ||
			e["dial_errors"] != int64(threshold) || e["timeouts"] != int64(0) || e["exhausted"] != int64(0) ||
			e["threshold"] != int64(threshold) || e["window"] != window || !strings.Contains(e["error"].(string), "connection refused") {
			t.Errorf("failover.switched = %v", e)
		}
	})
}

// Failures further apart than the window never add up to a switch; the
// window's count is what fell within it.
func TestFailuresSpreadWiderThanTheWindowDoNotSwitch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		f.cfg.Window = time.Second
		p := f.start(t)
		f.prim.down.Store(true)
		// Failures at 0, 0.6, 1.2, 1.8, 2.4 s: any three span 1.2 s.
		for i := range 5 {
			if i > 0 {
				time.Sleep(600 * time.Millisecond)
			}
			acquire(t, p, failover.Secondary)
		}
		st := p.Stats()
		if st.Serving != failover.Primary || st.Switches != 0 {
			t.Fatalf("switched (serving %s, %d switches) on failures 600 ms apart with a 1 s window of 3", st.Serving, st.Switches)
		}
		if st.PrimaryFailures.DialErrors != 5 || st.Window.DialErrors != 2 {
			t.Errorf("failures %+v, window %+v; want 5 in all, 2 within the last second", st.PrimaryFailures, st.Window)
		}
		// A third within one second of the two before it: 1.8, 2.4, 2.8.
		time.Sleep(400 * time.Millisecond)
		acquire(t, p, failover.Secondary)
		if p.Serving() != failover.Secondary {
			t.Error("three failures within the window did not switch")
		}
	})
}

// A primary whose dials hang costs each Acquire exactly AttemptTimeout (or
// half of what is left of the caller's deadline) before the secondary serves
// it; the timeouts switch.
func TestHangingPrimaryCostsOnlyTheAttemptBudgetThenSwitches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		f.prim.hang.Store(true)
		start := time.Now()
		acquire(t, p, failover.Secondary)
		if d := time.Since(start); d != attempt {
			t.Errorf("first Acquire took %v, want the %v attempt budget", d, attempt)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start = time.Now()
		c, err := p.Acquire(ctx)
		if err != nil || c.Side() != failover.Secondary {
			t.Fatalf("Acquire with a 150ms deadline = %v on %v, want the secondary", err, c.Side())
		}
		c.Release()
		if d := time.Since(start); d != 75*time.Millisecond {
			t.Errorf("with a 150ms deadline the primary was tried for %v, want 75ms (half)", d)
		}
		acquire(t, p, failover.Secondary)
		if p.Serving() != failover.Secondary {
			t.Fatal("three timeouts did not switch")
		}
		start = time.Now()
		acquire(t, p, failover.Secondary)
		if d := time.Since(start); d != 0 {
			t.Errorf("after the switch an Acquire took %v, want 0", d)
		}
		if e := f.entries(failover.EventSwitched); len(e) != 1 || e[0]["timeouts"] != int64(3) || e[0]["dial_errors"] != int64(0) {
			t.Errorf("failover.switched = %v, want one with 3 timeouts", e)
		}
	})
}

// A primary with every connection held counts its timeouts as exhaustion.
func TestExhaustedPrimaryCountsExhaustion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		f.cfg.Primary.MaxSize = 1
		p := f.start(t)
		held, err := p.Acquire(context.Background())
		if err != nil || held.Side() != failover.Primary {
			t.Fatal(err)
		}
		for range threshold {
			start := time.Now()
			acquire(t, p, failover.Secondary)
			if d := time.Since(start); d != attempt {
				t.Errorf("Acquire on the exhausted primary took %v, want %v", d, attempt)
			}
		}
		held.Release()
		st := p.Stats()
		if st.Serving != failover.Secondary || st.PrimaryFailures.Exhausted != threshold || st.PrimaryFailures.Timeouts != 0 {
			t.Errorf("serving %s, failures %+v; want secondary after %d exhausted", st.Serving, st.PrimaryFailures, threshold)
		}
	})
}

// switchAway takes the primary down and makes threshold Acquires fail on it.
func switchAway(t *testing.T, f *fixture, p *failover.Pool[*fakeConn]) {
	t.Helper()
	f.prim.down.Store(true)
	for range threshold {
		acquire(t, p, failover.Secondary)
	}
	if p.Serving() != failover.Secondary {
		t.Fatal("no switch")
	}
}

// No probe before HoldTime; then one every ProbeInterval while the primary
// is down; the first that answers restores it, and Acquires go back to it.
func TestProbesStartAfterHoldTimeAndRestoreWhenThePrimaryAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		switchAway(t, f, p)
		time.Sleep(holdTime - time.Millisecond)
		synctest.Wait()
		if n := p.Stats().Probes; n != 0 {
			t.Fatalf("%d probes before the hold time, want 0", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st := p.Stats(); st.Probes != 1 || st.ProbeFailures != 1 {
			t.Fatalf("at the hold time: %d probes, %d failed; want 1, 1", st.Probes, st.ProbeFailures)
		}
		time.Sleep(probeInterval)
		synctest.Wait()
		if st := p.Stats(); st.Probes != 2 || st.Serving != failover.Secondary {
			t.Fatalf("one interval later: %d probes, serving %s; want 2, secondary", st.Probes, st.Serving)
		}
		f.prim.down.Store(false)
		time.Sleep(probeInterval)
		synctest.Wait()
		st := p.Stats()
		if st.Serving != failover.Primary || st.Probes != 3 || st.Restores != 1 {
			t.Fatalf("after the primary came back: serving %s, %d probes, %d restores; want primary, 3, 1", st.Serving, st.Probes, st.Restores)
		}
		if d := st.RestoredAt.Sub(st.SwitchedAt); d != holdTime+2*probeInterval || !st.RestoredAt.Equal(time.Now()) {
			t.Errorf("Stats: switched at %v, restored at %v (now %v); want restored hold+2 intervals later, now", st.SwitchedAt, st.RestoredAt, time.Now())
		}
		acquire(t, p, failover.Primary)
		want := []string{failover.EventSwitched, failover.EventProbeFailed, failover.EventProbeFailed, failover.EventRestored}
		if got := f.events(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("events %v, want %v", got, want)
		}
		r := f.entries(failover.EventRestored)[0]
		if r["reason"] != failover.ReasonProbe || r["probes"] != int64(3) || r["on_secondary_for"] != holdTime+2*probeInterval ||
			r["from"] != "secondary" || r["to"] != "primary" {
			t.Errorf("failover.restored = %v", r)
		}
		if w := p.Stats().Window; w.Total() != 0 {
			t.Errorf("window after the restore = %+v, want empty", w)
		}
	})
}

// A probe whose check fails (or panics) keeps the secondary serving and
// destroys the probed connection; the next passing probe restores.
func TestProbeCheckFailuresKeepTheSecondary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		var verdict atomic.Int32 // 0 fail, 1 panic, 2 pass
		var mu sync.Mutex
		var probed []*fakeConn
		f.cfg.Probe = func(ctx context.Context, c *fakeConn) error {
			mu.Lock()
			probed = append(probed, c)
			mu.Unlock()
			switch verdict.Load() {
			case 0:
				return errors.New("LOADING redis is loading the dataset")
			case 1:
				panic("probe bug")
			}
			return nil
		}
		p := f.start(t)
		switchAway(t, f, p)
		f.prim.down.Store(false)
		time.Sleep(holdTime)
		synctest.Wait()
		verdict.Store(1)
		time.Sleep(probeInterval)
		synctest.Wait()
		if p.Serving() != failover.Secondary {
			t.Fatal("restored although the probe check failed")
		}
		fails := f.entries(failover.EventProbeFailed)
		if len(fails) != 2 || !strings.Contains(fails[0]["error"].(string), "LOADING") || !strings.Contains(fails[1]["error"].(string), "panicked: probe bug") {
			t.Fatalf("probe_failed entries %v, want the check's error, then the panic", fails)
		}
		mu.Lock()
		for _, c := range probed {
			if !c.closed.Load() {
				t.Errorf("connection %d failed its probe check but was not destroyed", c.id)
			}
		}
		mu.Unlock()
		verdict.Store(2)
		time.Sleep(probeInterval)
		synctest.Wait()
		if p.Serving() != failover.Primary {
			t.Error("a passing probe did not restore the primary")
		}
	})
}

// A forced secondary stays (no probes) until forced back; forcing the side
// that serves changes nothing but the pin.
func TestForcedSecondaryStaysUntilForcedBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		if err := p.SwitchTo(failover.Secondary); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.Serving != failover.Secondary || !st.Pinned || st.Switches != 1 {
			t.Fatalf("after SwitchTo(secondary): %+v", st)
		}
		acquire(t, p, failover.Secondary)
		time.Sleep(10 * holdTime)
		synctest.Wait()
		if n := p.Stats().Probes; n != 0 {
			t.Errorf("%d probes while pinned, want 0", n)
		}
		if err := p.SwitchTo(failover.Primary); err != nil {
			t.Fatal(err)
		}
		if err := p.SwitchTo(failover.Primary); err != nil {
			t.Fatal(err)
		}
		acquire(t, p, failover.Primary)
		if st := p.Stats(); st.Pinned || st.Restores != 1 {
			t.Errorf("after SwitchTo(primary): pinned %v, %d restores; want false, 1", st.Pinned, st.Restores)
		}
		sw, re := f.entries(failover.EventSwitched), f.entries(failover.EventRestored)
		if len(sw) != 1 || sw[0]["reason"] != failover.ReasonForced || len(re) != 1 || re[0]["reason"] != failover.ReasonForced {
			t.Errorf("switched %v, restored %v; want one forced each", sw, re)
		}
		if err := p.SwitchTo(failover.Side(7)); err == nil {
			t.Error("SwitchTo(7) succeeded")
		}
	})
}

// Pinning the secondary after an automatic switch stops the probes too.
func TestForcingTheSecondaryAfterASwitchStopsProbing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		switchAway(t, f, p)
		if err := p.SwitchTo(failover.Secondary); err != nil {
			t.Fatal(err)
		}
		f.prim.down.Store(false)
		time.Sleep(5 * holdTime)
		synctest.Wait()
		if st := p.Stats(); st.Probes != 0 || st.Serving != failover.Secondary || st.Switches != 1 {
			t.Errorf("pinned after a switch: %d probes, serving %s, %d switches; want 0, secondary, 1", st.Probes, st.Serving, st.Switches)
		}
	})
}

// When neither side can serve, the error says so and wraps both causes.
func TestBothDownFailsWithAnErrorNamingBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		// Take the secondary's one warm connection and destroy it once its
		// backend is down: the secondary then has nothing and cannot dial.
		if err := p.SwitchTo(failover.Secondary); err != nil {
			t.Fatal(err)
		}
		c, err := p.Acquire(context.Background())
		if err != nil || c.Side() != failover.Secondary {
			t.Fatalf("Acquire on the forced secondary = %v, %v", c.Side(), err)
		}
		f.prim.down.Store(true)
		f.sec.down.Store(true)
		c.Destroy()
		if err := p.SwitchTo(failover.Primary); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the secondary's refill dial has failed
		_, err = p.Acquire(context.Background())
		if !errors.Is(err, failover.ErrBothDown) || !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errRefused) {
			t.Fatalf("Acquire with both sides down = %v, want ErrBothDown wrapping the dial errors", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, `failover pool "sessions"`) || !strings.Contains(msg, "primary: tidepool: dial failed") ||
			!strings.Contains(msg, "secondary: tidepool: dial failed") {
			t.Errorf("error %q does not name both sides and their causes", msg)
		}
		if st := p.Stats(); st.BothDown != 1 {
			t.Errorf("Stats.BothDown = %d, want 1", st.BothDown)
		}
		// The secondary comes back: served again, no error.
		f.sec.down.Store(false)
		time.Sleep(time.Second)
		acquire(t, p, failover.Secondary)
	})
}

// A primary down at New does not fail New: the secondary serves from the
// start, the primary keeps dialing in the background and is restored by a
// probe once it answers.
func TestPrimaryDownAtStartServesFromTheSecondaryUntilItAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		f.cfg.Primary.MinIdle = 2
		f.prim.down.Store(true)
		p := f.start(t)
		if p.Serving() != failover.Secondary {
			t.Fatalf("serving %s with the primary down at New, want secondary", p.Serving())
		}
		acquire(t, p, failover.Secondary)
		sw := f.entries(failover.EventSwitched)
		if len(sw) != 1 || sw[0]["reason"] != failover.ReasonDownAtStart || !strings.Contains(sw[0]["error"].(string), "connection refused") {
			t.Fatalf("failover.switched = %v, want one, primary_down_at_start", sw)
		}
		f.prim.down.Store(false)
		time.Sleep(holdTime)
		synctest.Wait()
		st := p.Stats()
		if st.Serving != failover.Primary || st.Primary.MinIdle != 2 || st.Primary.Idle < 1 {
			t.Errorf("after the primary came up: serving %s, primary min %d idle %d; want primary with MinIdle 2 refilling",
				st.Serving, st.Primary.MinIdle, st.Primary.Idle)
		}
	})
}

func TestNewRejectsBadConfigsAndADeadSecondary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		for _, tc := range []struct {
			name   string
			mutate func(*failover.Config[*fakeConn])
			want   string
			side   string
		}{
			{"threshold", func(c *failover.Config[*fakeConn]) { c.Threshold = -1 }, "Threshold = -1", ""},
			{"window", func(c *failover.Config[*fakeConn]) { c.Window = -time.Second }, "Window = -1s", ""},
			{"primary dial", func(c *failover.Config[*fakeConn]) { c.Primary.Dial = nil }, "Dial = nil", "primary"},
			{"secondary size", func(c *failover.Config[*fakeConn]) { c.Secondary.MaxSize = -1 }, "MaxSize = -1", "secondary"},
		} {
			cfg := f.cfg
			tc.mutate(&cfg)
			p, err := failover.New(context.Background(), cfg)
			if err == nil {
				p.Close(context.Background())
				t.Errorf("%s: New succeeded", tc.name)
				continue
			}
			var fe *failover.Error
			if !errors.Is(err, tidepool.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) ||
				(tc.side != "" && (!errors.As(err, &fe) || fe.Side.String() != tc.side)) {
				t.Errorf("%s: New = %v, want ErrInvalidConfig naming %q (side %q)", tc.name, err, tc.want, tc.side)
			}
		}
		f.sec.down.Store(true)
		_, err := failover.New(context.Background(), f.cfg)
		var fe *failover.Error
		if !errors.As(err, &fe) || fe.Side != failover.Secondary || !errors.Is(err, tidepool.ErrDial) {
			t.Errorf("New with the secondary down = %v, want an *Error naming the secondary, wrapping ErrDial", err)
		}
		if f.prim.dials.Load() != 0 {
			t.Error("New dialed the primary although the secondary failed first")
		}
	})
}

// Close stops the monitor even mid-probe, closes both pools, and every later
// call fails with ErrClosed.
func TestCloseStopsAProbeInFlightAndBothPools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		f.cfg.ProbeTimeout = time.Hour
		p, err := failover.New(context.Background(), f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		switchAway(t, f, p)
		f.prim.hang.Store(true)
		time.Sleep(holdTime)
		synctest.Wait() // the probe's dial hangs
		start := time.Now()
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close = %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v with a probe hanging, want 0", d)
		}
		_, err = p.Acquire(context.Background())
		var fe *failover.Error
		if !errors.Is(err, tidepool.ErrClosed) || !errors.As(err, &fe) {
			t.Errorf("Acquire after Close = %v, want an *Error wrapping ErrClosed", err)
		}
		if err := p.SwitchTo(failover.Primary); !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("SwitchTo after Close = %v", err)
		}
		if err := p.Close(context.Background()); !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("second Close = %v", err)
		}
		for _, b := range []*backend{f.prim, f.sec} {
			for _, c := range b.conns {
				if !c.closed.Load() {
					t.Errorf("%s connection %d open after Close", b.name, c.id)
				}
			}
		}
		if n := len(f.entries(failover.EventClosed)); n != 1 {
			t.Errorf("%d failover.closed entries, want 1", n)
		}
	})
}

// logSchema lists, for each event, the fields every entry carries besides
// "event" and "pool".
var logSchema = map[string][]string{
	failover.EventStarted:     {"serving"},
	failover.EventSwitched:    {"from", "to", "reason", "dial_errors", "timeouts", "exhausted", "window", "threshold"},
	failover.EventRestored:    {"from", "to", "reason", "on_secondary_for", "probes"},
	failover.EventProbeFailed: {"error", "took", "probes"},
	failover.EventClosed:      {"took", "forced"},
}

func TestLogEntriesFollowTheSchemaAndSidesAreNamed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p, err := failover.New(context.Background(), f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		switchAway(t, f, p)
		time.Sleep(holdTime)
		synctest.Wait() // the first probe fails
		f.prim.down.Store(false)
		time.Sleep(probeInterval)
		synctest.Wait()
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range f.logs.All() {
			m := e.ContextMap()
			if m["event"] != e.Message || m["pool"] != "sessions" {
				t.Errorf("entry %s: event %v, pool %v", e.Message, m["event"], m["pool"])
			}
			fields, ours := logSchema[e.Message]
			if !ours {
				if m["side"] != "primary" && m["side"] != "secondary" {
					t.Errorf("pool entry %s without a side: %v", e.Message, m)
				}
				continue
			}
			seen[e.Message] = true
			for _, k := range fields {
				if _, ok := m[k]; !ok {
					t.Errorf("%s entry lacks %q: %v", e.Message, k, m)
				}
			}
		}
		for ev := range logSchema {
			if !seen[ev] {
				t.Errorf("no %s entry", ev)
			}
		}
	})
}

func TestStatsJSONNamesTheServingSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		p := f.start(t)
		switchAway(t, f, p)
		b, err := json.Marshal(p.Stats())
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got["serving"] != "secondary" || got["switches"] != float64(1) || got["fell_over"] != float64(threshold) ||
			got["primary"].(map[string]any)["name"] != "sessions" || got["primary_failures"].(map[string]any)["dial_errors"] != float64(threshold) {
			t.Errorf("Stats JSON = %s", b)
		}
		if s, err := failover.ParseSide("secondary"); err != nil || s != failover.Secondary {
			t.Errorf("ParseSide(secondary) = %v, %v", s, err)
		}
		if _, err := failover.ParseSide("tertiary"); err == nil {
			t.Error("ParseSide(tertiary) succeeded")
		}
	})
}

// With an idle connection on the serving side, Acquire and Release allocate
// nothing.
func TestAcquireAllocatesNothingWithAnIdleConnection(t *testing.T) {
	f := newFixture()
	p := f.start(t)
	acquire(t, p, failover.Primary)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		c, err := p.Acquire(ctx)
		if err != nil {
			panic(err)
		}
		c.Release()
	}); n != 0 {
		t.Errorf("Acquire+Release allocates %v times, want 0", n)
	}
}

// Under concurrent load, with the primary going down and up and an operator
// forcing sides, every Acquire is served: the secondary is always up.
func TestNoAcquireIsLostUnderLoadWhileTheSidesChange(t *testing.T) {
	f := newFixture()
	f.cfg.HoldTime, f.cfg.ProbeInterval = 5*time.Millisecond, 5*time.Millisecond
	// Generous: a side that is up must serve within it even on a loaded
	// machine under the race detector (a side that is down fails at once).
	f.cfg.AttemptTimeout = 500 * time.Millisecond
	p := f.start(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served [2]atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := p.Acquire(context.Background())
				if err != nil {
					t.Errorf("Acquire = %v, want every Acquire served", err)
					return
				}
				if c.Value().side != c.Side().String() {
					t.Errorf("Conn.Side %s but its backend is %s", c.Side(), c.Value().side)
				}
				served[c.Side()].Add(1)
				c.Release()
			}
		}()
	}
	for i := range 30 {
		f.prim.down.Store(i%3 == 0)
		if i%5 == 0 {
			_ = p.SwitchTo(failover.Side(i / 5 % 2))
		}
		time.Sleep(3 * time.Millisecond) // real time: let the load meet the change
	}
	// The primary back and serving: whatever its backoff left of the run
	// above (on a loaded machine its windows can pass with no probe in
	// them), the load keeps going until it has served some.
	f.prim.down.Store(false)
	_ = p.SwitchTo(failover.Primary)
	poll.Until(t, "the primary to serve", 10*time.Second, func() bool { return served[failover.Primary].Load() > 0 })
	close(stop)
	wg.Wait()
	st := p.Stats()
	t.Logf("served: primary %d, secondary %d; %d switches, %d restores, %d fell over",
		served[0].Load(), served[1].Load(), st.Switches, st.Restores, st.FellOver)
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Error("one side served nothing")
	}
}

func TestAcquireWithANilContextPanicsWithAClearMessage(t *testing.T) {
	f := newFixture()
	p := f.start(t)
	defer func() {
		if r, _ := recover().(string); !strings.Contains(r, "failover: Acquire called with a nil context") {
			t.Errorf("panic %q, want one naming the nil context", r)
		}
	}()
	//lint:ignore SA1012 the nil context is the point
	_, _ = p.Acquire(nil)
	t.Error("Acquire(nil) did not panic")
}
