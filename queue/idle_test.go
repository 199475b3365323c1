package queue_test

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tconn = conn.Conn[int]

// newConn returns a connection registered in s and held (lease 1) by the
// caller, as the reconcile loop has one right after a dial.
func newConn(s *queue.Idle[int], id int) *tconn {
	c := conn.New(uint64(id), id, time.Time{}, time.Time{}, 0)
	s.Register(c)
	return c
}

// oneP runs the rest of the test on a single P. The idle set's order is per
// P (one front each), and a goroutine may move to another P between two calls;
// with one P it cannot, so the order a test sees is exactly the set's order.
// Call it before New: the set sizes its fronts then.
func oneP(t *testing.T) {
	t.Helper()
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// release puts c, held under lease, into s and fails the test if s refuses.
func release(t *testing.T, s *queue.Idle[int], c *tconn, lease uint64) {
	t.Helper()
	if !s.Release(c, lease) {
		l, st := c.Load()
		t.Fatalf("Release(conn %d, lease %d) refused; conn is %v under lease %d", c.ID(), lease, st, l)
	}
}

// take takes one connection from s and fails the test if there is none or it
// is not held under the lease Take returned.
func take(t *testing.T, s *queue.Idle[int]) (*tconn, uint64) {
	t.Helper()
	c, lease, ok := s.Take()
	if !ok {
		t.Fatalf("Take found nothing; Len=%d", s.Len())
	}
	if !c.Held(lease) {
		l, st := c.Load()
		t.Fatalf("Take returned conn %d with lease %d, but it is %v under lease %d", c.ID(), lease, st, l)
	}
	return c, lease
}

// takeIDs takes until the set reports none and returns the ids in order.
func takeIDs(t *testing.T, s *queue.Idle[int]) []int {
	t.Helper()
	var ids []int
	for {
		c, lease, ok := s.Take()
		if !ok {
			return ids
		}
		if !c.Held(lease) {
			t.Fatalf("Take returned conn %d not held under lease %d", c.ID(), lease)
		}
		ids = append(ids, c.Value())
	}
}

func expectEmpty(t *testing.T, s *queue.Idle[int]) {
	t.Helper()
	if c, _, ok := s.Take(); ok {
		t.Fatalf("Take on an empty set returned conn %d", c.ID())
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("Len of an empty set = %d", n)
	}
}

func TestTakeReturnsTheConnJustReleasedOnThisGoroutine(t *testing.T) {
	s := queue.New[int](false)
	c := newConn(s, 1)
	lease := uint64(1)
	for range 1000 {
		release(t, s, c, lease)
		got, l := take(t, s)
		if got != c {
			t.Fatalf("Take returned conn %d, want the one just released (%d)", got.ID(), c.ID())
		}
		if l != lease+1 {
			t.Fatalf("Take returned lease %d, want %d (one more than the releaser's)", l, lease+1)
		}
		lease = l
	}
	expectEmpty(t, s)
}

func TestIdleOrderIsFrontThenStackLIFO(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	for id := 1; id <= 5; id++ {
		release(t, s, newConn(s, id), 1)
	}
	// 1 went to the front; 2..5 onto the stack.
	if got, want := takeIDs(t, s), []int{1, 5, 4, 3, 2}; !slices.Equal(got, want) {
		t.Fatalf("Take order = %v, want %v (front, then the stack newest first)", got, want)
	}
	expectEmpty(t, s)
}

func TestInFlagMarksStackMembersOnly(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	a, b := newConn(s, 1), newConn(s, 2)
	release(t, s, a, 1) // front
	release(t, s, b, 1) // stack
	if a.Link().In.Load() {
		t.Error("the front's connection has In set")
	}
	if !b.Link().In.Load() {
		t.Error("the stacked connection has In clear")
	}
	take(t, s)
	take(t, s)
	if a.Link().In.Load() || b.Link().In.Load() {
		t.Error("In still set after both were taken")
	}
}

func TestTakeOnAnEmptySetFindsNothing(t *testing.T) {
	for _, counting := range []bool{false, true} {
		s := queue.New[int](counting)
		expectEmpty(t, s)
		if n := s.Count(); n != 0 {
			t.Fatalf("Count of a new set = %d", n)
		}
		c := newConn(s, 1)
		release(t, s, c, 1)
		take(t, s)
		expectEmpty(t, s)
		if n := s.Count(); n != 0 {
			t.Fatalf("Count after taking the only member = %d", n)
		}
	}
}

func TestTombstonesAreDroppedNeverReturned(t *testing.T) {
	oneP(t)
	s := queue.New[int](true)
	cs := make([]*tconn, 7)
	for i := range cs {
		cs[i] = newConn(s, i)
		release(t, s, cs[i], 1)
	}
	// 0 is in the front, 1..6 on the stack (6 on top). Retire the front's
	// one and every other stacked one, with each way a connection dies
	// where it lies.
	if !cs[0].ClaimIdle() || !cs[6].ClaimIdle() || !cs[2].ClaimIdle() {
		t.Fatal("ClaimIdle of an idle connection failed")
	}
	if !cs[4].BeginCheck() {
		t.Fatal("BeginCheck failed")
	}
	if inSet, ok := cs[4].RetireChecked(); !inSet || !ok {
		t.Fatalf("RetireChecked = (%v, %v), want (true, true)", inSet, ok)
	}
	if n := s.Len(); n != 7 {
		t.Fatalf("Len with tombstones = %d, want 7 (tombstones stay until taken or swept)", n)
	}
	if got, want := takeIDs(t, s), []int{5, 3, 1}; !slices.Equal(got, want) {
		t.Fatalf("Take returned %v, want %v: tombstones must be dropped, never returned", got, want)
	}
	expectEmpty(t, s)
	if n := s.Count(); n != 0 {
		t.Fatalf("Count after the tombstones were dropped = %d, want 0", n)
	}
	for _, i := range []int{0, 2, 4, 6} {
		if st := cs[i].State(); st != conn.Retired {
			t.Errorf("tombstone %d is %v after it was dropped, want retired", i, st)
		}
		if cs[i].Link().In.Load() {
			t.Errorf("tombstone %d still has In set after it was dropped", i)
		}
	}
}

func TestTakeDetachesConnsUnderCheckAndSkipsAtMostMaxSkips(t *testing.T) {
	oneP(t)
	s := queue.New[int](true)
	// Bottom to top: live, then MaxSkips connections under check. The front
	// holds a connection under check too.
	front := newConn(s, 100)
	release(t, s, front, 1)
	live := newConn(s, 0)
	release(t, s, live, 1)
	checking := []*tconn{front}
	for i := 1; i < queue.MaxSkips; i++ {
		c := newConn(s, i)
		release(t, s, c, 1)
		checking = append(checking, c)
	}
	for _, c := range checking {
		if !c.BeginCheck() {
			t.Fatal("BeginCheck of an idle connection failed")
		}
	}
	if c, _, ok := s.Take(); ok {
		t.Fatalf("Take returned conn %d past %d connections under check; want none (MaxSkips=%d)", c.ID(), len(checking), queue.MaxSkips)
	}
	for _, c := range checking {
		if st := c.State(); st != conn.Detached {
			t.Fatalf("skipped conn %d is %v, want detached", c.ID(), st)
		}
		if c.Link().In.Load() {
			t.Fatalf("detached conn %d still has In set", c.ID())
		}
	}
	if n := s.Len(); n != 1 {
		t.Fatalf("Len = %d after the skips, want 1 (the live connection stays)", n)
	}
	if n := s.Count(); n != 1 {
		t.Fatalf("Count = %d after the skips, want 1", n)
	}
	// The next Take finds it.
	if c, _ := take(t, s); c != live {
		t.Fatalf("Take returned conn %d, want the live one", c.ID())
	}
	// Each watcher ends its check: it now holds its connection and puts it back.
	for _, c := range checking {
		lease, detached, ok := c.EndCheck()
		if !ok || !detached {
			t.Fatalf("EndCheck = (%d, %v, %v), want detached and ok", lease, detached, ok)
		}
		release(t, s, c, lease)
	}
	if n := len(takeIDs(t, s)); n != len(checking) {
		t.Fatalf("took %d connections after the checks ended, want %d", n, len(checking))
	}
}

func TestTakePassesFewerThanMaxSkipsConnsUnderCheck(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	release(t, s, newConn(s, 98), 1) // the front
	live := newConn(s, 0)
	release(t, s, live, 1) // the stack's bottom
	var checking []*tconn
	for i := 1; i < queue.MaxSkips; i++ { // MaxSkips-1 under check above live
		c := newConn(s, i)
		release(t, s, c, 1)
		c.BeginCheck()
		checking = append(checking, c)
	}
	if c, _ := take(t, s); c.ID() != 98 {
		t.Fatalf("Take returned %d, want the front's 98", c.ID())
	}
	if c, _ := take(t, s); c != live {
		t.Fatalf("Take returned %d, want the live connection below %d under check", c.ID(), len(checking))
	}
	for _, c := range checking {
		if st := c.State(); st != conn.Detached {
			t.Fatalf("conn %d is %v, want detached", c.ID(), st)
		}
	}
}

func TestTombstonesDoNotCountAsSkips(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	release(t, s, newConn(s, 98), 1) // the front
	live := newConn(s, 0)
	release(t, s, live, 1) // the stack's bottom
	for i := 1; i <= 3*queue.MaxSkips; i++ {
		c := newConn(s, i)
		release(t, s, c, 1)
		c.ClaimIdle()
	}
	take(t, s) // 98 from the front
	if c, _ := take(t, s); c != live {
		t.Fatalf("Take returned %d, want the live one under %d tombstones", c.ID(), 3*queue.MaxSkips)
	}
}

func TestReleaseRefusesAStaleLease(t *testing.T) {
	for _, stackPath := range []bool{false, true} {
		oneP(t)
		s := queue.New[int](true)
		if stackPath {
			release(t, s, newConn(s, 99), 1) // occupy the front
		}
		c := newConn(s, 1)
		release(t, s, c, 1)
		// Take the front first if it is occupied, then c.
		var lease uint64
		for {
			got, l := take(t, s)
			if got == c {
				lease = l
				break
			}
			if stackPath {
				continue // the filler stays out; c is next
			}
			t.Fatalf("took %d, want c", got.ID())
		}
		if stackPath {
			release(t, s, newConn(s, 98), 1) // occupy the front again
		}
		before := s.Len()
		if s.Release(c, lease-1) {
			t.Fatal("Release under the previous holder's lease succeeded")
		}
		if got, st := c.Load(); got != lease || st != conn.InUse {
			t.Fatalf("refused Release changed the conn: %v under lease %d, want in_use under %d", st, got, lease)
		}
		if c.Link().In.Load() {
			t.Fatal("refused Release left In set")
		}
		if s.Len() != before || s.Count() != int64(before) {
			t.Fatalf("refused Release changed the set: Len %d Count %d, want %d", s.Len(), s.Count(), before)
		}
		// A connection retired under its holder: the holder's Release is refused.
		if _, ok := c.ForceRetire(); !ok {
			t.Fatal("ForceRetire failed")
		}
		if s.Release(c, lease) {
			t.Fatal("Release of a connection retired under its holder succeeded")
		}
		if c.Link().In.Load() {
			t.Fatal("refused Release of a retired conn left In set")
		}
		c.MarkClosed()
		if !s.Unregister(c) {
			t.Fatal("Unregister of a closed connection that never entered the set refused")
		}
	}
}

// A stale Release (a second Release of a handle, a late one) of a connection
// that is in the stack must change nothing: in particular it must not clear
// In, or Unregister would free the index of a connection still linked in the
// stack, and the next Register would splice a new connection into it.
func TestStaleReleaseLeavesAStackedConnMarked(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	release(t, s, newConn(s, 99), 1) // the front
	c := newConn(s, 1)
	release(t, s, c, 1) // onto the stack
	if s.Release(c, 1) {
		t.Fatal("a second Release under the same lease succeeded")
	}
	if !c.Link().In.Load() {
		t.Fatal("a refused Release cleared In of a connection that is in the stack")
	}
	// What goes wrong otherwise: c dies where it lies, the loop frees its index.
	c.ClaimIdle()
	c.MarkClosed()
	if s.Unregister(c) {
		t.Fatal("Unregister freed the index of a connection still in the stack")
	}
}

func TestSweepKeepsOrderAndDropsOnlyWhatKeepRejects(t *testing.T) {
	oneP(t)
	s := queue.New[int](true)
	cs := make([]*tconn, 10)
	for i := range cs {
		cs[i] = newConn(s, i)
		release(t, s, cs[i], 1)
	}
	// Front: 0. Stack bottom to top: 1..9.
	for _, i := range []int{0, 3, 4, 9} {
		cs[i].ClaimIdle()
	}
	cs[6].BeginCheck()
	cs[7].BeginCheck()
	cs[7].RetireChecked()
	var seen []int
	dropped := s.Sweep(func(c *tconn) bool {
		seen = append(seen, c.Value())
		st := c.State()
		return st == conn.Idle || st == conn.Checking
	})
	if dropped != 5 {
		t.Fatalf("Sweep dropped %d, want 5", dropped)
	}
	// keep is asked twice about a front's connection it rejects (before and
	// after the sweep owns it).
	slices.Sort(seen)
	seen = slices.Compact(seen)
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(seen, want) {
		t.Fatalf("keep saw %v, want every member once: %v", seen, want)
	}
	if n := s.Len(); n != 5 {
		t.Fatalf("Len after Sweep = %d, want 5", n)
	}
	if n := s.Count(); n != 5 {
		t.Fatalf("Count after Sweep = %d, want 5", n)
	}
	for _, i := range []int{0, 3, 4, 7, 9} {
		if cs[i].Link().In.Load() {
			t.Errorf("swept tombstone %d still has In set", i)
		}
	}
	for _, i := range []int{1, 2, 5, 6, 8} {
		if !cs[i].Link().In.Load() {
			t.Errorf("kept conn %d lost its In flag", i)
		}
	}
	// Order kept: the stack newest first, 6 (under check) detached on the way.
	if got, want := takeIDs(t, s), []int{8, 5, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("Take order after Sweep = %v, want %v", got, want)
	}
	if st := cs[6].State(); st != conn.Detached {
		t.Fatalf("conn under check is %v after Take passed it, want detached", st)
	}

	// Sweep drops whatever keep rejects, live connections included, and
	// keeps a front it accepts.
	a, b := newConn(s, 20), newConn(s, 21)
	release(t, s, a, 1)
	release(t, s, b, 1)
	if d := s.Sweep(func(c *tconn) bool { return c != b }); d != 1 {
		t.Fatalf("Sweep dropped %d, want 1", d)
	}
	if got := takeIDs(t, s); !slices.Equal(got, []int{20}) {
		t.Fatalf("after a Sweep rejecting 21, Take returned %v, want [20]", got)
	}
	if s.Count() != 0 {
		t.Fatalf("Count = %d, want 0", s.Count())
	}
}

// Sweep asks keep about a front's connection before it owns it. If, in
// between, a taker steals it, keep sees it in use (or detached) and rejects
// it, and the holder puts it back into the same front, Sweep must not drop
// it: that connection would be idle and in no set, lost with its slot.
// keep itself plays the other goroutines here (take, then release into the
// same front), which is an interleaving real goroutines can produce.
func TestSweepNeverDropsAConnPutBackWhileKeepRuns(t *testing.T) {
	oneP(t)
	s := queue.New[int](true)
	c := newConn(s, 1)
	release(t, s, c, 1) // the front
	first := true
	dropped := s.Sweep(func(x *tconn) bool {
		if first && x == c {
			first = false
			got, lease := take(t, s)  // a thief takes it...
			st := got.State()         // ...keep looks at it now...
			release(t, s, got, lease) // ...and its holder puts it back
			return st == conn.Idle || st == conn.Checking
		}
		st := x.State()
		return st == conn.Idle || st == conn.Checking
	})
	if dropped != 0 {
		t.Errorf("Sweep dropped %d, want 0: the only member is idle", dropped)
	}
	if st := c.State(); st != conn.Idle {
		t.Fatalf("conn is %v, want idle", st)
	}
	if got, _, ok := s.Take(); !ok || got != c {
		t.Fatal("an idle connection is in no set after Sweep: lost")
	}
	if s.Count() != 0 {
		t.Fatalf("Count = %d, want 0", s.Count())
	}
}

func TestCountFollowsMembersWhenCounting(t *testing.T) {
	oneP(t)
	s := queue.New[int](true)
	cs := make([]*tconn, 6)
	for i := range cs {
		cs[i] = newConn(s, i)
		release(t, s, cs[i], 1)
		if n := s.Count(); n != int64(i+1) {
			t.Fatalf("Count after %d releases = %d", i+1, n)
		}
	}
	c, lease := take(t, s)
	if n := s.Count(); n != 5 {
		t.Fatalf("Count after a Take = %d, want 5", n)
	}
	release(t, s, c, lease)
	// Tombstones count until they leave.
	cs[1].ClaimIdle()
	cs[2].ClaimIdle()
	if n := s.Count(); n != 6 {
		t.Fatalf("Count with 2 unswept tombstones = %d, want 6", n)
	}
	if d := s.Sweep(func(c *tconn) bool { return c.State() == conn.Idle }); d != 2 {
		t.Fatalf("Sweep dropped %d, want 2", d)
	}
	if n := s.Count(); n != 4 {
		t.Fatalf("Count after Sweep = %d, want 4", n)
	}
	takeIDs(t, s)
	if n := s.Count(); n != 0 {
		t.Fatalf("Count after draining = %d, want 0", n)
	}

	off := queue.New[int](false)
	release(t, off, newConn(off, 1), 1)
	if n := off.Count(); n != 0 {
		t.Fatalf("Count without counting = %d, want 0", n)
	}
}

func TestUnregisteredIndexIsReusedLastFreedFirst(t *testing.T) {
	s := queue.New[int](false)
	cs := make([]*tconn, 4)
	for i := range cs {
		cs[i] = newConn(s, i)
		if got := cs[i].Link().Index; got != uint32(i) {
			t.Fatalf("conn %d got index %d, want %d", i, got, i)
		}
	}
	for _, i := range []int{1, 3} {
		cs[i].Retire(1)
		cs[i].MarkClosed()
		if !s.Unregister(cs[i]) {
			t.Fatalf("Unregister of closed conn %d refused", i)
		}
	}
	for _, want := range []uint32{3, 1, 4, 5} {
		if got := newConn(s, 10).Link().Index; got != want {
			t.Fatalf("Register handed out index %d, want %d", got, want)
		}
	}
}

func TestUnregisterRefusesWhileInTheStack(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	release(t, s, newConn(s, 99), 1) // the front
	c := newConn(s, 1)
	release(t, s, c, 1) // onto the stack
	c.ClaimIdle()
	c.MarkClosed()
	if s.Unregister(c) {
		t.Fatal("Unregister freed the index of a tombstone still in the stack")
	}
	if idx := newConn(s, 2).Link().Index; idx == c.Link().Index {
		t.Fatal("a refused Unregister freed the index anyway")
	}
	// Sweep takes the tombstone out; then the index can go.
	if d := s.Sweep(func(c *tconn) bool { return c.State() == conn.Idle }); d != 1 {
		t.Fatalf("Sweep dropped %d, want 1", d)
	}
	if !s.Unregister(c) {
		t.Fatal("Unregister refused after Sweep removed the tombstone")
	}
	if idx := newConn(s, 3).Link().Index; idx != c.Link().Index {
		t.Fatalf("Register handed out %d, want the freed index %d", idx, c.Link().Index)
	}
}

func TestUnregisterAcceptsAFrontTombstone(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	c := newConn(s, 1)
	release(t, s, c, 1) // the front: it holds the pointer, not the index
	c.ClaimIdle()
	c.MarkClosed()
	if !s.Unregister(c) {
		t.Fatal("Unregister refused a tombstone that is only in a front")
	}
	d := newConn(s, 2) // reuses c's index
	release(t, s, d, 1)
	if got := takeIDs(t, s); !slices.Equal(got, []int{2}) {
		t.Fatalf("Take returned %v, want [2]", got)
	}
}

func TestUnregisterPanicsOnALiveConn(t *testing.T) {
	for _, st := range []string{"held", "idle"} {
		s := queue.New[int](false)
		c := newConn(s, 1)
		if st == "idle" {
			release(t, s, c, 1)
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("Unregister of a %s connection did not panic", st)
				}
			}()
			s.Unregister(c)
		}()
	}
}

