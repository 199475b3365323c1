package tidepool_test

// The lifecycle hooks (Config.AfterConnect, BeforeAcquire, AfterRelease,
// BeforeClose): where each runs, what its refusal does, and that a hook that
// panics or runs past HookTimeout counts as a refusal. Every test runs in a
// synctest bubble on simDB (time_test.go).

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
)

// hookTrace records, per connection, the callbacks a pool ran on it, in order.
type hookTrace struct {
	mu  sync.Mutex
	seq map[*simConn][]string
}

func newHookTrace() *hookTrace { return &hookTrace{seq: map[*simConn][]string{}} }

func (h *hookTrace) add(c *simConn, what string) {
	h.mu.Lock()
	h.seq[c] = append(h.seq[c], what)
	h.mu.Unlock()
}

func (h *hookTrace) of(c *simConn) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seq[c])
}

// count returns how many times what ran, on all connections.
func (h *hookTrace) count(what string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.seq {
		for _, w := range s {
			if w == what {
				n++
			}
		}
	}
	return n
}

// countOn returns how many times what ran on c.
func (h *hookTrace) countOn(c *simConn, what string) int {
	n := 0
	for _, w := range h.of(c) {
		if w == what {
			n++
		}
	}
	return n
}

// traced returns db's config with its Close recorded in tr.
func (db *simDB) traced(tr *hookTrace) tidepool.Config[*simConn] {
	cfg := db.config()
	cfg.Close = func(c *simConn) error {
		tr.add(c, "close")
		return db.close(c)
	}
	return cfg
}

// wantCallbackLogged checks that logs has a callback.panicked (or
// callback.timed_out) entry for callback.
func wantCallbackLogged(t *testing.T, logs *observer.ObservedLogs, event, callback string) observer.LoggedEntry {
	t.Helper()
	for _, e := range logs.FilterMessage(event).All() {
		if e.ContextMap()["callback"] == callback {
			return e
		}
	}
	t.Fatalf("no %s entry with callback=%q; entries: %v", event, callback, logs.FilterMessage(event).All())
	return observer.LoggedEntry{}
}

// shutBy is shut with a deadline: a connection left held (a bug under test)
// fails the test at once instead of keeping Close waiting for its holder
// forever — the pool's clock ticks, so a bubble in that state never
// deadlocks.
func (db *simDB) shutBy(t *testing.T, p *tidepool.Pool[*simConn]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, c := range db.all() {
		if n := c.closes.Load(); n != 1 {
			t.Errorf("conn %d closed %d times, want 1", c.id, n)
		}
	}
}

type tenantKey struct{}

// AfterConnect runs exactly once on every connection the pool dials, in the
// dial (under its context, with DialTimeout's deadline) and before the
// connection's first hand-out, whichever way it is handed out.
func TestAfterConnectRunsOncePerNewConnectionBeforeItsFirstHandOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		tr := newHookTrace()
		cfg := db.traced(tr)
		cfg.MinIdle = 1
		cfg.MaxSize = 3
		cfg.AfterConnect = func(ctx context.Context, c *simConn) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("AfterConnect's context has no deadline; want the dial's (DialTimeout)")
			}
			tr.add(c, "after_connect")
			return nil
		}
		p, _ := simPool(t, cfg)
		handedOut := func(c *simConn) {
			t.Helper()
			if s := tr.of(c); len(s) == 0 || s[0] != "after_connect" {
				t.Errorf("conn %d handed out with hooks %v, want AfterConnect to have run first", c.id, s)
			}
		}

		// Idle path, new dials for waiters, reuse, a destroyed connection's
		// replacement, and a waiter served by a release.
		var hs []tidepool.Conn[*simConn]
		for range 3 {
			h, c := take(t, p)
			handedOut(c)
			hs = append(hs, h)
		}
		done := make(chan *simConn)
		go func() {
			h, c, err := acquire(t, p)
			if err != nil {
				t.Errorf("waiter: %v", err)
				close(done)
				return
			}
			give(h)
			done <- c
		}()
		synctest.Wait()
		give(hs[0])
		if c := <-done; c != nil {
			handedOut(c)
		}
		hs[1].Value().held.Store(false)
		hs[1].Destroy()
		give(hs[2])
		for range 5 { // three at once: one more than the two left, so a replacement is dialed
			hs = hs[:0]
			for range 3 {
				h, c := take(t, p)
				handedOut(c)
				hs = append(hs, h)
			}
			for _, h := range hs {
				give(h)
			}
		}
		synctest.Wait()

		st := p.Stats()
		if n := tr.count("after_connect"); int64(n) != st.Dials || n != len(db.all()) || n != 4 {
			t.Errorf("AfterConnect ran %d times for %d dials (%d connections dialed), want once per dial, 4 dials",
				n, st.Dials, len(db.all()))
		}
		for _, c := range db.all() {
			if s := tr.of(c); len(s) == 0 || s[0] != "after_connect" || tr.countOn(c, "after_connect") != 1 {
				t.Errorf("conn %d: hooks %v, want exactly one AfterConnect, first", c.id, s)
			}
		}
		db.shutBy(t, p)
	})
}

