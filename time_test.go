package tidepool_test

// Time-based behaviour of the pool, each test run in a testing/synctest bubble:
// time is virtual, time.Sleep in the bubble returns as soon as every goroutine
// of the bubble is blocked, and synctest.Wait lets the pool's own goroutines
// (reconcile loop, watchers, dials, closes) settle. Every pool is created and
// closed inside its bubble, so the bubble ending proves that no goroutine of the
// pool outlived Close.

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
)

// simConn is a connection of simDB. Its flags let tests see, from inside Check
// and at every hand-out, who is using it.
type simConn struct {
	id       int64
	dialedAt time.Time
	closes   atomic.Int32
	checking atomic.Bool  // set for the duration of a Check
	held     atomic.Bool  // set by the test while it holds the connection
	checks   atomic.Int64 // Checks run on it
	closedAt atomic.Int64 // Unix ns of its Close, 0 if open
}

// simDB is a fake backend for synctest bubbles: counters, controllable
// failure, controllable dial duration, a Dial that can hang until its context
// ends, and a pluggable Check.
type simDB struct {
	t *testing.T

	down     atomic.Bool  // Dial fails with errSimDown
	hang     atomic.Bool  // Dial blocks until its ctx ends
	dialTime atomic.Int64 // virtual duration of a Dial, in ns (0: instant)
	next     atomic.Int64

	inFlight    atomic.Int64 // Dial calls running
	maxInFlight atomic.Int64 // most Dial calls running at once
	// Dials that started after the first failed Dial returned and before the
	// first Dial succeeded after it (the probe phase): the most in flight then.
	failedOnce     atomic.Bool
	recoveredOnce  atomic.Bool
	maxProbeFlight atomic.Int64
	dialFailures   atomic.Int64

	// onCheck, if set, decides a Check's result; it runs with c.checking set.
	onCheck func(ctx context.Context, c *simConn) error

	mu       sync.Mutex
	conns    []*simConn
	attempts []time.Time // start of every Dial call
}

var errSimDown = errors.New("simdb: connection refused")

func newSimDB(t *testing.T) *simDB { return &simDB{t: t} }

func raise(m *atomic.Int64, n int64) {
	for {
		o := m.Load()
		if n <= o || m.CompareAndSwap(o, n) {
			return
		}
	}
}

func (db *simDB) dial(ctx context.Context) (*simConn, error) {
	n := db.inFlight.Add(1)
	defer db.inFlight.Add(-1)
	raise(&db.maxInFlight, n)
	if db.failedOnce.Load() && !db.recoveredOnce.Load() {
		raise(&db.maxProbeFlight, n)
	}
	db.mu.Lock()
	db.attempts = append(db.attempts, time.Now())
	db.mu.Unlock()

	if db.hang.Load() {
		<-ctx.Done()
		db.dialFailures.Add(1)
		return nil, ctx.Err()
	}
	if d := time.Duration(db.dialTime.Load()); d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			db.dialFailures.Add(1)
			return nil, ctx.Err()
		}
	}
	if db.down.Load() {
		db.dialFailures.Add(1)
		db.failedOnce.Store(true)
		return nil, errSimDown
	}
	if db.failedOnce.Load() {
		db.recoveredOnce.Store(true)
	}
	c := &simConn{id: db.next.Add(1), dialedAt: time.Now()}
	db.mu.Lock()
	db.conns = append(db.conns, c)
	db.mu.Unlock()
	return c, nil
}

func (db *simDB) close(c *simConn) error {
	if c.held.Load() {
		db.t.Errorf("conn %d closed while the test holds it", c.id)
	}
	c.closedAt.CompareAndSwap(0, time.Now().UnixNano())
	c.closes.Add(1)
	return nil
}

func (db *simDB) check(ctx context.Context, c *simConn) error {
	if c.held.Load() {
		db.t.Errorf("conn %d checked while held", c.id)
	}
	if c.closes.Load() != 0 {
		db.t.Errorf("conn %d checked after close", c.id)
	}
	if !c.checking.CompareAndSwap(false, true) {
		db.t.Errorf("conn %d checked twice at once", c.id)
	}
	defer c.checking.Store(false)
	c.checks.Add(1)
	var err error
	if db.onCheck != nil {
		err = db.onCheck(ctx, c)
	}
	if c.held.Load() {
		db.t.Errorf("conn %d handed out during its check", c.id)
	}
	return err
}

// all returns every connection dialed so far.
func (db *simDB) all() []*simConn {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.conns)
}

func (db *simDB) dialAttempts() []time.Time {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.attempts)
}

func (db *simDB) config() tidepool.Config[*simConn] {
	return tidepool.Config[*simConn]{Dial: db.dial, Close: db.close, MaxSize: 4, Name: "sim"}
}

// simPool creates a pool inside the current bubble, with an observed logger.
func simPool(t *testing.T, cfg tidepool.Config[*simConn]) (*tidepool.Pool[*simConn], *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg.Logger = zap.New(core)
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// If the test stops early, still close the pool inside the bubble (forcing
	// held connections shut), so that the failure is reported, not a deadlock.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, logs
}

