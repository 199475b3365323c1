package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/event"
	"github.com/tidepool-go/tidepool/internal/safe"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/registry"
)

// Errors the loop reports. The pool re-exports them.
var (
	// ErrDial marks errors caused by failed dials; the dial's own error is
	// wrapped too, so errors.Is works on both.
	ErrDial = errors.New("tidepool: dial failed")
	// ErrClosed: the pool is closed or closing.
	ErrClosed = errors.New("tidepool: pool is closed")
	// ErrExhausted: the pool is at its max.
	ErrExhausted = errors.New("tidepool: pool exhausted")
)

// Why says why the loop started a dial; it is the "why" field of conn.dialed.
type Why uint8

const (
	// WhyWaiter: an Acquire was waiting and the pool had room.
	WhyWaiter Why = iota
	// WhyMinIdle: the pool had fewer than MinIdle idle connections.
	WhyMinIdle
	// WhyRequest: DialIdle or TryAcquire asked for one.
	WhyRequest
)

var whyNames = [...]string{"waiter", "min_idle", "request"}

// String returns the name used in logs.
func (w Why) String() string { return whyNames[w] }

// Hooks is what the pool does for the loop. Dial and Close run in goroutines
// of their own; every other method is called on the loop and must not block.
type Hooks[T any] interface {
	// Dial makes a new connection value under ctx (the user's Dial and
	// AfterConnect, panic-safe). If it fails after a value was made, it closes
	// that value itself before it returns.
	Dial(ctx context.Context) (T, error)
	// Close closes a connection value (BeforeClose and Close, panic-safe).
	Close(v T) error
	// Born receives a newly dialed connection, registered and held with lease
	// 1, starts its watcher and hands it to a waiter or the idle set.
	Born(c *conn.Conn[T])
	// PutBack hands c, held under lease by the loop, to a waiter or the idle set.
	PutBack(c *conn.Conn[T], lease uint64)
	// Waiting returns the number of Acquire calls waiting.
	Waiting() int
	// FailWaiters wakes up to n waiting Acquires, oldest first, with err and
	// returns how many it woke.
	FailWaiters(err error, n int) int
	// DialContext returns a context whose values the next dial for a waiter
	// carries: those of the oldest waiting Acquire that has no dial started for
	// it yet, or context.Background().
	DialContext() context.Context
	// Now returns the pool's coarse clock (for a newborn's idle stamp).
	Now() int64
	// DialTimedOut reports a dial still running at its timeout (logged and
	// counted by the pool with its other callbacks).
	DialTimedOut(timeout time.Duration)
}

// Outage describes a pool whose dials are failing. The loop publishes one
// (Gauges.Outage) from the first failed dial until the next success.
type Outage struct {
	// Err is the last dial error.
	Err error
	// FailedAt is when the last counted failure happened.
	FailedAt time.Time
	// ProbeAt is when the next dial may go out without waiters. With waiters
	// the loop probes sooner: at FailedAt + ProbeEvery at the latest.
	ProbeAt time.Time
	// Probing is set while a dial is in flight.
	Probing bool
	// Attempt counts the consecutive failures.
	Attempt int
}

// NextProbe returns when the next probe goes out if Acquires are waiting for it.
func (o *Outage) NextProbe(probeEvery time.Duration) time.Time {
	if at := o.FailedAt.Add(probeEvery); at.Before(o.ProbeAt) {
		return at
	}
	return o.ProbeAt
}

// Gauges are the loop's view of the pool's size, published for other
// goroutines. Only the loop writes them.
type Gauges struct {
	// Dialing counts dials in flight, ones past their timeout included.
	Dialing atomic.Int64
	// StuckDials counts dials past their timeout that have not returned.
	StuckDials atomic.Int64
	// Open counts connections born and not yet retired, as far as the loop
	// knows (a retirement claimed elsewhere counts once its command arrives).
	Open atomic.Int64
	// Closing counts closes in flight.
	Closing atomic.Int64
	// Slots is Dialing + Open + Closing: what the backend may see.
	Slots atomic.Int64
	// Min and Max are the bounds in force (a lease's max while it lasts).
	Min, Max atomic.Int64
	// Outage is non-nil while dials fail.
	Outage atomic.Pointer[Outage]
}

// Counters are cumulative; the loop writes them, Stats reads them anywhere.
type Counters struct {
	Dials, DialErrors, Resizes, Resets, Hijacked atomic.Int64
	// RetiredHandouts sums the hand-outs of connections no longer in the
	// registry; Stats adds those of the live ones.
	RetiredHandouts atomic.Int64
	Closes          [conn.NumReasons]atomic.Int64
}

// Gate is the word the hot path reads to know whether it may take the fast
// way: zero means open with no shrink pending. Bit 62 is set once the pool is
// closed; the low bits count held connections that must retire on release
// (the shrink debt). Releasers claim debt with a CAS; only the loop adds it.
type Gate struct{ w atomic.Int64 }

const gateClosed = int64(1) << 62

// Load returns the gate word; zero means the fast way is open.
func (g *Gate) Load() int64 { return g.w.Load() }

// Closed reports whether the pool is closed.
func (g *Gate) Closed() bool { return g.w.Load()&gateClosed != 0 }

// Close marks the pool closed. Called once, by Pool.Close.
func (g *Gate) Close() {
	for {
		w := g.w.Load()
		if g.w.CompareAndSwap(w, w|gateClosed) {
			return
		}
	}
}

// Debt returns the shrink debt: held connections that must retire on release.
func (g *Gate) Debt() int64 { return g.w.Load() &^ gateClosed }

// ClaimDebt claims one unit of shrink debt for a release; false if none.
func (g *Gate) ClaimDebt() bool {
	for {
		w := g.w.Load()
		if w&^gateClosed == 0 {
			return false
		}
		if g.w.CompareAndSwap(w, w-1) {
			return true
		}
	}
}

