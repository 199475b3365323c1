package tidepool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

func TestReleasedConnectionIsReused(t *testing.T) {
	b := newBackend()
	p := newPool(t, b.config())
	defer closePool(t, p)
	h := mustAcquire(t, p)
	first := h.Value()
	h.Release()
	h = mustAcquire(t, p)
	if h.Value() != first {
		t.Fatalf("got conn %d after release, want the idle conn %d back", h.Value().id, first.id)
	}
	h.Release()
	if got := b.dials.Load(); got != 1 {
		t.Fatalf("dials = %d, want 1", got)
	}
}

func TestDialsOnDemandUpToMaxSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := poolOfSize(t, 3)
		var hs []tidepool.Conn[*fakeConn]
		for range 3 {
			hs = append(hs, mustAcquire(t, p))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Acquire(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("4th Acquire on a full pool: err = %v, want deadline exceeded", err)
		}
		synctest.Wait()
		if got := b.dials.Load(); got != 3 {
			t.Fatalf("dials = %d, want 3 (MaxSize)", got)
		}
		for _, h := range hs {
			h.Release()
		}
		closePool(t, p)
		b.checkClosedOnce(t)
	})
}

func TestMinIdleWarmedAtNewAndRefilledAfterLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		cfg := b.config()
		cfg.MinIdle = 2
		p := newPool(t, cfg)
		if s := p.Stats(); s.Idle != 2 || s.Acquires != 0 {
			t.Fatalf("after New: idle = %d, acquires = %d; want 2 idle, 0 acquires", s.Idle, s.Acquires)
		}
		h := mustAcquire(t, p)
		h.Destroy()
		synctest.Wait()
		time.Sleep(time.Second) // one maintenance pass
		synctest.Wait()
		if s := p.Stats(); s.Idle != 2 || s.Closed.Destroyed != 1 {
			t.Fatalf("after Destroy: idle = %d, destroyed = %d; want 2 and 1", s.Idle, s.Closed.Destroyed)
		}
		closePool(t, p)
		b.checkClosedOnce(t)
	})
}

// Waiters are served in arrival order (golang/go #31708: database/sql served
// them in map order).
func TestWaitersServedInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, p := poolOfSize(t, 1)
		h := mustAcquire(t, p)
		const n = 8
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := p.Acquire(context.Background())
				if err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				w.Release()
			}()
			synctest.Wait() // waiter i is listed before i+1 starts
		}
		h.Release()
		wg.Wait()
		want := fmt.Sprint([]int{0, 1, 2, 3, 4, 5, 6, 7})
		if got := fmt.Sprint(order); got != want {
			t.Fatalf("served in order %s, want arrival order %s", got, want)
		}
		closePool(t, p)
	})
}

// No lost wake-up (vitess #17662): many goroutines on few connections, each
// Acquire bounded; a wake-up lost between a waiter's check of the idle queue
// and its listing would leave it waiting for its deadline.
func TestNoLostWakeupUnderContention(t *testing.T) {
	_, p := poolOfSize(t, 2)
	defer closePool(t, p)
	const workers, rounds = 32, 400
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				h, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				h.Release()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Acquire under contention: %v (a lost wake-up leaves a waiter until its deadline)", err)
	}
	if s := p.Stats(); s.Acquires != workers*rounds || s.Waiting != 0 {
		t.Fatalf("acquires = %d, waiting = %d; want %d and 0", s.Acquires, s.Waiting, workers*rounds)
	}
}

// A cancelled or timed-out Acquire never loses a connection or a slot, even
// when a hand-off races its cancellation.
func TestCancelledAcquiresLoseNoConnection(t *testing.T) {
	_, p := poolOfSize(t, 3)
	defer closePool(t, p)
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				d := time.Duration(1+(w+i)%20) * time.Microsecond
				if w%2 == 0 {
					d = 5 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), d)
				h, err := p.Acquire(ctx)
				cancel()
				if err == nil {
					h.Release()
				}
			}
		}()
	}
	wg.Wait()
	var hs []tidepool.Conn[*fakeConn]
	for range 3 {
		hs = append(hs, mustAcquire(t, p))
	}
	for _, h := range hs {
		h.Release()
	}
	s := p.Stats()
	if s.Total != 3 || s.Waiting != 0 || s.InUse != 0 {
		t.Fatalf("after churn: total %d, in use %d, waiting %d; want 3, 0, 0", s.Total, s.InUse, s.Waiting)
	}
	if s.CanceledAcquires == 0 {
		t.Fatalf("no Acquire was cancelled: the test did not exercise cancellation")
	}
}