// shut closes p (every holder must have released) and checks that every
// connection db dialed was closed exactly once.
func (db *simDB) shut(t *testing.T, p *tidepool.Pool[*simConn]) {
	t.Helper()
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, c := range db.all() {
		if n := c.closes.Load(); n != 1 {
			t.Errorf("conn %d closed %d times, want 1", c.id, n)
		}
	}
}

// take acquires a connection within a minute and marks it held, failing t if
// the pool hands out a connection that is closed, under check or already held.
// Test goroutine only (it may call t.Fatal); other goroutines use acquire.
func take(t *testing.T, p *tidepool.Pool[*simConn]) (tidepool.Conn[*simConn], *simConn) {
	t.Helper()
	h, c, err := acquire(t, p)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h, c
}

// acquire is take for any goroutine: it returns the error instead.
func acquire(t *testing.T, p *tidepool.Pool[*simConn]) (tidepool.Conn[*simConn], *simConn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := p.Acquire(ctx)
	if err != nil {
		return h, nil, err
	}
	return h, mark(t, h), nil
}

func mark(t *testing.T, h tidepool.Conn[*simConn]) *simConn {
	t.Helper()
	c := h.Value()
	if c.closes.Load() != 0 {
		t.Errorf("Acquire handed out closed conn %d", c.id)
	}
	if c.checking.Load() {
		t.Errorf("Acquire handed out conn %d while its health check runs", c.id)
	}
	if !c.held.CompareAndSwap(false, true) {
		t.Errorf("Acquire handed out conn %d, which is already held", c.id)
	}
	return c
}

// give releases h, taken with take.
func give(h tidepool.Conn[*simConn]) {
	h.Value().held.Store(false)
	h.Release()
}

// retired counts "conn.retired" entries with the given reason.
func retired(logs *observer.ObservedLogs, reason string) int {
	n := 0
	for _, e := range logs.FilterMessage("conn.retired").All() {
		if e.ContextMap()["reason"] == reason {
			n++
		}
	}
	return n
}

// --- Lifetime ---

func TestLifetimeWithoutJitterRetiresExactlyAtMaxLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 2, 2
		cfg.MaxLifetime = 10 * time.Minute
		cfg.MaxLifetimeJitter = 1 // rand[0, 1ns) = 0: no jitter
		p, logs := simPool(t, cfg)

		time.Sleep(time.Hour)
		synctest.Wait()
		var n int
		for _, c := range db.all() {
			if at := c.closedAt.Load(); at != 0 {
				n++
				if age := time.Unix(0, at).Sub(c.dialedAt); age != cfg.MaxLifetime {
					t.Errorf("conn %d lived %v, want exactly %v", c.id, age, cfg.MaxLifetime)
				}
			}
		}
		// Two slots, each renewed every 10 minutes for an hour.
		if n != 12 {
			t.Errorf("%d conns retired in an hour, want 12", n)
		}
		st := p.Stats()
		if st.Closed.Lifetime != int64(n) || st.Closed.Total() != int64(n) {
			t.Errorf("Stats.Closed = %+v, want %d lifetime and nothing else", st.Closed, n)
		}
		if got := retired(logs, "lifetime"); got != n {
			t.Errorf("%d conn.retired entries with reason lifetime, want %d", got, n)
		}
		if st.Idle != 2 || st.Total != 2 {
			t.Errorf("after renewals Idle=%d Total=%d, want 2 and 2", st.Idle, st.Total)
		}
		db.shut(t, p)
	})
}

func TestLifetimeJitterSpreadsExpiryWithinWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 4, 4
		cfg.MaxLifetime = 10 * time.Minute
		cfg.MaxLifetimeJitter = 2 * time.Minute
		p, logs := simPool(t, cfg)
		first := db.all()
		if len(first) != 4 {
			t.Fatalf("New dialed %d conns, want 4", len(first))
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		lo, hi := time.Duration(1<<62), time.Duration(0)
		n := 0
		for _, c := range db.all() {
			at := c.closedAt.Load()
			if at == 0 {
				if age := time.Since(c.dialedAt); age > cfg.MaxLifetime {
					t.Errorf("open conn %d is %v old, past MaxLifetime %v", c.id, age, cfg.MaxLifetime)
				}
				continue
			}
			n++
			age := time.Unix(0, at).Sub(c.dialedAt)
			lo, hi = min(lo, age), max(hi, age)
			if age > cfg.MaxLifetime || age <= cfg.MaxLifetime-cfg.MaxLifetimeJitter {
				t.Errorf("conn %d lived %v, want in (%v, %v]", c.id, age,
					cfg.MaxLifetime-cfg.MaxLifetimeJitter, cfg.MaxLifetime)
			}
		}
		// Four slots renewed every 8–10 minutes for an hour: at least 6 each.
		if n < 24 {
			t.Errorf("%d conns retired in an hour, want at least 24", n)
		}
		if got := retired(logs, "lifetime"); got != n {
			t.Errorf("%d conn.retired entries with reason lifetime, want %d", got, n)
		}
		// Connections dialed together do not expire together.
		var ends []int64
		for _, c := range first {
			ends = append(ends, c.closedAt.Load())
		}
		slices.Sort(ends)
		if spread := time.Duration(ends[3] - ends[0]); spread <= 0 || slices.Contains(ends, 0) {
			t.Errorf("conns dialed together retired at %v (spread %v), want distinct times", ends, spread)
		}
		// n ≥ 24 uniform draws over a 2-minute window cover most of it.
		if hi-lo < time.Minute {
			t.Errorf("lifetimes span [%v, %v], want jitter to spread them over more than 1m", lo, hi)
		}
		t.Logf("%d lifetimes in [%v, %v]", n, lo, hi)
		db.shut(t, p)
	})
}