// UnclaimDebt gives back a unit claimed with ClaimDebt that the releaser could
// not pay (its connection was retired under it meanwhile).
func (g *Gate) UnclaimDebt() { g.w.Add(1) }

// addDebt adds n (possibly negative, never below zero) to the debt and
// returns what it actually added. Loop only.
func (g *Gate) addDebt(n int64) int64 {
	for {
		w := g.w.Load()
		d := w &^ gateClosed
		if d+n < 0 {
			n = -d
		}
		if g.w.CompareAndSwap(w, w+n) {
			return n
		}
	}
}

// Config holds the loop's settings.
type Config struct {
	Min, Max int
	// DialTimeout bounds one dial: a dial still running then counts as failed.
	DialTimeout time.Duration
	// BackoffBase and BackoffMax bound the delay after consecutive dial failures:
	// base·2^(n-1), capped, with ±50% jitter.
	BackoffBase, BackoffMax time.Duration
	// ProbeEvery caps the delay between probes while Acquires wait during an
	// outage.
	ProbeEvery time.Duration
	// NoOutage turns the outage mode off: every waiting Acquire gets a dial of
	// its own, failed dials fail one waiter each and never gate waiters' dials.
	NoOutage bool
	// MaxLifetime (0: none) and LifetimeJitter set each connection's deadline:
	// born + MaxLifetime − rand[0, LifetimeJitter).
	MaxLifetime, LifetimeJitter time.Duration
	// Tick is the period of the maintenance pass that tops up MinIdle after
	// connections were acquired (acquiring sends no command).
	Tick time.Duration
	// SweepAt is the number of tombstones at which the loop sweeps the idle set.
	SweepAt int
	// Values is the context whose values the pool's own dials carry (MinIdle
	// refills, TryAcquire's background dial): New's, without its
	// cancellation. Nil means context.Background().
	Values context.Context
	Logger *zap.Logger
}

type kind uint8

const (
	cmdResize kind = iota + 1
	cmdLease
	cmdRetire
	cmdIdleExpired
	cmdHijacked
	cmdDialed
	cmdClosed
	cmdReset
	cmdDialIdle
	cmdWarm
	cmdClose
	cmdForce
	cmdWithin
	cmdForceOver
)

type command[T any] struct {
	kind     kind
	c        *conn.Conn[T]
	v        T
	reason   conn.Reason
	inSet    bool // cmdRetire: the connection was claimed where it lay in the idle set
	owed     bool // cmdRetire: a release that claimed shrink debt
	err      error
	took     time.Duration
	min, max int
	until    time.Time
	d        *dial
	reply    chan error
	force    chan Forced
	vctx     context.Context // cmdDialIdle: the caller's context, for its values
}

// dial is one dial in flight. Loop-owned.
type dial struct {
	why      Why
	probe    bool
	gen      uint64 // the failure generation it started in
	resetGen uint64 // the Reset generation it started in
	deadline time.Time
	timedOut bool
	// cancelled: the loop cancelled it (a lease ran out); its failure is not
	// the backend's and does not count.
	cancelled bool
	cancel    context.CancelFunc
	reply     chan error // DialIdle's, if it asked for this dial
}

// within is a ResizeWait waiting for the slots to come within max.
type within struct {
	max   int
	reply chan error
}

// Forced is what Force reports.
type Forced struct {
	// Held is how many held connections were closed under their holders.
	Held int
	// Conns is how many connections were retired in all.
	Conns int
}

// inbox is the loop's command queue: senders append under a mutex and never
// block, so any goroutine — the loop itself included — may send at any time.
type inbox[T any] struct {
	mu    sync.Mutex
	cmds  []command[T]
	spare []command[T]
	wake  chan struct{}
}

func (b *inbox[T]) send(c command[T]) {
	b.mu.Lock()
	b.cmds = append(b.cmds, c)
	b.mu.Unlock()
	b.poke()
}

func (b *inbox[T]) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take returns the commands sent so far; the slice is valid until the next take.
func (b *inbox[T]) take() []command[T] {
	b.mu.Lock()
	cmds := b.cmds
	b.cmds = b.spare[:0]
	b.mu.Unlock()
	b.spare = cmds
	return cmds
}

// Reconciler owns the slots of one pool.
type Reconciler[T any] struct {
	// Set by New, read-only afterwards.
	G     Gauges
	Stats Counters
	Gate  Gate
	cfg   Config
	set   *queue.Idle[T]
	reg   *registry.Registry[T]
	h     Hooks[T]
	log   *zap.Logger
	in    inbox[T]
	done  chan struct{} // closed when the loop has exited
	ctx   context.Context
	stop  context.CancelFunc
	// requests counts dials asked for by TryAcquire, not yet started.
	requests atomic.Int64

	// Loop-owned: only the reconcile goroutine reads or writes these.
	dials      map[*dial]struct{}
	stuck      int // dials past their deadline still running
	open       int
	closing    int
	nextID     uint64
	min, max   int       // the Resize bounds
	leaseMax   int       // a lease's max, while leaseUntil is ahead
	leaseUntil time.Time // zero: no lease
	fails      int       // consecutive counted dial failures
	gen        uint64    // bumped by each counted failure
	resetGen   uint64    // bumped by each Reset
	cancelled  int       // dials cancelled (fence, Reset) still in flight and not timed out
	// redials are DialIdle replies whose dial a Reset cancelled: each gets a
	// dial of the new generation once a slot is free.
	redials     []chan error
	outage      *Outage // what Gauges.Outage holds
	closed      bool
	resizing    bool
	resizeAt    time.Time
	warmReply   chan error
	warmed      bool
	tombstones  int // connections retired where they lay in the idle set since the last sweep
	pendingFree []*conn.Conn[T]
	// shrinkPending counts shrink retirements asked for (debt added) and not
	// yet received back as retire commands.
	shrinkPending int64
	expired       []*conn.Conn[T]
	idleCache     int      // idle count of this pass, -1 if not computed
	within        []within // ResizeWait callers waiting for Slots <= max
	timer         *time.Timer
}

