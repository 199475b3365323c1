package tidepool_test

// The smaller features of issue 10: context values in Dial, MaxWaiters,
// AcquireAllIdle, DialIdle, IdleDuration and LastUsed, WarmInBackground, and
// bounds as large as MaxInt32.

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

// --- Context values reach Dial ---

// A value in the Acquire's context is visible in the context of the dial
// started for it (and of AfterConnect), while that context's cancellation is
// the pool's: it has DialTimeout's deadline, not the Acquire's.
// DialIdle's context values reach Dial as an Acquire's do (puddle's
// CreateResource passes its ctx); its cancellation does not.
func TestDialIdleContextValuesReachDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		var saw atomic.Value
		cfg.Dial = func(ctx context.Context) (*simConn, error) {
			if v := ctx.Value(tenantKey{}); v != nil {
				saw.Store(v)
			}
			return db.dial(ctx)
		}
		p, _ := simPool(t, cfg)
		ctx := context.WithValue(context.Background(), tenantKey{}, "tenant-7")
		if err := p.DialIdle(ctx); err != nil {
			t.Fatal(err)
		}
		if v := saw.Load(); v != "tenant-7" {
			t.Errorf("Dial saw %v, want DialIdle's value tenant-7", v)
		}
		db.shutBy(t, p)
	})
}

func TestAcquireContextValuesReachDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.DialTimeout = 30 * time.Second
		var mu sync.Mutex
		var dialSaw, connectSaw []any
		var dialDeadline time.Time
		cfg.Dial = func(ctx context.Context) (*simConn, error) {
			mu.Lock()
			dialSaw = append(dialSaw, ctx.Value(tenantKey{}))
			dialDeadline, _ = ctx.Deadline()
			mu.Unlock()
			return db.dial(ctx)
		}
		cfg.AfterConnect = func(ctx context.Context, c *simConn) error {
			mu.Lock()
			connectSaw = append(connectSaw, ctx.Value(tenantKey{}))
			mu.Unlock()
			return nil
		}
		p, _ := simPool(t, cfg)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), tenantKey{}, "tenant-42"), time.Second)
		h, err := p.Acquire(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
		mu.Lock()
		defer mu.Unlock()
		if len(dialSaw) != 1 || dialSaw[0] != "tenant-42" || len(connectSaw) != 1 || connectSaw[0] != "tenant-42" {
			t.Errorf("Dial saw %v and AfterConnect %v, want the Acquire's value tenant-42 in both", dialSaw, connectSaw)
		}
		if want := start.Add(30 * time.Second); !dialDeadline.Equal(want) {
			t.Errorf("dial deadline %v after start, want DialTimeout's (30s), not the Acquire's (1s)", dialDeadline.Sub(start))
		}
		db.shutBy(t, p)
	})
}

// Cancelling the Acquire a dial was started for does not cancel the dial:
// its context stays live, it completes, and its connection serves the next
// waiter.
func TestCancellingTheAcquireDoesNotCancelItsDialWhichServesTheNextWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		var dialErr atomic.Value
		cfg.Dial = func(ctx context.Context) (*simConn, error) {
			time.Sleep(5 * time.Second)
			if err := ctx.Err(); err != nil {
				dialErr.Store(err)
			}
			if ctx.Value(tenantKey{}) != "first" {
				t.Errorf("dial's context value %v, want the first Acquire's", ctx.Value(tenantKey{}))
			}
			return db.dial(ctx)
		}
		p, _ := simPool(t, cfg)
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), tenantKey{}, "first"))
		first := make(chan error)
		go func() {
			_, err := p.Acquire(ctx)
			first <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
		}
		start := time.Now()
		h, c := take(t, p) // the next waiter: served by the same dial
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("next waiter served after %v, want 5s (the rest of the first dial)", took)
		}
		if err := dialErr.Load(); err != nil {
			t.Errorf("the dial's context ended (%v) when its Acquire was cancelled", err)
		}
		if st := p.Stats(); st.Dials != 1 || st.DialErrors != 0 || c.id != 1 {
			t.Errorf("dials=%d dial_errors=%d conn=%d, want the one dial's connection", st.Dials, st.DialErrors, c.id)
		}
		give(h)
		db.shutBy(t, p)
	})
}

