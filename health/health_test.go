package health_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/health"
	"github.com/tidepool-go/tidepool/internal/safe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hooks records what a watcher asks of the pool, and acts like the pool on
// the connection's state word.
type hooks struct {
	mu        sync.Mutex
	retired   []conn.Reason
	errs      []error
	retiredAt time.Time
	idleAsks  int
	allowIdle bool
	putBack   []uint64
	checked   []error
}

func (h *hooks) Retire(c *conn.Conn[int], r conn.Reason, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.RetireChecked(); !ok {
		panic("Retire of a conn the watcher does not own")
	}
	h.retired, h.errs, h.retiredAt = append(h.retired, r), append(h.errs, err), time.Now()
}

// IdleExpired acts like the pool's reconcile loop: it retires the connection
// if allowIdle, and ends the check otherwise.
func (h *hooks) IdleExpired(c *conn.Conn[int]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idleAsks++
	if !h.allowIdle {
		if lease, detached, _ := c.EndCheck(); detached {
			h.putBack = append(h.putBack, lease)
			c.Release(lease)
		}
		return
	}
	c.RetireChecked()
	h.retired, h.errs, h.retiredAt = append(h.retired, conn.ReasonIdle), append(h.errs, nil), time.Now()
}

func (h *hooks) PutBack(c *conn.Conn[int], lease uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.putBack = append(h.putBack, lease)
	if !c.Release(lease) {
		panic("PutBack of a conn the watcher does not hold")
	}
}

func (h *hooks) Checked(c *conn.Conn[int], err error, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checked = append(h.checked, err)
}

func (h *hooks) snapshot() (retired []conn.Reason, idleAsks int, checks int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]conn.Reason(nil), h.retired...), h.idleAsks, len(h.checked)
}

// watch starts c's watcher and returns a channel closed when it returns.
func watch(ctx context.Context, c *conn.Conn[int], cfg *health.Config[int], h *hooks) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		health.Watch(ctx, c, cfg, h)
	}()
	return done
}

func idleConn(deadline time.Duration) *conn.Conn[int] {
	now := time.Now()
	var d time.Time
	if deadline > 0 {
		d = now.Add(deadline)
	}
	c := conn.New(1, 1, now, d, 0)
	c.Release(1)
	return c
}

func stopped(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func TestWatcherRetiresIdleConnAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		start := time.Now()
		c := idleConn(10 * time.Minute)
		done := watch(t.Context(), c, &health.Config[int]{}, h)
		time.Sleep(10*time.Minute - time.Nanosecond)
		synctest.Wait()
		if r, _, _ := h.snapshot(); len(r) != 0 {
			t.Fatalf("retired %v before the deadline", r)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonLifetime {
			t.Fatalf("at the deadline retired %v, want [lifetime]", r)
		}
		if at := h.retiredAt.Sub(start); at != 10*time.Minute {
			t.Errorf("retired after %v, want 10m", at)
		}
		if !stopped(done) {
			t.Error("watcher still runs after retiring its conn")
		}
	})
}

func TestWatcherDoomsHeldConnAndRetiresItOnceReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		c := conn.New(1, 1, time.Now(), time.Now().Add(time.Minute), 0) // held, lease 1
		done := watch(t.Context(), c, &health.Config[int]{}, h)
		time.Sleep(time.Minute + time.Millisecond)
		synctest.Wait()
		if c.Doomed() != conn.ReasonLifetime {
			t.Fatalf("held conn past its deadline: Doomed = %v, want lifetime", c.Doomed())
		}
		if r, _, _ := h.snapshot(); len(r) != 0 || c.State() != conn.InUse {
			t.Fatalf("held conn retired under its holder (%v, %v)", r, c.State())
		}
		// The pool's Release would retire a doomed conn; if it was released
		// before the mark landed, the watcher's retry retires it.
		c.Release(1)
		time.Sleep(time.Second)
		synctest.Wait()
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonLifetime {
			t.Fatalf("released past its deadline: retired %v, want [lifetime]", r)
		}
		<-done
	})
}

