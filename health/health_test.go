package health_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/health"
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

func (h *hooks) RetireIdle(c *conn.Conn[int]) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idleAsks++
	if !h.allowIdle {
		return false
	}
	c.RetireChecked()
	h.retired, h.errs, h.retiredAt = append(h.retired, conn.ReasonIdle), append(h.errs, nil), time.Now()
	return true
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
	c := conn.New(1, 1, now, d)
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
		c := conn.New(1, 1, time.Now(), time.Now().Add(time.Minute)) // held, lease 1
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
		c := conn.New(1, 1, time.Now(), time.Time{}) // held
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