// Close cancels a dial in flight: a Dial that waits for its context returns
// at once, its failure is the pool's doing (not counted as a dial error), and
// Close returns cleanly.
func TestCloseCancelsADialInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.hang.Store(true)
		cfg := db.config()
		cfg.DialTimeout = time.Hour
		p, logs := simPool(t, cfg)
		waiter := make(chan error)
		go func() {
			_, err := p.Acquire(context.Background())
			waiter <- err
		}()
		synctest.Wait()
		if st := p.Stats(); st.Dialing != 1 {
			t.Fatalf("dialing=%d, want the waiter's dial in flight", st.Dialing)
		}
		start := time.Now()
		if err := p.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Close took %v with a dial in flight, want it cancelled at once", took)
		}
		if err := <-waiter; !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("waiter: %v, want ErrClosed", err)
		}
		if db.dialFailures.Load() != 1 {
			t.Errorf("the hanging dial did not see its context end")
		}
		if st := p.Stats(); st.DialErrors != 0 || st.Slots != 0 || logs.FilterMessage("conn.dial_failed").Len() != 0 {
			t.Errorf("dial_errors=%d slots=%d dial_failed entries=%d, want 0 0 0: a dial Close cancelled is not the backend's failure",
				st.DialErrors, st.Slots, logs.FilterMessage("conn.dial_failed").Len())
		}
	})
}

// --- MaxWaiters ---

// Beyond MaxWaiters waiting Acquires, Acquire fails at once with
// ErrTooManyWaiters; each is counted in Stats.RejectedAcquires, and
// acquire.rejected is logged once per burst: a burst ends when an Acquire can
// wait again.
func TestMaxWaitersRejectsAtOnceCountsEachAndLogsOncePerBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize, cfg.MaxWaiters = 1, 2
		p, logs := simPool(t, cfg)
		held, _ := take(t, p)

		served := make(chan tidepool.Conn[*simConn], 3)
		wait := func() {
			go func() {
				h, _, err := acquire(t, p)
				if err != nil {
					t.Errorf("waiter within MaxWaiters: %v", err)
				}
				served <- h
			}()
			synctest.Wait()
		}
		reject := func(n int) {
			t.Helper()
			for range n {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				h, err := p.Acquire(ctx)
				cancel()
				if err == nil {
					give(h)
				}
				if !errors.Is(err, tidepool.ErrTooManyWaiters) || time.Since(start) != 0 {
					t.Errorf("Acquire beyond MaxWaiters: %v after %v, want ErrTooManyWaiters at once", err, time.Since(start))
				}
			}
		}

		wait()
		wait()
		reject(3)
		st := p.Stats()
		if st.Waiting != 2 || st.RejectedAcquires != 3 {
			t.Errorf("waiting=%d rejected=%d, want 2 3", st.Waiting, st.RejectedAcquires)
		}
		if n := logs.FilterMessage("acquire.rejected").Len(); n != 1 {
			t.Errorf("%d acquire.rejected entries for one burst of 3, want 1", n)
		}

		give(held) // the oldest waiter is served: room for one more
		h := <-served
		wait() // the burst is over
		reject(2)
		es := logs.FilterMessage("acquire.rejected").All()
		if len(es) != 2 || p.Stats().RejectedAcquires != 5 {
			t.Errorf("%d acquire.rejected entries and %d rejected after two bursts, want 2 and 5", len(es), p.Stats().RejectedAcquires)
		}
		if len(es) > 0 && es[0].ContextMap()["max_waiters"] != int64(2) {
			t.Errorf("acquire.rejected fields %v, want max_waiters=2", es[0].ContextMap())
		}
		give(h)
		give(<-served)
		give(<-served)
		if st := p.Stats(); st.CanceledAcquires != 0 {
			t.Errorf("rejected Acquires counted as cancelled: %d", st.CanceledAcquires)
		}
		db.shutBy(t, p)
	})
}

// --- AcquireAllIdle ---