func TestHeldConnPastLifetimeRetiresOnReleaseAndIsNotReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 2
		cfg.MaxLifetime = 10 * time.Minute
		cfg.MaxLifetimeJitter = 1
		p, logs := simPool(t, cfg)

		h, old := take(t, p)
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		if old.closes.Load() != 0 {
			t.Fatal("held conn was closed under its holder")
		}
		if st := p.Stats(); st.InUse != 1 || st.Closed.Lifetime != 0 {
			t.Fatalf("while held past lifetime: InUse=%d Closed.Lifetime=%d, want 1 and 0", st.InUse, st.Closed.Lifetime)
		}
		give(h)
		synctest.Wait()
		if old.closes.Load() != 1 {
			t.Fatalf("conn past its lifetime not closed on release (closes=%d)", old.closes.Load())
		}
		if got := retired(logs, "lifetime"); got != 1 {
			t.Errorf("%d conn.retired entries with reason lifetime, want 1", got)
		}
		for range 20 {
			h, c := take(t, p)
			if c == old {
				t.Fatal("conn past its lifetime was handed out again")
			}
			time.Sleep(time.Second)
			give(h)
		}
		db.shut(t, p)
	})
}

func TestBusyPoolStillRetiresByLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		cfg.MaxLifetime = time.Minute
		cfg.MaxLifetimeJitter = 6 * time.Second
		p, _ := simPool(t, cfg)

		const hold = 100 * time.Millisecond
		start := time.Now()
		for time.Since(start) < 30*time.Minute {
			h, _ := take(t, p) // the only conn: never idle for any virtual time
			time.Sleep(hold)
			give(h)
		}
		synctest.Wait()
		st := p.Stats()
		// Lifetimes of 54–60s over 30 minutes: about 30 renewals.
		if st.Closed.Lifetime < 29 {
			t.Errorf("busy pool retired %d conns for lifetime in 30m, want at least 29", st.Closed.Lifetime)
		}
		for _, c := range db.all() {
			age := time.Since(c.dialedAt)
			if at := c.closedAt.Load(); at != 0 {
				age = time.Unix(0, at).Sub(c.dialedAt)
			}
			if age > cfg.MaxLifetime+hold {
				t.Errorf("conn %d lived %v in a busy pool, want at most MaxLifetime+hold = %v", c.id, age, cfg.MaxLifetime+hold)
			}
		}
		db.shut(t, p)
	})
}

// --- Idle time ---

func TestIdleConnsRetireAfterMaxIdleTimeDownToMinIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 1, 4
		cfg.MaxIdleTime = time.Minute
		p, logs := simPool(t, cfg)

		var hs []tidepool.Conn[*simConn]
		for range 4 {
			h, _ := take(t, p)
			hs = append(hs, h)
		}
		for _, h := range hs {
			give(h)
		}
		released := time.Now()

		time.Sleep(cfg.MaxIdleTime - time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Closed.Idle != 0 || st.Idle != 4 {
			t.Fatalf("before MaxIdleTime: Closed.Idle=%d Idle=%d, want 0 and 4", st.Closed.Idle, st.Idle)
		}
		// The watcher samples every MaxIdleTime/4 (±10%): a connection goes
		// between MaxIdleTime and MaxIdleTime plus two samples after release.
		time.Sleep(time.Second + 2*cfg.MaxIdleTime*11/40)
		synctest.Wait()
		st := p.Stats()
		if st.Closed.Idle != 3 || st.Idle != 1 || st.Total != 1 {
			t.Fatalf("after MaxIdleTime: Closed.Idle=%d Idle=%d Total=%d, want 3, 1, 1", st.Closed.Idle, st.Idle, st.Total)
		}
		if got := retired(logs, "idle"); got != 3 {
			t.Errorf("%d conn.retired entries with reason idle, want 3", got)
		}
		var over time.Duration
		for _, c := range db.all() {
			if at := c.closedAt.Load(); at != 0 {
				over = max(over, time.Unix(0, at).Sub(released)-cfg.MaxIdleTime)
			}
		}
		t.Logf("idle retirement came at most %v after MaxIdleTime (%v)", over, cfg.MaxIdleTime)

		// MinIdle stays: no retirement below it, no churn of dials.
		dials := st.Dials
		time.Sleep(time.Hour)
		synctest.Wait()
		if st := p.Stats(); st.Closed.Idle != 3 || st.Idle != 1 || st.Dials != dials {
			t.Errorf("an hour later: Closed.Idle=%d Idle=%d Dials=%d, want 3, 1, %d", st.Closed.Idle, st.Idle, st.Dials, dials)
		}
		db.shut(t, p)
	})
}