// New returns the reconciler of a pool; Start starts its loop, once the pool
// that its hooks reach is fully built.
func New[T any](cfg Config, set *queue.Idle[T], reg *registry.Registry[T], h Hooks[T]) *Reconciler[T] {
	ctx, stop := context.WithCancel(context.Background())
	r := &Reconciler[T]{
		cfg: cfg, set: set, reg: reg, h: h, log: cfg.Logger,
		done: make(chan struct{}), ctx: ctx, stop: stop,
		dials: make(map[*dial]struct{}), min: cfg.Min, max: cfg.Max,
	}
	r.in.wake = make(chan struct{}, 1)
	r.G.Min.Store(int64(cfg.Min))
	r.G.Max.Store(int64(cfg.Max))
	return r
}

// Start starts the reconcile loop, which dials up to Min idle connections at
// once. Call it once.
func (r *Reconciler[T]) Start() { go r.loop() }

// Done is closed when the loop has exited: after Close, once every dial has
// returned and every connection's Close has returned.
func (r *Reconciler[T]) Done() <-chan struct{} { return r.done }

// Wake tells the loop that something may need doing (an Acquire started to
// wait). Never blocks; wake-ups before the loop runs are merged.
func (r *Reconciler[T]) Wake() { r.in.poke() }

// RequestDial asks for one background dial into the idle set if the pool has
// room (TryAcquire's). Never blocks.
func (r *Reconciler[T]) RequestDial() {
	r.requests.Add(1)
	r.in.poke()
}

// ask sends a command with a reply channel and waits for the reply, or for ctx.
func (r *Reconciler[T]) ask(ctx context.Context, c command[T]) error {
	c.reply = make(chan error, 1)
	r.in.send(c)
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		// The loop may have answered just before it exited: select picks
		// among ready cases at random, so look at the reply first.
		select {
		case err := <-c.reply:
			return err
		default:
			return ErrClosed
		}
	}
}

// Resize asks the loop to adopt new bounds and returns once it has. The caller
// validates them. It fails with ErrClosed once the pool is closing.
func (r *Reconciler[T]) Resize(min, max int) error {
	return r.ask(context.Background(), command[T]{kind: cmdResize, min: min, max: max})
}

// Lease lets the pool hold up to max connections until until; a zero until
// cancels the lease. Returns once the loop adopted it.
func (r *Reconciler[T]) Lease(max int, until time.Time) error {
	return r.ask(context.Background(), command[T]{kind: cmdLease, max: max, until: until})
}

// Reset retires every connection: idle ones now, held ones on release; dials
// in flight are cancelled. Returns once the loop has done it.
func (r *Reconciler[T]) Reset() error { return r.ask(context.Background(), command[T]{kind: cmdReset}) }

// DialIdle dials one connection into the idle set and returns its error (the
// dial carries ctx's values, not its cancellation):
// ErrExhausted at once if the pool has no room, the outage error while it
// backs off, ctx's error if ctx ends first (the dial goes on).
func (r *Reconciler[T]) DialIdle(ctx context.Context) error {
	return r.ask(ctx, command[T]{kind: cmdDialIdle, vctx: ctx})
}

// Warm waits until Min idle connections exist. It returns the first dial error
// instead if a dial fails first, or ctx's error.
func (r *Reconciler[T]) Warm(ctx context.Context) error {
	return r.ask(ctx, command[T]{kind: cmdWarm})
}

// Retire hands over a connection that the caller has claimed (moved to
// Retired): the loop closes it and frees its slot when the close returns.
// inSet says it was claimed where it lay in the idle set (a tombstone there).
// Any goroutine, the loop's included; never blocks.
func (r *Reconciler[T]) Retire(c *conn.Conn[T], reason conn.Reason, err error, inSet bool) {
	r.in.send(command[T]{kind: cmdRetire, c: c, reason: reason, err: err, inSet: inSet})
}

// RetireOwed hands over a connection its holder retired on release to pay
// one unit of shrink debt (Gate.ClaimDebt).
func (r *Reconciler[T]) RetireOwed(c *conn.Conn[T]) {
	r.in.send(command[T]{kind: cmdRetire, c: c, reason: conn.ReasonShrink, owed: true})
}

// Within waits until the pool's slots (dialing + open + closing) are at most
// max, or ctx ends.
func (r *Reconciler[T]) Within(ctx context.Context, max int) error {
	return r.ask(ctx, command[T]{kind: cmdWithin, max: max})
}

// ForceOver closes held connections under their holders until the open
// connections are at most max (idle ones first), and reports how many held
// ones it took.
func (r *Reconciler[T]) ForceOver(max int) int {
	reply := make(chan Forced, 1)
	r.in.send(command[T]{kind: cmdForceOver, max: max, force: reply})
	select {
	case f := <-reply:
		return f.Held
	case <-r.done:
		select { // answered just before the loop exited?
		case f := <-reply:
			return f.Held
		default:
			return 0
		}
	}
}

// IdleExpired hands over c, claimed by its watcher (Checking or Detached)
// because it sat idle too long: the loop retires it unless the pool would drop
// below its minimum of idle connections, and otherwise ends the check.
func (r *Reconciler[T]) IdleExpired(c *conn.Conn[T]) {
	r.in.send(command[T]{kind: cmdIdleExpired, c: c})
}

// Hijacked tells the loop that c's holder took it out of the pool for good:
// its slot is freed at once.
func (r *Reconciler[T]) Hijacked(c *conn.Conn[T]) { r.in.send(command[T]{kind: cmdHijacked, c: c}) }

// Close starts the pool's shutdown: no more dials (those in flight are
// cancelled), waiters fail with err, idle connections close, and the loop exits
// once every dial has returned and every connection is closed.
func (r *Reconciler[T]) Close(err error) { r.in.send(command[T]{kind: cmdClose, err: err}) }

