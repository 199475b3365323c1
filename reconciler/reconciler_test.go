package reconciler_test

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/safe"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/reconciler"
	"github.com/tidepool-go/tidepool/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDown = errors.New("backend down")

// fake is a pool as the reconciler sees it, over a backend that counts what it
// sees: every value from a successful Dial is open at the backend until its
// Close returns. Born connections go idle (or stay held); waiters are a
// number the test sets; FailWaiters takes them away.
type fake struct {
	set *queue.Idle[int]

	fail      atomic.Bool   // Dial fails with errDown
	dialTime  time.Duration // virtual duration of a Dial
	hang      atomic.Bool   // Dial blocks until its ctx ends
	ignoreCtx chan struct{} // if non-nil, Dial ignores its ctx and waits on it
	keepHeld  atomic.Bool   // Born keeps the conn held instead of idling it
	closeGate chan struct{} // if non-nil, Close waits on it

	dials, inFlight, maxInFlight atomic.Int64
	next                         atomic.Int64
	backend, maxBackend          atomic.Int64 // open at the backend: dial start to close return
	closed                       atomic.Int64
	waiting                      atomic.Int64
	failed                       atomic.Int64
	timedOut                     atomic.Int64

	mu        sync.Mutex
	dialAt    []time.Time
	failErrs  []error
	held      []*conn.Conn[int]
	closedIDs map[int]int
}

func raise(m *atomic.Int64, n int64) {
	for o := m.Load(); n > o && !m.CompareAndSwap(o, n); o = m.Load() {
	}
}

func (f *fake) Dial(ctx context.Context) (int, error) {
	// The backend counts a connection from the moment its dial starts.
	raise(&f.maxBackend, f.backend.Add(1))
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	raise(&f.maxInFlight, n)
	f.dials.Add(1)
	f.mu.Lock()
	f.dialAt = append(f.dialAt, time.Now())
	f.mu.Unlock()
	fail := func(err error) (int, error) { f.backend.Add(-1); return 0, err }
	if f.ignoreCtx != nil {
		<-f.ignoreCtx
	} else if f.hang.Load() {
		<-ctx.Done()
		return fail(ctx.Err())
	}
	if f.dialTime > 0 {
		select {
		case <-time.After(f.dialTime):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if f.fail.Load() {
		return fail(errDown)
	}
	return int(f.next.Add(1)), nil
}

func (f *fake) Close(v int) error {
	if f.closeGate != nil {
		<-f.closeGate
	}
	f.mu.Lock()
	if f.closedIDs == nil {
		f.closedIDs = map[int]int{}
	}
	f.closedIDs[v]++
	f.mu.Unlock()
	f.closed.Add(1)
	f.backend.Add(-1)
	return nil
}

func (f *fake) Born(c *conn.Conn[int]) {
	if f.keepHeld.Load() {
		f.mu.Lock()
		f.held = append(f.held, c)
		f.mu.Unlock()
		return
	}
	f.set.Release(c, 1)
}

func (f *fake) PutBack(c *conn.Conn[int], lease uint64) { f.set.Release(c, lease) }
func (f *fake) Waiting() int                            { return int(f.waiting.Load()) }
func (f *fake) DialContext() context.Context            { return context.Background() }
func (f *fake) Now() int64                              { return 0 }
func (f *fake) DialTimedOut(time.Duration)              { f.timedOut.Add(1) }

func (f *fake) FailWaiters(err error, n int) int {
	f.failed.Add(1)
	f.mu.Lock()
	f.failErrs = append(f.failErrs, err)
	f.mu.Unlock()
	for {
		w := f.waiting.Load()
		k := min(w, int64(n))
		if f.waiting.CompareAndSwap(w, w-k) {
			return int(k)
		}
	}
}

// takeHeld removes and returns the connections Born kept held.
func (f *fake) takeHeld() []*conn.Conn[int] {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.held
	f.held = nil
	return h
}

type rig struct {
	*fake
	r    *reconciler.Reconciler[int]
	reg  *registry.Registry[int]
	logs *observer.ObservedLogs
}

func start(t *testing.T, cfg reconciler.Config, f *fake) *rig {
	t.Helper()
	if f == nil {
		f = &fake{}
	}
	f.set = queue.New[int](false)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffMax = 100*time.Millisecond, 2*time.Second
	}
	if cfg.ProbeEvery == 0 {
		cfg.ProbeEvery = reconciler.DefaultProbeEvery
	}
	if cfg.SweepAt == 0 {
		cfg.SweepAt = 16
	}
	reg := registry.New[int]()
	r := reconciler.New(cfg, f.set, reg, f)
	r.Start()
	return &rig{fake: f, r: r, reg: reg, logs: logs}
}

// stop closes the loop and waits for it, retiring the held connections as
// their holders would release them during Close.
func (g *rig) stop(t *testing.T) {
	t.Helper()
	g.r.Close(errors.New("closed"))
	for _, c := range g.takeHeld() {
		if c.Retire(1) {
			g.r.Retire(c, conn.ReasonClose, nil, false)
		}
	}
	select {
	case <-g.r.Done():
	case <-time.After(time.Hour):
		var lines []string
		for _, e := range g.logs.All() {
			lines = append(lines, fmt.Sprint(e.Message, e.ContextMap()))
		}
		t.Fatalf("loop did not exit: open=%d dialing=%d closing=%d held=%d dials=%d\n%s", g.r.G.Open.Load(), g.r.G.Dialing.Load(),
			g.r.G.Closing.Load(), len(g.takeHeld()), g.dials.Load(), strings.Join(lines, "\n"))
	}
	if n := g.backend.Load(); n != 0 {
		t.Errorf("after Close the backend still sees %d connections", n)
	}
}

func (g *rig) slots() int64 { return g.r.G.Slots.Load() }

func TestLoopDialsMinIdleAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 3, Max: 5}, nil)
		synctest.Wait()
		if n := g.dials.Load(); n != 3 {
			t.Fatalf("dials at start = %d, want MinIdle 3", n)
		}
		if g.r.G.Open.Load() != 3 || g.slots() != 3 || g.reg.Len() != 3 {
			t.Fatalf("open=%d slots=%d registry=%d, want 3 each", g.r.G.Open.Load(), g.slots(), g.reg.Len())
		}
		g.stop(t)
	})
}