// An AfterConnect error fails the dial: the value is closed (never handed
// out), the failure is counted and logged as a dial error, and every waiter
// gets an error wrapping ErrDial and AfterConnect's error. Once AfterConnect
// succeeds again, the pool serves.
func TestAfterConnectErrorFailsTheDialClosesTheValueAndReachesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(time.Second)) // so that all three Acquires wait for dials
		tr := newHookTrace()
		cfg := db.traced(tr)
		errAuth := errors.New("auth: password expired")
		var refuse atomic.Bool
		refuse.Store(true)
		cfg.AfterConnect = func(ctx context.Context, c *simConn) error {
			tr.add(c, "after_connect")
			if refuse.Load() {
				return errAuth
			}
			return nil
		}
		p, logs := simPool(t, cfg)

		errs := make(chan error, 3)
		for range 3 {
			go func() {
				h, _, err := acquire(t, p)
				if err == nil {
					give(h)
				}
				errs <- err
			}()
		}
		for range 3 {
			if err := <-errs; !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errAuth) {
				t.Errorf("Acquire while AfterConnect fails: %v, want an error wrapping ErrDial and AfterConnect's error", err)
			}
		}
		synctest.Wait()
		refused := db.all()
		st := p.Stats()
		if len(refused) == 0 || st.Dials != 0 || st.DialErrors != int64(len(refused)) || st.Slots != 0 || st.Total != 0 {
			t.Errorf("after %d refused connections: dials=%d dial_errors=%d slots=%d total=%d, want 0 %d 0 0",
				len(refused), st.Dials, st.DialErrors, st.Slots, st.Total, len(refused))
		}
		for _, c := range refused {
			if c.closes.Load() != 1 {
				t.Errorf("conn %d refused by AfterConnect closed %d times, want 1", c.id, c.closes.Load())
			}
		}
		failed := logs.FilterMessage("conn.dial_failed").All()
		if len(failed) == 0 || !strings.Contains(failed[0].ContextMap()["error"].(string), errAuth.Error()) {
			t.Errorf("conn.dial_failed entries %v, want AfterConnect's error in them", failed)
		}
		if n := logs.FilterMessage("callback.panicked").Len(); n != 0 {
			t.Errorf("an AfterConnect error was logged as %d panics", n)
		}

		refuse.Store(false)
		time.Sleep(time.Minute) // past any backoff
		h, c := take(t, p)
		if s := tr.of(c); len(s) != 1 || s[0] != "after_connect" {
			t.Errorf("served conn %d has hooks %v, want one AfterConnect", c.id, s)
		}
		give(h)
		db.shutBy(t, p)
	})
}

// BeforeAcquire runs on every hand-out — from the idle set, to a waiter after
// a release, to a waiter after a new dial — on the acquiring goroutine, under
// that Acquire's context.
func TestBeforeAcquireRunsOnEveryHandOutUnderTheAcquiresContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		var calls atomic.Int64
		var mu sync.Mutex
		var seen []any
		cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
			calls.Add(1)
			mu.Lock()
			seen = append(seen, ctx.Value(tenantKey{}))
			mu.Unlock()
			return true
		}
		p, _ := simPool(t, cfg)
		acquireAs := func(tenant string) (tidepool.Conn[*simConn], error) {
			ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), tenantKey{}, tenant), time.Minute)
			defer cancel()
			h, err := p.Acquire(ctx)
			if err == nil {
				mark(t, h)
			}
			return h, err
		}

		h, err := acquireAs("first") // a new dial for a waiter
		if err != nil {
			t.Fatal(err)
		}
		give(h)
		for _, who := range []string{"idle-1", "idle-2", "idle-3"} { // the idle path
			h, err := acquireAs(who)
			if err != nil {
				t.Fatal(err)
			}
			give(h)
		}
		held, err := acquireAs("holder")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { // a waiter served by a release
			h, err := acquireAs("waiter")
			if err == nil {
				give(h)
			}
			done <- err
		}()
		synctest.Wait()
		give(held)
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		want := []any{"first", "idle-1", "idle-2", "idle-3", "holder", "waiter"}
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("BeforeAcquire saw the contexts of %v, want one call per hand-out under its Acquire's context: %v", got, want)
		}
		if st := p.Stats(); st.Acquires != calls.Load() {
			t.Errorf("BeforeAcquire ran %d times for %d hand-outs", calls.Load(), st.Acquires)
		}
		db.shutBy(t, p)
	})
}

