package queue

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool/conn"
)

// Knobs of TestRandomOpsKeepEveryInvariant. The defaults fit CI (a few
// seconds under -race on 2 cores); for a soak:
//
//	go test -race -run RandomOps ./queue/ -args -queue.soak=10m
//	go test -race -run RandomOps ./queue/ -args -queue.seed=1234 -queue.rounds=500
var (
	flagSeed   = flag.Uint64("queue.seed", 0, "seed of the random operations test (0: from the clock; the test logs it)")
	flagRounds = flag.Int("queue.rounds", 0, "rounds per configuration of the random operations test (0: default, fewer with -short)")
	flagOps    = flag.Int("queue.ops", 0, "operations per goroutine per round (0: default)")
	flagSoak   = flag.Duration("queue.soak", 0, "run rounds of each configuration until this much time has passed (overrides -queue.rounds)")
	flagStall  = flag.Duration("queue.stall", 3*time.Second, "fail the random operations test when no operation finishes for this long")
)

// smeta is the test's own record of one connection; it is the connection's
// value, so every goroutine reaches it from the connection.
type smeta struct {
	id uint64
	// owner is the id of the test goroutine that holds the connection
	// (took it, or ended a check that found it detached), 0 if none. A
	// holder sets it with a CAS from 0: a failed CAS is two holders at once.
	owner atomic.Int32
}

type sconn = conn.Conn[*smeta]

const (
	loopID    = 1000
	watcherID = 1001
)

// stress is one configuration's state, kept across its rounds so that the
// table, the free list and the tags age as they do in a long-lived pool.
type stress struct {
	t        *testing.T
	s        *Idle[*smeta]
	counting bool
	maxLive  int

	// snap is every connection registered so far, for the watcher to pick
	// from; the loop publishes a new slice after each Register.
	snap atomic.Pointer[[]*sconn]
	// inbox carries connections retired or hijacked by the workers and the
	// watcher to the loop, as the pool's commands do.
	inbox struct {
		sync.Mutex
		list []*sconn
	}
	stop     atomic.Bool  // set on the first failure: everyone winds down
	progress atomic.Int64 // operations finished, for the stall detector

	// Owned by the loop goroutine (and by the test between rounds).
	all      []*sconn
	nextID   uint64
	live     map[*sconn]bool // registered, not unregistered
	byIndex  map[uint32]*sconn
	pending  []*sconn // retired and closed, Unregister refused so far
	finished map[*sconn]bool
}

func (st *stress) fail(format string, args ...any) {
	st.t.Helper()
	st.stop.Store(true)
	st.t.Errorf(format, args...)
}

func (st *stress) post(c *sconn) {
	st.inbox.Lock()
	st.inbox.list = append(st.inbox.list, c)
	st.inbox.Unlock()
}

// hold records that goroutine id now holds c, and checks what a hand-out
// must guarantee.
func (st *stress) hold(id int32, c *sconn, lease uint64) {
	if st.s.at(c.Link().Index) != c {
		// Read the state after the slot: Unregister needs a dead
		// connection, and death is for good, so a live state now means
		// c's index named another connection while c was alive.
		if s := c.State(); s != conn.Retired && s != conn.Closed {
			st.fail("conn %d (held, %v) has index %d, which names another connection", c.Value().id, s, c.Link().Index)
		}
	}
	if m := c.Value(); !m.owner.CompareAndSwap(0, id) {
		st.fail("conn %d handed to %d while %d holds it", m.id, id, m.owner.Load())
	}
	if !c.Held(lease) {
		// Only the loop's ForceRetire may take it from under us.
		if s := c.State(); s != conn.Retired && s != conn.Closed {
			st.fail("conn %d handed out under lease %d but is %v", c.Value().id, lease, s)
		}
	}
}

func (st *stress) unhold(id int32, c *sconn) {
	if m := c.Value(); !m.owner.CompareAndSwap(id, 0) {
		st.fail("conn %d released by %d but owned by %d", m.id, id, m.owner.Load())
	}
}

// put releases c (held by id under lease) into the set. A refusal is only
// right if the loop retired c under its holder.
func (st *stress) put(id int32, c *sconn, lease uint64) bool {
	st.unhold(id, c)
	if st.s.Release(c, lease) {
		return true
	}
	if s := c.State(); s != conn.Retired && s != conn.Closed {
		st.fail("Release of conn %d under its lease %d refused; it is %v", c.Value().id, lease, s)
	}
	return false
}

type held struct {
	c     *sconn
	lease uint64
}