// AcquireAllIdle hands out every idle connection — none of the held ones,
// none after Close — running BeforeAcquire on each (a veto retires it), and
// each handle is released like any other.
func TestAcquireAllIdleTakesEveryIdleConnRunningBeforeAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 6 // no MinIdle: nothing refills what AcquireAllIdle takes
		var veto sync.Map
		var calls atomic.Int64
		cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
			calls.Add(1)
			_, no := veto.Load(c)
			return !no
		}
		p, _ := simPool(t, cfg)
		for range 4 {
			if err := p.DialIdle(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		held, hc := take(t, p)
		for _, c := range db.all() {
			if c != hc {
				veto.Store(c, true)
				break
			}
		}
		calls.Store(0)

		all := p.AcquireAllIdle(context.Background())
		if len(all) != 2 || calls.Load() != 3 {
			t.Fatalf("AcquireAllIdle with 3 idle (one vetoed): got %d, BeforeAcquire ran %d times; want 2 and 3", len(all), calls.Load())
		}
		seen := map[*simConn]bool{}
		for _, h := range all {
			c := mark(t, h)
			if c == hc || seen[c] {
				t.Errorf("AcquireAllIdle returned conn %d twice or the held one", c.id)
			}
			seen[c] = true
		}
		synctest.Wait()
		if st := p.Stats(); st.Idle != 0 || st.InUse != 3 || st.Closed.Vetoed != 1 {
			t.Errorf("after AcquireAllIdle: idle=%d in_use=%d vetoed=%d, want 0 3 1", st.Idle, st.InUse, st.Closed.Vetoed)
		}
		if again := p.AcquireAllIdle(context.Background()); len(again) != 0 {
			t.Errorf("second AcquireAllIdle got %d, want none left", len(again))
		}
		for _, h := range all {
			give(h)
		}
		give(held)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 3 || st.InUse != 0 {
			t.Errorf("after releasing them: idle=%d in_use=%d, want 3 0", st.Idle, st.InUse)
		}
		db.shutBy(t, p)
		if got := p.AcquireAllIdle(context.Background()); len(got) != 0 {
			t.Errorf("AcquireAllIdle after Close got %d, want none", len(got))
		}
	})
}

// --- DialIdle ---

// DialIdle dials one connection into the idle set and returns nil; it fails
// at once with ErrExhausted at the max, with an error wrapping ErrDial (and
// the dial's) while the backend is down, and with ErrClosed after Close.
func TestDialIdleDialsIntoTheIdleSetOrSaysWhyNot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 2
		p, _ := simPool(t, cfg)
		ctx := context.Background()
		for i := 1; i <= 2; i++ {
			if err := p.DialIdle(ctx); err != nil {
				t.Fatalf("DialIdle #%d: %v", i, err)
			}
			synctest.Wait() // (that it is idle on return: TestDialIdleReturnsOnceItsConnIsThere)
			if st := p.Stats(); st.Idle != i || st.Dials != int64(i) {
				t.Errorf("after DialIdle #%d: idle=%d dials=%d, want %d %d", i, st.Idle, st.Dials, i, i)
			}
		}
		start := time.Now()
		if err := p.DialIdle(ctx); !errors.Is(err, tidepool.ErrExhausted) || time.Since(start) != 0 {
			t.Errorf("DialIdle at the max: %v after %v, want ErrExhausted at once", err, time.Since(start))
		}
		if len(db.all()) != 2 {
			t.Errorf("DialIdle at the max dialed")
		}

		p.Reset()
		synctest.Wait()
		db.down.Store(true)
		if err := p.DialIdle(ctx); !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errSimDown) {
			t.Errorf("DialIdle with the backend down: %v, want ErrDial wrapping the dial's error", err)
		}
		start = time.Now()
		attempts := len(db.dialAttempts())
		if err := p.DialIdle(ctx); !errors.Is(err, tidepool.ErrDial) || time.Since(start) != 0 || len(db.dialAttempts()) != attempts {
			t.Errorf("DialIdle while the pool backs off: %v after %v, %d dials; want ErrDial at once, without a dial",
				err, time.Since(start), len(db.dialAttempts())-attempts)
		}
		db.down.Store(false)
		time.Sleep(time.Minute)
		if err := p.DialIdle(ctx); err != nil {
			t.Errorf("DialIdle after the backend came back: %v", err)
		}
		db.shutBy(t, p)
		if err := p.DialIdle(ctx); !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("DialIdle after Close: %v, want ErrClosed", err)
		}
	})
}