// BeforeAcquire returning false vetoes the connection: it is retired (reason
// vetoed) and closed, never handed out, and the Acquire moves on to another
// connection — from the idle set, or, for a waiter, a new dial.
func TestBeforeAcquireVetoRetiresTheConnAndTheAcquireMovesOn(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.MinIdle, cfg.MaxSize = 3, 3
			var veto sync.Map // *simConn → true
			cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
				_, refused := veto.Load(c)
				return !refused
			}
			p, logs := simPool(t, cfg)
			warm := db.all()
			for _, c := range warm {
				veto.Store(c, true) // every idle one: the Acquire tries them all, then dials
			}
			h, c := take(t, p)
			if slices.Contains(warm, c) {
				t.Errorf("Acquire got vetoed conn %d", c.id)
			}
			synctest.Wait()
			for _, v := range warm {
				if v.closes.Load() != 1 {
					t.Errorf("vetoed conn %d closed %d times, want 1", v.id, v.closes.Load())
				}
			}
			st := p.Stats()
			if st.Closed.Vetoed != 3 || st.Acquires != 1 || retired(logs, "vetoed") != 3 {
				t.Errorf("closed(vetoed)=%d acquires=%d conn.retired(vetoed)=%d, want 3 1 3",
					st.Closed.Vetoed, st.Acquires, retired(logs, "vetoed"))
			}
			give(h)
			db.shutBy(t, p)
		})
	})
	t.Run("waiter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.MaxSize = 1
			var veto sync.Map
			cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
				_, refused := veto.Load(c)
				return !refused
			}
			p, logs := simPool(t, cfg)
			h, first := take(t, p)
			got := make(chan *simConn)
			go func() {
				h, c, err := acquire(t, p)
				if err != nil {
					t.Errorf("waiter: %v", err)
					close(got)
					return
				}
				give(h)
				got <- c
			}()
			synctest.Wait()
			veto.Store(first, true)
			give(h) // handed to the waiter, who vetoes it and waits for a new dial
			c := <-got
			if c == nil || c == first {
				t.Fatalf("waiter got %v, want a new connection after vetoing %d", c, first.id)
			}
			synctest.Wait()
			if first.closes.Load() != 1 || p.Stats().Closed.Vetoed != 1 || retired(logs, "vetoed") != 1 {
				t.Errorf("vetoed conn closes=%d closed(vetoed)=%d, want 1 1", first.closes.Load(), p.Stats().Closed.Vetoed)
			}
			db.shutBy(t, p)
		})
	})
}

// AfterRelease runs on Release before the connection goes back — before it is
// idle, before a waiter gets it — so a session reset there is complete when
// anybody sees the connection again. Returning false destroys it (reason
// vetoed).
func TestAfterReleaseRunsBeforeTheConnGoesBackAndFalseDestroysIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		var p *tidepool.Pool[*simConn]
		var dirty, inTx sync.Map // *simConn → true: session state the hook resets, or refuses
		var calls atomic.Int64
		var mu sync.Mutex
		var inHook []tidepool.Stats // what each AfterRelease call saw
		statsInHook := func(i int) tidepool.Stats {
			mu.Lock()
			defer mu.Unlock()
			if i >= len(inHook) {
				t.Fatalf("AfterRelease ran %d times, want a call #%d", len(inHook), i+1)
			}
			return inHook[i]
		}
		cfg.AfterRelease = func(c *simConn) bool {
			calls.Add(1)
			st := p.Stats()
			mu.Lock()
			inHook = append(inHook, st)
			mu.Unlock()
			dirty.Delete(c)
			_, tx := inTx.Load(c)
			return !tx
		}
		p, logs := simPool(t, cfg)

		h, c := take(t, p)
		dirty.Store(c, true)
		give(h)
		if st := statsInHook(0); calls.Load() != 1 || st.InUse != 1 || st.Idle != 0 {
			t.Errorf("AfterRelease ran %d times, and saw in_use=%d idle=%d: want once, before the connection went back (1, 0)",
				calls.Load(), st.InUse, st.Idle)
		}
		h, c2 := take(t, p)
		if _, d := dirty.Load(c2); c2 != c || d {
			t.Errorf("next Acquire got conn %d (dirty %v), want conn %d reset by AfterRelease", c2.id, d, c.id)
		}

		// A waiter gets the connection only after AfterRelease has run.
		got := make(chan *simConn)
		go func() {
			h, c, err := acquire(t, p)
			if err != nil {
				t.Errorf("waiter: %v", err)
				close(got)
				return
			}
			if _, d := dirty.Load(c); d {
				t.Errorf("waiter got conn %d before AfterRelease reset it", c.id)
			}
			give(h)
			got <- c
		}()
		synctest.Wait()
		dirty.Store(c, true)
		give(h)
		if w := <-got; w != c {
			t.Errorf("waiter got %v, want conn %d", w, c.id)
		}
		if st := statsInHook(1); st.Waiting != 1 {
			t.Errorf("AfterRelease saw %d waiting, want 1: it must run before the hand-off", st.Waiting)
		}

		// false: destroyed, not reused.
		h, _ = take(t, p)
		inTx.Store(c, true)
		give(h)
		synctest.Wait()
		if c.closes.Load() != 1 || p.Stats().Closed.Vetoed != 1 || retired(logs, "vetoed") != 1 {
			t.Errorf("refused by AfterRelease: closes=%d closed(vetoed)=%d, want 1 1", c.closes.Load(), p.Stats().Closed.Vetoed)
		}
		h, c3 := take(t, p)
		if c3 == c {
			t.Errorf("the connection AfterRelease refused was handed out again")
		}
		give(h)
		db.shutBy(t, p)
	})
}

