package tidepool_test

// Hijack: a held connection leaves the pool for good. Its slot is free at
// once, and the pool never checks, retires or closes it again.

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Hijack frees the connection's slot at once: Stats.Slots drops, and an
// Acquire waiting on a full pool gets a newly dialed connection. It is
// counted (Stats.Hijacked) and logged (conn.hijacked).
func TestHijackFreesTheSlotAtOnceForAWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		p, logs := simPool(t, cfg)
		h, c := take(t, p)
		id := h.ID()
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
		if st := p.Stats(); st.Waiting != 1 || st.Slots != 1 {
			t.Fatalf("before Hijack: waiting=%d slots=%d, want 1 1", st.Waiting, st.Slots)
		}
		if v := h.Hijack(); v != c {
			t.Fatalf("Hijack returned conn %d, want the held conn %d", v.id, c.id)
		}
		if w := <-got; w == nil || w == c {
			t.Fatalf("waiter got %v, want a new connection in the hijacked one's slot", w)
		}
		synctest.Wait()
		st := p.Stats()
		if st.Hijacked != 1 || st.Slots != 1 || st.Total != 1 || st.Dials != 2 {
			t.Errorf("after Hijack: hijacked=%d slots=%d total=%d dials=%d, want 1 1 1 2", st.Hijacked, st.Slots, st.Total, st.Dials)
		}
		es := logs.FilterMessage("conn.hijacked").All()
		if len(es) != 1 || es[0].ContextMap()["conn_id"] != id {
			t.Errorf("conn.hijacked entries %v, want one with conn_id %d", es, id)
		}
		c.held.Store(false)
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, d := range db.all() {
			if want := int32(1); d == c && d.closes.Load() != 0 || d != c && d.closes.Load() != want {
				t.Errorf("conn %d closed %d times; want the hijacked one never, the others once", d.id, d.closes.Load())
			}
		}
	})
}

// Without a waiter, the slot count drops the moment the loop hears of it.
func TestHijackDropsStatsSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, _ := simPool(t, db.config())
		h, c := take(t, p)
		synctest.Wait()
		if st := p.Stats(); st.Slots != 1 {
			t.Fatalf("slots=%d before Hijack, want 1", st.Slots)
		}
		h.Hijack()
		synctest.Wait()
		if st := p.Stats(); st.Slots != 0 || st.Total != 0 || st.InUse != 0 || st.Hijacked != 1 {
			t.Errorf("after Hijack: slots=%d total=%d in_use=%d hijacked=%d, want 0 0 0 1", st.Slots, st.Total, st.InUse, st.Hijacked)
		}
		c.held.Store(false)
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c.closes.Load() != 0 {
			t.Errorf("Close closed the hijacked connection")
		}
	})
}

// The pool never touches a hijacked connection again: no health check, no
// lifetime or idle retirement, no Reset, no BeforeClose or Close — not even
// at Close, nor when Close's deadline forces held connections shut.
func TestPoolNeverTouchesAHijackedConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.Check, cfg.HealthInterval = db.check, time.Second
		cfg.MaxLifetime, cfg.MaxIdleTime = 10*time.Second, 5*time.Second
		var touched sync.Map // *simConn → BeforeClose ran on it
		cfg.BeforeClose = func(c *simConn) { touched.Store(c, true) }
		beforeClosed := func(c *simConn) bool { _, ok := touched.Load(c); return ok }
		p, logs := simPool(t, cfg)
		h, c := take(t, p)
		id := h.ID()
		other, oc := take(t, p)
		time.Sleep(2 * time.Second) // both held: no check
		checks := c.checks.Load()
		v := h.Hijack()
		v.held.Store(false) // the test still uses it, but the pool must not know
		give(other)
		time.Sleep(time.Minute) // checks, lifetimes and idle times pass for the pool's connections
		p.Reset()
		synctest.Wait()
		if c.checks.Load() != checks || c.closes.Load() != 0 || beforeClosed(c) {
			t.Errorf("hijacked conn: %d checks after Hijack, closes=%d, BeforeClose=%v; want none", c.checks.Load()-checks, c.closes.Load(), beforeClosed(c))
		}
		if oc.closes.Load() != 1 || oc.checks.Load() == 0 {
			t.Errorf("the pool's own connection: closes=%d checks=%d, want it checked and retired (idle time) meanwhile", oc.closes.Load(), oc.checks.Load())
		}
		h2, _ := take(t, p) // held through Close's deadline: forced shut
		h2.Value().held.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.Close(ctx)
		cancel()
		if err == nil {
			t.Errorf("Close with a held connection past its deadline: nil error, want the forced close reported")
		}
		if c.closes.Load() != 0 || beforeClosed(c) {
			t.Errorf("Close closed the hijacked connection (closes=%d, BeforeClose=%v)", c.closes.Load(), beforeClosed(c))
		}
		for _, e := range logs.FilterMessage("conn.retired").All() {
			if e.ContextMap()["conn_id"] == id {
				t.Errorf("hijacked conn retired by the pool: %v", e.ContextMap())
			}
		}
		if st := p.Stats(); st.Hijacked != 1 {
			t.Errorf("Stats.Hijacked = %d, want 1", st.Hijacked)
		}
	})
}

// A hijacked handle is spent: every further use panics with the misuse
// message, and it does not change the pool.
func TestHijackedHandleIsSpent(t *testing.T) {
	_, p := poolOfSize(t, 2)
	defer closePool(t, p)
	h := mustAcquire(t, p)
	v := h.Hijack()
	const msg = "already released, destroyed or hijacked"
	mustPanic(t, msg, h.Release)
	mustPanic(t, msg, h.Destroy)
	mustPanic(t, msg, func() { h.Value() })
	mustPanic(t, msg, func() { h.Hijack() })
	mustPanic(t, msg, func() { h.ID() })
	mustPanic(t, msg, func() { h.IdleDuration() })
	if v.closed.Load() != 0 {
		t.Errorf("hijacked value closed by the pool")
	}
	h2 := mustAcquire(t, p)
	if h2.Value() == v {
		t.Errorf("the hijacked value was handed out again")
	}
	h2.Release()
}

// A Hijack pays a pending shrink like a release would: with both
// connections held and the max cut to 1, hijacking one leaves the pool at its
// max, so the other goes back to the idle set on release instead of closing.
func TestHijackPaysAPendingShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 2
		p, _ := simPool(t, cfg)
		ha, a := take(t, p)
		hb, b := take(t, p)
		if err := p.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := p.Stats(); st.PendingShrink != 1 {
			t.Fatalf("pending_shrink=%d after Resize(0, 1) with 2 held, want 1", st.PendingShrink)
		}
		a.held.Store(false)
		ha.Hijack()
		synctest.Wait()
		if st := p.Stats(); st.PendingShrink != 0 || st.Slots != 1 {
			t.Errorf("after Hijack: pending_shrink=%d slots=%d, want 0 1", st.PendingShrink, st.Slots)
		}
		give(hb)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 1 || st.Closed.Shrink != 0 || b.closes.Load() != 0 {
			t.Errorf("after the release: idle=%d closed(shrink)=%d, want 1 0: the pool was at its max already", st.Idle, st.Closed.Shrink)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.closes.Load() != 0 || b.closes.Load() != 1 {
			t.Errorf("closes: hijacked %d, other %d; want 0 1", a.closes.Load(), b.closes.Load())
		}
	})
}