// idleRetirements dials n connections, then holds all of them for hold,
// releases them together, and returns how long each stayed idle before it was
// retired.
func idleRetirements(t *testing.T, n int, hold, maxIdle time.Duration) []time.Duration {
	db := newSimDB(t)
	cfg := db.config()
	cfg.MaxSize = n
	cfg.MaxIdleTime = maxIdle
	p, _ := simPool(t, cfg)
	var hs []tidepool.Conn[*simConn]
	for range n {
		h, _ := take(t, p)
		hs = append(hs, h)
	}
	for _, h := range hs {
		give(h)
	}
	// Acquire them again once their watchers surely run, so that each
	// watcher sees the hand-out.
	time.Sleep(time.Second)
	hs = hs[:0]
	for range n {
		h, _ := take(t, p)
		hs = append(hs, h)
	}
	time.Sleep(hold)
	for _, h := range hs {
		give(h)
	}
	released := time.Now()
	time.Sleep(3 * maxIdle)
	synctest.Wait()
	var idle []time.Duration
	for _, c := range db.all() {
		at := c.closedAt.Load()
		if at == 0 {
			t.Fatalf("conn %d still open after 3×MaxIdleTime idle", c.id)
		}
		idle = append(idle, time.Unix(0, at).Sub(released))
	}
	db.shut(t, p)
	return idle
}

// A connection that was held for a while and then released must stay idle a
// full MaxIdleTime before it retires for idleness.
func TestHeldThenReleasedConnIsNotRetiredForIdleEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxIdle = time.Minute
		idle := idleRetirements(t, 16, 20*time.Second, maxIdle) // held past a watcher sample
		if lo := slices.Min(idle); lo < maxIdle {
			t.Errorf("conns retired for idle after only %v idle (MaxIdleTime %v); all: %v", lo, maxIdle, idle)
		}
	})
}

// Config.MaxIdleTime promises that idle time is "measured by its watcher
// within a quarter of MaxIdleTime". With 32 connections released together,
// the latest of them shows the worst case of the watcher's sampling.
func TestIdleRetirementComesWithinAQuarterOfMaxIdleTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxIdle = time.Minute
		idle := idleRetirements(t, 32, 0, maxIdle) // released between two samples
		bound := maxIdle/4 + maxIdle/40            // a quarter, with the sampler's ±10% jitter
		if hi := slices.Max(idle); hi > maxIdle+bound {
			t.Errorf("a conn retired after %v idle: %v past MaxIdleTime, more than the documented quarter (%v)",
				hi, hi-maxIdle, bound)
		}
	})
}

func TestRegularlyUsedConnDoesNotRetireForIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		cfg.MaxIdleTime = time.Minute
		p, _ := simPool(t, cfg)

		for range 40 { // 30 minutes, used every 45s
			h, _ := take(t, p)
			give(h)
			time.Sleep(45 * time.Second)
		}
		synctest.Wait()
		if st := p.Stats(); st.Closed.Idle != 0 || st.Dials != 1 {
			t.Fatalf("conn used every 45s: Closed.Idle=%d Dials=%d, want 0 and 1", st.Closed.Idle, st.Dials)
		}
		// Left alone, it does go: the idle limit is active.
		time.Sleep(2 * cfg.MaxIdleTime)
		synctest.Wait()
		if st := p.Stats(); st.Closed.Idle != 1 {
			t.Errorf("unused conn: Closed.Idle=%d, want 1", st.Closed.Idle)
		}
		db.shut(t, p)
	})
}

// --- Health ---

func TestHealthCheckRunsEveryIntervalWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		var mu sync.Mutex
		var at []time.Time
		db.onCheck = func(context.Context, *simConn) error {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			return nil
		}
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 1, 1
		cfg.HealthInterval = 10 * time.Second
		p, _ := simPool(t, cfg)

		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		// ±10% jitter: between 3600/11 and 3600/9 checks in an hour.
		if n := len(at); n < 327 || n > 400 {
			t.Errorf("%d checks in an hour at HealthInterval 10s ±10%%, want 327..400", n)
		}
		lo, hi := time.Hour, time.Duration(0)
		for i := 1; i < len(at); i++ {
			g := at[i].Sub(at[i-1])
			lo, hi = min(lo, g), max(hi, g)
		}
		if lo < 9*time.Second || hi > 11*time.Second {
			t.Errorf("gaps between checks in [%v, %v], want within [9s, 11s]", lo, hi)
		}
		if hi-lo < time.Second {
			t.Errorf("gaps between checks in [%v, %v]: no jitter", lo, hi)
		}
		if st := p.Stats(); st.HealthChecks != int64(len(at)) || st.HealthFailures != 0 {
			t.Errorf("Stats HealthChecks=%d HealthFailures=%d, want %d and 0", st.HealthChecks, st.HealthFailures, len(at))
		}
		db.shut(t, p)
	})
}