// BeforeClose runs right before Close, exactly once per connection, whatever
// retires it: Destroy, a refusal by AfterRelease or AfterConnect, Reset, a
// shrink, and Close of the pool.
func TestBeforeCloseRunsRightBeforeCloseOncePerConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		tr := newHookTrace()
		cfg := db.traced(tr)
		cfg.MaxSize = 4
		var refuseConnect, refuseRelease atomic.Bool
		cfg.AfterConnect = func(ctx context.Context, c *simConn) error {
			if refuseConnect.Load() {
				return errors.New("session setup failed")
			}
			return nil
		}
		cfg.AfterRelease = func(c *simConn) bool { return !refuseRelease.Load() }
		cfg.BeforeClose = func(c *simConn) {
			if c.closes.Load() != 0 {
				t.Errorf("BeforeClose on conn %d after its Close", c.id)
			}
			tr.add(c, "before_close")
		}
		p, _ := simPool(t, cfg)

		h, _ := take(t, p)
		h.Value().held.Store(false)
		h.Destroy()
		h, _ = take(t, p)
		refuseRelease.Store(true)
		give(h)
		refuseRelease.Store(false)
		refuseConnect.Store(true)
		if _, _, err := acquire(t, p); err == nil {
			t.Fatal("Acquire succeeded while AfterConnect fails")
		}
		refuseConnect.Store(false)
		time.Sleep(time.Minute)
		var hs []tidepool.Conn[*simConn]
		for range 4 {
			h, _ := take(t, p)
			hs = append(hs, h)
		}
		for _, h := range hs {
			give(h)
		}
		p.Reset()
		for range 3 {
			h, _ := take(t, p)
			give(h)
		}
		if err := p.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		db.shutBy(t, p)

		if len(db.all()) < 8 {
			t.Fatalf("only %d connections dialed; the scenario did not run", len(db.all()))
		}
		for _, c := range db.all() {
			if s := tr.of(c); !slices.Equal(s, []string{"before_close", "close"}) {
				t.Errorf("conn %d: callbacks %v, want exactly BeforeClose then Close", c.id, s)
			}
		}
	})
}

// A hook that panics is recovered where the pool called it, logged
// (callback.panicked, with the hook's name), counted (Stats.CallbackPanics),
// and counts as a refusal: AfterConnect's fails the dial, BeforeAcquire's and
// AfterRelease's retire the connection (reason vetoed); after BeforeClose's,
// Close still runs.
func TestPanickingHooksAreRecoveredLoggedCountedAndCountAsRefusals(t *testing.T) {
	t.Run("after_connect", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			var explode atomic.Bool
			explode.Store(true)
			cfg.AfterConnect = func(ctx context.Context, c *simConn) error {
				if explode.Load() {
					panic("after_connect exploded")
				}
				return nil
			}
			p, logs := simPool(t, cfg)
			_, _, err := acquire(t, p)
			var ce *tidepool.CallbackError
			if !errors.Is(err, tidepool.ErrDial) || !errors.As(err, &ce) || ce.Callback != "after_connect" || ce.Panic != "after_connect exploded" {
				t.Fatalf("Acquire with a panicking AfterConnect: %v, want ErrDial wrapping its CallbackError", err)
			}
			synctest.Wait()
			wantCallbackLogged(t, logs, "callback.panicked", "after_connect")
			st := p.Stats()
			if st.CallbackPanics != 1 || st.DialErrors != 1 || st.Slots != 0 || db.all()[0].closes.Load() != 1 {
				t.Errorf("callback_panics=%d dial_errors=%d slots=%d closes=%d, want 1 1 0 1",
					st.CallbackPanics, st.DialErrors, st.Slots, db.all()[0].closes.Load())
			}
			explode.Store(false)
			time.Sleep(time.Minute)
			h, _ := take(t, p)
			give(h)
			db.shutBy(t, p)
		})
	})
	t.Run("before_acquire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.MinIdle = 2
			var once atomic.Bool
			cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
				if once.CompareAndSwap(false, true) {
					panic("before_acquire exploded")
				}
				return true
			}
			p, logs := simPool(t, cfg)
			h, c := take(t, p) // the first connection it tries panics; it gets the other
			synctest.Wait()
			wantCallbackLogged(t, logs, "callback.panicked", "before_acquire")
			st := p.Stats()
			if st.CallbackPanics != 1 || st.Closed.Vetoed != 1 || c.closes.Load() != 0 {
				t.Errorf("callback_panics=%d closed(vetoed)=%d, want 1 1, and a live connection handed out", st.CallbackPanics, st.Closed.Vetoed)
			}
			give(h)
			db.shutBy(t, p)
		})
	})
	t.Run("after_release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.AfterRelease = func(c *simConn) bool { panic("after_release exploded") }
			p, logs := simPool(t, cfg)
			h, c := take(t, p)
			give(h) // does not panic in the caller
			synctest.Wait()
			wantCallbackLogged(t, logs, "callback.panicked", "after_release")
			st := p.Stats()
			if st.CallbackPanics != 1 || st.Closed.Vetoed != 1 || c.closes.Load() != 1 || st.Slots != 0 {
				t.Errorf("callback_panics=%d closed(vetoed)=%d closes=%d slots=%d, want 1 1 1 0",
					st.CallbackPanics, st.Closed.Vetoed, c.closes.Load(), st.Slots)
			}
			db.shutBy(t, p)
		})
	})
	t.Run("before_close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.BeforeClose = func(c *simConn) { panic("before_close exploded") }
			p, logs := simPool(t, cfg)
			h, c := take(t, p)
			h.Value().held.Store(false)
			h.Destroy()
			synctest.Wait()
			wantCallbackLogged(t, logs, "callback.panicked", "before_close")
			st := p.Stats()
			if st.CallbackPanics != 1 || c.closes.Load() != 1 || st.Slots != 0 {
				t.Errorf("callback_panics=%d closes=%d slots=%d, want 1 1 0: Close runs after a panicking BeforeClose",
					st.CallbackPanics, c.closes.Load(), st.Slots)
			}
			db.shutBy(t, p)
		})
	})
}