// Force retires every connection, held ones included (their holders' late
// Release is then a no-op), and reports how many. Used when Close's context
// ends before every holder released.
func (r *Reconciler[T]) Force() Forced {
	reply := make(chan Forced, 1)
	r.in.send(command[T]{kind: cmdForce, force: reply})
	select {
	case f := <-reply:
		return f
	case <-r.done:
		select { // answered just before the loop exited?
		case f := <-reply:
			return f
		default:
			return Forced{}
		}
	}
}

// DefaultProbeEvery is the default cap on the delay between probes while
// Acquires wait during an outage.
const DefaultProbeEvery = 500 * time.Millisecond

func (r *Reconciler[T]) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	r.timer = time.NewTimer(time.Hour)
	defer r.timer.Stop()
	r.reconcile()
	for {
		select {
		case <-r.in.wake:
			cmds := r.in.take()
			for _, c := range cmds {
				r.handle(c)
			}
			clear(cmds) // drop references to values and connections
		case <-tick.C:
		case <-r.timer.C:
		}
		r.expireDials()
		if r.closed && len(r.dials) == 0 && r.open == 0 && r.closing == 0 {
			r.publish()
			r.stop()
			return
		}
		r.reconcile()
	}
}

func (r *Reconciler[T]) handle(c command[T]) {
	switch c.kind {
	case cmdResize:
		if r.closed {
			c.reply <- ErrClosed
			return
		}
		oldMin, oldMax := r.min, r.max
		r.min, r.max = c.min, c.max
		lo, hi := r.limits(time.Now())
		r.G.Min.Store(int64(lo)) // before the reply: Stats shows what Resize adopted
		r.G.Max.Store(int64(hi))
		r.Stats.Resizes.Add(1)
		r.resizing, r.resizeAt = true, time.Now()
		r.log.Info(event.ResizeAdopted, zap.String("event", event.ResizeAdopted),
			zap.Int("old_min", oldMin), zap.Int("old_max", oldMax), zap.Int("min", c.min), zap.Int("max", c.max),
			zap.Int64("slots", r.G.Slots.Load()), zap.Int("waiting", r.h.Waiting()))
		// The shrink is in force before the reply: a release right after
		// Resize returns pays the debt instead of going back idle.
		r.shrink(hi)
		c.reply <- nil
	case cmdLease:
		if r.closed {
			c.reply <- ErrClosed
			return
		}
		r.leaseMax, r.leaseUntil = c.max, c.until
		lo, hi := r.limits(time.Now())
		r.G.Min.Store(int64(lo))
		r.G.Max.Store(int64(hi))
		r.shrink(hi)
		c.reply <- nil
	case cmdRetire:
		if c.owed {
			r.shrinkPending--
		}
		r.retire(c.c, c.reason, c.err, c.inSet)
	case cmdIdleExpired:
		r.expired = append(r.expired, c.c)
	case cmdHijacked:
		r.reg.Delete(c.c.ID())
		r.Stats.RetiredHandouts.Add(int64(c.c.Handouts()))
		r.Stats.Hijacked.Add(1)
		r.open--
		c.c.MarkHijacked()
		r.free(c.c)
		r.log.Info(event.ConnHijacked, zap.String("event", event.ConnHijacked), zap.Uint64("conn_id", c.c.ID()))
	case cmdDialed:
		r.dialed(c)
	case cmdClosed:
		r.closing--
		if c.err != nil {
			fields := []zap.Field{zap.String("event", event.CloseFailed), zap.Error(c.err)}
			if c.c != nil {
				fields = append(fields, zap.Uint64("conn_id", c.c.ID()))
			}
			r.log.Warn(event.CloseFailed, fields...)
		}
		r.freePending()
	case cmdReset:
		r.reset()
		c.reply <- nil
	case cmdDialIdle:
		r.dialIdle(c.vctx, c.reply)
	case cmdWarm:
		if r.closed {
			c.reply <- ErrClosed
			return
		}
		r.warmReply = c.reply
	case cmdClose:
		r.close(c.err)
	case cmdForce:
		c.force <- r.forceAll(conn.ReasonClose)
	case cmdWithin:
		r.within = append(r.within, within{max: c.max, reply: c.reply})
	case cmdForceOver:
		r.drainIdle(r.open - c.max)
		c.force <- Forced{Held: r.forceOver(c.max, conn.ReasonShrink)}
	}
}

// limits returns the bounds in force now: a lease's max while it lasts.
func (r *Reconciler[T]) limits(now time.Time) (lo, hi int) {
	hi = r.max
	if !r.leaseUntil.IsZero() {
		if now.Before(r.leaseUntil) {
			hi = r.leaseMax
		} else {
			r.fence(now)
		}
	}
	return min(r.min, hi), hi
}

// fence ends an expired lease: the Resize max holds again, and held
// connections above it are closed under their holders now, dials above it
// cancelled — the backend must see the fallback max by the lease's end.
func (r *Reconciler[T]) fence(now time.Time) {
	r.log.Warn(event.LeaseExpired, zap.String("event", event.LeaseExpired),
		zap.Int("lease_max", r.leaseMax), zap.Int("max", r.max), zap.Int64("slots", r.G.Slots.Load()),
		zap.Duration("late", now.Sub(r.leaseUntil)))
	r.leaseMax, r.leaseUntil = 0, time.Time{}
	if len(r.dials)+r.open > r.max {
		for d := range r.dials {
			r.cancelDial(d)
		}
	}
	r.drainIdle(r.open - r.max)
	r.forceOver(r.max, conn.ReasonShrink)
}