func TestFailedHealthCheckRetiresAndRefillsMinIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		errBad := errors.New("simdb: ping failed")
		db.onCheck = func(_ context.Context, c *simConn) error {
			if c.id == 1 {
				return errBad
			}
			return nil
		}
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 2, 4
		cfg.HealthInterval = 10 * time.Second
		p, logs := simPool(t, cfg)
		var bad *simConn
		for _, c := range db.all() {
			if c.id == 1 {
				bad = c
			}
		}

		time.Sleep(12 * time.Second)
		synctest.Wait()
		if bad.closes.Load() != 1 {
			t.Fatalf("conn failing its check not closed (closes=%d)", bad.closes.Load())
		}
		st := p.Stats()
		if st.Closed.Health != 1 || st.HealthFailures != 1 {
			t.Errorf("Closed.Health=%d HealthFailures=%d, want 1 and 1", st.Closed.Health, st.HealthFailures)
		}
		if st.Idle != 2 || st.Total != 2 || st.Dials != 3 {
			t.Errorf("after replacement Idle=%d Total=%d Dials=%d, want 2, 2, 3", st.Idle, st.Total, st.Dials)
		}
		if got := retired(logs, "health"); got != 1 {
			t.Errorf("%d conn.retired entries with reason health, want 1", got)
		}
		es := logs.FilterMessage("conn.check_failed").All()
		if len(es) != 1 || !strings.Contains(es[0].ContextMap()["error"].(string), errBad.Error()) {
			t.Errorf("conn.check_failed entries %v, want one carrying %q", es, errBad)
		}
		db.shut(t, p)
	})
}

func TestConnUnderCheckIsNeverHandedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		started := make(chan *simConn, 1)
		gate := make(chan struct{})
		var once sync.Once
		db.onCheck = func(ctx context.Context, c *simConn) error {
			block := false
			once.Do(func() { block = true })
			if block {
				started <- c
				<-gate
			}
			return nil
		}
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 1, 2
		cfg.HealthInterval = 10 * time.Second
		cfg.HealthTimeout = time.Hour
		p, _ := simPool(t, cfg)

		checked := <-started // at ~10s, the only idle conn is under check
		h1, c1 := take(t, p) // must not be it: a new conn is dialed
		if c1 == checked {
			t.Fatal("Acquire returned the conn under check")
		}
		// The pool is full; the next Acquire waits for the check to end.
		got := make(chan *simConn, 1)
		var h2 tidepool.Conn[*simConn]
		go func() {
			var c *simConn
			var err error
			if h2, c, err = acquire(t, p); err != nil {
				t.Errorf("waiting Acquire: %v", err)
			}
			got <- c
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		select {
		case c := <-got:
			t.Fatalf("Acquire got conn %d while the pool's other conn is under check", c.id)
		default:
		}
		close(gate) // take() checks that the conn is no longer checking
		if c := <-got; c != checked {
			t.Errorf("waiter got conn %d, want the one whose check ended (%d)", c.id, checked.id)
		}
		give(h1)
		give(h2)
		db.shut(t, p)
	})
}

func TestConnUnderCheckIsNeverHandedOutUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.onCheck = func(ctx context.Context, c *simConn) error {
			time.Sleep(200 * time.Millisecond) // simConn.check flags any hand-out meanwhile
			return nil
		}
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 3, 3
		cfg.HealthInterval = time.Second
		p, _ := simPool(t, cfg)

		var acquires atomic.Int64
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				end := time.Now().Add(10 * time.Minute)
				for time.Now().Before(end) {
					h, _, err := acquire(t, p)
					if err != nil {
						t.Errorf("Acquire under load: %v", err)
						return
					}
					acquires.Add(1)
					time.Sleep(rand.N(300 * time.Millisecond))
					give(h)
					time.Sleep(rand.N(500 * time.Millisecond))
				}
			})
		}
		wg.Wait()
		st := p.Stats()
		if st.HealthChecks < 100 || acquires.Load() < 1000 {
			t.Errorf("%d checks and %d acquires: too few to show anything", st.HealthChecks, acquires.Load())
		}
		t.Logf("%d acquires, %d health checks, none overlapping", acquires.Load(), st.HealthChecks)
		db.shut(t, p)
	})
}

func TestHangingHealthCheckIsBoundedByHealthTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		var took atomic.Int64
		db.onCheck = func(ctx context.Context, c *simConn) error {
			if c.id != 1 {
				return nil
			}
			start := time.Now()
			<-ctx.Done() // hangs until the pool gives up
			took.Store(int64(time.Since(start)))
			return ctx.Err()
		}
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 1, 1
		cfg.HealthInterval = 10 * time.Second
		cfg.HealthTimeout = 2 * time.Second
		p, _ := simPool(t, cfg)

		time.Sleep(15 * time.Second)
		synctest.Wait()
		if d := time.Duration(took.Load()); d != cfg.HealthTimeout {
			t.Errorf("hanging check ran %v, want HealthTimeout %v", d, cfg.HealthTimeout)
		}
		st := p.Stats()
		if st.Closed.Health != 1 || st.Idle != 1 || st.Dials != 2 {
			t.Errorf("Closed.Health=%d Idle=%d Dials=%d, want 1, 1, 2 (hung conn replaced)", st.Closed.Health, st.Idle, st.Dials)
		}
		db.shut(t, p)
	})
}

func TestHeldConnIsNotHealthChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.Check = db.check
		cfg.MinIdle, cfg.MaxSize = 1, 1
		cfg.HealthInterval = 10 * time.Second
		p, _ := simPool(t, cfg)

		h, c := take(t, p)
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := c.checks.Load(); n != 0 {
			t.Errorf("held conn checked %d times in an hour", n)
		}
		give(h)
		time.Sleep(12 * time.Second)
		synctest.Wait()
		if n := c.checks.Load(); n == 0 {
			t.Error("released conn not checked within 12s at HealthInterval 10s")
		}
		db.shut(t, p)
	})
}

// --- Dial failures, backoff, recovery ---

func TestDialBackoffGrowsExponentiallyWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 1, 2
		cfg.DialBackoff = 100 * time.Millisecond
		cfg.DialBackoffMax = 3200 * time.Millisecond
		p, _ := simPool(t, cfg)

		db.down.Store(true)
		h, _ := take(t, p)
		from := len(db.dialAttempts())
		h.Value().held.Store(false)
		h.Destroy() // MinIdle=1 makes the pool redial on its own
		time.Sleep(time.Minute)
		synctest.Wait()
		at := db.dialAttempts()[from:]
		if len(at) < 15 {
			t.Fatalf("%d dial attempts in a minute of outage, want at least 15", len(at))
		}
		var capped []time.Duration
		for k := 1; k < len(at); k++ {
			d := cfg.DialBackoff << (k - 1)
			if k > 6 {
				d = cfg.DialBackoffMax
			}
			d = min(d, cfg.DialBackoffMax)
			g := at[k].Sub(at[k-1])
			if g < d/2 || g > d+d/2 {
				t.Errorf("gap after failure %d is %v, want %v ±50%%", k, g, d)
			}
			if d == cfg.DialBackoffMax {
				capped = append(capped, g)
			}
		}
		if len(capped) > 2 && slices.Min(capped) == slices.Max(capped) {
			t.Errorf("capped gaps all %v: no jitter", capped[0])
		}
		if st := p.Stats(); st.DialErrors != int64(len(at)) {
			t.Errorf("Stats.DialErrors=%d, want %d", st.DialErrors, len(at))
		}
		db.down.Store(false)
		time.Sleep(2 * cfg.DialBackoffMax)
		synctest.Wait()
		db.shut(t, p)
	})
}

func TestAcquireFailsPromptlyDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(50 * time.Millisecond))
		cfg := db.config()
		cfg.MaxSize = 4
		cfg.DialBackoff = 100 * time.Millisecond
		cfg.DialBackoffMax = 2 * time.Second
		p, _ := simPool(t, cfg)
		db.down.Store(true)

		end := time.Now().Add(30 * time.Second)
		n := 0
		for time.Now().Before(end) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now()
			_, err := p.Acquire(ctx)
			cancel()
			took := time.Since(start)
			if !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errSimDown) {
				t.Fatalf("Acquire during outage: %v, want ErrDial wrapping %v", err, errSimDown)
			}
			// It waits for the next probe (at most 500ms away while Acquires
			// wait) and fails with that probe's error: within a second.
			if took > 500*time.Millisecond+50*time.Millisecond {
				t.Errorf("Acquire during outage took %v of its 30s, want at most a probe interval (500ms) and one dial (50ms)", took)
			}
			n++
			time.Sleep(rand.N(700 * time.Millisecond))
		}
		t.Logf("%d Acquires failed promptly over 30s of outage", n)
		db.down.Store(false)
		time.Sleep(2 * cfg.DialBackoffMax)
		h, _ := take(t, p)
		give(h)
		db.shut(t, p)
	})
}

func TestPoolRecoversAfterOutageWithSingleProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(50 * time.Millisecond))
		cfg := db.config()
		cfg.MinIdle, cfg.MaxSize = 3, 8
		cfg.DialBackoff = 100 * time.Millisecond
		cfg.DialBackoffMax = 2 * time.Second
		p, logs := simPool(t, cfg)

		db.down.Store(true)
		for range 3 {
			h, _ := take(t, p)
			h.Value().held.Store(false)
			h.Destroy()
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Total != 0 || st.DialErrors < 10 {
			t.Fatalf("during outage Total=%d DialErrors=%d, want 0 and ≥10", st.Total, st.DialErrors)
		}

		db.down.Store(false)
		// No Acquire: the pool must refill MinIdle by itself within one
		// backoff (≤ 1.5·DialBackoffMax) plus two dials.
		time.Sleep(cfg.DialBackoffMax*3/2 + 2*50*time.Millisecond + time.Millisecond)
		synctest.Wait()
		st := p.Stats()
		if st.Idle != 3 || st.Total != 3 {
			t.Fatalf("after recovery Idle=%d Total=%d, want MinIdle=3 refilled", st.Idle, st.Total)
		}
		if n := db.maxProbeFlight.Load(); n != 1 {
			t.Errorf("%d dials in flight at once after the first failure, before recovery; want a single probe", n)
		}
		if n := logs.FilterMessage("pool.recovered").Len(); n != 1 {
			t.Errorf("%d pool.recovered entries, want 1", n)
		}
		start := time.Now()
		h, _ := take(t, p)
		if d := time.Since(start); d != 0 {
			t.Errorf("Acquire after recovery waited %v, want an idle conn at once", d)
		}
		give(h)
		t.Logf("max dials in flight: %d overall, %d during the probe phase", db.maxInFlight.Load(), db.maxProbeFlight.Load())
		db.shut(t, p)
	})
}