// BeforeAcquire and AfterRelease running past HookTimeout count as failed
// even if they then say yes: logged as callback.timed_out, counted in
// Stats.CallbackTimeouts, the connection retired (reason vetoed).
func TestHooksPastHookTimeoutCountAsFailed(t *testing.T) {
	t.Run("before_acquire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.MinIdle = 2
			cfg.HookTimeout = time.Second
			var once atomic.Bool
			cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
				if once.CompareAndSwap(false, true) {
					time.Sleep(2 * time.Second)
				}
				return true
			}
			p, logs := simPool(t, cfg)
			start := time.Now()
			h, c := take(t, p)
			if took := time.Since(start); took < 2*time.Second {
				t.Errorf("Acquire took %v; the slow hook did not run", took)
			}
			synctest.Wait()
			e := wantCallbackLogged(t, logs, "callback.timed_out", "before_acquire")
			if e.ContextMap()["timeout"] != time.Second {
				t.Errorf("callback.timed_out timeout=%v, want 1s", e.ContextMap()["timeout"])
			}
			st := p.Stats()
			if st.CallbackTimeouts != 1 || st.Closed.Vetoed != 1 || c.closes.Load() != 0 {
				t.Errorf("callback_timeouts=%d closed(vetoed)=%d, want 1 1, and the other connection handed out",
					st.CallbackTimeouts, st.Closed.Vetoed)
			}
			give(h)
			db.shutBy(t, p)
		})
	})
	t.Run("after_release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.HookTimeout = time.Second
			cfg.AfterRelease = func(c *simConn) bool {
				time.Sleep(2 * time.Second)
				return true
			}
			p, logs := simPool(t, cfg)
			h, c := take(t, p)
			give(h)
			synctest.Wait()
			wantCallbackLogged(t, logs, "callback.timed_out", "after_release")
			st := p.Stats()
			if st.CallbackTimeouts != 1 || st.Closed.Vetoed != 1 || c.closes.Load() != 1 {
				t.Errorf("callback_timeouts=%d closed(vetoed)=%d closes=%d, want 1 1 1", st.CallbackTimeouts, st.Closed.Vetoed, c.closes.Load())
			}
			db.shutBy(t, p)
		})
	})
	t.Run("in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := newSimDB(t)
			cfg := db.config()
			cfg.HookTimeout = time.Second
			cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool { time.Sleep(900 * time.Millisecond); return true }
			cfg.AfterRelease = func(c *simConn) bool { time.Sleep(900 * time.Millisecond); return true }
			p, _ := simPool(t, cfg)
			for range 3 {
				h, _ := take(t, p)
				give(h)
			}
			synctest.Wait()
			if st := p.Stats(); st.CallbackTimeouts != 0 || st.Closed.Vetoed != 0 || st.Dials != 1 {
				t.Errorf("hooks within HookTimeout: timeouts=%d vetoed=%d dials=%d, want 0 0 1", st.CallbackTimeouts, st.Closed.Vetoed, st.Dials)
			}
			db.shutBy(t, p)
		})
	})
}