// An unregistered connection is garbage once the pool drops it: the table
// must not keep a closed connection (and the user's value) alive until its
// index happens to be reused.
func TestUnregisterForgetsTheConn(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	release(t, s, newConn(s, 99), 1) // the front, so c goes through the stack
	wp := func() weak.Pointer[tconn] {
		c := newConn(s, 1)
		release(t, s, c, 1)
		take(t, s) // the front's
		got, lease := take(t, s)
		if got != c {
			t.Fatalf("took %d, want c", got.ID())
		}
		c.Retire(lease)
		c.MarkClosed()
		if !s.Unregister(c) {
			t.Fatal("Unregister refused a closed connection out of the set")
		}
		return weak.Make(c)
	}()
	defer runtime.KeepAlive(s) // the set itself stays reachable
	for range 5 {
		runtime.GC()
		if wp.Value() == nil {
			return
		}
	}
	t.Fatal("an unregistered connection is still reachable from the idle set")
}

func TestRegisterAndUnregisterPanicOnMisuse(t *testing.T) {
	s := queue.New[int](false)
	c := newConn(s, 1)
	mustPanic(t, "Register twice", func() { s.Register(c) })
	c.Retire(1)
	c.MarkClosed()
	if !s.Unregister(c) {
		t.Fatal("Unregister of a closed conn refused")
	}
	mustPanic(t, "Unregister twice", func() { s.Unregister(c) })
	d := newConn(s, 2) // takes c's index
	if d.Link().Index != c.Link().Index {
		t.Fatalf("d got index %d, want c's %d", d.Link().Index, c.Link().Index)
	}
	mustPanic(t, "Unregister of a conn whose index went to another", func() { s.Unregister(c) })
	if e := newConn(s, 3); e.Link().Index == d.Link().Index {
		t.Fatal("a refused Unregister freed an index in use")
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// The table grows one chunk at a time while other goroutines release and
// take connections registered earlier (readers of the old table).
func TestTableGrowsPastManyChunksUnderConcurrentUse(t *testing.T) {
	const total = 700 // 11 chunks of 64
	s := queue.New[int](true)
	conns := make([]*tconn, 0, total)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var taken atomic.Int64
	for range 4 {
		wg.Go(func() {
			var held [3]struct {
				c     *tconn
				lease uint64
			}
			for {
				select {
				case <-stop:
					for _, h := range held {
						if h.c != nil && !s.Release(h.c, h.lease) {
							t.Errorf("Release of conn %d refused", h.c.ID())
						}
					}
					return
				default:
				}
				for i := range held {
					if held[i].c != nil {
						if !s.Release(held[i].c, held[i].lease) {
							t.Errorf("Release of conn %d refused", held[i].c.ID())
							return
						}
						held[i].c = nil
					}
				}
				for i := range held {
					c, lease, ok := s.Take()
					if !ok {
						break
					}
					taken.Add(1)
					held[i].c, held[i].lease = c, lease
				}
				runtime.Gosched()
			}
		})
	}
	for i := range total {
		c := newConn(s, i)
		conns = append(conns, c)
		release(t, s, c, 1)
		if i%16 == 0 {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	if s.Len() != total || s.Count() != total {
		t.Fatalf("after growth: Len %d Count %d, want %d", s.Len(), s.Count(), total)
	}
	seen := make(map[*tconn]bool, total)
	for {
		c, _, ok := s.Take()
		if !ok {
			break
		}
		if seen[c] {
			t.Fatalf("conn %d taken twice", c.ID())
		}
		seen[c] = true
	}
	if len(seen) != total {
		t.Fatalf("drained %d connections, want %d", len(seen), total)
	}
	for i, c := range conns {
		if c.Link().Index != uint32(i) {
			t.Fatalf("conn %d has index %d", i, c.Link().Index)
		}
	}
	if taken.Load() == 0 {
		t.Log("the readers took nothing while the table grew (scheduling); growth was tested without them")
	}
}

func TestLenCountsFrontsStackTombstonesAndChecks(t *testing.T) {
	oneP(t)
	s := queue.New[int](false)
	if s.Len() != 0 {
		t.Fatalf("Len of a new set = %d", s.Len())
	}
	cs := make([]*tconn, 5)
	for i := range cs {
		cs[i] = newConn(s, i)
		release(t, s, cs[i], 1)
		if n := s.Len(); n != i+1 {
			t.Fatalf("Len after %d releases = %d", i+1, n)
		}
	}
	cs[2].ClaimIdle()
	cs[3].BeginCheck()
	if n := s.Len(); n != 5 {
		t.Fatalf("Len with a tombstone and a check = %d, want 5", n)
	}
	take(t, s) // the front
	if n := s.Len(); n != 4 {
		t.Fatalf("Len after a Take = %d, want 4", n)
	}
}