func (st *stress) worker(id int32, r *rand.Rand, ops int) {
	var hs []held
	for n := 0; n < ops && !st.stop.Load(); n++ {
		st.progress.Add(1)
		x := r.IntN(100)
		switch {
		case x < 50 && len(hs) < 3:
			c, lease, ok := st.s.Take()
			if !ok {
				continue
			}
			st.hold(id, c, lease)
			hs = append(hs, held{c, lease})
		case len(hs) > 0:
			k := r.IntN(len(hs))
			h := hs[k]
			hs[k] = hs[len(hs)-1]
			hs = hs[:len(hs)-1]
			switch y := r.IntN(100); {
			case y < 88:
				if st.put(id, h.c, h.lease) && r.IntN(8) == 0 {
					// A late second Release of the same handle.
					if st.s.Release(h.c, h.lease) {
						st.fail("a second Release of conn %d under lease %d succeeded", h.c.Value().id, h.lease)
					}
				}
			case y < 95:
				st.unhold(id, h.c)
				if h.c.Retire(h.lease) {
					st.post(h.c) // Destroy
				}
			default:
				st.unhold(id, h.c)
				if h.c.Hijack(h.lease) {
					st.post(h.c)
				}
			}
		}
		if r.IntN(16) == 0 {
			runtime.Gosched()
		}
	}
	for _, h := range hs {
		st.put(id, h.c, h.lease)
	}
}

// watcher plays the health goroutines: it retires idle connections where
// they lie and checks others, racing with Take (which detaches them).
func (st *stress) watcher(r *rand.Rand, ops int) {
	for n := 0; n < ops && !st.stop.Load(); n++ {
		st.progress.Add(1)
		all := *st.snap.Load()
		if len(all) == 0 {
			runtime.Gosched()
			continue
		}
		c := all[r.IntN(len(all))]
		if r.IntN(100) < 15 {
			if c.ClaimIdle() {
				st.post(c)
			}
			continue
		}
		if !c.BeginCheck() {
			continue
		}
		if r.IntN(2) == 0 {
			runtime.Gosched()
		}
		if r.IntN(100) < 85 {
			lease, detached, ok := c.EndCheck()
			if ok && detached {
				st.hold(watcherID, c, lease)
				st.put(watcherID, c, lease)
			}
		} else if _, ok := c.RetireChecked(); ok {
			st.post(c)
		}
	}
}

// loop plays the reconcile loop: it registers new connections and releases
// them into the set, closes and unregisters retired ones, sweeps, and now
// and then retires a connection whatever its state (Close's deadline).
func (st *stress) loop(r *rand.Rand, ops int) {
	for n := 0; n < ops && !st.stop.Load(); n++ {
		st.progress.Add(1)
		switch x := r.IntN(100); {
		case x < 30:
			st.drainInbox()
		case x < 38:
			st.sweep()
		case x < 70:
			if len(st.live) < st.maxLive {
				st.register()
			}
		case x < 73:
			if len(st.all) > 0 {
				c := st.all[r.IntN(len(st.all))]
				if _, ok := c.ForceRetire(); ok {
					st.retired(c)
				}
			}
		default:
			runtime.Gosched()
		}
	}
}

func (st *stress) register() {
	st.nextID++
	m := &smeta{id: st.nextID}
	c := conn.New(m.id, m, time.Time{}, time.Time{}, 0)
	st.s.Register(c)
	i := c.Link().Index
	if old, ok := st.byIndex[i]; ok {
		st.fail("Register handed index %d to conn %d while conn %d (%v) still has it", i, m.id, old.Value().id, old.State())
	}
	st.byIndex[i] = c
	st.live[c] = true
	st.all = append(st.all, c)
	snap := append([]*sconn(nil), st.all...)
	st.snap.Store(&snap)
	st.hold(loopID, c, 1)
	st.put(loopID, c, 1)
}

// retired closes a connection that some goroutine claimed for retirement
// (exactly one claim can win) and tries to free its index.
func (st *stress) retired(c *sconn) {
	if st.finished[c] {
		st.fail("conn %d retired twice", c.Value().id)
		return
	}
	st.finished[c] = true
	if c.State() == conn.Hijacked {
		c.MarkHijacked()
	} else {
		c.MarkClosed()
	}
	st.unregister(c)
}

func (st *stress) unregister(c *sconn) {
	if !st.s.Unregister(c) {
		st.pending = append(st.pending, c)
		return
	}
	i := c.Link().Index
	if st.byIndex[i] != c {
		st.fail("conn %d unregistered but index %d was not its own", c.Value().id, i)
	}
	delete(st.byIndex, i)
	delete(st.live, c)
}

func (st *stress) drainInbox() {
	st.inbox.Lock()
	list := st.inbox.list
	st.inbox.list = nil
	st.inbox.Unlock()
	for _, c := range list {
		st.retired(c)
	}
}

