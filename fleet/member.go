package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Member is one pool's membership in a fleet. Create it with Join; end it with
// Leave. Its methods are safe for concurrent use.
type Member struct {
	// Immutable after Join.
	o    Options
	st   store
	log  *zap.Logger
	keys keys

	// lm guards the fields below and orders every pool.Lease call, so that a
	// renewal (renewer goroutine) and a grant change (loop goroutine) never
	// hand the pool a stale pair.
	lm        sync.Mutex
	lease     int64 // the etcd lease; 0 between a loss and the rejoin
	ttl       time.Duration
	grant     int       // what the pool may hold while the deadline is ahead
	deadline  time.Time // local fence deadline (monotonic): renewal sent + TTL − BackendIdleTimeout − FenceMargin
	fenced    bool      // the deadline passed (noticed by the loop or a renewal)
	fencedAt  time.Time
	lastRenew time.Time
	failing   bool // a run of renewal failures is being reported

	// Loop state: only the loop goroutine touches these.
	claim     int // what this member's claim key holds (as last written)
	target    int // its share in the latest view
	view      view
	est       demandEstimator
	demand    int // published demand
	published time.Time
	report    report
	rejoinAt  time.Time // when to try to register again after a loss (zero: registered)
	rejoinGap time.Duration

	// sm guards snap, the Stats that the loop publishes.
	sm   sync.Mutex
	snap Stats

	renewals, renewFailures, fences, leaseLosses, grantChanges, rejoins atomic.Int64

	lost chan int64 // renewer → loop: this lease is gone

	loopCtx   context.Context
	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	renewCtx  context.Context
	stopRenew context.CancelFunc
	renewers  sync.WaitGroup
	left      atomic.Bool
	poolName  string
	joinedAt  time.Time
}

type keys struct{ root, config, members, claims, member, claim string }

func makeKeys(o Options) keys {
	root := o.Prefix + o.Name + "/"
	return keys{
		root: root, config: root + "config", members: root + "members/", claims: root + "claims/",
		member: root + "members/" + o.Member, claim: root + "claims/" + o.Member,
	}
}

// fleetConfig is stored at <prefix><name>/config by the first member.
type fleetConfig struct {
	Budget       int `json:"budget"`
	MinPerMember int `json:"min_per_member"`
}

// report is the value of a member's key: its published demand and, for the
// fleet view, the pool numbers it was computed from.
type report struct {
	Demand  int   `json:"demand"`
	InUse   int   `json:"in_use"`
	Waiting int   `json:"waiting"`
	Waits   int64 `json:"waits"` // Acquires that waited, last sample interval
	Slots   int   `json:"slots"`
	Grant   int   `json:"grant"`
}

// Join makes opts.Pool a member of the fleet opts.Name on the etcd cluster
// cli talks to, and returns once the member is registered: its pool is
// emptied first (Resize bounds (0, 0), waiting for held connections until
// ctx ends, then closing them), the fleet's stored Budget and MinPerMember
// are checked against opts (ErrConfigMismatch), and the member's keys are
// written under a new lease. Its first grant follows within a few
// SampleIntervals, as soon as the budget has room (Stats().Grant).
//
// From then on, two goroutines of the member run until Leave: the loop
// (demand, view, claims, grants) and the renewer (the lease and the pool's
// fence deadline). The pool must not be resized by anyone else.
//
// Bad options return an error wrapping ErrInvalidOptions naming the field.
// The caller keeps ownership of cli; close it after Leave.
func Join(ctx context.Context, cli *clientv3.Client, opts Options) (*Member, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: etcd client = nil", ErrInvalidOptions)
	}
	return join(ctx, etcdStore{cli: cli}, opts)
}