// Invariant 1 at its root: a slot is taken from the moment a dial starts
// until that connection's Close has returned. With closes gated, a shrink and
// a grow in a row never let the backend see more than the max in force.
func TestSlotIsFreedOnlyWhenCloseReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{closeGate: make(chan struct{})}
		g := start(t, reconciler.Config{Min: 4, Max: 4}, f)
		synctest.Wait()
		if err := g.r.Resize(0, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Two idle connections retired; their closes hang.
		if g.r.G.Closing.Load() != 2 || g.slots() != 4 {
			t.Fatalf("after shrink to 2 with closes hanging: closing=%d slots=%d, want 2 and 4", g.r.G.Closing.Load(), g.slots())
		}
		// Grow back and ask for dials: none may start while the closes hang.
		f.waiting.Store(3)
		if err := g.r.Resize(0, 4); err != nil {
			t.Fatal(err)
		}
		g.r.Wake()
		synctest.Wait()
		if n := g.dials.Load(); n != 4 {
			t.Fatalf("dials while closes hang = %d, want still 4: a dial would take the backend over 4", n)
		}
		close(f.closeGate)
		synctest.Wait()
		if n := g.dials.Load(); n != 6 {
			t.Fatalf("dials after the closes returned = %d, want 6", n)
		}
		if m := g.maxBackend.Load(); m > 4 {
			t.Fatalf("backend saw %d connections, max was never above 4", m)
		}
		g.stop(t)
	})
}

func TestDialsAreBoundedByFreeSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{dialTime: time.Second}
		f.waiting.Store(10)
		g := start(t, reconciler.Config{Max: 3}, f)
		synctest.Wait()
		if n := f.inFlight.Load(); n != 3 {
			t.Fatalf("dials in flight for 10 waiters = %d, want the free slots, 3", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if m := f.maxInFlight.Load(); m != 3 || g.dials.Load() != 3 {
			t.Fatalf("max in flight %d, dials %d: want 3 and 3", m, g.dials.Load())
		}
		f.waiting.Store(0)
		g.stop(t)
	})
}