// A cancelled Acquire does not cancel the dial it caused (pgx #1259): the dial
// goes on and its connection serves the next caller.
func TestCancelledAcquireDoesNotKillItsDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		b.gate = make(chan struct{})
		p := newPool(t, b.config())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := p.Acquire(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire: err = %v, want deadline exceeded", err)
		}
		b.gate <- struct{}{} // the dial completes after its Acquire gave up
		synctest.Wait()
		s := p.Stats()
		if s.Dials != 1 || s.DialErrors != 0 || s.Idle != 1 {
			t.Fatalf("dials %d, dial errors %d, idle %d; want 1, 0, 1", s.Dials, s.DialErrors, s.Idle)
		}
		h := mustAcquire(t, p)
		h.Release()
		if got := b.dials.Load(); got != 1 {
			t.Fatalf("dial attempts = %d, want 1: the next Acquire should use the finished dial", got)
		}
		closePool(t, p)
	})
}

// Close wakes every waiter with ErrClosed at once (puddle's waiters slept on).
func TestCloseWakesWaitersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := poolOfSize(t, 1)
		h := mustAcquire(t, p)
		errs := make(chan error, 5)
		for range 5 {
			go func() {
				_, err := p.Acquire(context.Background())
				errs <- err
			}()
		}
		synctest.Wait()
		if s := p.Stats(); s.Waiting != 5 {
			t.Fatalf("waiting = %d, want 5", s.Waiting)
		}
		start := time.Now()
		closed := make(chan error)
		go func() { closed <- p.Close(context.Background()) }()
		for range 5 {
			if err := <-errs; !errors.Is(err, tidepool.ErrClosed) {
				t.Fatalf("waiter woke with %v, want ErrClosed", err)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("waiters woke after %v of (virtual) time, want at once", d)
		}
		h.Release() // lets Close finish
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := p.Acquire(context.Background()); !errors.Is(err, tidepool.ErrClosed) {
			t.Fatalf("Acquire after Close: %v, want ErrClosed", err)
		}
		b.checkClosedOnce(t)
	})
}

// Growing the pool serves callers already waiting (database/sql did not wake
// them until some connection was released).
func TestGrowServesWaitersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, p := poolOfSize(t, 1)
		h := mustAcquire(t, p)
		got := make(chan tidepool.Conn[*fakeConn], 3)
		for range 3 {
			go func() {
				w, err := p.Acquire(context.Background())
				if err != nil {
					t.Errorf("waiter: %v", err)
				}
				got <- w
			}()
		}
		synctest.Wait()
		start := time.Now()
		if err := p.Resize(0, 4); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			(<-got).Release()
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("waiters served %v after the grow, want at once", d)
		}
		h.Release()
		synctest.Wait()
		if s := p.Stats(); s.MaxSize != 4 || s.Total != 4 || s.Resizes != 1 {
			t.Fatalf("after grow: max %d total %d resizes %d; want 4 4 1", s.MaxSize, s.Total, s.Resizes)
		}
		closePool(t, p)
	})
}

// After an outage the pool recovers by itself (HikariCP #1148; go-redis #3062
// stopped dialing after PoolSize failures in a row).
func TestRecoversAfterOutageWithoutRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := poolOfSize(t, 2)
		b.down.Store(true)
		for i := range 10 { // many more failures than MaxSize
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			_, err := p.Acquire(ctx)
			cancel()
			if !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errBackendDown) {
				t.Fatalf("Acquire %d during outage: err = %v, want ErrDial wrapping the dial error", i, err)
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Fatalf("Acquire %d failed after %v: not prompt (deadline was 1m)", i, d)
			}
			time.Sleep(time.Second)
		}
		b.down.Store(false)
		time.Sleep(10 * time.Second) // past the longest backoff
		h := mustAcquire(t, p)
		h.Release()
		if m := b.maxDial.Load(); m > 2 {
			t.Fatalf("%d dials were in flight at once, more than MaxSize", m)
		}
		closePool(t, p)
		b.checkClosedOnce(t)
	})
}