func join(ctx context.Context, st store, opts Options) (*Member, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	m := &Member{o: o, st: st, keys: makeKeys(o), lost: make(chan int64, 1), loopDone: make(chan struct{})}
	m.est = demandEstimator{window: o.DemandWindow, atGrant: -1}
	m.poolName = o.Pool.Stats().Name
	m.log = o.Logger.With(zap.String("fleet", o.Name), zap.String("member", o.Member), zap.String("pool", m.poolName))
	m.view.init()
	if err := o.Pool.ResizeWait(ctx, 0, restMax); err != nil {
		return nil, fmt.Errorf("fleet: emptying the pool before joining: %w", err)
	}
	want, _ := json.Marshal(fleetConfig{Budget: o.Budget, MinPerMember: o.MinPerMember})
	octx, cancel := context.WithTimeout(ctx, o.OpTimeout)
	got, err := st.ensureConfig(octx, m.keys.config, want)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("fleet: reading the fleet's config: %w", err)
	}
	var stored fleetConfig
	if err := json.Unmarshal(got, &stored); err != nil || stored != (fleetConfig{Budget: o.Budget, MinPerMember: o.MinPerMember}) {
		return nil, fmt.Errorf("%w: fleet %q has %s in etcd, this member has budget %d, min_per_member %d",
			ErrConfigMismatch, o.Name, got, o.Budget, o.MinPerMember)
	}
	m.renewCtx, m.stopRenew = context.WithCancel(context.WithoutCancel(ctx))
	m.loopCtx, m.stopLoop = context.WithCancel(context.WithoutCancel(ctx))
	if err := m.register(ctx, false); err != nil {
		m.stopRenew()
		m.stopLoop()
		return nil, err
	}
	m.joinedAt = time.Now()
	m.publishStats()
	go m.run()
	return m, nil
}

// register takes a new lease, writes the member's keys under it and starts
// the renewer for it.
func (m *Member) register(ctx context.Context, rejoin bool) error {
	ctx, cancel := context.WithTimeout(ctx, m.o.OpTimeout)
	defer cancel()
	sent := time.Now()
	lease, ttl, err := m.st.grant(ctx, m.o.LeaseTTL)
	if err != nil {
		return fmt.Errorf("fleet: granting a lease: %w", err)
	}
	if ttl-m.o.BackendIdleTimeout-m.o.FenceMargin < 2*m.o.RenewInterval {
		_ = m.st.revoke(ctx, lease)
		return fmt.Errorf("%w: etcd granted a %v lease, too short for BackendIdleTimeout %v + FenceMargin %v + 2×RenewInterval %v",
			ErrInvalidOptions, ttl, m.o.BackendIdleTimeout, m.o.FenceMargin, m.o.RenewInterval)
	}
	val, _ := json.Marshal(m.report)
	ok, err := m.st.register(ctx, lease, m.keys.member, val, m.keys.claim)
	if err == nil && !ok {
		err = fmt.Errorf("fleet: member id %q is already registered in fleet %q", m.o.Member, m.o.Name)
	}
	if err != nil {
		_ = m.st.revoke(ctx, lease)
		return fmt.Errorf("fleet: registering: %w", err)
	}
	m.lm.Lock()
	m.lease, m.ttl = lease, ttl
	m.grant = 0
	m.deadline = sent.Add(m.fenceAfter(ttl))
	m.lastRenew = sent
	m.fenced = false
	m.applyLocked()
	m.lm.Unlock()
	m.claim, m.target = 0, 0
	m.renewers.Add(1)
	go m.renew(lease, sent)
	m.log.Info(EventJoined, zap.String("event", EventJoined), zap.String("lease", strconv.FormatInt(lease, 16)),
		zap.Duration("ttl", ttl), zap.Int("budget", m.o.Budget), zap.Int("min_per_member", m.o.MinPerMember),
		zap.Bool("rejoin", rejoin))
	return nil
}

// fenceAfter is how long after sending a successful renewal the pool may use
// its grant: the lease lives at least ttl from that moment at the server.
func (m *Member) fenceAfter(ttl time.Duration) time.Duration {
	return ttl - m.o.BackendIdleTimeout - m.o.FenceMargin
}

// applyLocked hands the pool its grant and deadline. Called with lm held.
func (m *Member) applyLocked() {
	if m.lease == 0 || !time.Now().Before(m.deadline) {
		return // the pool's lease has run out (or was cancelled): it holds nothing
	}
	if err := m.o.Pool.Lease(m.grant, m.deadline); err != nil {
		m.log.Error("fleet: pool refused its lease", zap.Error(err), zap.Int("grant", m.grant))
	}
}

// renew keeps lease alive: one KeepAliveOnce per RenewInterval, each moving
// the pool's deadline to (its send time + TTL − reserve). It reports a lost
// lease to the loop and exits.
func (m *Member) renew(lease int64, last time.Time) {
	defer m.renewers.Done()
	iv := m.o.RenewInterval
	next := last.Add(iv)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-m.renewCtx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(m.renewCtx, 2*iv)
		ttl, err := m.st.keepAlive(ctx, lease)
		cancel()
		if m.renewCtx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			m.renewed(lease, sent, ttl)
		case errors.Is(err, errLeaseLost):
			select {
			case m.lost <- lease:
			default:
			}
			return
		default:
			m.renewFailed(err)
		}
		t.Reset(time.Until(sent.Add(iv)))
	}
}