// --- Dial timeout, acquire timeout, cancellation ---

func TestDialTimeoutBoundsHungDialWhileReleasesServeWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 2
		cfg.DialTimeout = 5 * time.Second
		p, _ := simPool(t, cfg)

		ha, a := take(t, p)
		db.hang.Store(true)
		start := time.Now()
		type res struct {
			c    *simConn
			h    tidepool.Conn[*simConn]
			took time.Duration
		}
		got := make(chan res, 1)
		go func() {
			h, c, err := acquire(t, p) // starts a dial that hangs
			if err != nil {
				t.Errorf("waiting Acquire: %v", err)
			}
			got <- res{c, h, time.Since(start)}
		}()
		time.Sleep(time.Second)
		give(ha)
		r := <-got
		if r.c != a || r.took != time.Second {
			t.Errorf("waiter got conn %d after %v, want the released conn %d after 1s", r.c.id, r.took, a.id)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st := p.Stats()
		if st.DialErrors != 1 || st.Dialing != 0 {
			t.Errorf("hung dial: DialErrors=%d Dialing=%d, want 1 and 0", st.DialErrors, st.Dialing)
		}
		if at := db.dialAttempts(); len(at) != 2 || at[1] != start {
			t.Errorf("dial attempts at %v, want the hung one at %v", at, start)
		}

		// With the conn held and the next dial hanging, an Acquire is bounded
		// by DialTimeout (and the backoff before it), not by its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		start = time.Now()
		_, err := p.Acquire(ctx)
		took := time.Since(start)
		var ce *tidepool.CallbackError
		if !errors.Is(err, tidepool.ErrDial) || !errors.As(err, &ce) || !ce.TimedOut || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Acquire behind a hung dial: %v, want ErrDial wrapping a timed-out dial, not the caller's DeadlineExceeded", err)
		}
		if took < cfg.DialTimeout || took > cfg.DialTimeout+time.Second {
			t.Errorf("Acquire behind a hung dial took %v, want about DialTimeout %v", took, cfg.DialTimeout)
		}
		db.hang.Store(false)
		give(r.h)
		db.shut(t, p)
	})
}

func TestAcquireTimeoutAppliesOnlyWithoutCtxDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		cfg.AcquireTimeout = 3 * time.Second
		p, _ := simPool(t, cfg)
		h, _ := take(t, p)

		start := time.Now()
		_, err := p.Acquire(context.Background())
		if took := time.Since(start); !errors.Is(err, tidepool.ErrAcquireTimeout) || took != cfg.AcquireTimeout {
			t.Errorf("Acquire without deadline: %v after %v, want ErrAcquireTimeout after %v", err, took, cfg.AcquireTimeout)
		}

		for _, d := range []time.Duration{time.Second, 10 * time.Second} {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			start = time.Now()
			_, err = p.Acquire(ctx)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, tidepool.ErrAcquireTimeout) || took != d {
				t.Errorf("Acquire with a %v deadline: %v after %v, want the ctx's DeadlineExceeded after %v", d, err, took, d)
			}
		}
		if st := p.Stats(); st.CanceledAcquires != 3 {
			t.Errorf("Stats.CanceledAcquires=%d, want 3", st.CanceledAcquires)
		}
		give(h)
		db.shut(t, p)
	})
}

// A release that lands in the instant an Acquire's AcquireTimeout passes must
// not change the error the Acquire returns: it is ErrAcquireTimeout either way.
func TestAcquireTimeoutErrorIsStableWhenReleaseRacesTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		cfg.AcquireTimeout = time.Second
		p, _ := simPool(t, cfg)

		bad := 0
		const rounds = 300
		for range rounds {
			h, _ := take(t, p)
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(cfg.AcquireTimeout) // same instant as the timeout
				give(h)
			}()
			hw, err := p.Acquire(context.Background())
			<-done
			switch {
			case err == nil:
				mark(t, hw)
				give(hw)
			case !errors.Is(err, tidepool.ErrAcquireTimeout):
				if bad == 0 {
					t.Errorf("Acquire timing out as a release lands: %v (%T), want ErrAcquireTimeout", err, err)
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d racing timeouts did not return ErrAcquireTimeout", bad, rounds)
		}
		db.shut(t, p)
	})
}