// DialIdle returns nil once its connection is there: an Acquire or
// TryAcquire right after it finds it (warming before a burst). A DialIdle
// that returned before its connection reached the idle set would send the
// burst's first TryAcquire away with ErrExhausted. (The race shows only with
// GOMAXPROCS ≥ 2: with one P the loop finishes its pass before the caller
// runs.)
func TestDialIdleReturnsOnceItsConnIsThere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		p, _ := simPool(t, cfg)
		ctx := context.Background()
		missed := 0
		for range 1000 {
			if err := p.DialIdle(ctx); err != nil {
				t.Fatalf("DialIdle: %v", err)
			}
			h, err := p.TryAcquire(ctx)
			if err != nil {
				missed++
				synctest.Wait()
				if h, err = p.TryAcquire(ctx); err != nil {
					t.Fatalf("TryAcquire after DialIdle settled: %v", err)
				}
			}
			h.Destroy()
			synctest.Wait() // its slot is free again
		}
		if missed != 0 {
			t.Errorf("in %d of 1000 rounds, TryAcquire right after DialIdle returned nil found no idle connection", missed)
		}
		db.shutBy(t, p)
	})
}

// --- IdleDuration and LastUsed ---

// IdleDuration grows while the connection sits idle and starts again from
// zero at each release; LastUsed is the last release (or the dial). Both are
// within 5 ms, the coarse clock's resolution.
func TestIdleDurationGrowsWhileIdleAndRestartsAtRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, _ := simPool(t, db.config())
		const res = 5 * time.Millisecond
		near := func(what string, got, want time.Duration) {
			t.Helper()
			if got < want-res || got > want+res {
				t.Errorf("%s = %v, want %v within %v", what, got, want, res)
			}
		}
		time.Sleep(time.Second) // the pool's clock is not at zero

		dialed := time.Now()
		h, _ := take(t, p)
		near("IdleDuration of a new connection", h.IdleDuration(), 0)
		time.Sleep(3 * time.Second)
		near("IdleDuration while held, unreleased since its dial", h.IdleDuration(), 3*time.Second)
		near("LastUsed of a new connection (its dial)", h.LastUsed().Sub(dialed), 0)
		give(h)
		released := time.Now()

		time.Sleep(7*time.Second + 2*time.Millisecond)
		h, _ = take(t, p)
		near("IdleDuration after 7.002s idle", h.IdleDuration(), 7*time.Second+2*time.Millisecond)
		near("LastUsed", h.LastUsed().Sub(released), 0)
		give(h)

		h, _ = take(t, p) // released a moment ago
		near("IdleDuration right after a release", h.IdleDuration(), 0)
		give(h)
		time.Sleep(3 * time.Millisecond)
		h, _ = take(t, p)
		if d := h.IdleDuration(); d > res {
			t.Errorf("IdleDuration after 3ms idle = %v, want at most the %v resolution", d, res)
		}
		give(h)
		db.shutBy(t, p)
	})
}

// --- WarmInBackground ---

// With WarmInBackground, New returns at once even with the backend down; the
// pool dials MinIdle connections in the background (Stats shows the
// progress) and logs pool.warmed once, when they are there.
func TestWarmInBackgroundNewReturnsAtOnceWithTheBackendDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.down.Store(true)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 2, 4
		cfg.WarmInBackground = true
		start := time.Now()
		p, logs := simPool(t, cfg)
		if took := time.Since(start); took != 0 {
			t.Errorf("New with WarmInBackground took %v, want at once", took)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 0 || st.DialErrors == 0 || logs.FilterMessage("pool.warmed").Len() != 0 {
			t.Errorf("backend down: idle=%d dial_errors=%d warmed=%d, want 0, some, 0", st.Idle, st.DialErrors, logs.FilterMessage("pool.warmed").Len())
		}
		db.down.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		es := logs.FilterMessage("pool.warmed").All()
		if st := p.Stats(); st.Idle != 2 || len(es) != 1 || es[0].ContextMap()["min_idle"] != int64(2) {
			t.Errorf("backend back: idle=%d, pool.warmed entries %v; want 2 and one with min_idle=2", st.Idle, es)
		}
		// Losing and refilling connections later is no new warm-up.
		h, _ := take(t, p)
		h.Value().held.Store(false)
		h.Destroy()
		p.Reset()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := logs.FilterMessage("pool.warmed").Len(); n != 1 {
			t.Errorf("%d pool.warmed entries after refills, want still 1", n)
		}
		db.shutBy(t, p)
	})
}

// --- Large bounds ---