func TestWatcherRetiresForIdleOnlyWhenThePoolAgrees(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		c := idleConn(0)
		cfg := &health.Config[int]{MaxIdleTime: time.Minute}
		done := watch(t.Context(), c, cfg, h)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if _, asks, _ := h.snapshot(); asks != 0 {
			t.Fatalf("asked to retire for idle %d times before MaxIdleTime", asks)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		r, asks, _ := h.snapshot()
		if asks == 0 || len(r) != 0 {
			t.Fatalf("after 2m idle: %d asks, retired %v; want asks and no retirement (pool refuses)", asks, r)
		}
		if c.State() != conn.Idle {
			t.Fatalf("refused idle retirement left the conn %v, want idle", c.State())
		}
		h.mu.Lock()
		h.allowIdle = true
		h.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonIdle {
			t.Fatalf("retired %v, want [idle]", r)
		}
		<-done
	})
}

func TestWatcherIdleClockRestartsWhenConnIsUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{allowIdle: true}
		c := idleConn(0)
		done := watch(t.Context(), c, &health.Config[int]{MaxIdleTime: time.Minute}, h)
		for range 30 { // used every 50s for 25 minutes
			time.Sleep(50 * time.Second)
			l, _, ok := c.Acquire()
			if !ok {
				t.Fatalf("conn not acquirable: %v", c.State())
			}
			c.Release(l)
		}
		synctest.Wait()
		if r, asks, _ := h.snapshot(); len(r) != 0 || asks != 0 {
			t.Fatalf("conn used every 50s: retired %v after %d asks", r, asks)
		}
		time.Sleep(2 * time.Minute)
		<-done
	})
}

func TestWatcherChecksIdleConnAndRetiresOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		errPing := errors.New("ping failed")
		var calls int
		var last time.Time
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: time.Second,
			Check: func(ctx context.Context, v int) error {
				if d := time.Since(last); calls > 0 && (d < 9*time.Second || d > 11*time.Second) {
					t.Errorf("checks %v apart, want 10s ±10%%", d)
				}
				calls++
				last = time.Now()
				if calls == 4 {
					return errPing
				}
				return nil
			}}
		c := idleConn(0)
		done := watch(t.Context(), c, cfg, h)
		<-done
		r, _, checks := h.snapshot()
		if checks != 4 || len(r) != 1 || r[0] != conn.ReasonHealth || !errors.Is(h.errs[0], errPing) {
			t.Fatalf("%d checks, retired %v (%v); want 4 checks then [health] with %v", checks, r, h.errs, errPing)
		}
		if c.State() != conn.Retired {
			t.Errorf("failed conn is %v, want retired", c.State())
		}
	})
}

func TestWatcherNeverChecksHeldConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: time.Second,
			Check: func(context.Context, int) error { return nil }}
		c := conn.New(1, 1, time.Now(), time.Time{}, 0) // held
		ctx, cancel := context.WithCancel(t.Context())
		done := watch(ctx, c, cfg, h)
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, _, n := h.snapshot(); n != 0 {
			t.Errorf("held conn checked %d times", n)
		}
		c.Release(1)
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if _, _, n := h.snapshot(); n == 0 {
			t.Error("released conn not checked within 11s")
		}
		cancel()
		<-done
	})
}

func TestWatcherPutsBackConnDetachedDuringCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		started, gate := make(chan struct{}), make(chan struct{})
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: time.Hour,
			Check: func(context.Context, int) error {
				select {
				case started <- struct{}{}:
					<-gate
				default:
				}
				return nil
			}}
		c := idleConn(0)
		ctx, cancel := context.WithCancel(t.Context())
		done := watch(ctx, c, cfg, h)
		<-started
		if _, seen, ok := c.Acquire(); ok || seen != conn.Detached {
			t.Fatalf("Acquire during check: ok=%v seen=%v, want refused and detached", ok, seen)
		}
		close(gate)
		synctest.Wait()
		h.mu.Lock()
		pb := append([]uint64(nil), h.putBack...)
		h.mu.Unlock()
		if len(pb) != 1 || pb[0] != 2 {
			t.Fatalf("PutBack leases %v, want [2]", pb)
		}
		if l, s := c.Load(); s != conn.Idle || l != 2 {
			t.Fatalf("after put-back conn is (%d, %v), want (2, idle)", l, s)
		}
		cancel()
		<-done
	})
}

func TestHangingCheckIsBoundedByTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		var took time.Duration
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: 3 * time.Second,
			Check: func(ctx context.Context, v int) error {
				start := time.Now()
				<-ctx.Done()
				took = time.Since(start)
				return ctx.Err()
			}}
		done := watch(t.Context(), idleConn(0), cfg, h)
		<-done
		if took != cfg.Timeout {
			t.Errorf("hanging check ran %v, want Timeout %v", took, cfg.Timeout)
		}
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonHealth || !errors.Is(h.errs[0], context.DeadlineExceeded) {
			t.Errorf("retired %v (%v), want [health] with DeadlineExceeded", r, h.errs)
		}
	})
}

func TestCheckCutShortByPoolCloseDoesNotRetire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan struct{})
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: time.Hour,
			Check: func(ctx context.Context, v int) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}}
		c := idleConn(0)
		done := watch(ctx, c, cfg, h)
		<-started
		cancel()
		<-done
		if r, _, _ := h.snapshot(); len(r) != 0 {
			t.Errorf("a check cut short by close retired the conn (%v); Close retires it", r)
		}
		if c.State() != conn.Idle {
			t.Errorf("conn left %v after the cut-short check, want idle", c.State())
		}
	})
}

func TestWatcherStopsWhenConnClosesOrPoolStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		cfg := &health.Config[int]{Interval: time.Second, Timeout: time.Second,
			Check: func(context.Context, int) error { return nil }}
		c := idleConn(0)
		done := watch(t.Context(), c, cfg, h)
		time.Sleep(5 * time.Second)
		c.ForceRetire()
		c.MarkClosed()
		synctest.Wait()
		if !stopped(done) {
			t.Error("watcher runs on after its conn closed")
		}

		// A watcher whose pool context ended stops at its next wake-up
		// (Close closes every connection too, which stops it at once).
		ctx, cancel := context.WithCancel(t.Context())
		done = watch(ctx, idleConn(0), cfg, h)
		time.Sleep(5 * time.Second)
		cancel()
		time.Sleep(cfg.Interval + cfg.Interval/10)
		synctest.Wait()
		if !stopped(done) {
			t.Error("watcher runs on a wake-up after the pool's context ended")
		}
	})
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	d := 10 * time.Second
	lo, hi := d, d
	for range 10000 {
		j := health.Jitter(d)
		if j < d*9/10 || j > d*11/10 {
			t.Fatalf("Jitter(%v) = %v, outside ±10%%", d, j)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	if hi-lo < d/10 {
		t.Errorf("Jitter spread only [%v, %v]", lo, hi)
	}
	if health.Jitter(0) != 0 || health.Jitter(-1) != -1 {
		t.Error("Jitter of a non-positive duration must return it unchanged")
	}
}

func TestWatcherNeededOnlyWithSomethingToWatch(t *testing.T) {
	var none health.Config[int]
	if none.Needed(time.Time{}) {
		t.Error("nothing to watch, yet Needed")
	}
	if !none.Needed(time.Now()) {
		t.Error("a lifetime deadline needs a watcher")
	}
	idle := health.Config[int]{MaxIdleTime: time.Minute}
	check := health.Config[int]{Check: func(context.Context, int) error { return nil }}
	if !idle.Needed(time.Time{}) || !check.Needed(time.Time{}) {
		t.Error("MaxIdleTime or Check need a watcher")
	}
}

// A connection that was held across a sample and then released must not be
// retired for idleness before it has been idle MaxIdleTime: the watcher may not
// date its last activity to the sample that saw it held.
func TestWatcherDoesNotRetireForIdleBeforeMaxIdleTimeAfterRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, maxIdle = 16, time.Minute
		hs := make([]*hooks, n)
		cs := make([]*conn.Conn[int], n)
		dones := make([]<-chan struct{}, n)
		cfg := &health.Config[int]{MaxIdleTime: maxIdle}
		for i := range n {
			hs[i], cs[i] = &hooks{allowIdle: true}, idleConn(0)
			dones[i] = watch(t.Context(), cs[i], cfg, hs[i])
		}
		time.Sleep(time.Second)
		leases := make([]uint64, n)
		for i, c := range cs {
			leases[i], _, _ = c.Acquire()
		}
		time.Sleep(20 * time.Second) // held across at least one sample
		for i, c := range cs {
			c.Release(leases[i])
		}
		released := time.Now()
		for i := range n {
			<-dones[i]
			if idle := hs[i].retiredAt.Sub(released); idle < maxIdle {
				t.Errorf("conn %d retired for idle after %v idle, want at least %v", i, idle, maxIdle)
			}
		}
	})
}

