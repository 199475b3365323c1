package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tidepool-go/tidepool"
)

// The simulation runs the member protocol — real Members, their loops and
// renewers — against memStore and fake pools under testing/synctest: fake
// time, so a minute of fleet life takes a fraction of a second, and every
// step is checked. A fake pool models what the backend sees: its slots grow
// towards min(demand, limit) one dial per millisecond, shrink at once for idle
// connections and one held connection per 5 ms (holders releasing), drop to
// the rest limit at once when the lease runs out, and to 0 when the process
// is killed. One stepper goroutine moves every pool and checks, after every
// step, that the sum of slots never exceeds the budget.

type sim struct {
	t      *testing.T
	budget int
	mu     sync.Mutex
	pools  []*fakePool
	max    int // most slots ever seen at once
	over   int // steps with the sum above the budget
	stop   chan struct{}
	done   chan struct{}
}

type fakePool struct {
	name string

	mu      sync.Mutex
	max     int
	until   time.Time
	rest    int
	slots   int
	demand  int
	waited  int64
	killed  bool
	fenceAt time.Time // when the lease last ran out with slots above rest
	held    int       // slots in use (≤ demand)
	relAt   time.Time // next release of a held connection above the limit
}

func newSim(t *testing.T, budget int) *sim {
	s := &sim{t: t, budget: budget, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *sim) pool(name string) *fakePool {
	p := &fakePool{name: name}
	s.mu.Lock()
	s.pools = append(s.pools, p)
	s.mu.Unlock()
	return p
}

func (s *sim) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(time.Millisecond):
		}
		now := time.Now()
		s.mu.Lock()
		sum := 0
		for _, p := range s.pools {
			sum += p.step(now)
		}
		s.max = max(s.max, sum)
		if sum > s.budget {
			s.over++
		}
		s.mu.Unlock()
	}
}

func (s *sim) close() (maxSeen, over int) {
	close(s.stop)
	<-s.done
	return s.max, s.over
}

func (p *fakePool) limitLocked(now time.Time) int {
	if !p.until.IsZero() && now.Before(p.until) {
		return p.max
	}
	return p.rest
}

// step advances the pool by one millisecond and returns its slots.
func (p *fakePool) step(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		p.slots, p.held = 0, 0
		return 0
	}
	lim := p.limitLocked(now)
	leaseOver := !p.until.IsZero() && !now.Before(p.until)
	if p.slots > lim {
		if leaseOver || p.until.IsZero() && p.rest == 0 && p.slots > 0 && p.relAt.IsZero() {
			// The lease ran out: everything above rest closes at once.
			if leaseOver {
				p.fenceAt = now
				p.slots = lim
			}
		}
		// Idle ones close at once; held ones as their holders release.
		if idle := p.slots - p.held; idle > 0 {
			p.slots -= min(idle, p.slots-lim)
		}
		if p.slots > lim && !now.Before(p.relAt) {
			p.slots--
			p.relAt = now.Add(5 * time.Millisecond)
		}
	} else if want := min(p.demand, lim); p.slots < want {
		p.slots++ // one dial per millisecond
	}
	p.held = min(p.demand, p.slots)
	if p.demand > p.slots && now.UnixMilli()%10 == 0 {
		p.waited++
	}
	return p.slots
}

func (p *fakePool) setDemand(n int) {
	p.mu.Lock()
	p.demand = n
	p.mu.Unlock()
}

func (p *fakePool) kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
}

func (p *fakePool) Lease(n int, until time.Time) error {
	p.mu.Lock()
	p.max, p.until = n, until
	p.mu.Unlock()
	return nil
}

func (p *fakePool) ResizeWait(ctx context.Context, _, n int) error {
	p.mu.Lock()
	p.rest = n
	p.mu.Unlock()
	for {
		p.mu.Lock()
		s := p.slots
		p.mu.Unlock()
		if s <= n {
			return nil
		}
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.slots = min(p.slots, n) // held ones closed under their holders
			p.mu.Unlock()
			return nil
		case <-time.After(time.Millisecond):
		}
	}
}

func (p *fakePool) Stats() tidepool.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return tidepool.Stats{Name: p.name, Slots: p.slots, Total: p.slots, InUse: p.held, Waiting: max(0, p.demand-p.slots), WaitedAcquires: p.waited}
}

// simOptions are the timings the integration tests use too: TTL 5 s, a
// renewal every 250 ms, 2.5 s reserved for the backend's idle timeout and
// 0.5 s of margin: a cut-off member fences 2 s after its last renewal.
func simOptions(name string, budget, floor int, pool Pool, member string) Options {
	return Options{
		Name: name, Budget: budget, MinPerMember: floor, Pool: pool, Member: member,
		LeaseTTL: 5 * time.Second, RenewInterval: 250 * time.Millisecond, FenceMargin: 500 * time.Millisecond,
		BackendIdleTimeout: 2500 * time.Millisecond, OpTimeout: time.Second,
	}
}

type simMember struct {
	id   string
	m    *Member
	p    *fakePool
	c    *memClient
	want int // the demand the test set
}