// forceOver retires connections, held ones included, until at most max are
// open, and returns how many held ones it took from their holders.
func (r *Reconciler[T]) forceOver(max int, reason conn.Reason) (held int) {
	over := r.open - max
	if over <= 0 {
		return 0
	}
	r.reg.Range(func(c *conn.Conn[T]) bool {
		if over <= 0 {
			return false
		}
		if was, ok := c.ForceRetire(); ok {
			if was == conn.InUse || was == conn.Detached {
				held++
			}
			r.retire(c, reason, nil, was == conn.Idle || was == conn.Checking)
			over--
		}
		return true
	})
	return held
}

// retire closes a claimed connection: forget it, close it in a goroutine. The
// slot stays taken until the close returns.
func (r *Reconciler[T]) retire(c *conn.Conn[T], reason conn.Reason, err error, inSet bool) {
	if inSet {
		r.tombstones++
	}
	// Delete before adding: a Stats in between undercounts for a moment
	// (and reports its previous value), never counts the connection twice.
	r.reg.Delete(c.ID())
	r.Stats.RetiredHandouts.Add(int64(c.Handouts()))
	r.Stats.Closes[reason].Add(1)
	fields := []zap.Field{zap.String("event", event.ConnRetired),
		zap.Uint64("conn_id", c.ID()), zap.String("reason", reason.String()),
		zap.Duration("age", time.Since(c.Created()))}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	r.log.Info(event.ConnRetired, fields...)
	r.open--
	r.closing++
	r.pendingFree = append(r.pendingFree, c)
	go func() {
		cerr := r.h.Close(c.Value())
		c.MarkClosed()
		r.in.send(command[T]{kind: cmdClosed, c: c, err: cerr})
	}()
}

// closeLate closes the value of a dial that returned after its timeout.
func (r *Reconciler[T]) closeLate(v T, took time.Duration) {
	r.Stats.Closes[conn.ReasonLateDial].Add(1)
	r.log.Info(event.ConnRetired, zap.String("event", event.ConnRetired), zap.String("reason", conn.ReasonLateDial.String()),
		zap.Duration("took", took))
	r.closing++
	go func() {
		cerr := r.h.Close(v)
		r.in.send(command[T]{kind: cmdClosed, err: cerr})
	}()
}

func (r *Reconciler[T]) free(c *conn.Conn[T]) {
	if !r.set.Unregister(c) {
		r.pendingFree = append(r.pendingFree, c)
	}
}

// freePending frees the idle-set indexes of retired connections that have left
// the set.
func (r *Reconciler[T]) freePending() {
	kept := r.pendingFree[:0]
	for _, c := range r.pendingFree {
		if s := c.State(); (s != conn.Closed && s != conn.Hijacked) || !r.set.Unregister(c) {
			kept = append(kept, c)
		}
	}
	clear(r.pendingFree[len(kept):])
	r.pendingFree = kept
}

func (r *Reconciler[T]) reset() {
	r.resetGen++
	r.Stats.Resets.Add(1)
	idle, doomed, dials := 0, 0, 0
	// Dials in flight would connect to what the Reset is leaving: cancelled,
	// so they no longer count as supply for waiters (the next pass dials
	// afresh) and their failure is not the backend's. A DialIdle among them
	// is redialed.
	for d := range r.dials {
		if d.resetGen != r.resetGen-1 || d.cancelled {
			continue
		}
		if d.reply != nil {
			r.redials = append(r.redials, d.reply)
			d.reply = nil
		}
		r.cancelDial(d)
		dials++
	}
	r.reg.Range(func(c *conn.Conn[T]) bool {
		if c.State().Dead() {
			return true // on its way out already
		}
		if c.ClaimIdle() {
			r.retire(c, conn.ReasonReset, nil, true)
			idle++
			return true
		}
		c.Doom(conn.ReasonReset)
		if c.ClaimIdle() { // released between the two looks
			r.retire(c, conn.ReasonReset, nil, true)
			idle++
			return true
		}
		doomed++
		return true
	})
	r.log.Info(event.PoolReset, zap.String("event", event.PoolReset), zap.Int("idle_retired", idle),
		zap.Int("held_doomed", doomed), zap.Int("dials_doomed", dials))
}

// cancelDial cancels a dial in flight: it keeps its slot until it returns, but
// is no longer supply, and its failure does not count against the backend.
func (r *Reconciler[T]) cancelDial(d *dial) {
	if d.cancelled {
		return
	}
	d.cancelled = true
	d.cancel()
	if !d.timedOut {
		r.cancelled++
	}
}

func (r *Reconciler[T]) dialIdle(vctx context.Context, reply chan error) {
	if r.closed {
		reply <- ErrClosed
		return
	}
	// No room is the first answer: with every slot taken, the outage (whose
	// probe waits for a slot too) is not why this dial cannot start.
	_, hi := r.limits(time.Now())
	if slots := len(r.dials) + r.open + r.closing; slots >= hi {
		reply <- fmt.Errorf("%w: %d of %d slots taken", ErrExhausted, slots, hi)
		return
	}
	if r.outage != nil && !r.cfg.NoOutage && (r.outage.Probing || time.Now().Before(r.outage.ProbeAt)) {
		reply <- r.outageErr(time.Now())
		return
	}
	d := r.startDial(WhyRequest, vctx)
	d.reply = reply
}

func (r *Reconciler[T]) close(err error) {
	r.closed = true
	r.stop() // cancels dials in flight
	n := r.h.FailWaiters(err, 1<<30)
	if r.warmReply != nil {
		r.warmReply <- ErrClosed
		r.warmReply = nil
	}
	for d := range r.dials {
		if d.reply != nil {
			d.reply <- ErrClosed
			d.reply = nil
		}
	}
	for _, reply := range r.redials {
		reply <- ErrClosed
	}
	r.redials = nil
	r.endChecks()
	r.log.Info(event.CloseStarted, zap.String("event", event.CloseStarted),
		zap.Int("waiters_failed", n), zap.Int("open", r.open), zap.Int("dialing", len(r.dials)))
}