func TestShrinkClosesIdleAtOnceAndHeldOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		p := newPool(t, b.config())
		var hs []tidepool.Conn[*fakeConn]
		for range 4 {
			hs = append(hs, mustAcquire(t, p))
		}
		hs[2].Release()
		hs[3].Release()
		if err := p.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		s := p.Stats()
		if s.Idle != 0 || s.InUse != 2 || s.PendingShrink != 1 || s.Closed.Shrink != 2 {
			t.Fatalf("after shrink: idle %d in use %d pending %d shrink-closed %d; want 0 2 1 2",
				s.Idle, s.InUse, s.PendingShrink, s.Closed.Shrink)
		}
		hs[0].Release()
		synctest.Wait()
		if s := p.Stats(); s.Total != 1 || s.PendingShrink != 0 || s.Closed.Shrink != 3 {
			t.Fatalf("after release: total %d pending %d shrink-closed %d; want 1 0 3", s.Total, s.PendingShrink, s.Closed.Shrink)
		}
		hs[1].Release()
		synctest.Wait()
		if s := p.Stats(); s.Total != 1 || s.Idle != 1 {
			t.Fatalf("converged: total %d idle %d; want 1 1", s.Total, s.Idle)
		}
		if got := b.live(); got != 1 {
			t.Fatalf("backend sees %d live connections, want 1", got)
		}
		closePool(t, p)
		b.checkClosedOnce(t)
	})
}

func TestCloseWaitsForHoldersThenForcesAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		p := newPool(t, b.config())
		h := mustAcquire(t, p)
		held := h.Value()
		idle := mustAcquire(t, p)
		idle.Release()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		err := p.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with a holder past its deadline: err = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("Close returned after %v, want at its 3s deadline", d)
		}
		if held.closed.Load() != 1 {
			t.Fatal("held connection not closed by the forced Close")
		}
		// Its holder learns it when it uses the connection: Value hands it
		// the closed value, and its Release is a no-op.
		if v := h.Value(); v != held {
			t.Fatal("Value of a connection closed under its holder returned another value")
		}
		h.Release()
		b.checkClosedOnce(t)
	})
}

func TestReleaseAfterForcedCloseIsNoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		p := newPool(t, b.config())
		h := mustAcquire(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.Close(ctx); err == nil {
			t.Fatal("Close with a holder past its deadline returned nil")
		}
		h.Release() // must not panic
		h.Destroy() // nor this
		b.checkClosedOnce(t)
	})
}

func TestCloseIsGracefulWhenHoldersRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		p := newPool(t, b.config())
		h := mustAcquire(t, p)
		go func() {
			time.Sleep(time.Second)
			h.Release()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if s := p.Stats(); s.Closed.Close != 1 || s.Total != 0 {
			t.Fatalf("closed-by-close %d total %d; want 1 0", s.Closed.Close, s.Total)
		}
		if err := p.Close(ctx); !errors.Is(err, tidepool.ErrClosed) {
			t.Fatalf("second Close: %v, want ErrClosed", err)
		}
		if err := p.Resize(1, 2); !errors.Is(err, tidepool.ErrClosed) {
			t.Fatalf("Resize after Close: %v, want ErrClosed", err)
		}
		b.checkClosedOnce(t)
	})
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one mentioning %q", want)
		}
		if !strings.Contains(fmt.Sprint(r), want) {
			t.Fatalf("panic %q does not mention %q", r, want)
		}
	}()
	f()
}

func TestMisuseIsCaught(t *testing.T) {
	_, p := poolOfSize(t, 1)
	defer closePool(t, p)

	h := mustAcquire(t, p)
	id := h.ID()
	h.Release()
	mustPanic(t, "already released", h.Release)
	mustPanic(t, "already released", func() { h.Value() })
	mustPanic(t, "already released", h.Destroy)
	mustPanic(t, "already released", func() { h.Hijack() })
	mustPanic(t, "already released", func() { h.ID() })
	mustPanic(t, "already released", func() { h.CreatedAt() })
	mustPanic(t, "already released", func() { h.IdleDuration() })
	mustPanic(t, "already released", func() { h.LastUsed() })

	// The same connection, now held by somebody else: the stale handle must
	// not release it from under them.
	h2 := mustAcquire(t, p)
	if h2.ID() != id {
		t.Skip("pool handed out a different connection; stale-handle case not reached")
	}
	mustPanic(t, "already released", h.Release)
	if s := p.Stats(); s.InUse != 1 {
		t.Fatalf("stale Release changed the pool: in use = %d, want 1", s.InUse)
	}
	h2.Release()

	var zero tidepool.Conn[*fakeConn]
	mustPanic(t, "zero Conn", zero.Release)
	mustPanic(t, "zero Conn", func() { zero.Value() })
}