// Shrinking below the held connections: idle ones go at once, held ones are
// owed through the gate's debt; a release that claims the debt retires; the
// debt is taken back when the pool gets under its max another way.
func TestShrinkDrainsIdleAndOwesTheRestThroughTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Min: 4, Max: 4}, f)
		synctest.Wait()
		held := f.takeHeld()
		f.keepHeld.Store(false)
		// One goes idle, three stay held.
		f.set.Release(held[0], 1)
		if err := g.r.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if d := g.r.Gate.Debt(); d != 2 {
			t.Fatalf("debt after shrink to 1 with 3 held = %d, want 2 (the idle one closed at once)", d)
		}
		// A release pays one unit of debt.
		if !g.r.Gate.ClaimDebt() || !held[1].Retire(1) {
			t.Fatal("claim debt")
		}
		g.r.RetireOwed(held[1])
		synctest.Wait()
		if d := g.r.Gate.Debt(); d != 1 {
			t.Fatalf("debt after one paid = %d, want 1", d)
		}
		// Destroy of another one gets the pool to its max: the debt is taken back.
		if !held[2].Retire(1) {
			t.Fatal("retire")
		}
		g.r.Retire(held[2], conn.ReasonDestroyed, nil, false)
		synctest.Wait()
		if d := g.r.Gate.Debt(); d != 0 {
			t.Fatalf("debt after the pool reached its max = %d, want 0", d)
		}
		if o := g.r.G.Open.Load(); o != 1 {
			t.Fatalf("open = %d, want 1", o)
		}
		held[3].Retire(1)
		g.r.Retire(held[3], conn.ReasonClose, nil, false)
		g.stop(t)
	})
}

func TestFailedDialsBackOffAndProbeOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{dialTime: 10 * time.Millisecond}
		f.fail.Store(true)
		g := start(t, reconciler.Config{Min: 3, Max: 5, BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}, f)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		f.mu.Lock()
		at := append([]time.Time(nil), f.dialAt...)
		f.mu.Unlock()
		// The first three dials start together; after them, one probe at a
		// time, spaced by a growing backoff up to 1s (±50%).
		if len(at) < 6 {
			t.Fatalf("%d dials in 10s of outage", len(at))
		}
		if m := f.maxInFlight.Load(); m != 3 {
			t.Fatalf("max dials in flight = %d, want 3 (the first burst only)", m)
		}
		for i := 4; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap < 40*time.Millisecond || gap > 1500*time.Millisecond+10*time.Millisecond {
				t.Errorf("gap %d = %v, outside the backoff window", i, gap)
			}
		}
		o := g.r.G.Outage.Load()
		if o == nil || !errors.Is(o.Err, errDown) {
			t.Fatalf("outage = %+v, want one with the dial error", o)
		}
		f.fail.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if g.r.G.Outage.Load() != nil || g.r.G.Open.Load() != 3 {
			t.Fatalf("after recovery: outage=%v open=%d, want none and 3", g.r.G.Outage.Load(), g.r.G.Open.Load())
		}
		g.stop(t)
	})
}

// With Acquires waiting, a probe goes out at least every ProbeEvery even when
// the backoff has grown longer.
func TestWaitersBringTheProbeForward(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.fail.Store(true)
		g := start(t, reconciler.Config{Min: 1, Max: 2, BackoffBase: 5 * time.Second, BackoffMax: 20 * time.Second,
			ProbeEvery: 500 * time.Millisecond}, f)
		synctest.Wait() // the first dial failed: next probe in 2.5s..7.5s
		f.waiting.Store(1)
		g.r.Wake()
		time.Sleep(600 * time.Millisecond)
		synctest.Wait()
		if n := f.dials.Load(); n != 2 {
			t.Fatalf("dials 600ms after a waiter came = %d, want the probe at 500ms (2 dials)", n)
		}
		g.stop(t)
	})
}

// A dial that ignores its context: at DialTimeout (plus its grace) it counts
// as failed — waiters learn it, backoff starts — but it keeps its slot until
// it returns, and its late value is closed at once.
func TestDialPastItsTimeoutFailsButKeepsItsSlotUntilItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{ignoreCtx: make(chan struct{})}
		f.waiting.Store(1)
		g := start(t, reconciler.Config{Max: 1, DialTimeout: 500 * time.Millisecond}, f)
		time.Sleep(500*time.Millisecond + 50*time.Millisecond + time.Millisecond)
		synctest.Wait()
		if f.failed.Load() == 0 || f.waiting.Load() != 0 {
			t.Fatalf("waiters not failed at the dial timeout (failed=%d waiting=%d)", f.failed.Load(), f.waiting.Load())
		}
		var ce *safe.CallbackError
		if f.mu.Lock(); len(f.failErrs) == 0 || !errors.As(f.failErrs[0], &ce) || !ce.TimedOut {
			t.Fatalf("waiters failed with %v, want a timed-out dial", f.failErrs)
		}
		f.mu.Unlock()
		if g.r.G.StuckDials.Load() != 1 || g.slots() != 1 || f.timedOut.Load() != 1 {
			t.Fatalf("stuck=%d slots=%d timedOut=%d, want 1 each", g.r.G.StuckDials.Load(), g.slots(), f.timedOut.Load())
		}
		// The slot is taken: another waiter gets no dial beyond the max.
		f.waiting.Store(1)
		g.r.Wake()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := f.dials.Load(); n != 1 {
			t.Fatalf("dials while the stuck one holds the only slot = %d, want 1", n)
		}
		f.waiting.Store(0)
		close(f.ignoreCtx) // it returns a connection now
		synctest.Wait()
		if f.closed.Load() != 1 || g.r.Stats.Closes[conn.ReasonLateDial].Load() != 1 {
			t.Fatalf("late value: closed=%d late_dial=%d, want 1 and 1", f.closed.Load(), g.r.Stats.Closes[conn.ReasonLateDial].Load())
		}
		if g.r.Stats.Dials.Load() != 0 || g.r.Stats.DialErrors.Load() != 1 || g.slots() != 0 || g.r.G.StuckDials.Load() != 0 {
			t.Fatalf("dials=%d errors=%d slots=%d stuck=%d, want 0 1 0 0", g.r.Stats.Dials.Load(),
				g.r.Stats.DialErrors.Load(), g.slots(), g.r.G.StuckDials.Load())
		}
		g.stop(t)
	})
}

