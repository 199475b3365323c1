package tidepool_test

// Reset: every connection alive at the Reset retires — idle ones at once,
// held ones on release, dials in flight when they land, ones under a health
// check when it ends — and fresh dials replace them.

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

// dialClock wraps db's Dial to record when each connection's dial started.
type dialClock struct {
	mu      sync.Mutex
	started map[*simConn]time.Time
}

func (d *dialClock) wrap(db *simDB) func(context.Context) (*simConn, error) {
	d.started = map[*simConn]time.Time{}
	return func(ctx context.Context) (*simConn, error) {
		start := time.Now()
		c, err := db.dial(ctx)
		if err == nil {
			d.mu.Lock()
			d.started[c] = start
			d.mu.Unlock()
		}
		return c, err
	}
}

func (d *dialClock) of(c *simConn) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started[c]
}

func TestResetRetiresIdleAtOnceHeldOnReleaseAndDialsInFlightWhenTheyLand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 2, 8
		var clock dialClock
		cfg.Dial = clock.wrap(db)
		p, logs := simPool(t, cfg)

		// Two held, one idle, one MinIdle dial in flight (10 s).
		h1, c1 := take(t, p)
		time.Sleep(time.Second) // the maintenance pass tops MinIdle up
		synctest.Wait()
		db.dialTime.Store(int64(10 * time.Second))
		h2, c2 := take(t, p)
		time.Sleep(time.Second)
		synctest.Wait()
		st := p.Stats()
		if st.Idle != 1 || st.InUse != 2 || st.Dialing != 1 {
			t.Fatalf("before Reset: idle=%d in_use=%d dialing=%d, want 1 2 1", st.Idle, st.InUse, st.Dialing)
		}
		alive := db.all()
		var idle *simConn
		for _, c := range alive {
			if c != c1 && c != c2 {
				idle = c
			}
		}

		resetAt := time.Now()
		p.Reset()
		if n := p.Stats().Resets; n != 1 {
			t.Errorf("Stats.Resets = %d once Reset returned, want 1", n)
		}
		synctest.Wait()
		if idle.closes.Load() != 1 || c1.closes.Load() != 0 || c2.closes.Load() != 0 {
			t.Errorf("after Reset: idle conn closes=%d, held conns closes=%d %d; want the idle one closed at once, the held ones not",
				idle.closes.Load(), c1.closes.Load(), c2.closes.Load())
		}
		es := logs.FilterMessage("pool.reset").All()
		if len(es) != 1 {
			t.Fatalf("%d pool.reset entries, want 1", len(es))
		}
		f := es[0].ContextMap()
		if f["idle_retired"] != int64(1) || f["held_doomed"] != int64(2) || f["dials_doomed"] != int64(1) {
			t.Errorf("pool.reset fields %v, want idle_retired=1 held_doomed=2 dials_doomed=1", f)
		}

		give(h1)
		give(h2)
		synctest.Wait()
		if c1.closes.Load() != 1 || c2.closes.Load() != 1 {
			t.Errorf("held conns released after Reset: closes=%d %d, want both retired on release", c1.closes.Load(), c2.closes.Load())
		}
		time.Sleep(10 * time.Second) // the dial in flight at the Reset was cancelled
		synctest.Wait()
		if n := retired(logs, "reset"); n != 3 {
			t.Errorf("%d conn.retired entries with reason reset, want 3 (1 idle, 2 held; the dial in flight was cancelled)", n)
		}
		if st := p.Stats(); st.Closed.Reset != 3 || st.DialErrors != 0 {
			t.Errorf("Stats.Closed.Reset = %d, DialErrors = %d; want 3 and 0 (a cancelled dial is not the backend's failure)",
				st.Closed.Reset, st.DialErrors)
		}

		time.Sleep(time.Minute) // MinIdle refills with fresh connections
		synctest.Wait()
		if st := p.Stats(); st.Idle != 2 {
			t.Errorf("after the refill: idle=%d, want MinIdle=2", st.Idle)
		}
		db.dialTime.Store(0)
		var hs []tidepool.Conn[*simConn]
		for range 4 {
			h, c := take(t, p)
			if clock.of(c).Before(resetAt) {
				t.Errorf("conn %d, dialed at %v before the Reset at %v, handed out after it", c.id, clock.of(c), resetAt)
			}
			hs = append(hs, h)
		}
		for _, h := range hs {
			give(h)
		}
		for _, c := range alive {
			if c.closes.Load() != 1 {
				t.Errorf("conn %d alive at the Reset closed %d times, want 1", c.id, c.closes.Load())
			}
		}
		db.shutBy(t, p)
	})
}