// forceAll retires every registered connection, held ones included.
func (r *Reconciler[T]) forceAll(reason conn.Reason) Forced {
	var f Forced
	r.reg.Range(func(c *conn.Conn[T]) bool {
		if was, ok := c.ForceRetire(); ok {
			if was == conn.InUse || was == conn.Detached {
				f.Held++
			}
			r.retire(c, reason, nil, was == conn.Idle || was == conn.Checking)
			f.Conns++
		}
		return true
	})
	r.log.Warn(event.CloseForced, zap.String("event", event.CloseForced), zap.Int("conns", f.Conns), zap.Int("held", f.Held))
	r.publish()
	return f
}

func (r *Reconciler[T]) startDial(why Why, vctx context.Context) *dial {
	d := &dial{why: why, gen: r.gen, resetGen: r.resetGen, probe: r.outage != nil}
	d.deadline = time.Now().Add(r.cfg.DialTimeout + graceFor(r.cfg.DialTimeout))
	r.dials[d] = struct{}{}
	if r.outage != nil {
		r.outage = r.outageWith(func(o *Outage) { o.Probing = true })
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(vctx), r.cfg.DialTimeout)
	stop := context.AfterFunc(r.ctx, cancel)
	d.cancel = cancel
	timeout := r.cfg.DialTimeout
	go func() {
		start := time.Now()
		v, err := r.h.Dial(ctx)
		took := time.Since(start)
		if err != nil && ctx.Err() == context.DeadlineExceeded {
			// It heeded DialTimeout: a timed-out dial, like one that did
			// not. Its error is kept as text only, so that an Acquire's
			// error never matches context.DeadlineExceeded unless the
			// Acquire's own context ran out.
			err = fmt.Errorf("%w after %v: %v", safe.TimedOut("dial"), timeout, err)
		}
		stop()
		cancel()
		r.in.send(command[T]{kind: cmdDialed, d: d, v: v, err: err, took: took})
	}()
	r.armTimer()
	return d
}

// values is the context whose values the pool's own dials carry.
func (r *Reconciler[T]) values() context.Context {
	if r.cfg.Values != nil {
		return r.cfg.Values
	}
	return context.Background()
}

// graceFor is how long past its timeout a callback still counts as on time
// (see health.Grace).
func graceFor(timeout time.Duration) time.Duration { return max(timeout/10, time.Millisecond) }

// expireDials counts dials past their deadline as failed (they stay in flight,
// holding their slot, until they return).
func (r *Reconciler[T]) expireDials() {
	now := time.Now()
	var failed []*dial
	for d := range r.dials {
		if d.timedOut || now.Before(d.deadline) {
			continue
		}
		d.timedOut = true
		r.stuck++
		r.h.DialTimedOut(r.cfg.DialTimeout)
		if d.cancelled {
			r.cancelled-- // now counted as stuck; it was not the backend's dial
			continue
		}
		failed = append(failed, d)
	}
	// Every expired dial is stuck before any waiter hears of one: a waiter
	// that reads Stats on its way out sees them all.
	r.publish()
	for _, d := range failed {
		r.dialFailed(d, fmt.Errorf("%w after %v", safe.TimedOut("dial"), r.cfg.DialTimeout), r.cfg.DialTimeout)
	}
	r.armTimer()
}

func (r *Reconciler[T]) dialed(c command[T]) {
	d := c.d
	delete(r.dials, d)
	if d.cancelled && !d.timedOut {
		r.cancelled--
	}
	if d.timedOut {
		r.stuck--
		if c.err == nil {
			r.closeLate(c.v, c.took)
		}
		return
	}
	if c.err != nil {
		if d.cancelled || r.closed {
			// Cancelled by the pool (a lease ran out, Close): not the
			// backend's failure.
			if d.reply != nil {
				d.reply <- fmt.Errorf("%w: dial cancelled: %w", ErrDial, c.err)
			}
			return
		}
		r.dialFailed(d, c.err, c.took)
		return
	}
	if r.outage != nil {
		r.log.Info(event.Recovered, zap.String("event", event.Recovered), zap.Int("failed_dials", r.fails))
		r.fails, r.outage = 0, nil
	}
	r.Stats.Dials.Add(1)
	now := time.Now()
	r.nextID++
	var deadline time.Time
	if r.cfg.MaxLifetime > 0 {
		life := r.cfg.MaxLifetime
		if r.cfg.LifetimeJitter > 0 {
			life -= time.Duration(rand.Int64N(int64(r.cfg.LifetimeJitter)))
		}
		deadline = now.Add(life)
	}
	cn := conn.New(r.nextID, c.v, now, deadline, r.h.Now())
	r.reg.Store(cn)
	r.set.Register(cn)
	r.open++
	r.log.Info(event.ConnDialed, zap.String("event", event.ConnDialed), zap.Uint64("conn_id", cn.ID()),
		zap.Duration("took", c.took), zap.String("why", d.why.String()), zap.Bool("probe", d.probe))
	var reason conn.Reason
	switch {
	case r.closed:
		reason = conn.ReasonClose
	case d.resetGen != r.resetGen:
		reason = conn.ReasonReset
	case d.cancelled:
		// Cancelled by an expired lease, yet it connected: it is above the
		// max in force, so it closes at once and is never handed out.
		reason = conn.ReasonShrink
	case int64(r.open)-r.shrinkPending > r.G.Max.Load():
		// It started under a larger max (a Resize or a lease shrank the
		// pool while it dialed): the connections already open, less those
		// owed to the shrink, fill the max in force, so this one closes at
		// once and is never handed out.
		reason = conn.ReasonShrink
	default:
		// The gauges first (this dial is done, its connection open): the
		// waiter it goes to may read Stats as soon as it has it. Born
		// before the reply: DialIdle's caller finds the connection idle.
		r.publish()
		r.h.Born(cn)
		if d.reply != nil {
			d.reply <- nil
		}
		return
	}
	if d.reply != nil {
		d.reply <- fmt.Errorf("%w: the dial's connection was retired at once (%s)", ErrExhausted, reason)
	}
	cn.Retire(1)
	r.retire(cn, reason, nil, false)
}