func (st *stress) sweep() int {
	d := st.s.Sweep(func(c *sconn) bool {
		// Let takers and releasers run between the sweep's look at c, keep's
		// and what the sweep does about it.
		if rand.IntN(3) == 0 {
			runtime.Gosched()
		}
		s := c.State()
		if rand.IntN(3) == 0 {
			runtime.Gosched()
		}
		return s == conn.Idle || s == conn.Checking
	})
	p := st.pending
	st.pending = nil
	for _, c := range p {
		st.unregister(c)
	}
	return d
}

// walk lists the set's members: every front, then the stack top down. It
// checks the stack's links: every node's index names it, it has In set, no
// connection is listed twice.
func (st *stress) walk() (members []*sconn, ok bool) {
	s := st.s
	seen := map[*sconn]bool{}
	for i := range s.locals {
		if c := s.locals[i].c.Load(); c != nil {
			members = append(members, c)
			seen[c] = true
		}
	}
	for i, steps := uint32(s.top.Load()), uint32(0); i != 0; steps++ {
		if steps > s.next.Load() {
			st.fail("the stack has a cycle (more than %d nodes)", steps)
			return nil, false
		}
		c := s.at(i - 1)
		if c == nil {
			st.fail("the stack links free index %d", i-1)
			return nil, false
		}
		if seen[c] {
			st.fail("conn %d is in the set twice", c.Value().id)
			return nil, false
		}
		if !c.Link().In.Load() {
			st.fail("conn %d is in the stack with In clear", c.Value().id)
		}
		seen[c] = true
		members = append(members, c)
		i = c.Link().Next.Load()
	}
	for _, c := range st.all {
		if c.Link().In.Load() && !seen[c] {
			st.fail("conn %d has In set but is not in the stack", c.Value().id)
		}
	}
	return members, true
}

// verify runs at quiescence (every goroutine of the round has returned).
func (st *stress) verify() {
	t := st.t
	st.drainInbox()
	idle := map[*sconn]bool{}
	for _, c := range st.all {
		switch s := c.State(); s {
		case conn.Idle:
			idle[c] = true
		case conn.Closed, conn.Hijacked:
		default:
			st.fail("conn %d is %v at quiescence: every holder released and every check ended", c.Value().id, s)
		}
		if o := c.Value().owner.Load(); o != 0 {
			st.fail("conn %d still owned by %d at quiescence", c.Value().id, o)
		}
	}
	members, ok := st.walk()
	if !ok {
		return
	}
	inFront := map[*sconn]bool{}
	for i := range st.s.locals {
		if c := st.s.locals[i].c.Load(); c != nil {
			inFront[c] = true
		}
	}
	tombs := 0
	inSet := map[*sconn]bool{}
	for _, c := range members {
		inSet[c] = true
		switch c.State() {
		case conn.Idle:
		case conn.Closed:
			tombs++
		case conn.Hijacked:
			// A sticky front keeps pointing at the connection it handed
			// out, so it may point at one its holder hijacked: a
			// tombstone. Nowhere else.
			if st.counting || !inFront[c] {
				st.fail("conn %d is in the set but %v", c.Value().id, c.State())
			}
			tombs++
		default:
			st.fail("conn %d is in the set but %v", c.Value().id, c.State())
		}
	}
	for c := range idle {
		if !inSet[c] {
			st.fail("conn %d is idle but in no set: lost", c.Value().id)
		}
	}
	if n := st.s.Len(); n != len(members) {
		st.fail("Len = %d, the set holds %d", n, len(members))
	}
	if st.counting {
		if n := st.s.Count(); n != int64(len(members)) {
			st.fail("Count = %d, the set holds %d", n, len(members))
		}
	}
	// Sweep: every tombstone leaves, and then every index can be freed.
	if d := st.sweep(); d != tombs {
		st.fail("Sweep dropped %d, the set held %d tombstones", d, tombs)
	}
	if len(st.pending) != 0 {
		st.fail("%d retired connections still refused by Unregister after a Sweep at quiescence", len(st.pending))
	}
	if n := st.s.Len(); n != len(idle) {
		st.fail("Len after Sweep = %d, want the %d idle connections", n, len(idle))
	}
	if st.counting {
		if n := st.s.Count(); n != int64(len(idle)) {
			st.fail("Count after Sweep = %d, want %d", n, len(idle))
		}
	}
	// Indexes: the live ones name their connections; free ones are free,
	// once each.
	if len(st.live) != len(idle) {
		st.fail("%d connections registered, %d idle: Unregister freed too few or too many", len(st.live), len(idle))
	}
	used := map[uint32]bool{}
	for i, c := range st.byIndex {
		if st.s.at(i) != c {
			st.fail("index %d names another connection than conn %d", i, c.Value().id)
		}
		used[i] = true
	}
	for _, i := range st.s.free {
		if used[i] {
			st.fail("index %d is both free and in use", i)
		}
		used[i] = true
		if st.s.at(i) != nil {
			st.fail("free index %d still names conn %d", i, st.s.at(i).Value().id)
		}
	}
	if uint32(len(used)) != st.s.next.Load() {
		st.fail("%d indexes accounted for, %d handed out", len(used), st.s.next.Load())
	}
	// Drain: Take finds exactly the idle connections, then they go back.
	var taken []held
	got := map[*sconn]bool{}
	for {
		c, lease, ok := st.s.Take()
		if !ok {
			break
		}
		if got[c] {
			st.fail("drain took conn %d twice", c.Value().id)
			break
		}
		got[c] = true
		taken = append(taken, held{c, lease})
	}
	if len(got) != len(idle) {
		t.Errorf("drain took %d connections, %d are idle", len(got), len(idle))
	}
	for c := range idle {
		if !got[c] {
			st.fail("drain did not find idle conn %d", c.Value().id)
		}
	}
	for _, h := range taken {
		if !st.s.Release(h.c, h.lease) {
			st.fail("Release after the drain refused")
		}
	}
}