// A connection under its background health check at the Reset is retired
// when the check ends, even if the check passes; it is never handed out.
func TestResetRetiresAConnUnderCheckWhenTheCheckEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 1, 2
		cfg.Check, cfg.HealthInterval = db.check, time.Second
		inCheck := make(chan struct{})
		pass := make(chan struct{})
		var once sync.Once
		db.onCheck = func(ctx context.Context, c *simConn) error {
			once.Do(func() {
				close(inCheck)
				<-pass
			})
			return nil
		}
		p, logs := simPool(t, cfg)
		first := db.all()[0]
		<-inCheck
		p.Reset()
		close(pass)
		synctest.Wait()
		if first.closes.Load() != 1 || retired(logs, "reset") != 1 {
			t.Errorf("conn under check at the Reset: closes=%d retired(reset)=%d, want 1 1", first.closes.Load(), retired(logs, "reset"))
		}
		h, c := take(t, p)
		if c == first {
			t.Errorf("the connection under check at the Reset was handed out after it")
		}
		give(h)
		db.shutBy(t, p)
	})
}

// Under load — goroutines acquiring, releasing, destroying — no Acquire that
// starts after Reset returned gets a connection whose dial started before
// Reset was called.
func TestNoConnectionAliveAtTheResetIsHandedOutAfterIt(t *testing.T) {
	b := newBackend()
	cfg := b.config()
	cfg.MinIdle, cfg.MaxSize = 2, 4
	var epoch atomic.Int64 // 0 before the Reset, 1 from just before it
	var epochs sync.Map    // *fakeConn → epoch at its dial's start
	cfg.Dial = func(ctx context.Context) (*fakeConn, error) {
		e := epoch.Load()
		c, err := b.dial(ctx)
		if err == nil {
			epochs.Store(c, e)
		}
		return c, err
	}
	p := newPool(t, cfg)

	var resetDone, stop atomic.Bool
	var acquires atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for !stop.Load() {
				after := resetDone.Load()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				h, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				acquires.Add(1)
				if e, _ := epochs.Load(h.Value()); after && e != int64(1) {
					t.Errorf("conn %d dialed before the Reset handed out by an Acquire that started after it", h.Value().id)
				}
				switch rng.IntN(10) {
				case 0:
					h.Destroy()
				default:
					h.Release()
				}
			}
		})
	}
	for acquires.Load() < 2000 {
		runtime.Gosched()
	}
	epoch.Store(1)
	p.Reset()
	resetDone.Store(true)
	for n := acquires.Load(); acquires.Load() < n+2000; {
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	closePool(t, p)
	b.checkClosedOnce(t)
	// (Closed.Reset may be 0: at the Reset every connection may have been
	// on its way out already, destroyed by its holder.)
	if st := p.Stats(); st.Resets != 1 {
		t.Errorf("Resets=%d, want 1", st.Resets)
	}
}

// After Close, Reset does nothing: no count, no log entry.
func TestResetAfterCloseDoesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, logs := simPool(t, db.config())
		db.shutBy(t, p)
		p.Reset()
		if n := p.Stats().Resets; n != 0 || logs.FilterMessage("pool.reset").Len() != 0 {
			t.Errorf("Reset after Close: Resets=%d, %d pool.reset entries; want nothing", n, logs.FilterMessage("pool.reset").Len())
		}
	})
}