func joinSim(t *testing.T, s *sim, st *memStore, id string, budget, floor, demand int) *simMember {
	t.Helper()
	p := s.pool(id)
	p.setDemand(demand)
	c := &memClient{s: st}
	o := simOptions("sim", budget, floor, p, id)
	if testing.Verbose() && os.Getenv("FLEET_SIM_LOG") != "" {
		o.Logger = zaptest.NewLogger(t)
	}
	m, err := join(t.Context(), c, o)
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	return &simMember{id: id, m: m, p: p, c: c, want: demand}
}

// crash stops the member's goroutines without leaving (SIGKILL): the kernel
// closes its sockets, its lease is left to expire.
func (sm *simMember) crash() {
	sm.p.kill()
	sm.m.left.Store(true)
	sm.m.stopLoop()
	sm.m.stopRenew()
	<-sm.m.loopDone
	sm.m.renewers.Wait()
}

// fairness compares the claims in the store with Share over the demands the
// test set: the L1 distance and whether they are equal.
func fairness(st *memStore, budget, floor int, ms []*simMember) (dist int, grants, fair []int) {
	var demands []int
	for _, sm := range ms {
		demands = append(demands, sm.want)
	}
	fair = Share(budget, floor, demands)
	for i, sm := range ms {
		g := st.claimOf("/tidepool/fleet/sim/claims/", sm.id)
		grants = append(grants, g)
		d := g - fair[i]
		if d < 0 {
			d = -d
		}
		dist += d
	}
	return dist, grants, fair
}

// waitFair waits (fake time) until the claims equal the fair share and
// returns how long that took.
func waitFair(t *testing.T, st *memStore, budget, floor int, ms []*simMember, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		dist, g, f := fairness(st, budget, floor, ms)
		if dist == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("claims %v still not the fair share %v after %v", g, f, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grantChanges(ms []*simMember) []int64 {
	out := make([]int64, len(ms))
	for i, sm := range ms {
		out[i] = sm.m.grantChanges.Load()
	}
	return out
}

func TestSimGrantsFollowDemandWithinTwoSecondsWithoutOscillating(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget, floor = 30, 2
		st := newMemStore()
		s := newSim(t, budget)
		ms := []*simMember{
			joinSim(t, s, st, "a", budget, floor, 4),
			joinSim(t, s, st, "b", budget, floor, 4),
			joinSim(t, s, st, "c", budget, floor, 20),
		}
		took := waitFair(t, st, budget, floor, ms, 3*time.Second)
		t.Logf("initial split reached in %v", took)

		// The load moves from c to a.
		ms[0].want, ms[2].want = 20, 4
		ms[0].p.setDemand(20)
		ms[2].p.setDemand(4)
		before := grantChanges(ms)
		took = waitFair(t, st, budget, floor, ms, 2*time.Second)
		t.Logf("after the shift: fair share reached in %v", took)

		// Then nothing moves for 10 s: no grant may change (no oscillation),
		// and the split stays fair.
		time.Sleep(time.Second)
		settled := grantChanges(ms)
		time.Sleep(10 * time.Second)
		after := grantChanges(ms)
		for i := range ms {
			if n := settled[i] - before[i]; n > 3 {
				t.Errorf("member %s changed its grant %d times for one shift (want at most 3)", ms[i].id, n)
			}
			if after[i] != settled[i] {
				t.Errorf("member %s changed its grant %d times while demand was steady: oscillation", ms[i].id, after[i]-settled[i])
			}
		}
		if dist, g, f := fairness(st, budget, floor, ms); dist != 0 {
			t.Errorf("steady claims %v, fair %v", g, f)
		}
		for _, sm := range ms {
			if err := sm.m.Leave(t.Context()); err != nil {
				t.Error(err)
			}
		}
		if maxSeen, over := s.close(); over > 0 {
			t.Fatalf("backend saw up to %d connections, budget %d (%d steps over)", maxSeen, budget, over)
		}
		st.close()
	})
}

func TestSimDeadMemberShareRedistributedWithinTTLPlusOneSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget, floor = 24, 1
		st := newMemStore()
		s := newSim(t, budget)
		ms := []*simMember{
			joinSim(t, s, st, "a", budget, floor, 12),
			joinSim(t, s, st, "b", budget, floor, 12),
			joinSim(t, s, st, "c", budget, floor, 12),
		}
		waitFair(t, st, budget, floor, ms, 3*time.Second)
		killed := time.Now()
		ms[1].crash()
		took := waitFair(t, st, budget, floor, []*simMember{ms[0], ms[2]}, 7*time.Second)
		if took > 5*time.Second+time.Second {
			t.Errorf("the dead member's share was redistributed after %v, want within TTL (5s) + 1s", took)
		}
		t.Logf("redistributed %v after the kill", time.Since(killed))
		for _, sm := range []*simMember{ms[0], ms[2]} {
			if err := sm.m.Leave(t.Context()); err != nil {
				t.Error(err)
			}
		}
		if maxSeen, over := s.close(); over > 0 {
			t.Fatalf("backend saw up to %d connections, budget %d (%d steps over)", maxSeen, budget, over)
		}
		st.close()
	})
}

