package reconciler_test

import (
	"context"
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

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/reconciler"
	"github.com/tidepool-go/tidepool/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDown = errors.New("backend down")

// fake is a pool as the reconciler sees it: born connections go idle (or stay
// held), waiters are a number the test sets, and FailWaiters only records.
type fake struct {
	q  *queue.Queue[*conn.Conn[int]]
	sh *reconciler.Shared

	fail     atomic.Bool   // Dial fails with errDown
	dialTime time.Duration // virtual duration of a Dial
	hang     atomic.Bool   // Dial blocks until its ctx ends
	keepHeld atomic.Bool   // Born keeps the conn held instead of idling it

	dials, inFlight, maxInFlight atomic.Int64
	next                         atomic.Int64
	closeGate                    chan struct{} // if non-nil, Close waits on it
	closed                       atomic.Int64
	waiting                      atomic.Int64
	failed                       atomic.Int64

	mu        sync.Mutex
	dialAt    []time.Time
	flightAt  []int64 // dials in flight when each dial started
	failErrs  []error
	held      []*conn.Conn[int]
	closedIDs map[int]int
}

func (f *fake) Dial(ctx context.Context) (int, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
	}
	f.dials.Add(1)
	f.mu.Lock()
	f.dialAt = append(f.dialAt, time.Now())
	f.flightAt = append(f.flightAt, n)
	f.mu.Unlock()
	if f.hang.Load() {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if f.dialTime > 0 {
		select {
		case <-time.After(f.dialTime):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if f.fail.Load() {
		return 0, errDown
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
	return nil
}

func (f *fake) Born(c *conn.Conn[int]) {
	if f.keepHeld.Load() {
		f.mu.Lock()
		f.held = append(f.held, c)
		f.mu.Unlock()
		return
	}
	c.Release(1)
	f.q.Push(c)
}

func (f *fake) Waiting() int { return int(f.waiting.Load()) }

func (f *fake) FailWaiters(err error) int {
	f.failed.Add(1)
	f.mu.Lock()
	f.failErrs = append(f.failErrs, err)
	f.mu.Unlock()
	return int(f.waiting.Load())
}

func (f *fake) Idle() int { return f.q.Len() - int(f.sh.Tombstones.Load()) }

type rig struct {
	*fake
	r    *reconciler.Reconciler[int]
	reg  *registry.Registry[int]
	logs *observer.ObservedLogs
}

func start(t *testing.T, cfg reconciler.Config, f *fake) *rig {
	if f == nil {
		f = &fake{}
	}
	f.q = queue.New[*conn.Conn[int]](64)
	f.sh = new(reconciler.Shared)
	core, logs := observer.New(zapcore.InfoLevel)
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
	if cfg.SweepAt == 0 {
		cfg.SweepAt = 16
	}
	reg := registry.New[int]()
	g := &rig{fake: f, r: reconciler.New(cfg, f.sh, f.q, reg, f), reg: reg, logs: logs}
	// If the test stops early, still stop the loop inside the bubble, so that
	// the failure is reported rather than a deadlock.
	t.Cleanup(func() {
		f.hang.Store(false)
		g.r.Close(errors.New("test over"))
		g.r.ForceClose()
		<-g.r.Done()
	})
	return g
}

// shutdown closes the loop and waits for it, checking that every dialed
// connection was closed exactly once.
func (g *rig) shutdown(t *testing.T) {
	t.Helper()
	g.r.Close(errors.New("closed"))
	<-g.r.Done()
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := 1; id <= int(g.next.Load()); id++ {
		if n := g.closedIDs[id]; n != 1 {
			t.Errorf("conn %d closed %d times, want 1", id, n)
		}
	}
	if g.reg.Len() != 0 {
		t.Errorf("registry holds %d conns after close", g.reg.Len())
	}
}

func TestLoopDialsMinIdleAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 2, Max: 4}, nil)
		synctest.Wait()
		if g.dials.Load() != 2 || g.Idle() != 2 || g.reg.Len() != 2 || g.sh.Live.Load() != 2 {
			t.Errorf("dials=%d idle=%d registered=%d live=%d, want 2 each",
				g.dials.Load(), g.Idle(), g.reg.Len(), g.sh.Live.Load())
		}
		if g.r.Stats.Dials.Load() != 2 || g.logs.FilterMessage("conn.dialed").Len() != 2 {
			t.Error("dials not counted or logged")
		}
		g.shutdown(t)
	})
}

func TestResizeIsAdoptedThenReached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 0, Max: 2}, &fake{dialTime: time.Second})
		if err := g.r.Resize(3, 5); err != nil {
			t.Fatal(err)
		}
		// Adopted at once: the bounds are visible when Resize returns.
		if g.sh.Min.Load() != 3 || g.sh.Max.Load() != 5 || g.r.Stats.Resizes.Load() != 1 {
			t.Fatalf("after Resize: Min=%d Max=%d Resizes=%d", g.sh.Min.Load(), g.sh.Max.Load(), g.r.Stats.Resizes.Load())
		}
		if g.logs.FilterMessage("resize.adopted").Len() != 1 || g.logs.FilterMessage("resize.reached").Len() != 0 {
			t.Fatal("want resize.adopted logged and resize.reached not yet (dials take 1s)")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if g.Idle() != 3 || g.dials.Load() != 3 {
			t.Fatalf("idle=%d dials=%d, want 3 and 3", g.Idle(), g.dials.Load())
		}
		es := g.logs.FilterMessage("resize.reached").All()
		if len(es) != 1 || es[0].ContextMap()["took"] != time.Second {
			t.Errorf("resize.reached entries %v, want one with took=1s", es)
		}
		g.shutdown(t)
	})
}

func TestShrinkRetiresIdleConnsAboveMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 4, Max: 4}, nil)
		synctest.Wait()
		if err := g.r.Resize(0, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if g.closed.Load() != 2 || g.r.Stats.Closes[conn.ReasonShrink].Load() != 2 {
			t.Errorf("closed=%d shrink closes=%d, want 2 and 2", g.closed.Load(), g.r.Stats.Closes[conn.ReasonShrink].Load())
		}
		if g.sh.Live.Load() != 2 || g.reg.Len() != 2 || g.Idle() != 2 {
			t.Errorf("live=%d registered=%d idle=%d, want 2 each", g.sh.Live.Load(), g.reg.Len(), g.Idle())
		}
		g.shutdown(t)
	})
}

func TestDialsAreBoundedByFreeSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 0, Max: 3}, &fake{dialTime: time.Second})
		g.waiting.Store(10)
		g.r.Demand()
		synctest.Wait()
		if g.sh.Dialing.Load() != 3 || g.inFlight.Load() != 3 {
			t.Fatalf("10 waiters, max 3: Dialing=%d in flight=%d, want 3", g.sh.Dialing.Load(), g.inFlight.Load())
		}
		time.Sleep(time.Minute) // ticks and demands change nothing: the pool is full
		g.r.Demand()
		synctest.Wait()
		if g.dials.Load() != 3 || g.maxInFlight.Load() != 3 || g.sh.Live.Load() != 3 {
			t.Errorf("dials=%d max in flight=%d live=%d, want 3 each", g.dials.Load(), g.maxInFlight.Load(), g.sh.Live.Load())
		}
		g.waiting.Store(0)
		g.shutdown(t)
	})
}

func TestRetiredConnIsClosedAndReplacedUpToMin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 1, Max: 2}, nil)
		synctest.Wait()
		c, _ := g.q.Pop()
		lease, _, _ := c.Acquire()
		if !c.Retire(lease) {
			t.Fatal("Retire failed")
		}
		g.sh.Live.Add(-1)
		g.r.Retire(c, conn.ReasonDestroyed, nil)
		synctest.Wait()
		if c.State() != conn.Closed || g.closed.Load() != 1 || g.r.Stats.Closes[conn.ReasonDestroyed].Load() != 1 {
			t.Errorf("retired conn: state=%v closed=%d", c.State(), g.closed.Load())
		}
		if _, ok := g.reg.Get(c.ID()); ok {
			t.Error("retired conn still registered")
		}
		if g.dials.Load() != 2 || g.Idle() != 1 {
			t.Errorf("dials=%d idle=%d, want a replacement (2, 1)", g.dials.Load(), g.Idle())
		}
		es := g.logs.FilterMessage("conn.retired").All()
		if len(es) != 1 || es[0].ContextMap()["reason"] != "destroyed" {
			t.Errorf("conn.retired entries %v, want one with reason destroyed", es)
		}
		g.shutdown(t)
	})
}

func TestFailedDialsBackOffAndProbeOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{dialTime: 50 * time.Millisecond}
		f.fail.Store(true)
		g := start(t, reconciler.Config{Min: 0, Max: 10, BackoffBase: 100 * time.Millisecond, BackoffMax: 2 * time.Second}, f)
		g.waiting.Store(5) // waiters keep coming: FailWaiters does not clear them
		g.r.Demand()
		time.Sleep(30 * time.Second)
		synctest.Wait()

		g.mu.Lock()
		at, flight, errs := append([]time.Time(nil), g.dialAt...), append([]int64(nil), g.flightAt...), append([]error(nil), g.failErrs...)
		g.mu.Unlock()
		// The first wave (before any failure is known) dials for every waiter;
		// after it, one probe at a time, spaced by the backoff.
		if len(at) < 5+8 {
			t.Fatalf("%d dials in 30s of outage", len(at))
		}
		for i, n := range flight[5:] {
			if n != 1 {
				t.Fatalf("dial %d after the first failure started with %d in flight, want a single probe", i+5, n)
			}
		}
		for i := 6; i < len(at); i++ {
			if g := at[i].Sub(at[i-1]); g < 50*time.Millisecond || g > 3*time.Second+50*time.Millisecond {
				t.Errorf("probe %d came %v after the previous, want within the backoff (≤ 1.5·2s) + dial", i, g)
			}
		}
		if n := g.r.Stats.DialErrors.Load() + g.sh.Dialing.Load(); n != int64(len(at)) || g.sh.Live.Load() != 0 {
			t.Errorf("DialErrors+Dialing=%d live=%d, want %d and 0", n, g.sh.Live.Load(), len(at))
		}
		var downFast int
		for _, err := range errs {
			if !errors.Is(err, reconciler.ErrDial) || !errors.Is(err, errDown) {
				t.Fatalf("waiters failed with %v, want ErrDial wrapping %v", err, errDown)
			}
			if strings.Contains(err.Error(), "backend down, next attempt in") {
				downFast++
			}
		}
		if downFast == 0 {
			t.Error("waiters arriving while backing off were never failed at once")
		}

		f.fail.Store(false)
		// The next probe comes within 1.5·BackoffMax; then the rest dial.
		time.Sleep(3*time.Second + 2*f.dialTime + time.Millisecond)
		synctest.Wait()
		if g.sh.Live.Load() != 10 || g.logs.FilterMessage("pool.recovered").Len() != 1 {
			t.Errorf("after recovery live=%d (want max 10), pool.recovered logged %d times",
				g.sh.Live.Load(), g.logs.FilterMessage("pool.recovered").Len())
		}
		g.waiting.Store(0)
		g.shutdown(t)
	})
}

func TestDialIsBoundedByDialTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.hang.Store(true)
		g := start(t, reconciler.Config{Min: 1, Max: 1, DialTimeout: 5 * time.Second}, f)
		begin := time.Now()
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		if g.r.Stats.DialErrors.Load() != 0 || g.sh.Dialing.Load() != 1 {
			t.Fatal("hung dial ended before DialTimeout")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if g.r.Stats.DialErrors.Load() != 1 || g.sh.Dialing.Load() != 0 {
			t.Fatalf("at DialTimeout (%v): DialErrors=%d Dialing=%d, want 1 and 0",
				time.Since(begin), g.r.Stats.DialErrors.Load(), g.sh.Dialing.Load())
		}
		f.hang.Store(false)
		g.shutdown(t)
	})
}

func TestCloseWaitsForClosesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		g := start(t, reconciler.Config{Min: 2, Max: 2}, &fake{closeGate: gate})
		synctest.Wait()
		errClosed := errors.New("pool closed")
		g.waiting.Store(3)
		g.r.Close(errClosed)
		synctest.Wait()
		g.mu.Lock()
		failedWith := append([]error(nil), g.failErrs...)
		g.mu.Unlock()
		if len(failedWith) != 1 || failedWith[0] != errClosed {
			t.Errorf("waiters failed with %v, want [%v]", failedWith, errClosed)
		}
		select {
		case <-g.r.Done():
			t.Fatal("loop exited while two closes were still running")
		default:
		}
		close(gate)
		synctest.Wait()
		select {
		case <-g.r.Done():
		default:
			t.Fatal("loop did not exit after every close finished")
		}
		if g.closed.Load() != 2 || g.r.Stats.Closes[conn.ReasonClose].Load() != 2 {
			t.Errorf("closed=%d, want 2 closed for reason close", g.closed.Load())
		}
		if err := g.r.Resize(1, 2); err == nil {
			t.Error("Resize after the loop exited succeeded")
		}
		g.r.Demand() // must not block or panic
		g.waiting.Store(0)
		g.shutdown(t)
	})
}

func TestCloseCancelsDialsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.hang.Store(true)
		g := start(t, reconciler.Config{Min: 3, Max: 3, DialTimeout: time.Hour}, f)
		synctest.Wait()
		begin := time.Now()
		g.r.Close(errors.New("closed"))
		<-g.r.Done()
		if d := time.Since(begin); d != 0 {
			t.Errorf("Close waited %v for hung dials, want them cancelled at once", d)
		}
		if g.inFlight.Load() != 0 {
			t.Errorf("%d dials still running after the loop exited", g.inFlight.Load())
		}
	})
}

func TestForceCloseRetiresHeldConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.keepHeld.Store(true)
		g := start(t, reconciler.Config{Min: 0, Max: 2}, f)
		g.waiting.Store(2)
		g.r.Demand()
		synctest.Wait()
		g.waiting.Store(0)
		g.r.Close(errors.New("closed"))
		synctest.Wait()
		select {
		case <-g.r.Done():
			t.Fatal("loop exited with two conns held")
		default:
		}
		g.r.ForceClose()
		<-g.r.Done()
		g.mu.Lock()
		held := append([]*conn.Conn[int](nil), g.held...)
		g.mu.Unlock()
		for _, c := range held {
			if c.State() != conn.Closed {
				t.Errorf("held conn %d is %v after ForceClose, want closed", c.ID(), c.State())
			}
		}
		if len(held) != 2 || g.closed.Load() != 2 || g.sh.Live.Load() != 0 {
			t.Errorf("held=%d closed=%d live=%d, want 2, 2, 0", len(held), g.closed.Load(), g.sh.Live.Load())
		}
		if g.logs.FilterMessage("pool.close_forced").Len() != 1 {
			t.Error("pool.close_forced not logged")
		}
	})
}

func TestDemandNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := start(t, reconciler.Config{Min: 0, Max: 1}, nil)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5000 {
					g.r.Demand()
				}
			})
		}
		wg.Wait()
		g.shutdown(t)
	})
}