func TestTryAcquireNeverWaitsAndDialsInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := poolOfSize(t, 1)
		// Empty pool with room: ErrExhausted at once, and a dial starts for
		// whoever comes next.
		if _, err := p.TryAcquire(context.Background()); !errors.Is(err, tidepool.ErrExhausted) {
			t.Fatalf("TryAcquire on an empty pool: %v, want ErrExhausted at once", err)
		}
		synctest.Wait()
		if s := p.Stats(); s.Idle != 1 || b.dials.Load() != 1 {
			t.Fatalf("after TryAcquire with room: idle=%d dials=%d, want the background dial to have landed (1, 1)", s.Idle, b.dials.Load())
		}
		h, err := p.TryAcquire(context.Background())
		if err != nil {
			t.Fatalf("TryAcquire with an idle connection: %v", err)
		}
		// Full pool: ErrExhausted, no dial.
		if _, err := p.TryAcquire(context.Background()); !errors.Is(err, tidepool.ErrExhausted) {
			t.Fatalf("TryAcquire on a full pool: %v, want ErrExhausted", err)
		}
		synctest.Wait()
		if n := b.dials.Load(); n != 1 {
			t.Fatalf("TryAcquire on a full pool dialed: %d dials, want 1", n)
		}
		// A gated dial: TryAcquire still returns at once.
		h.Destroy()
		synctest.Wait()
		b.gate = make(chan struct{})
		if _, err := p.TryAcquire(context.Background()); !errors.Is(err, tidepool.ErrExhausted) {
			t.Fatalf("TryAcquire while a dial hangs: %v, want ErrExhausted at once", err)
		}
		close(b.gate)
		synctest.Wait()
		h, err = p.TryAcquire(context.Background())
		if err != nil {
			t.Fatalf("TryAcquire after the background dial: %v", err)
		}
		h.Release()
		closePool(t, p)
	})
}

func TestMaxIdleRetiresExcessOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		cfg := b.config()
		cfg.MaxIdle = 1
		p := newPool(t, cfg)
		h1, h2 := mustAcquire(t, p), mustAcquire(t, p)
		h1.Release()
		h2.Release()
		synctest.Wait()
		if s := p.Stats(); s.Idle != 1 || s.Closed.ExcessIdle != 1 {
			t.Fatalf("idle %d, excess-idle closes %d; want 1 1", s.Idle, s.Closed.ExcessIdle)
		}
		closePool(t, p)
	})
}

func TestInvalidConfigNamesFieldAndValue(t *testing.T) {
	dial := func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil }
	for _, tc := range []struct {
		cfg  tidepool.Config[*fakeConn]
		want string
	}{
		{tidepool.Config[*fakeConn]{}, "Dial"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxSize: -1}, "MaxSize = -1"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxSize: 2, MinIdle: 3}, "MinIdle = 3"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxSize: 4, MinIdle: 2, MaxIdle: 1}, "MaxIdle = 1"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxSize: 4, MaxIdle: 5}, "MaxIdle = 5"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxSize: 8, SizeCeiling: 4}, "SizeCeiling = 4"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxLifetime: time.Second, MaxLifetimeJitter: time.Minute}, "MaxLifetimeJitter = 1m0s"},
		{tidepool.Config[*fakeConn]{Dial: dial, MaxIdleTime: -time.Second}, "MaxIdleTime = -1s"},
		{tidepool.Config[*fakeConn]{Dial: dial, DialBackoff: time.Minute, DialBackoffMax: time.Second}, "DialBackoffMax = 1s"},
	} {
		_, err := tidepool.New(context.Background(), tc.cfg)
		if !errors.Is(err, tidepool.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s case): err = %v, want ErrInvalidConfig naming %q", tc.want, err, tc.want)
		}
	}
}