func (m *Member) renewed(lease int64, sent time.Time, ttl time.Duration) {
	m.renewals.Add(1)
	m.lm.Lock()
	defer m.lm.Unlock()
	if m.lease != lease {
		return
	}
	m.lastRenew = sent
	m.failing = false
	if d := sent.Add(m.fenceAfter(ttl)); d.After(m.deadline) {
		m.deadline = d
	}
	if m.fenced {
		m.fenced = false
		m.log.Info(EventUnfenced, zap.String("event", EventUnfenced), zap.Duration("fenced_for", time.Since(m.fencedAt)))
	}
	m.applyLocked()
}

func (m *Member) renewFailed(err error) {
	m.renewFailures.Add(1)
	m.lm.Lock()
	first := !m.failing
	m.failing = true
	m.lm.Unlock()
	if first {
		m.log.Warn(EventRenewFailed, zap.String("event", EventRenewFailed), zap.Error(err))
	}
}

// checkFence notices a passed deadline (the pool has already fallen back by
// itself: this is for the log and Stats).
func (m *Member) checkFence(now time.Time) {
	m.lm.Lock()
	defer m.lm.Unlock()
	if m.lease == 0 || m.fenced || now.Before(m.deadline) {
		return
	}
	m.fenced, m.fencedAt = true, now
	m.failing = false
	m.fences.Add(1)
	m.log.Warn(EventFenced, zap.String("event", EventFenced), zap.Duration("since_renewal", now.Sub(m.lastRenew)),
		zap.Int("grant", m.grant))
}

// run is the member's loop: it samples the pool, publishes demand, follows
// the fleet through a watch, and moves its claim and grant towards its share.
func (m *Member) run() {
	defer close(m.loopDone)
	tick := time.NewTicker(m.o.SampleInterval)
	defer tick.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	var events <-chan []kvEvent
	var watchAt time.Time // when to (re)load the view and watch again
	for {
		if events == nil && !time.Now().Before(watchAt) {
			if rev, err := m.loadView(); err == nil {
				events = m.st.watch(m.loopCtx, m.keys.root, rev)
			} else {
				watchAt = time.Now().Add(100 * time.Millisecond)
			}
		}
		select {
		case <-m.loopCtx.Done():
			return
		case batch, ok := <-events:
			if !ok {
				events = nil
				watchAt = time.Now().Add(100 * time.Millisecond)
				continue
			}
			m.view.apply(m.keys, batch)
		case <-tick.C:
			now := time.Now()
			m.checkFence(now)
			m.sample(now)
		case lease := <-m.lost:
			m.onLeaseLost(lease, errLeaseLost)
		case <-retry.C:
		}
		if !m.rejoinAt.IsZero() {
			m.tryRejoin()
		}
		if d := m.reconcile(); d > 0 {
			retry.Reset(d)
		}
		m.publishStats()
	}
}

func (m *Member) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.loopCtx, m.o.OpTimeout)
}

func (m *Member) loadView() (int64, error) {
	ctx, cancel := m.opCtx()
	defer cancel()
	kvs, rev, err := m.st.snapshot(ctx, m.keys.root)
	if err != nil {
		return 0, err
	}
	m.view.init()
	m.view.apply(m.keys, func() []kvEvent {
		out := make([]kvEvent, len(kvs))
		for i, k := range kvs {
			out[i] = kvEvent{kv: k}
		}
		return out
	}())
	return rev, nil
}

// sample reads the pool, updates the demand estimate and publishes it when it
// changed (at most once per PublishInterval).
func (m *Member) sample(now time.Time) {
	s := m.o.Pool.Stats()
	slots := slotsOf(m.o.Pool, s)
	m.lm.Lock()
	grant := m.grant
	registered := m.lease != 0
	m.lm.Unlock()
	d, waits := m.est.sample(now, s.InUse, s.Waiting, s.WaitedAcquires, slots, grant)
	m.report = report{Demand: d, InUse: s.InUse, Waiting: s.Waiting, Waits: waits, Slots: slots, Grant: grant}
	if !registered || d == m.demand || now.Sub(m.published) < m.o.PublishInterval {
		return
	}
	val, _ := json.Marshal(m.report)
	ctx, cancel := m.opCtx()
	err := m.st.put(ctx, m.currentLease(), m.keys.member, val)
	cancel()
	switch {
	case err == nil:
		m.demand, m.published = d, now
	case errors.Is(err, errLeaseLost):
		m.onLeaseLost(m.currentLease(), err)
	}
}