// TestSimCutOffMemberFencesBeforeItsLeaseExpires: the member's pool must be
// at zero before the store drops its lease (and so hands its share to the
// others), with at least BackendIdleTimeout to spare.
func TestSimCutOffMemberFencesBeforeItsLeaseExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget, floor = 20, 1
		st := newMemStore()
		s := newSim(t, budget)
		ms := []*simMember{
			joinSim(t, s, st, "a", budget, floor, 15),
			joinSim(t, s, st, "b", budget, floor, 15),
		}
		waitFair(t, st, budget, floor, ms, 3*time.Second)
		st.mu.Lock()
		lease := int64(0)
		for k, v := range st.kvs {
			if k == "/tidepool/fleet/sim/claims/a" {
				lease = v.lease
			}
		}
		st.mu.Unlock()
		cut := time.Now()
		ms[0].c.sever()
		// b gets a's share once the lease is gone.
		ms[0].want = 0
		took := waitFair(t, st, budget, floor, ms[1:], 8*time.Second)
		ms[0].p.mu.Lock()
		fenced := ms[0].p.fenceAt
		ms[0].p.mu.Unlock()
		st.mu.Lock()
		expired, ok := st.expired[lease]
		st.mu.Unlock()
		if !ok || fenced.IsZero() {
			t.Fatalf("lease expired %v (%v), pool fenced at %v", ok, expired, fenced)
		}
		if spare := expired.Sub(fenced); spare < 2500*time.Millisecond {
			t.Errorf("the pool fenced only %v before its lease expired; want at least BackendIdleTimeout (2.5s)", spare)
		}
		t.Logf("cut at 0, fenced at %v, lease expired at %v, b at its new share %v after the cut",
			fenced.Sub(cut), expired.Sub(cut), took)
		if !ms[0].m.Stats().Fenced {
			t.Errorf("Stats().Fenced is false for the cut-off member")
		}
		// Healed: a finds its lease gone, joins again and gets its share back.
		ms[0].c.heal()
		ms[0].want = 15
		waitFair(t, st, budget, floor, ms, 4*time.Second)
		if n := ms[0].m.Stats().Rejoins; n != 1 {
			t.Errorf("Rejoins = %d, want 1", n)
		}
		for _, sm := range ms {
			if err := sm.m.Leave(t.Context()); err != nil {
				t.Error(err)
			}
		}
		if maxSeen, over := s.close(); over > 0 {
			t.Fatalf("backend saw up to %d connections, budget %d (%d steps over)", maxSeen, budget, over)
		}
		st.close()
	})
}

// TestSimBudgetHeldThroughChurn: random joins, graceful leaves, crashes,
// cuts and demand changes for five minutes of fleet time; the sum of slots
// never exceeds the budget, and the claims in the store never do either.
func TestSimBudgetHeldThroughChurn(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const budget, floor = 16, 1
				r := rand.New(rand.NewPCG(seed, 7))
				st := newMemStore()
				s := newSim(t, budget)
				var live []*simMember
				next := 0
				claimsOver := 0
				for step := range 200 {
					switch k := r.IntN(10); {
					case k < 3 && len(live) < 6:
						next++
						live = append(live, joinSim(t, s, st, fmt.Sprint("m", next), budget, floor, r.IntN(12)))
					case k < 4 && len(live) > 1:
						i := r.IntN(len(live))
						// A cut-off member cannot revoke its lease: Leave says
						// so, and the lease expires instead.
						if err := live[i].m.Leave(t.Context()); err != nil && !live[i].c.cut.Load() {
							t.Errorf("step %d: leave: %v", step, err)
						}
						live = slices.Delete(live, i, i+1)
					case k < 5 && len(live) > 1:
						i := r.IntN(len(live))
						live[i].crash()
						live = slices.Delete(live, i, i+1)
					case k < 6 && len(live) > 0:
						sm := live[r.IntN(len(live))]
						if sm.c.cut.Load() {
							sm.c.heal()
						} else {
							sm.c.sever()
						}
					default:
						if len(live) > 0 {
							live[r.IntN(len(live))].p.setDemand(r.IntN(14))
						}
					}
					time.Sleep(time.Duration(r.IntN(1500)) * time.Millisecond)
					if sum := st.sumClaims("/tidepool/fleet/sim/claims/"); sum > budget {
						claimsOver++
					}
				}
				for _, sm := range live {
					sm.c.heal()
					if err := sm.m.Leave(t.Context()); err != nil {
						t.Error(err)
					}
				}
				maxSeen, over := s.close()
				st.close()
				t.Logf("seed %d: most slots at once %d of budget %d", seed, maxSeen, budget)
				if over > 0 || claimsOver > 0 {
					t.Fatalf("backend saw up to %d connections, budget %d (%d steps over); claims over budget %d times", maxSeen, budget, over, claimsOver)
				}
			})
		})
	}
}