// A pool calls only the hooks that are set: with any one hook set (or none),
// every path where a hook could run — dial, hand-out from the idle set and to
// a waiter, TryAcquire, AcquireAllIdle, AcquireFunc, release, destroy, reset,
// close — runs without a callback panic (a call through a nil hook would be
// recovered and counted as one) and without a refusal.
func TestUnsetHooksAreNeverCalled(t *testing.T) {
	for _, only := range []string{"none", "after_connect", "before_acquire", "after_release", "before_close"} {
		t.Run(only, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				db := newSimDB(t)
				// Dials take virtual time, so that a pool that refuses every
				// connection fails the test by the Acquire's deadline
				// instead of spinning at one instant.
				db.dialTime.Store(int64(time.Millisecond))
				cfg := db.config()
				cfg.MaxSize = 2
				var ran atomic.Int64
				switch only {
				case "after_connect":
					cfg.AfterConnect = func(context.Context, *simConn) error { ran.Add(1); return nil }
				case "before_acquire":
					cfg.BeforeAcquire = func(context.Context, *simConn) bool { ran.Add(1); return true }
				case "after_release":
					cfg.AfterRelease = func(*simConn) bool { ran.Add(1); return true }
				case "before_close":
					cfg.BeforeClose = func(*simConn) { ran.Add(1) }
				}
				p, logs := simPool(t, cfg)
				ctx := context.Background()

				h1, _ := take(t, p)
				h2, _ := take(t, p)
				done := make(chan struct{})
				go func() {
					defer close(done)
					if h, _, err := acquire(t, p); err == nil {
						give(h)
					}
				}()
				synctest.Wait()
				give(h1) // to the waiter
				<-done
				give(h2)
				if h, err := p.TryAcquire(ctx); err == nil {
					h.Release()
				}
				for _, h := range p.AcquireAllIdle(ctx) {
					h.Release()
				}
				if err := p.AcquireFunc(ctx, func(*simConn) error { return nil }); err != nil {
					t.Error(err)
				}
				h, _ := take(t, p)
				h.Value().held.Store(false)
				h.Destroy()
				p.Reset()
				h, _ = take(t, p)
				give(h)
				synctest.Wait()
				db.shutBy(t, p)

				st := p.Stats()
				if st.CallbackPanics != 0 || logs.FilterMessage("callback.panicked").Len() != 0 || st.Closed.Vetoed != 0 || st.DialErrors != 0 {
					t.Errorf("with only %s set: callback_panics=%d vetoed=%d dial_errors=%d, want 0 0 0 (a nil hook was called)",
						only, st.CallbackPanics, st.Closed.Vetoed, st.DialErrors)
				}
				if only != "none" && ran.Load() == 0 {
					t.Errorf("%s never ran", only)
				}
			})
		})
	}
}

// With BeforeAcquire and AfterRelease set, the hand-out of an idle connection
// and its release still allocate nothing: the hooks cost their own run time
// only. (Without hooks, TestAcquireReleaseOfIdleConnAllocatesNothing.)
func TestHooksOnTheHotPathAllocateNothing(t *testing.T) {
	b := newBackend()
	cfg := b.config()
	var before, after atomic.Int64
	cfg.BeforeAcquire = func(context.Context, *fakeConn) bool { before.Add(1); return true }
	cfg.AfterRelease = func(*fakeConn) bool { after.Add(1); return true }
	p := newPool(t, cfg)
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
		t.Errorf("Acquire+Release of an idle connection with BeforeAcquire and AfterRelease set: %v allocs/op, want 0", allocs)
	}
	if before.Load() < 1000 || after.Load() < 1000 {
		t.Errorf("hooks ran %d and %d times over 1000+ hand-outs", before.Load(), after.Load())
	}
}

// BenchmarkAcquireReleaseHooks compares the hot path without hooks and with
// BeforeAcquire and AfterRelease set to functions that do nothing: the
// difference is what setting them costs per hand-out.
func BenchmarkAcquireReleaseHooks(b *testing.B) {
	for _, hooks := range []bool{false, true} {
		name := "unset"
		if hooks {
			name = "set"
		}
		b.Run(name, func(b *testing.B) {
			be := newBackend()
			cfg := be.config()
			if hooks {
				cfg.BeforeAcquire = func(context.Context, *fakeConn) bool { return true }
				cfg.AfterRelease = func(*fakeConn) bool { return true }
			}
			p, err := tidepool.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				h, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			}
		})
	}
}