func TestCancelledAcquireDoesNotCancelTheDialItCaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(5 * time.Second))
		cfg := db.config()
		cfg.MaxSize = 1
		p, _ := simPool(t, cfg)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Acquire(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire with 1s ctx and 5s dial: %v, want DeadlineExceeded", err)
		}
		// A second waiter arrives while the dial is still running: it gets it.
		time.Sleep(time.Second)
		start := time.Now()
		h, c := take(t, p)
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("next waiter served after %v, want 3s (the rest of the first dial)", took)
		}
		give(h)
		synctest.Wait()
		st := p.Stats()
		if st.Dials != 1 || st.DialErrors != 0 || db.dialFailures.Load() != 0 {
			t.Errorf("Dials=%d DialErrors=%d (sim failures %d), want 1 dial that completed", st.Dials, st.DialErrors, db.dialFailures.Load())
		}
		if st.Idle != 1 || c.closes.Load() != 0 {
			t.Errorf("dialed conn not idle after release: Idle=%d closes=%d", st.Idle, c.closes.Load())
		}

		// Nobody waits at all: the dial still completes and its conn goes idle.
		h, _ = take(t, p)
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		if err := p.Resize(0, 2); err != nil {
			t.Fatal(err)
		}
		_, err = p.Acquire(ctx) // causes a 5s dial
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Acquire: %v, want DeadlineExceeded", err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Dials != 2 || st.DialErrors != 0 || st.Idle != 1 {
			t.Errorf("abandoned dial: Dials=%d DialErrors=%d Idle=%d, want 2, 0, 1", st.Dials, st.DialErrors, st.Idle)
		}
		give(h)
		db.shut(t, p)
	})
}

// --- Leak detection ---

func TestLeakSuspectedOnceAndReleasedLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.LeakThreshold = 10 * time.Second
		cfg.TrackAcquireSite = true
		p, logs := simPool(t, cfg)

		h, _ := take(t, p)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := logs.FilterMessage("conn.leak_suspected").Len(); n != 0 {
			t.Fatalf("%d leak reports before the threshold", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		es := logs.FilterMessage("conn.leak_suspected").All()
		if len(es) != 1 {
			t.Fatalf("%d conn.leak_suspected entries after holding 65s, want exactly 1", len(es))
		}
		f := es[0].ContextMap()
		if site, _ := f["acquired_at"].(string); !strings.Contains(site, "TestLeakSuspectedOnceAndReleasedLogged") {
			t.Errorf("acquired_at = %q, want the acquiring test function in it", site)
		}
		if f["conn_id"] != h.ID() || f["pool"] != "sim" {
			t.Errorf("leak entry conn_id=%v pool=%v, want %d and sim", f["conn_id"], f["pool"], h.ID())
		}
		if held, _ := f["held"].(time.Duration); held < cfg.LeakThreshold || held > cfg.LeakThreshold*5/4 {
			t.Errorf("leak entry held=%v, want between the threshold and one scan later", f["held"])
		}
		if st := p.Stats(); st.LeaksSuspected != 1 || st.LeaksHeld != 1 {
			t.Errorf("LeaksSuspected=%d LeaksHeld=%d, want 1 and 1", st.LeaksSuspected, st.LeaksHeld)
		}
		if in := p.InUse(); len(in) != 1 || !in[0].Leaked || in[0].HeldFor != 65*time.Second {
			t.Errorf("InUse() = %+v, want one leaked conn held 65s", in)
		}
		give(h)
		es = logs.FilterMessage("conn.leak_released").All()
		if len(es) != 1 || es[0].ContextMap()["held"] != 65*time.Second {
			t.Errorf("conn.leak_released entries %v, want one with held=65s", es)
		}
		if st := p.Stats(); st.LeaksSuspected != 1 || st.LeaksHeld != 0 {
			t.Errorf("after release LeaksSuspected=%d LeaksHeld=%d, want 1 and 0", st.LeaksSuspected, st.LeaksHeld)
		}
		// The same conn, acquired again and released in time, is no leak.
		h, _ = take(t, p)
		time.Sleep(5 * time.Second)
		give(h)
		time.Sleep(time.Minute)
		if n := logs.FilterMessage("conn.leak_suspected").Len(); n != 1 {
			t.Errorf("%d leak reports after a short hold, want still 1", n)
		}
		db.shut(t, p)
	})
}

func TestNoLeakDetectionWithoutThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, logs := simPool(t, db.config())
		h, _ := take(t, p)
		time.Sleep(time.Hour)
		synctest.Wait()
		give(h)
		if n := logs.FilterMessage("conn.leak_suspected").Len() + logs.FilterMessage("conn.leak_released").Len(); n != 0 {
			t.Errorf("%d leak entries with LeakThreshold 0, want none", n)
		}
		if st := p.Stats(); st.LeaksSuspected != 0 {
			t.Errorf("LeaksSuspected=%d with LeakThreshold 0", st.LeaksSuspected)
		}
		db.shut(t, p)
	})
}