// MaxSize = MaxInt32 ("no bound", as pgxpool users write it) works, and such
// a pool costs what a pool of 8 costs: memory grows with live connections,
// not with the bound.
func TestMaxInt32BoundCostsWhatASmallBoundCosts(t *testing.T) {
	cost := func(maxSize int) uint64 {
		best := uint64(math.MaxUint64)
		for range 5 {
			b := newBackend()
			cfg := b.config()
			cfg.MaxSize, cfg.MinIdle = maxSize, 2
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			p := newPool(t, cfg)
			for range 8 {
				mustAcquire(t, p).Release()
			}
			runtime.ReadMemStats(&m1)
			closePool(t, p)
			best = min(best, m1.TotalAlloc-m0.TotalAlloc)
		}
		return best
	}
	small, huge := cost(8), cost(math.MaxInt32)
	t.Logf("bytes allocated by New and 8 hand-outs: MaxSize 8: %d, MaxSize MaxInt32: %d", small, huge)
	if huge > small+small/2 {
		t.Errorf("a pool bounded at MaxInt32 allocated %d bytes, a pool of 8 %d: memory must not scale with the bound", huge, small)
	}

	b := newBackend()
	cfg := b.config()
	cfg.MaxSize = math.MaxInt32
	p := newPool(t, cfg)
	defer closePool(t, p)
	if st := p.Stats(); st.MaxSize != math.MaxInt32 || st.SizeCeiling != math.MaxInt32 {
		t.Errorf("max_size=%d size_ceiling=%d, want MaxInt32 for both", st.MaxSize, st.SizeCeiling)
	}
	var hs []tidepool.Conn[*fakeConn]
	for range 50 {
		hs = append(hs, mustAcquire(t, p))
	}
	for _, h := range hs {
		h.Release()
	}
	if err := p.Resize(1, math.MaxInt32); err != nil {
		t.Errorf("Resize(1, MaxInt32): %v", err)
	}
	cfg.MaxSize = math.MaxInt32 + 1
	if _, err := tidepool.New(context.Background(), cfg); !errors.Is(err, tidepool.ErrInvalidConfig) {
		t.Errorf("New with MaxSize above MaxInt32: %v, want ErrInvalidConfig", err)
	}
}

type newCtxKey struct{}

// The pool's own dials (MinIdle warm-up and refills) carry New's context
// values, as an Acquire's dial carries the Acquire's, but not its
// cancellation. (Found by pgx's pgxpool suite run through an adapter.)
func TestNewContextValuesReachThePoolsOwnDials(t *testing.T) {
	for _, background := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), newCtxKey{}, "from New"))
		seen := make(chan any, 8)
		p, err := tidepool.New(ctx, tidepool.Config[int]{
			Dial: func(dctx context.Context) (int, error) {
				seen <- dctx.Value(newCtxKey{})
				return 1, nil
			},
			MinIdle: 1, MaxSize: 2, WarmInBackground: background,
		})
		if err != nil {
			t.Fatal(err)
		}
		if v := <-seen; v != "from New" {
			t.Errorf("WarmInBackground=%v: the warm-up dial saw %v, want New's value", background, v)
		}
		cancel() // New's cancellation does not reach later dials
		h, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h.Destroy() // the MinIdle refill dials again
		if v := <-seen; v != "from New" {
			t.Errorf("WarmInBackground=%v: the refill dial saw %v, want New's value", background, v)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// An idle connection whose lifetime ends while its health check runs is
// retired as soon as the check ends, not a second later. (Found by pgx's
// pgxpool suite run through an adapter.)
func TestLifetimeEndingDuringACheckRetiresAtTheCheckEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lifetime = 100 * time.Millisecond
		p, err := tidepool.New(context.Background(), tidepool.Config[int]{
			Dial: func(ctx context.Context) (int, error) { return 1, nil },
			// The check straddles the lifetime's end: it starts at 81–99 ms
			// (90 ms ± 10 % jitter) and takes 20 ms.
			Check: func(ctx context.Context, v int) error {
				time.Sleep(20 * time.Millisecond)
				return nil
			},
			HealthInterval:    90 * time.Millisecond,
			MaxLifetime:       lifetime,
			MaxLifetimeJitter: 1,
			MinIdle:           1,
			MaxSize:           1,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Close(context.Background()) }()
		time.Sleep(lifetime + 50*time.Millisecond)
		synctest.Wait()
		if s := p.Stats(); s.Closed.Lifetime == 0 {
			t.Errorf("50 ms after its lifetime ended (a check straddled it), the idle connection is still there: Idle %d, Closed.Lifetime %d", s.Idle, s.Closed.Lifetime)
		}
	})
}