// dialFailed counts a failed dial: backoff, the outage it starts or extends,
// and the waiters it fails.
func (r *Reconciler[T]) dialFailed(d *dial, err error, took time.Duration) {
	r.Stats.DialErrors.Add(1)
	now := time.Now()
	// Dials already in flight when the backend died fail together; only the
	// first of them counts towards the backoff (the others started before it
	// failed), so one outage does not jump straight to DialBackoffMax.
	if d.gen == r.gen || r.fails == 0 {
		r.gen++
		r.fails++
		wait := r.backoff()
		r.outage = &Outage{Err: err, FailedAt: now, ProbeAt: now.Add(wait), Attempt: r.fails}
	} else {
		r.outage = r.outageWith(func(o *Outage) { o.Err = err })
	}
	r.outage = r.outageWith(func(o *Outage) { o.Probing = r.activeDials() > 0 })
	// The gauges first (this dial is gone, its slot free): a waiter that
	// reads Stats on its way out sees the pool as the failure left it.
	r.publish()
	werr := fmt.Errorf("%w: %w", ErrDial, err)
	if d.reply != nil {
		d.reply <- werr
		d.reply = nil
	}
	if r.warmReply != nil {
		r.warmReply <- werr
		r.warmReply = nil
	}
	n := 0
	if !r.closed {
		// With no connection left to release, nobody can serve the waiters
		// but the next probe: they learn the error now. Otherwise the dial
		// was for one waiter (the oldest), who learns it.
		all := r.open == 0 && !r.cfg.NoOutage
		if all {
			n = r.h.FailWaiters(werr, 1<<30)
		} else if d.why == WhyWaiter {
			n = r.h.FailWaiters(werr, 1)
		}
	}
	r.log.Warn(event.DialFailed, zap.String("event", event.DialFailed), zap.Error(err), zap.Duration("took", took),
		zap.Int("attempt", r.fails), zap.Duration("retry_in", r.outage.ProbeAt.Sub(now)),
		zap.Int("waiters_failed", n), zap.Bool("probe", d.probe))
	r.armTimer()
}

func (r *Reconciler[T]) outageWith(f func(*Outage)) *Outage {
	if r.outage == nil {
		return nil
	}
	o := *r.outage
	f(&o)
	return &o
}

// outageErr is the error an Acquire or DialIdle gets while the pool backs off.
func (r *Reconciler[T]) outageErr(now time.Time) error {
	return OutageError(r.outage, now, r.cfg.ProbeEvery)
}

// OutageError is the error for an Acquire that cannot wait for the next probe.
func OutageError(o *Outage, now time.Time, probeEvery time.Duration) error {
	next := o.NextProbe(probeEvery).Sub(now).Round(time.Millisecond)
	if next <= 0 {
		// Waiters bring the probe forward; with none, the backoff decides.
		next = o.ProbeAt.Sub(now).Round(time.Millisecond)
	}
	if next <= 0 {
		// Due, not started yet: it waits for a free slot, or for the loop.
		return fmt.Errorf("%w (backend down, next attempt due now): %w", ErrDial, o.Err)
	}
	return fmt.Errorf("%w (backend down, next attempt in %v): %w", ErrDial, next, o.Err)
}

// activeDials counts the dials that may still bring a connection: neither
// stuck past their timeout nor cancelled.
func (r *Reconciler[T]) activeDials() int { return len(r.dials) - r.stuck - r.cancelled }