func TestInvalidResizeIsRefusedAndChangesNothing(t *testing.T) {
	b := newBackend()
	cfg := b.config()
	cfg.SizeCeiling = 16
	p := newPool(t, cfg)
	defer closePool(t, p)
	before := p.Stats()
	for _, tc := range []struct {
		min, max int
		want     string
	}{
		{0, -1, "max = -1"}, {0, -3, "max = -3"}, {0, 17, "max = 17"}, {-1, 4, "min = -1"}, {5, 4, "min = 5"},
		{1, 0, "min = 1"},
	} {
		err := p.Resize(tc.min, tc.max)
		if !errors.Is(err, tidepool.ErrInvalidResize) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resize(%d, %d): %v, want ErrInvalidResize naming %q", tc.min, tc.max, err, tc.want)
		}
	}
	after := p.Stats()
	if after.MaxSize != before.MaxSize || after.MinIdle != before.MinIdle || after.Resizes != 0 {
		t.Fatalf("refused resizes changed the pool: %+v -> %+v", before, after)
	}
}

// Resize(0, 0) is a pool that holds nothing: idle connections close, nothing
// is dialed, Acquires wait; a grow serves them.
func TestResizeToZeroHoldsNothingUntilItGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := poolOfSize(t, 2)
		mustAcquire(t, p).Release()
		if err := p.Resize(0, 0); err != nil {
			t.Fatalf("Resize(0, 0): %v", err)
		}
		synctest.Wait()
		if s := p.Stats(); s.Slots != 0 || s.MaxSize != 0 || b.live() != 0 {
			t.Fatalf("after Resize(0, 0): slots=%d max=%d backend=%d, want 0 0 0", s.Slots, s.MaxSize, b.live())
		}
		got := make(chan error, 1)
		go func() {
			h, err := p.Acquire(context.Background())
			if err == nil {
				h.Release()
			}
			got <- err
		}()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := b.dials.Load(); n != 1 {
			t.Fatalf("a pool of max 0 dialed: %d dials", n)
		}
		if err := p.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("Acquire waiting through max 0 and a grow: %v", err)
		}
		closePool(t, p)
	})
}

func TestNewFailsWithDialErrorWhenWarmingFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		b.down.Store(true)
		cfg := b.config()
		cfg.MinIdle = 2
		_, err := tidepool.New(context.Background(), cfg)
		if !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errBackendDown) {
			t.Fatalf("New with the backend down: %v, want ErrDial wrapping the dial error", err)
		}
	})
}

// The hot path — an idle connection is there — allocates nothing.
func TestAcquireReleaseOfIdleConnAllocatesNothing(t *testing.T) {
	b := newBackend()
	p := newPool(t, b.config())
	defer closePool(t, p)
	mustAcquire(t, p).Release()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
	})
	if allocs != 0 {
		t.Fatalf("Acquire+Release of an idle connection: %v allocs/op, want 0", allocs)
	}
}

// Dials that were in flight together when the backend died count as one
// failure for the backoff: the next attempt comes after DialBackoff, not after
// DialBackoffMax.
func TestSimultaneousDialFailuresCountOnceForBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		b.gate = make(chan struct{})
		cfg := b.config()
		cfg.DialBackoff = 100 * time.Millisecond
		cfg.DialBackoffMax = time.Minute
		p := newPool(t, cfg)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := p.Acquire(context.Background())
				errs <- err
			}()
		}
		synctest.Wait()
		if d := b.dialing.Load(); d != 4 {
			t.Fatalf("%d dials in flight, want 4", d)
		}
		b.down.Store(true)
		for range 4 {
			b.gate <- struct{}{}
		}
		for range 4 {
			if err := <-errs; !errors.Is(err, tidepool.ErrDial) {
				t.Fatalf("waiter: %v, want ErrDial", err)
			}
		}
		b.down.Store(false)
		close(b.gate)
		time.Sleep(151 * time.Millisecond) // past DialBackoff with +50% jitter
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire one backoff after 4 simultaneous failures: %v (the backoff grew as if they were 4 in a row)", err)
		}
		h.Release()
		closePool(t, p)
	})
}

// Close whose context is already over, with nothing held, closes everything
// and reports no error: nobody's connection was taken from them.
func TestCloseWithExpiredContextAndNothingHeldIsClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend()
		cfg := b.config()
		cfg.MinIdle = 2
		p := newPool(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close with a done context and no holders: %v, want nil", err)
		}
		b.checkClosedOnce(t)
	})
}