func (m *Member) currentLease() int64 {
	m.lm.Lock()
	defer m.lm.Unlock()
	return m.lease
}

// reconcile moves the claim and the grant towards the member's share. The
// order is the whole safety argument on this side:
//   - the grant (what the pool may hold) never exceeds the claim (what etcd
//     has reserved for this member);
//   - shrinking: the grant drops first; the claim follows only as far as the
//     pool's slots have already dropped;
//   - growing: the claim rises first, in a transaction that keeps the sum of
//     claims within the budget; the grant follows.
//
// It returns when to look again (0: at the next event or tick).
func (m *Member) reconcile() time.Duration {
	if m.currentLease() == 0 {
		return 0
	}
	ids, demands := m.view.ordered()
	me := -1
	for i, id := range ids {
		if id == m.o.Member {
			me = i
		}
	}
	if me < 0 {
		return 0 // our own registration has not reached the view yet
	}
	shares := Share(m.o.Budget, m.o.MinPerMember, demands)
	m.target = shares[me]
	target := m.target
	if m.grantNow() > target {
		m.setGrant(target, ids, demands)
	}
	var again time.Duration
	if m.claim > target {
		slots := slotsOf(m.o.Pool, m.o.Pool.Stats())
		if give := max(target, slots); give < m.claim {
			ctx, cancel := m.opCtx()
			err := m.st.lowerClaim(ctx, m.currentLease(), m.keys.claim, give)
			cancel()
			if errors.Is(err, errLeaseLost) {
				m.onLeaseLost(m.currentLease(), err)
				return 0
			}
			if err == nil {
				m.claim = give
			}
		}
		if m.claim > target {
			again = 20 * time.Millisecond // holders are releasing
		}
	}
	if m.claim < target && m.view.free(m.o.Budget) > 0 {
		ctx, cancel := m.opCtx()
		got, err := m.st.raiseClaim(ctx, m.currentLease(), m.keys.claims, m.keys.claim, m.o.Budget, target)
		cancel()
		if errors.Is(err, errLeaseLost) {
			m.onLeaseLost(m.currentLease(), err)
			return 0
		}
		if err == nil {
			m.claim = got
		}
	}
	if g := min(m.claim, target); g > m.grantNow() {
		m.setGrant(g, ids, demands)
	}
	if m.claim < target && again == 0 {
		again = 250 * time.Millisecond // in case no event says that room was made
	}
	return again
}

func (m *Member) grantNow() int {
	m.lm.Lock()
	defer m.lm.Unlock()
	return m.grant
}

// setGrant changes the grant and logs the change (fleet.granted).
func (m *Member) setGrant(g int, ids []string, demands []int) {
	m.lm.Lock()
	old := m.grant
	if old == g {
		m.lm.Unlock()
		return
	}
	m.grant = g
	m.applyLocked()
	m.lm.Unlock()
	m.logGrant(old, g, ids, demands)
}

// logGrant counts and logs one grant change (fleet.granted).
func (m *Member) logGrant(old, g int, ids []string, demands []int) {
	m.grantChanges.Add(1)
	ds := make(map[string]int, len(ids))
	for i, id := range ids {
		ds[id] = demands[i]
	}
	m.log.Info(EventGranted, zap.String("event", EventGranted), zap.Int("old", old), zap.Int("new", g),
		zap.Int("target", m.target), zap.Int("claim", m.claim), zap.Int("demand", m.demand),
		zap.Any("demands", ds), zap.Int("budget", m.o.Budget), zap.Int("members", len(ids)))
}

// onLeaseLost fences the pool at once (closing what it holds), forgets the
// claim (etcd has dropped it with the lease) and schedules a new registration.
func (m *Member) onLeaseLost(lease int64, why error) {
	m.lm.Lock()
	if lease == 0 || m.lease != lease {
		m.lm.Unlock()
		return
	}
	m.lease = 0
	old := m.grant
	m.grant = 0
	m.deadline = time.Time{}
	if !m.fenced {
		m.fenced, m.fencedAt = true, time.Now()
		m.fences.Add(1)
	}
	_ = m.o.Pool.Lease(0, time.Time{})
	m.lm.Unlock()
	m.leaseLosses.Add(1)
	m.log.Warn(EventLeaseLost, zap.String("event", EventLeaseLost), zap.Error(why), zap.Int("grant", old))
	m.target = 0
	if old != 0 {
		ids, demands := m.view.ordered()
		m.logGrant(old, 0, ids, demands)
	}
	// The capacity is no longer ours: close what is still open now.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_ = m.o.Pool.ResizeWait(done, 0, restMax)
	m.claim, m.target, m.demand = 0, 0, 0
	m.rejoinGap = 100 * time.Millisecond
	m.rejoinAt = time.Now()
}