// A check that ignores its context counts as failed at Timeout (plus the
// grace a well-behaved check gets): the connection is retired with a
// "timed out" error while the check still runs, and the check is counted
// stuck until it returns.
func TestCheckIgnoringItsContextIsAbandonedAtTimeoutAndCountedStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		release := make(chan struct{})
		var stuck, active atomic.Int64
		var running sync.WaitGroup
		cfg := &health.Config[int]{Interval: 10 * time.Second, Timeout: 200 * time.Millisecond,
			Stuck: &stuck, Active: &active, Running: &running,
			Check: func(ctx context.Context, v int) error {
				<-release // ignores ctx
				return nil
			}}
		start := time.Now()
		done := watch(t.Context(), idleConn(0), cfg, h)
		<-done
		// The first check comes after Interval ±10%, and is abandoned at
		// Timeout plus its grace.
		if took := time.Since(start); took < 9*time.Second || took > 11*time.Second+cfg.Timeout+health.Grace(cfg.Timeout) {
			t.Errorf("watcher returned after %v", took)
		}
		r, _, _ := h.snapshot()
		var ce *safe.CallbackError
		if len(r) != 1 || r[0] != conn.ReasonHealth || !errors.As(h.errs[0], &ce) || !ce.TimedOut || ce.Callback != "check" {
			t.Fatalf("retired %v (%v), want [health] with a timed-out check error", r, h.errs)
		}
		if stuck.Load() != 1 || active.Load() != 1 {
			t.Fatalf("while the check hangs: stuck=%d active=%d, want 1 and 1", stuck.Load(), active.Load())
		}
		close(release)
		running.Wait()
		if stuck.Load() != 0 || active.Load() != 0 {
			t.Fatalf("after the check returned: stuck=%d active=%d, want 0 and 0", stuck.Load(), active.Load())
		}
	})
}

// The check is abandoned exactly at Timeout + Grace, not later.
func TestHangingCheckIsRetiredAtTimeoutPlusGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		release := make(chan struct{})
		cfg := &health.Config[int]{Interval: time.Second, Timeout: 2 * time.Second,
			Check: func(ctx context.Context, v int) error { <-release; return nil }}
		c := idleConn(0)
		var begun atomic.Int64
		cfg.Check = func(ctx context.Context, v int) error { begun.Store(time.Now().UnixNano()); <-release; return nil }
		done := watch(t.Context(), c, cfg, h)
		<-done
		if got, want := h.retiredAt.Sub(time.Unix(0, begun.Load())), cfg.Timeout+health.Grace(cfg.Timeout); got != want {
			t.Errorf("retired %v after the check began, want Timeout+Grace = %v", got, want)
		}
		close(release)
	})
}

// A panicking check is a failed check: the connection is retired with a
// *CallbackError carrying the panic value and stack; nothing crashes.
func TestPanickingCheckRetiresWithTheRecoveredPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		cfg := &health.Config[int]{Interval: time.Second, Timeout: time.Second,
			Check: func(ctx context.Context, v int) error { panic("boom") }}
		<-watch(t.Context(), idleConn(0), cfg, h)
		var ce *safe.CallbackError
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonHealth || !errors.As(h.errs[0], &ce) ||
			ce.Panic != "boom" || len(ce.Stack) == 0 {
			t.Fatalf("retired %v (%v), want [health] with the recovered panic and its stack", r, h.errs)
		}
		if h.checked[0] == nil {
			t.Error("Checked reported the panicking check as passed")
		}
	})
}

// A connection doomed while under check (Reset) is retired for that reason
// when the check ends, instead of going back.
func TestConnDoomedDuringCheckIsRetiredWhenTheCheckEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hooks{}
		var c *conn.Conn[int]
		cfg := &health.Config[int]{Interval: time.Second, Timeout: time.Second,
			Check: func(ctx context.Context, v int) error { c.Doom(conn.ReasonReset); return nil }}
		c = idleConn(0)
		<-watch(t.Context(), c, cfg, h)
		if r, _, _ := h.snapshot(); len(r) != 1 || r[0] != conn.ReasonReset {
			t.Fatalf("retired %v, want [reset]", r)
		}
	})
}
