package conn_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/conn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newConn() *conn.Conn[string] {
	now := time.Now()
	return conn.New[string](7, "v", now, now.Add(time.Minute), 0)
}

func wantState(t *testing.T, c *conn.Conn[string], lease uint64, s conn.State) {
	t.Helper()
	if l, got := c.Load(); l != lease || got != s {
		t.Fatalf("state = (lease %d, %v), want (lease %d, %v)", l, got, lease, s)
	}
}

func TestNewConnIsBornHeldUnderLeaseOne(t *testing.T) {
	now := time.Now()
	c := conn.New[string](7, "v", now, time.Time{}, 0)
	wantState(t, c, 1, conn.InUse)
	if c.Value() != "v" || c.ID() != 7 || !c.Created().Equal(now) || !c.Deadline().IsZero() {
		t.Errorf("New kept value=%q id=%d created=%v deadline=%v", c.Value(), c.ID(), c.Created(), c.Deadline())
	}
	if !c.Held(1) || c.Held(2) || c.Held(0) {
		t.Error("Held: only lease 1 holds a new conn")
	}
}

func TestLeaseAdvancesOnEveryHandOut(t *testing.T) {
	c := newConn()
	if !c.Release(1) {
		t.Fatal("Release(1) of a new conn failed")
	}
	wantState(t, c, 1, conn.Idle)
	l, seen, ok := c.Acquire()
	if !ok || l != 2 || seen != conn.InUse {
		t.Fatalf("Acquire of idle conn = (%d, %v, %v), want (2, in_use, true)", l, seen, ok)
	}
	if _, seen, ok := c.Acquire(); ok || seen != conn.InUse {
		t.Fatalf("second Acquire of held conn = (%v, %v), want refused, seen in_use", seen, ok)
	}
	nl, ok := c.Transfer(2)
	if !ok || nl != 3 {
		t.Fatalf("Transfer(2) = (%d, %v), want (3, true)", nl, ok)
	}
	wantState(t, c, 3, conn.InUse)
}

func TestStaleLeaseIsRejected(t *testing.T) {
	c := newConn()
	c.Release(1)
	l, _, _ := c.Acquire() // lease 2
	// The holder of lease 1 released already: everything it tries fails.
	if c.Release(1) || c.Retire(1) || c.Held(1) {
		t.Fatal("a stale lease released, retired or held the conn")
	}
	if _, ok := c.Transfer(1); ok {
		t.Fatal("a stale lease transferred the conn")
	}
	wantState(t, c, l, conn.InUse)
	if !c.Release(l) || c.Release(l) {
		t.Fatal("the current lease must release exactly once")
	}
}

func TestRetireClaimsHeldConnOnce(t *testing.T) {
	c := newConn()
	if !c.Retire(1) || c.Retire(1) {
		t.Fatal("Retire must succeed once for the holder")
	}
	wantState(t, c, 1, conn.Retired)
	if _, seen, ok := c.Acquire(); ok || seen != conn.Retired {
		t.Fatalf("Acquire of retired conn: ok=%v seen=%v, want refused with retired", ok, seen)
	}
	if c.BeginCheck() {
		t.Fatal("BeginCheck of a retired conn succeeded")
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed before MarkClosed")
	default:
	}
	c.MarkClosed()
	wantState(t, c, 1, conn.Closed)
	<-c.Done()
}

func TestCheckOfIdleConnEndsIdle(t *testing.T) {
	c := newConn()
	if c.BeginCheck() {
		t.Fatal("BeginCheck of a held conn succeeded")
	}
	c.Release(1)
	if !c.BeginCheck() || c.BeginCheck() {
		t.Fatal("BeginCheck must claim an idle conn exactly once")
	}
	wantState(t, c, 1, conn.Checking)
	lease, detached, ok := c.EndCheck()
	if lease != 0 || detached || !ok {
		t.Fatalf("EndCheck = (%d, %v, %v), want (0, false, true)", lease, detached, ok)
	}
	wantState(t, c, 1, conn.Idle)
}

func TestAcquireDuringCheckDetachesAndCheckerGetsIt(t *testing.T) {
	c := newConn()
	c.Release(1)
	c.BeginCheck()
	if l, seen, ok := c.Acquire(); ok || l != 0 || seen != conn.Detached {
		t.Fatalf("Acquire during check = (%d, %v, %v), want refused, detached", l, seen, ok)
	}
	wantState(t, c, 1, conn.Detached)
	if _, seen, ok := c.Acquire(); ok || seen != conn.Detached {
		t.Fatal("Acquire of a detached conn succeeded")
	}
	lease, detached, ok := c.EndCheck()
	if lease != 2 || !detached || !ok {
		t.Fatalf("EndCheck of detached = (%d, %v, %v), want (2, true, true)", lease, detached, ok)
	}
	wantState(t, c, 2, conn.InUse)
	if !c.Release(2) {
		t.Fatal("the checker cannot put the conn back under its lease")
	}
}