func (m *Member) tryRejoin() {
	if time.Now().Before(m.rejoinAt) {
		return
	}
	if err := m.register(m.loopCtx, true); err != nil {
		m.rejoinGap = min(2*m.rejoinGap, 2*time.Second)
		m.rejoinAt = time.Now().Add(m.rejoinGap)
		return
	}
	m.rejoins.Add(1)
	m.rejoinAt = time.Time{}
}

// Leave ends the membership: the pool's grant drops to zero (idle connections
// close at once, held ones when released; when ctx ends, held ones are closed
// under their holders), then the lease is revoked, which hands the member's
// share to the others at once. If connections are still open when ctx ends
// (closes stuck past ctx), the lease is not revoked but left to expire, so
// that nobody grows into capacity that is still in use, and Leave returns an
// error. A second Leave returns ErrLeft.
func (m *Member) Leave(ctx context.Context) error {
	if !m.left.CompareAndSwap(false, true) {
		return ErrLeft
	}
	start := time.Now()
	m.stopLoop()
	<-m.loopDone
	m.lm.Lock()
	old := m.grant
	m.grant = 0
	_ = m.o.Pool.Lease(0, time.Time{})
	lease := m.lease
	m.lm.Unlock()
	m.target = 0
	if old != 0 {
		ids, demands := m.view.ordered()
		m.logGrant(old, 0, ids, demands)
	}
	err := m.o.Pool.ResizeWait(ctx, 0, restMax)
	forced := ctx.Err() != nil
	m.stopRenew()
	m.renewers.Wait()
	left := slotsOf(m.o.Pool, m.o.Pool.Stats())
	if left == 0 && lease != 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.OpTimeout)
		if rerr := m.st.revoke(rctx, lease); rerr != nil && !errors.Is(rerr, errLeaseLost) {
			err = errors.Join(err, fmt.Errorf("fleet: revoking the lease (it expires within %v): %w", m.ttl, rerr))
		}
		cancel()
	} else if left > 0 {
		err = errors.Join(err, fmt.Errorf("fleet: %d connections still open at Leave; the lease is left to expire", left))
	}
	m.lm.Lock()
	m.lease = 0
	m.lm.Unlock()
	m.publishStats()
	fields := []zap.Field{zap.String("event", EventLeft), zap.Duration("took", time.Since(start)), zap.Bool("forced", forced)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	m.log.Info(EventLeft, fields...)
	return err
}

// view is the loop's picture of the fleet, built from a snapshot and the
// watch that follows it.
type view struct {
	members map[string]viewMember
	claims  map[string]int
}

type viewMember struct {
	createRev int64
	r         report
}

func (v *view) init() {
	v.members = make(map[string]viewMember)
	v.claims = make(map[string]int)
}

func (v *view) apply(k keys, batch []kvEvent) {
	for _, e := range batch {
		switch {
		case strings.HasPrefix(e.key, k.members):
			id := e.key[len(k.members):]
			if e.deleted {
				delete(v.members, id)
				continue
			}
			var r report
			if json.Unmarshal(e.val, &r) != nil || r.Demand < 0 {
				r = report{}
			}
			v.members[id] = viewMember{createRev: e.createRev, r: r}
		case strings.HasPrefix(e.key, k.claims):
			id := e.key[len(k.claims):]
			n, err := strconv.Atoi(string(e.val))
			if e.deleted || err != nil || n < 0 {
				delete(v.claims, id)
				continue
			}
			v.claims[id] = n
		}
	}
}

// ordered returns the members in join order with their published demands.
func (v *view) ordered() ([]string, []int) {
	ids := make([]string, 0, len(v.members))
	for id := range v.members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := v.members[ids[i]], v.members[ids[j]]
		if a.createRev != b.createRev {
			return a.createRev < b.createRev
		}
		return ids[i] < ids[j]
	})
	demands := make([]int, len(ids))
	for i, id := range ids {
		demands[i] = v.members[id].r.Demand
	}
	return ids, demands
}

func (v *view) free(budget int) int {
	sum := 0
	for _, n := range v.claims {
		sum += n
	}
	return budget - sum
}