// A dial that returns a connection as Close cancels it is a dial like any
// other: counted in Dials, and retired (reason close), its slot freed when its
// Close returns.
func TestDialLandingDuringCloseIsCountedAndClosedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{ignoreCtx: make(chan struct{})}
		g := start(t, reconciler.Config{Min: 1, Max: 1}, f)
		synctest.Wait()
		g.r.Close(errors.New("closed"))
		synctest.Wait()
		close(f.ignoreCtx) // returns a connection although its ctx is cancelled
		<-g.r.Done()
		if g.r.Stats.Dials.Load() != 1 || g.r.Stats.DialErrors.Load() != 0 || g.r.Stats.Closes[conn.ReasonClose].Load() != 1 {
			t.Fatalf("dials=%d errors=%d closed(close)=%d, want 1 0 1", g.r.Stats.Dials.Load(), g.r.Stats.DialErrors.Load(),
				g.r.Stats.Closes[conn.ReasonClose].Load())
		}
		if f.closed.Load() != 1 || f.backend.Load() != 0 {
			t.Fatalf("closed=%d backend=%d, want 1 and 0", f.closed.Load(), f.backend.Load())
		}
	})
}

func TestCloseCancelsDialsAndWaitsForCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{closeGate: make(chan struct{})}
		g := start(t, reconciler.Config{Min: 2, Max: 3}, f)
		synctest.Wait()
		f.hang.Store(true)
		f.waiting.Store(1)
		g.r.Wake()
		synctest.Wait()
		g.r.Close(errors.New("closed"))
		synctest.Wait()
		select {
		case <-g.r.Done():
			t.Fatal("loop exited while closes were still running")
		default:
		}
		if f.inFlight.Load() != 0 {
			t.Fatal("Close did not cancel the dial in flight")
		}
		close(f.closeGate)
		<-g.r.Done()
		if f.closed.Load() != 2 || f.backend.Load() != 0 {
			t.Fatalf("closed=%d backend=%d after Close, want 2 and 0", f.closed.Load(), f.backend.Load())
		}
		if g.r.Stats.DialErrors.Load() != 0 {
			t.Errorf("a dial cancelled by Close counted as a dial error")
		}
	})
}

func TestForceRetiresHeldConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Min: 2, Max: 2}, f)
		synctest.Wait()
		held := f.takeHeld()
		g.r.Close(errors.New("closed"))
		synctest.Wait()
		forced := g.r.Force()
		if forced.Held != 2 || forced.Conns != 2 {
			t.Fatalf("Force = %+v, want 2 held of 2", forced)
		}
		<-g.r.Done()
		for _, c := range held {
			if !c.ForcedUnder(1) {
				t.Errorf("conn %d not marked forced under its holder", c.ID())
			}
		}
	})
}