// A BeforeAcquire that says no because the Acquire's context ended (it pings
// under that context, as pgxpool's PrepareConn and ShouldPing do) must not
// cost the pool its connections: the Acquire gave up, not the connections.
// The waiting Acquire below is handed a released connection and cancelled
// while its hook runs; three more connections are idle by then.
func TestBeforeAcquireRefusingForACancelledAcquireKeepsTheIdleConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 4
		var calls atomic.Int64
		inHook := make(chan struct{})
		resume := make(chan struct{})
		cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool {
			if ctx.Value(tenantKey{}) == "victim" && calls.Add(1) == 1 {
				close(inHook)
				<-resume
			}
			return ctx.Err() == nil // a ping under ctx fails once ctx has ended
		}
		p, _ := simPool(t, cfg)
		var hs []tidepool.Conn[*simConn]
		for range 4 {
			h, _ := take(t, p)
			hs = append(hs, h)
		}
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), tenantKey{}, "victim"))
		done := make(chan error)
		go func() {
			_, err := p.Acquire(ctx)
			done <- err
		}()
		synctest.Wait()
		give(hs[0]) // handed to the waiting Acquire: its hook runs
		<-inHook
		for _, h := range hs[1:] {
			give(h) // nobody waits: idle
		}
		cancel()
		close(resume)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Acquire: %v, want context.Canceled", err)
		}
		synctest.Wait()
		st := p.Stats()
		if st.Idle < 3 || st.Closed.Vetoed > 1 || calls.Load() > 1 {
			t.Errorf("after one cancelled Acquire: idle=%d closed(vetoed)=%d, BeforeAcquire ran %d times under the dead context; "+
				"want the 3 released connections still idle, at most the one in hand refused", st.Idle, st.Closed.Vetoed, calls.Load())
		}
		db.shutBy(t, p)
	})
}

// The same for AcquireAllIdle: called with a context that has ended (a
// maintenance pass whose deadline passed), it must not retire the idle
// connections its BeforeAcquire refuses because of that context.
func TestAcquireAllIdleWithAnEndedContextRetiresNoConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.BeforeAcquire = func(ctx context.Context, c *simConn) bool { return ctx.Err() == nil }
		p, _ := simPool(t, cfg)
		for range 3 {
			if err := p.DialIdle(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := p.AcquireAllIdle(ctx)
		for _, h := range got {
			h.Release()
		}
		synctest.Wait()
		if st := p.Stats(); st.Idle != 3 || st.Closed.Vetoed != 0 {
			t.Errorf("AcquireAllIdle with an ended context: idle=%d closed(vetoed)=%d, want the 3 connections kept (3 0)", st.Idle, st.Closed.Vetoed)
		}
		db.shutBy(t, p)
	})
}

// hookedConn is a connection of TestHooksUnderLoad: it records who holds it
// and how often each hook ran on it.
type hookedConn struct {
	id                                       int64
	holder                                   atomic.Int64 // goroutine number + 1 of its user, 0: none
	connects, beforeCloses, closes, hijacked atomic.Int32
	inBeforeAcquire, inAfterRelease          atomic.Int32
}