// await waits for the round's goroutines. If none of them finishes an
// operation for -queue.stall (a cycle in the stack makes Take spin for good),
// it prints every goroutine and ends the test binary: the spinning goroutines
// cannot be stopped, and the set is corrupt.
func (st *stress) await(wg *sync.WaitGroup, seed uint64, round int) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, since := st.progress.Load(), time.Now()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if p := st.progress.Load(); p != last {
			last, since = p, time.Now()
			continue
		}
		if time.Since(since) > *flagStall {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "--- FAIL: %s: round %d stalled: no operation finished for %v (seed %d); goroutines:\n%s",
				st.t.Name(), round, *flagStall, seed, buf[:runtime.Stack(buf, true)])
			os.Exit(2)
		}
	}
}

type stressConfig struct {
	procs, workers int
	counting       bool
}

// TestRandomOpsKeepEveryInvariant runs Release and Take on several
// goroutines, a watcher that retires idle connections where they lie and
// checks others (racing with Take, which detaches them), and a loop that
// registers, closes, unregisters, sweeps and force-retires, all driven by a
// seeded PRNG. At the end of each round (quiescence) it checks the set
// against what the goroutines did: no connection lost or listed twice, no
// two holders at once, no index naming two live connections, tombstones gone
// after a Sweep and every index then freed, Len and Count exact. Run with
// -race; see the flags above for a soak.
func TestRandomOpsKeepEveryInvariant(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -args -queue.seed=%d)", seed, seed)
	rounds, ops := 25, 2000
	if testing.Short() {
		rounds = 5
	}
	if *flagRounds > 0 {
		rounds = *flagRounds
	}
	if *flagOps > 0 {
		ops = *flagOps
	}
	for _, cfg := range []stressConfig{
		{procs: 1, workers: 3, counting: true},
		{procs: 2, workers: 4, counting: true},
		{procs: 8, workers: 8, counting: false}, // more Ps than cores: threads preempted mid-operation
	} {
		t.Run(fmt.Sprintf("procs=%d,workers=%d,counting=%v", cfg.procs, cfg.workers, cfg.counting), func(t *testing.T) {
			prev := runtime.GOMAXPROCS(cfg.procs)
			defer runtime.GOMAXPROCS(prev)
			st := &stress{
				t: t, s: New[*smeta](cfg.counting), counting: cfg.counting, maxLive: 24,
				live: map[*sconn]bool{}, byIndex: map[uint32]*sconn{}, finished: map[*sconn]bool{},
			}
			st.snap.Store(&[]*sconn{})
			// Yield now and then inside the stack's race windows, so that
			// other goroutines run whole operations in them (what a
			// preempted thread sees), not only on the rare preemption
			// that lands there.
			st.s.hook = func() {
				if rand.IntN(4) == 0 {
					runtime.Gosched()
				}
			}
			start := time.Now()
			for round := 0; ; round++ {
				if *flagSoak > 0 {
					if time.Since(start) > *flagSoak {
						t.Logf("%d rounds in %v", round, time.Since(start).Round(time.Millisecond))
						break
					}
				} else if round >= rounds {
					break
				}
				st.round(seed, round, cfg.workers, ops)
				if t.Failed() {
					t.Fatalf("round %d failed (seed %d)", round, seed)
				}
			}
		})
	}
}

func (st *stress) round(seed uint64, round, workers, ops int) {
	rng := func(g int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(round)<<16|uint64(g))) }
	var wg sync.WaitGroup
	for w := 1; w <= workers; w++ {
		r := rng(w)
		wg.Go(func() { st.worker(int32(w), r, ops) })
	}
	rw, rl := rng(watcherID), rng(loopID)
	wg.Go(func() { st.watcher(rw, ops) })
	wg.Go(func() { st.loop(rl, ops) })
	st.await(&wg, seed, round)
	st.verify()
}