// When a lease runs out, the loop falls back to the Resize max before it
// starts any dial, closing held connections above it at once.
func TestExpiredLeaseFencesBeforeAnyDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Max: 1}, f)
		if err := g.r.Lease(4, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.waiting.Store(4)
		g.r.Wake()
		synctest.Wait()
		held := f.takeHeld()
		if len(held) != 4 || g.r.G.Max.Load() != 4 {
			t.Fatalf("under a lease of 4: %d held, max %d", len(held), g.r.G.Max.Load())
		}
		f.waiting.Store(2) // still wanting more at the fence
		time.Sleep(time.Minute)
		synctest.Wait()
		if g.r.G.Max.Load() != 1 || g.r.G.Open.Load() != 1 || g.slots() != 1 || f.dials.Load() != 4 {
			t.Fatalf("after the lease: max=%d open=%d slots=%d dials=%d, want 1 1 1 4",
				g.r.G.Max.Load(), g.r.G.Open.Load(), g.slots(), f.dials.Load())
		}
		forced := 0
		for _, c := range held {
			if c.ForcedUnder(1) {
				forced++
			}
		}
		if forced != 3 || f.maxBackend.Load() > 4 {
			t.Fatalf("forced %d held connections (want 3), backend max %d", forced, f.maxBackend.Load())
		}
		f.waiting.Store(0)
		for _, c := range held {
			if c.Retire(1) {
				g.r.Retire(c, conn.ReasonClose, nil, false)
			}
		}
		g.stop(t)
	})
}

func TestResetRetiresIdleDoomsHeldAndCancelsDialsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		g := start(t, reconciler.Config{Min: 2, Max: 4}, f)
		synctest.Wait()
		c, lease, ok := f.set.Take() // one held
		if !ok {
			t.Fatal("nothing idle")
		}
		f.dialTime = time.Second // a dial in flight during the reset
		f.waiting.Store(1)
		g.r.Wake()
		synctest.Wait()
		if err := g.r.Reset(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if c.Doomed() != conn.ReasonReset {
			t.Fatalf("held conn doom = %v, want reset", c.Doomed())
		}
		f.waiting.Store(0)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := g.r.Stats.Closes[conn.ReasonReset].Load(); n != 1 {
			t.Errorf("closed for reset = %d, want 1 (the idle one; the dial in flight was cancelled)", n)
		}
		if n := g.r.Stats.DialErrors.Load(); n != 0 {
			t.Errorf("DialErrors = %d: the cancelled dial counted as the backend's failure", n)
		}
		if g.r.Stats.Resets.Load() != 1 {
			t.Fatal("Resets not counted")
		}
		c.Retire(lease)
		g.r.Retire(c, conn.ReasonReset, nil, false)
		g.stop(t)
	})
}

// Senders never block on the loop, however many send at once and whatever
// the loop is doing.
func TestRetireNeverBlocksTheSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Min: 64, Max: 64}, f)
		synctest.Wait()
		held := f.takeHeld()
		var wg sync.WaitGroup
		for _, c := range held {
			wg.Go(func() {
				c.Retire(1)
				g.r.Retire(c, conn.ReasonDestroyed, nil, false)
			})
		}
		wg.Wait()
		synctest.Wait()
		if n := g.r.Stats.Closes[conn.ReasonDestroyed].Load(); n != 64 {
			t.Fatalf("retired %d, want 64", n)
		}
		g.stop(t)
	})
}

func TestWithinAnswersOnceTheSlotsFit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Min: 3, Max: 3}, f)
		synctest.Wait()
		held := f.takeHeld()
		if err := g.r.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- g.r.Within(context.Background(), 1) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Within answered with 3 held above a max of 1")
		default:
		}
		if n := g.r.ForceOver(1); n != 2 {
			t.Fatalf("ForceOver(1) took %d held, want 2", n)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for _, c := range held {
			if c.Retire(1) {
				g.r.Retire(c, conn.ReasonClose, nil, false)
			}
		}
		g.stop(t)
	})
}

// Idle-expired connections: retired down to Min, the rest go back.
func TestIdleExpiryRetiresDownToMin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		g := start(t, reconciler.Config{Min: 2, Max: 5}, f)
		if err := g.r.Resize(2, 5); err != nil {
			t.Fatal(err)
		}
		f.waiting.Store(5)
		g.r.Wake()
		synctest.Wait()
		f.waiting.Store(0)
		var cs []*conn.Conn[int]
		g.reg.Range(func(c *conn.Conn[int]) bool { cs = append(cs, c); return true })
		if len(cs) != 5 {
			t.Fatalf("%d conns", len(cs))
		}
		for _, c := range cs {
			if !c.BeginCheck() {
				t.Fatalf("conn %d not idle: %v", c.ID(), c.State())
			}
			g.r.IdleExpired(c)
		}
		synctest.Wait()
		if n := g.r.Stats.Closes[conn.ReasonIdle].Load(); n != 3 {
			t.Fatalf("retired for idle = %d, want 3 (down to Min 2)", n)
		}
		if g.r.G.Open.Load() != 2 || f.dials.Load() != 5 {
			t.Fatalf("open=%d dials=%d, want 2 and no replacement dial", g.r.G.Open.Load(), f.dials.Load())
		}
		g.stop(t)
	})
}