func (r *Reconciler[T]) backoff() time.Duration {
	d := r.cfg.BackoffBase
	for i := 1; i < r.fails && d < r.cfg.BackoffMax; i++ {
		d *= 2
	}
	if d > r.cfg.BackoffMax {
		d = r.cfg.BackoffMax
	}
	// ±50% jitter, so that many pools do not retry in step.
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

// armTimer sets the loop's timer to the earliest of: the next dial deadline,
// the next probe, the lease's end.
func (r *Reconciler[T]) armTimer() {
	// Only future times: what is due now was done by the pass that calls
	// this, or is not needed (a probe nobody waits for).
	now := time.Now()
	var at time.Time
	earliest := func(t time.Time) {
		if t.After(now) && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for d := range r.dials {
		if !d.timedOut {
			earliest(d.deadline)
		}
	}
	if o := r.outage; o != nil && !o.Probing {
		if r.h.Waiting() > 0 {
			earliest(o.NextProbe(r.cfg.ProbeEvery))
		} else {
			earliest(o.ProbeAt)
		}
	}
	earliest(r.leaseUntil)
	if at.IsZero() {
		r.timer.Stop()
		return
	}
	r.timer.Reset(at.Sub(now))
}

// shrink brings the pool towards hi: idle connections above it go now; the
// rest is owed by held connections on release (the gate's debt). Each pass
// sets the debt anew to what idle connections cannot cover, so a connection
// that was under a check at the shrink and is idle again goes at the next
// pass, and the debt is taken back when the pool gets under its max another
// way (Destroy, lifetime, a grow).
func (r *Reconciler[T]) shrink(hi int) {
	debt := r.Gate.Debt()
	claimed := r.shrinkPending - debt // releases retiring for shrink, not yet received
	need := r.open - hi - int(claimed)
	if need > 0 {
		need -= r.drainIdle(need)
	}
	r.shrinkPending += r.Gate.addDebt(int64(max(need, 0)) - debt)
}

// drainIdle takes up to n connections out of the idle set and retires them
// for shrink; it returns how many.
func (r *Reconciler[T]) drainIdle(n int) int {
	done := 0
	for done < n {
		c, lease, ok := r.set.TakeUncounted()
		if !ok {
			return done
		}
		if c.Retire(lease) {
			reason := conn.ReasonShrink
			if r.closed {
				reason = conn.ReasonClose
			}
			r.retire(c, reason, nil, false)
			done++
		}
	}
	return done
}

// endChecks decides the idle-expired connections: retire as many as MinIdle
// allows, end the check of the others.
func (r *Reconciler[T]) endChecks() {
	if len(r.expired) == 0 {
		return
	}
	allowed := 0
	if !r.closed {
		allowed = r.idleCount() - r.min // the candidates are among the idle
	}
	for _, c := range r.expired {
		if reason := c.Doomed(); reason != conn.ReasonNone || allowed > 0 || r.closed {
			if reason == conn.ReasonNone {
				reason = conn.ReasonIdle
				if r.closed {
					reason = conn.ReasonClose
				}
				allowed--
			}
			if inSet, ok := c.RetireChecked(); ok {
				r.retire(c, reason, nil, inSet)
				r.idleCache = -1
			}
			continue
		}
		if lease, detached, _ := c.EndCheck(); detached {
			r.h.PutBack(c, lease)
		}
	}
	clear(r.expired)
	r.expired = r.expired[:0]
}

// idleCount counts the idle connections by walking the registry, once per
// pass: the ones in the idle set, and the ones their watcher checks (a check
// ends in a few milliseconds; counting them keeps MinIdle from dialing a
// replacement for every connection under check).
func (r *Reconciler[T]) idleCount() int {
	if r.idleCache >= 0 {
		return r.idleCache
	}
	n := 0
	r.reg.Range(func(c *conn.Conn[T]) bool {
		if s := c.State(); s == conn.Idle || s == conn.Checking || s == conn.Detached {
			n++
		}
		return true
	})
	r.idleCache = n
	return n
}

func (r *Reconciler[T]) sweep() {
	r.set.Sweep(func(c *conn.Conn[T]) bool {
		s := c.State()
		return s == conn.Idle || s == conn.Checking
	})
	r.tombstones = 0
	r.freePending()
}

func (r *Reconciler[T]) publish() {
	dialing := int64(len(r.dials))
	r.G.Dialing.Store(dialing)
	r.G.StuckDials.Store(int64(r.stuck))
	r.G.Open.Store(int64(r.open))
	r.G.Closing.Store(int64(r.closing))
	slots := dialing + int64(r.open+r.closing)
	r.G.Slots.Store(slots)
	r.G.Outage.Store(r.outage)
	kept := r.within[:0]
	for _, w := range r.within {
		if slots <= int64(w.max) {
			w.reply <- nil
		} else {
			kept = append(kept, w)
		}
	}
	clear(r.within[len(kept):])
	r.within = kept
}

func (r *Reconciler[T]) reconcile() {
	r.idleCache = -1
	defer r.publish()
	if r.closed {
		r.drainIdle(1 << 30)
		r.endChecks()
		if r.tombstones > 0 {
			r.sweep()
		}
		return
	}
	now := time.Now()
	lo, hi := r.limits(now)
	r.G.Min.Store(int64(lo))
	r.G.Max.Store(int64(hi))
	r.endChecks()

	r.shrink(hi)
	if r.tombstones >= r.cfg.SweepAt || (r.tombstones > 0 && len(r.pendingFree) > 0) {
		r.sweep()
	}

	// Dials: one per waiter without one, enough for MinIdle, and TryAcquire's
	// requests; never more than the free slots.
	active := r.activeDials()
	waiting := r.h.Waiting()
	forWaiters := max(waiting-active, 0)
	want := forWaiters
	if lo > 0 {
		want = max(want, lo-r.idleCount()-active)
	}
	requests := int(r.requests.Swap(0))
	want += requests
	free := hi - (len(r.dials) + r.open + r.closing)
	need := min(want, free)
	if o := r.outage; o != nil && need > 0 {
		due := o.ProbeAt
		if waiting > 0 {
			due = o.NextProbe(r.cfg.ProbeEvery)
		}
		switch {
		case r.cfg.NoOutage && forWaiters > 0:
			need = min(need, forWaiters) // every waiter gets its own dial
		case now.Before(due):
			need = 0
		default:
			need = min(need, 1-active) // one probe at a time
		}
	}
	// DialIdle callers whose dial a Reset cancelled come first: they asked
	// for a dial of their own.
	for len(r.redials) > 0 && len(r.dials)+r.open+r.closing < hi {
		if o := r.outage; o != nil && !r.cfg.NoOutage && (o.Probing || now.Before(o.ProbeAt)) {
			for _, reply := range r.redials {
				reply <- r.outageErr(now)
			}
			clear(r.redials)
			r.redials = r.redials[:0]
			break
		}
		d := r.startDial(WhyRequest, r.values())
		d.reply = r.redials[0]
		r.redials = r.redials[1:]
		need = min(need, hi-(len(r.dials)+r.open+r.closing))
	}
	for i := 0; i < need; i++ {
		switch {
		case i < forWaiters:
			r.startDial(WhyWaiter, r.h.DialContext())
		case i < want-requests:
			r.startDial(WhyMinIdle, r.values())
		default:
			r.startDial(WhyRequest, r.values())
		}
	}

	if r.warmReply != nil && r.idleCount() >= lo {
		r.warmReply <- nil
		r.warmReply = nil
	}
	if !r.warmed && lo > 0 && r.idleCount() >= lo {
		r.warmed = true
		r.log.Info(event.PoolWarmed, zap.String("event", event.PoolWarmed), zap.Int("min_idle", lo))
	}
	if r.resizing && r.open <= hi && len(r.dials) == 0 && (r.idleCount() >= lo || r.open >= hi) {
		r.resizing = false
		r.log.Info(event.ResizeReached, zap.String("event", event.ResizeReached),
			zap.Int("min", lo), zap.Int("max", hi), zap.Int("open", r.open),
			zap.Int("idle", r.idleCount()), zap.Duration("took", time.Since(r.resizeAt)))
	}
	r.armTimer()
}