// Under load from many goroutines — Acquire, TryAcquire, AcquireFunc,
// AcquireAllIdle, Release, Destroy, Hijack, Reset — every hook sees a
// connection nobody else uses: BeforeAcquire and AfterRelease never run on a
// connection a caller holds or that is closed, never twice at once on one
// connection; BeforeClose runs once, right before the one Close, never on a
// held or hijacked connection; AfterConnect once per connection.
func TestHooksUnderLoadSeeOnlyConnsNobodyElseUses(t *testing.T) {
	var next atomic.Int64
	var mu sync.Mutex
	var all []*hookedConn
	problem := func(format string, args ...any) { t.Errorf(format, args...) }
	var vetoes, refusals atomic.Int64
	cfg := tidepool.Config[*hookedConn]{
		MaxSize: 6, MinIdle: 2,
		Dial: func(ctx context.Context) (*hookedConn, error) {
			c := &hookedConn{id: next.Add(1)}
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			return c, nil
		},
		AfterConnect: func(ctx context.Context, c *hookedConn) error {
			if c.connects.Add(1) != 1 || c.closes.Load() != 0 {
				problem("AfterConnect on conn %d ran twice or after its close", c.id)
			}
			return nil
		},
		BeforeAcquire: func(ctx context.Context, c *hookedConn) bool {
			if c.inBeforeAcquire.Add(1) != 1 || c.inAfterRelease.Load() != 0 {
				problem("BeforeAcquire on conn %d while another hook runs on it", c.id)
			}
			defer c.inBeforeAcquire.Add(-1)
			if h := c.holder.Load(); h != 0 || c.closes.Load() != 0 || c.beforeCloses.Load() != 0 {
				problem("BeforeAcquire on conn %d held by %d or closed (%d)", c.id, h, c.closes.Load())
			}
			if c.id%7 == 0 && rand.IntN(4) == 0 {
				vetoes.Add(1)
				return false
			}
			return true
		},
		AfterRelease: func(c *hookedConn) bool {
			if c.inAfterRelease.Add(1) != 1 || c.inBeforeAcquire.Load() != 0 {
				problem("AfterRelease on conn %d while another hook runs on it", c.id)
			}
			defer c.inAfterRelease.Add(-1)
			if h := c.holder.Load(); h != 0 || c.closes.Load() != 0 {
				problem("AfterRelease on conn %d held by %d or closed", c.id, h)
			}
			if rand.IntN(20) == 0 {
				refusals.Add(1)
				return false
			}
			return true
		},
		BeforeClose: func(c *hookedConn) {
			if c.beforeCloses.Add(1) != 1 || c.closes.Load() != 0 || c.hijacked.Load() != 0 {
				problem("BeforeClose on conn %d twice, after its close, or hijacked", c.id)
			}
			if h := c.holder.Load(); h != 0 {
				problem("BeforeClose on conn %d while goroutine %d holds it", c.id, h-1)
			}
			if c.inBeforeAcquire.Load() != 0 || c.inAfterRelease.Load() != 0 {
				problem("BeforeClose on conn %d while another hook runs on it", c.id)
			}
		},
		Close: func(c *hookedConn) error {
			if c.closes.Add(1) != 1 || c.beforeCloses.Load() != 1 {
				problem("Close on conn %d: closes %d, BeforeClose %d", c.id, c.closes.Load(), c.beforeCloses.Load())
			}
			return nil
		},
	}
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	take := func(g int64, h tidepool.Conn[*hookedConn]) *hookedConn {
		c := h.Value()
		if !c.holder.CompareAndSwap(0, g) {
			problem("conn %d handed to goroutine %d while %d holds it", c.id, g-1, c.holder.Load()-1)
		}
		if c.closes.Load() != 0 {
			problem("closed conn %d handed out", c.id)
		}
		return c
	}
	var wg sync.WaitGroup
	for w := range 8 {
		g := int64(w + 1)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 1500 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				switch op := rng.IntN(100); {
				case op < 2:
					p.Reset()
				case op < 8:
					for _, h := range p.AcquireAllIdle(ctx) {
						take(g, h).holder.Store(0)
						h.Release()
					}
				case op < 14:
					_ = p.AcquireFunc(ctx, func(c *hookedConn) error {
						if !c.holder.CompareAndSwap(0, g) {
							problem("AcquireFunc got conn %d held by %d", c.id, c.holder.Load()-1)
						}
						defer c.holder.Store(0)
						if rng.IntN(5) == 0 {
							return tidepool.ErrConnBroken
						}
						return nil
					})
				default:
					var h tidepool.Conn[*hookedConn]
					var err error
					if op < 20 {
						h, err = p.TryAcquire(ctx)
					} else {
						h, err = p.Acquire(ctx)
					}
					if err != nil {
						if !errors.Is(err, tidepool.ErrExhausted) {
							problem("acquire: %v", err)
						}
						break
					}
					c := take(g, h)
					runtime.Gosched()
					switch rng.IntN(20) {
					case 0:
						c.holder.Store(0)
						h.Destroy()
					case 1:
						c.hijacked.Store(1)
						c.holder.Store(0)
						h.Hijack()
					default:
						c.holder.Store(0)
						h.Release()
					}
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	hijacked := 0
	for _, c := range all {
		want := int32(1)
		if c.hijacked.Load() != 0 {
			want = 0
			hijacked++
		}
		if c.connects.Load() != 1 || c.closes.Load() != want || c.beforeCloses.Load() != want {
			t.Errorf("conn %d: AfterConnect %d, BeforeClose %d, Close %d; want 1 %d %d",
				c.id, c.connects.Load(), c.beforeCloses.Load(), c.closes.Load(), want, want)
		}
	}
	st := p.Stats()
	t.Logf("%d connections, %d hijacked, %d vetoed, %d refused on release, %d resets", len(all), hijacked, vetoes.Load(), refusals.Load(), st.Resets)
	if st.Closed.Vetoed != vetoes.Load()+refusals.Load() || st.Hijacked != int64(hijacked) {
		t.Errorf("Stats: vetoed=%d hijacked=%d; hooks said no %d times, %d hijacked", st.Closed.Vetoed, st.Hijacked, vetoes.Load()+refusals.Load(), hijacked)
	}
}

// A BeforeAcquire that refuses every connection (a misconfigured hook, a
// replica check that fails after a failover) must not turn one Acquire into
// a dial storm: each new connection it refuses is retired, and dialing the
// next one at once, in a loop, hits the backend with a dial per few
// microseconds until the Acquire's deadline (2,000 dials in 50 ms against an
// instant fake). Refused new connections must be paced like failed dials
// (or fail the Acquire, as a new connection that fails its check on acquire
// does).
func TestBeforeAcquireRefusingEveryConnDoesNotStormTheBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		db.dialTime.Store(int64(time.Millisecond))
		cfg := db.config()
		cfg.BeforeAcquire = func(context.Context, *simConn) bool { return false }
		p, _ := simPool(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Acquire(ctx)
		cancel()
		if err == nil {
			t.Fatal("Acquire succeeded although BeforeAcquire refuses every connection")
		}
		if n := len(db.dialAttempts()); n > 20 {
			t.Errorf("one Acquire of 1s with every connection refused made %d dials (a dial each ms), want them paced (at most 20)", n)
		}
		db.shutBy(t, p)
	})
}