// Reset is for a backend that moved (failover, DNS): a dial in flight to the
// old address may hang until DialTimeout. An Acquire after the Reset must not
// wait for that dial — the Reset doomed it, its connection would be retired
// on landing — but get a fresh dial of its own; and the doomed dial's
// timeout is not the new backend's failure.
func TestAcquireAfterResetDoesNotWaitForADialTheResetDoomed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 4
		cfg.DialTimeout = 10 * time.Second
		var oldAddress atomic.Bool
		oldAddress.Store(true)
		cfg.Dial = func(ctx context.Context) (*simConn, error) {
			if oldAddress.Load() {
				<-ctx.Done() // the old backend is gone: the dial hangs until its timeout
				return nil, ctx.Err()
			}
			return db.dial(ctx)
		}
		p, logs := simPool(t, cfg)
		if _, err := p.TryAcquire(context.Background()); !errors.Is(err, tidepool.ErrExhausted) {
			t.Fatalf("TryAcquire on an empty pool: %v", err)
		}
		synctest.Wait()
		if st := p.Stats(); st.Dialing != 1 {
			t.Fatalf("dialing=%d, want TryAcquire's background dial to the old address in flight", st.Dialing)
		}

		oldAddress.Store(false) // DNS now points at the new backend
		p.Reset()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, err := p.Acquire(ctx)
		cancel()
		if err != nil {
			t.Errorf("Acquire after Reset, with a doomed dial hanging: %v after %v; want a fresh dial at once", err, time.Since(start))
		} else {
			mark(t, h)
			give(h)
		}
		time.Sleep(time.Minute) // the doomed dial times out
		synctest.Wait()
		if st := p.Stats(); st.DialErrors != 0 || logs.FilterMessage("conn.dial_failed").Len() != 0 {
			t.Errorf("dial_errors=%d, %d conn.dial_failed entries: the dial the Reset doomed counted as the backend's failure",
				st.DialErrors, logs.FilterMessage("conn.dial_failed").Len())
		}
		h, _ = take(t, p)
		give(h)
		db.shutBy(t, p)
	})
}

// DialIdle whose dial a Reset overtakes: the pool had room, so its answer is
// not ErrExhausted (which DialIdle's doc reserves for a pool at its max); the
// caller wanted a warm connection, and gets one dialed after the Reset.
func TestDialIdleAcrossAResetDoesNotReportExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(time.Second))
		cfg := db.config()
		var clock dialClock
		cfg.Dial = clock.wrap(db)
		p, _ := simPool(t, cfg)
		errc := make(chan error)
		go func() { errc <- p.DialIdle(context.Background()) }()
		synctest.Wait()
		resetAt := time.Now()
		p.Reset()
		err := <-errc
		if errors.Is(err, tidepool.ErrExhausted) {
			t.Errorf("DialIdle across a Reset, with 7 of 8 slots free: %v; ErrExhausted means the pool is at its max", err)
		}
		synctest.Wait()
		if err == nil {
			h, c := take(t, p)
			if clock.of(c).Before(resetAt) {
				t.Errorf("DialIdle returned nil; the idle connection was dialed before the Reset")
			}
			give(h)
		}
		db.shutBy(t, p)
	})
}

// A dial that a Reset cancelled but that ignores its context and connects
// anyway is retired at once (reason reset), never handed out, and counts as
// no failure; a waiter meanwhile gets a dial of its own.
func TestResetCancelledDialThatConnectsAnywayIsRetiredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 2
		var first atomic.Bool
		first.Store(true)
		var stale atomic.Pointer[simConn]
		cfg.Dial = func(ctx context.Context) (*simConn, error) {
			if first.CompareAndSwap(true, false) {
				time.Sleep(5 * time.Second) // deaf to its context
				c, err := db.dial(context.Background())
				stale.Store(c)
				return c, err
			}
			return db.dial(ctx)
		}
		cfg.DialTimeout = time.Minute
		p, logs := simPool(t, cfg)
		if _, err := p.TryAcquire(context.Background()); !errors.Is(err, tidepool.ErrExhausted) {
			t.Fatalf("TryAcquire on an empty pool: %v", err)
		}
		synctest.Wait()
		p.Reset()
		h, c := take(t, p) // served by a new dial, not the cancelled one
		if c == stale.Load() {
			t.Fatal("Acquire after Reset got the cancelled dial's connection")
		}
		time.Sleep(10 * time.Second) // the deaf dial connects
		synctest.Wait()
		if s := stale.Load(); s == nil || s.closes.Load() != 1 {
			t.Fatalf("the cancelled dial's connection: %v, want it closed once", s)
		}
		if st := p.Stats(); st.Closed.Reset != 1 || st.DialErrors != 0 || st.Slots != 1 {
			t.Errorf("closed(reset)=%d dial_errors=%d slots=%d, want 1 0 1", st.Closed.Reset, st.DialErrors, st.Slots)
		}
		if n := retired(logs, "reset"); n != 1 {
			t.Errorf("%d conn.retired entries with reason reset, want 1", n)
		}
		give(h)
		db.shutBy(t, p)
	})
}