func TestRetireCheckedSaysWhetherConnIsQueued(t *testing.T) {
	c := newConn()
	c.Release(1)
	c.BeginCheck()
	if inQueue, ok := c.RetireChecked(); !inQueue || !ok {
		t.Fatalf("RetireChecked of checking = (%v, %v), want (true, true)", inQueue, ok)
	}
	wantState(t, c, 1, conn.Retired)

	d := newConn()
	d.Release(1)
	d.BeginCheck()
	d.Acquire() // detaches it: no longer in the queue
	if inQueue, ok := d.RetireChecked(); inQueue || !ok {
		t.Fatalf("RetireChecked of detached = (%v, %v), want (false, true)", inQueue, ok)
	}
	wantState(t, d, 1, conn.Retired)
}

func TestForceRetireDuringCheckWins(t *testing.T) {
	for _, detach := range []bool{false, true} {
		c := newConn()
		c.Release(1)
		c.BeginCheck()
		want := conn.Checking
		if detach {
			c.Acquire()
			want = conn.Detached
		}
		if was, ok := c.ForceRetire(); !ok || was != want {
			t.Fatalf("ForceRetire = (%v, %v), want (%v, true)", was, ok, want)
		}
		if _, _, ok := c.EndCheck(); ok {
			t.Error("EndCheck after ForceRetire reported ok")
		}
		if _, ok := c.RetireChecked(); ok {
			t.Error("RetireChecked after ForceRetire reported ok")
		}
		if was, ok := c.ForceRetire(); ok || was != conn.Retired {
			t.Errorf("second ForceRetire = (%v, %v), want (retired, false)", was, ok)
		}
		c.MarkClosed()
		if was, ok := c.ForceRetire(); ok || was != conn.Closed {
			t.Errorf("ForceRetire after close = (%v, %v), want (closed, false)", was, ok)
		}
	}
}

func TestEndCheckWithoutCheckPanics(t *testing.T) {
	for name, f := range map[string]func(c *conn.Conn[string]){
		"EndCheck":      func(c *conn.Conn[string]) { c.EndCheck() },
		"RetireChecked": func(c *conn.Conn[string]) { c.RetireChecked() },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s on an idle conn did not panic", name)
				}
			}()
			c := newConn()
			c.Release(1)
			f(c)
		}()
	}
}

func TestExactlyOneConcurrentAcquirerWins(t *testing.T) {
	for range 200 {
		c := newConn()
		c.Release(1)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, _, ok := c.Acquire(); ok {
					wins.Add(1)
				}
			})
		}
		wg.Go(func() { c.BeginCheck() })
		wg.Wait()
		_, s := c.Load()
		switch w := wins.Load(); {
		case w == 1 && s == conn.InUse:
		case w == 0 && (s == conn.Checking || s == conn.Detached):
		default:
			t.Fatalf("%d acquirers won, final state %v", w, s)
		}
	}
}

func TestDoomKeepsFirstReason(t *testing.T) {
	c := newConn()
	if c.Doomed() != conn.ReasonNone {
		t.Fatal("new conn is doomed")
	}
	c.Doom(conn.ReasonLifetime)
	c.Doom(conn.ReasonShrink)
	if r := c.Doomed(); r != conn.ReasonLifetime {
		t.Errorf("Doomed = %v, want lifetime", r)
	}
}

func TestHeldSinceAndLeakMarkBelongToOneLease(t *testing.T) {
	c := newConn()
	site := "stack"
	c.SetHeld(1, 42, &site)
	if c.HeldSince(1) != 42 || c.HeldSince(2) != 0 || c.Site() != "stack" {
		t.Fatalf("HeldSince(1)=%d HeldSince(2)=%d Site=%q", c.HeldSince(1), c.HeldSince(2), c.Site())
	}
	if !c.MarkLeaked(1) || c.MarkLeaked(1) || !c.Leaked(1) || c.Leaked(2) {
		t.Fatal("MarkLeaked must report a lease once, and only that lease")
	}
	c.Release(1)
	l, _, _ := c.Acquire()
	c.SetHeld(l, 99, nil)
	if c.HeldSince(1) != 0 || c.HeldSince(l) != 99 || c.Site() != "" || c.Leaked(l) {
		t.Fatal("the next hand-out inherited the previous one's hold record")
	}
	if !c.MarkLeaked(l) {
		t.Fatal("a new lease could not be reported")
	}
}

func TestNamesOfStatesAndReasons(t *testing.T) {
	for s, want := range map[conn.State]string{0: "invalid", conn.Idle: "idle", conn.InUse: "in_use",
		conn.Checking: "checking", conn.Detached: "detached", conn.Retired: "retired", conn.Closed: "closed",
		conn.Hijacked: "hijacked", 99: "invalid"} {
		if s.String() != want {
			t.Errorf("State(%d) = %q, want %q", s, s.String(), want)
		}
	}
	for r, want := range map[conn.Reason]string{conn.ReasonNone: "none", conn.ReasonLifetime: "lifetime",
		conn.ReasonIdle: "idle", conn.ReasonHealth: "health", conn.ReasonShrink: "shrink",
		conn.ReasonDestroyed: "destroyed", conn.ReasonClose: "close", conn.ReasonExcessIdle: "excess_idle",
		conn.ReasonReset: "reset", conn.ReasonVetoed: "vetoed", conn.ReasonLateDial: "late_dial", 99: "invalid"} {
		if r.String() != want {
			t.Errorf("Reason(%d) = %q, want %q", r, r.String(), want)
		}
	}
	// Every reason below NumReasons has a name of its own.
	seen := map[string]bool{}
	for r := conn.Reason(0); int(r) < conn.NumReasons; r++ {
		if n := r.String(); n == "invalid" || seen[n] {
			t.Errorf("Reason(%d) has name %q: missing or repeated", r, n)
		} else {
			seen[n] = true
		}
	}
}

func TestHijackTakesHeldConnForGood(t *testing.T) {
	c := newConn()
	if c.Hijack(2) {
		t.Fatal("a stale lease hijacked the conn")
	}
	if !c.Hijack(1) {
		t.Fatal("the holder could not hijack")
	}
	wantState(t, c, 1, conn.Hijacked)
	if c.Release(1) || c.Retire(1) || c.Hijack(1) {
		t.Fatal("a hijacked conn was released, retired or hijacked again")
	}
	if _, seen, ok := c.Acquire(); ok || seen != conn.Hijacked {
		t.Fatalf("Acquire of a hijacked conn = (%v, %v), want refused", seen, ok)
	}
	if _, ok := c.ForceRetire(); ok {
		t.Fatal("ForceRetire took a hijacked conn back")
	}
	c.MarkHijacked()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after MarkHijacked")
	}
}

func TestClaimIdleRetiresOnlyAnIdleConn(t *testing.T) {
	c := newConn()
	if c.ClaimIdle() {
		t.Fatal("ClaimIdle took a held conn")
	}
	c.Release(1)
	if !c.BeginCheck() || c.ClaimIdle() {
		t.Fatal("ClaimIdle took a conn under check")
	}
	c.EndCheck()
	if !c.ClaimIdle() || c.ClaimIdle() {
		t.Fatal("ClaimIdle must claim an idle conn exactly once")
	}
	wantState(t, c, 1, conn.Retired)
}

func TestHandoutsCountLeasesButNotThePoolsOwnTakes(t *testing.T) {
	c := newConn()
	if c.Handouts() != 0 {
		t.Fatalf("new conn: %d hand-outs, want 0", c.Handouts())
	}
	c.Release(1)
	l, _, _ := c.Acquire() // a hand-out
	l, _ = c.Transfer(l)   // a hand-over to a waiter: another
	c.Release(l)
	c.Acquire() // the pool takes it for itself
	c.Uncount()
	if got := c.Handouts(); got != 2 {
		t.Fatalf("Handouts = %d, want 2", got)
	}
	// A check detached by an Acquire: the watcher's lease is not a hand-out.
	c2 := newConn()
	c2.Release(1)
	c2.BeginCheck()
	c2.Acquire() // detaches
	if _, detached, _ := c2.EndCheck(); !detached {
		t.Fatal("EndCheck did not report the detach")
	}
	if got := c2.Handouts(); got != 0 {
		t.Fatalf("Handouts after a detached check = %d, want 0", got)
	}
}

func TestLastUsedIsHandedFromReleaserToAcquirer(t *testing.T) {
	now := time.Now()
	c := conn.New[string](1, "v", now, time.Time{}, 42)
	if c.LastUsed() != 42 {
		t.Fatalf("born LastUsed = %d, want 42", c.LastUsed())
	}
	var wg sync.WaitGroup
	for i := range 100 {
		c.SetLastUsed(int64(i))
		l := uint64(1)
		if i > 0 {
			l = uint64(i + 1)
		}
		if !c.Release(l) {
			t.Fatalf("round %d: Release(%d) failed", i, l)
		}
		wg.Add(1)
		go func() { // under -race: the CAS pair orders the plain field
			defer wg.Done()
			if _, _, ok := c.Acquire(); !ok {
				t.Error("Acquire failed")
			}
			if got := c.LastUsed(); got != int64(i) {
				t.Errorf("round %d: LastUsed = %d", i, got)
			}
		}()
		wg.Wait()
	}
}

// Dead is true exactly for the states a connection never leaves.
func TestDeadStatesAreTheTerminalOnes(t *testing.T) {
	want := map[conn.State]bool{conn.Retired: true, conn.Closed: true, conn.Hijacked: true}
	for s := conn.Idle; s <= conn.Hijacked; s++ {
		if s.Dead() != want[s] {
			t.Errorf("%v.Dead() = %v, want %v", s, s.Dead(), want[s])
		}
	}
}
