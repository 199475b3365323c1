// Package tidepool is a generic connection pool built as an actor: one reconcile
// loop owns how many connections exist, idle connections sit in a lock-free queue,
// and every live connection has a watcher goroutine for its health, lifetime and
// idle time. See the README for the design and DESIGN.md for its invariants.
//
// The hot path — Acquire when an idle connection is there, and Release when nobody
// waits — takes no mutex, allocates nothing and logs nothing.
package tidepool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/health"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/reconciler"
	"github.com/tidepool-go/tidepool/registry"
)

// Errors returned by the pool, for errors.Is.
var (
	// ErrClosed: the pool is closed (or closing).
	ErrClosed = errors.New("tidepool: pool is closed")
	// ErrExhausted: TryAcquire found nothing idle and the pool at its max.
	ErrExhausted = errors.New("tidepool: pool exhausted")
	// ErrDial wraps a dial's error when an Acquire fails because dials fail.
	ErrDial = reconciler.ErrDial
	// ErrAcquireTimeout: Config.AcquireTimeout passed before a connection came.
	ErrAcquireTimeout = errors.New("tidepool: acquire timed out")
	// ErrInvalidResize wraps every error Resize returns for bad bounds.
	ErrInvalidResize = errors.New("tidepool: invalid resize")
)

// Reason says why a connection was retired; it is the "reason" field of the
// conn.retired log entry and the key of Stats.Closed.
type Reason = conn.Reason

// Retirement reasons.
const (
	ReasonLifetime   = conn.ReasonLifetime
	ReasonIdle       = conn.ReasonIdle
	ReasonHealth     = conn.ReasonHealth
	ReasonShrink     = conn.ReasonShrink
	ReasonDestroyed  = conn.ReasonDestroyed
	ReasonClose      = conn.ReasonClose
	ReasonExcessIdle = conn.ReasonExcessIdle
)

// maxSkips bounds how many unusable connections (retired, doomed, mid-check) an
// Acquire dequeues and skips before it waits instead.
const maxSkips = 8

// Pool is a pool of connections of type T. Create it with New; it is safe for
// concurrent use.
type Pool[T any] struct {
	// Immutable after New.
	cfg    Config[T]
	log    *zap.Logger
	idle   *queue.Queue[*conn.Conn[T]]
	reg    *registry.Registry[T]
	rec    *reconciler.Reconciler[T]
	sh     *reconciler.Shared
	hcfg   health.Config[T]
	track  bool // whether hand-outs record their time (leak detection)
	ctx    context.Context
	cancel context.CancelFunc

	// wl holds the waiting Acquires; see waitlist.
	wl waitlist[T]
	// watchers counts running watcher and leak-scanner goroutines; Close waits.
	watchers sync.WaitGroup
	// resizeMu serializes Resize calls (not the hot path).
	resizeMu sync.Mutex

	// Counters, all off the hot path. Acquisitions are counted on each
	// connection (its cache line is already being written by the hand-out's
	// CAS), and Stats sums them.
	waited         atomic.Int64
	waitNanos      atomic.Int64
	canceled       atomic.Int64
	healthChecks   atomic.Int64
	healthFailures atomic.Int64
	leaks          atomic.Int64
	waitHist       waitHistogram
	acquiresMax    atomic.Int64 // the highest Stats.Acquires reported
}

// New creates a pool and, if cfg.MinIdle > 0, waits until MinIdle connections
// are dialed. If a dial fails or ctx ends first, New closes the pool and returns
// the error. An invalid cfg returns an error wrapping ErrInvalidConfig that names
// the field and its value.
func New[T any](ctx context.Context, cfg Config[T]) (*Pool[T], error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	p := &Pool[T]{
		cfg:   cfg,
		log:   cfg.Logger.With(zap.String("pool", cfg.Name)),
		reg:   registry.New[T](),
		sh:    new(reconciler.Shared),
		track: cfg.LeakThreshold > 0 || cfg.TrackAcquireSite,
	}
	// Room for every connection the pool may ever hold plus the tombstones
	// that watchers leave between two sweeps of the reconciler (it sweeps at
	// sweepAt). Should a burst of expiries overshoot that before the loop
	// catches up, a release finding the queue full retires its connection
	// (pushIdle). Each slot is a 64-byte cache line.
	const sweepAt = 16
	p.idle = queue.New[*conn.Conn[T]](cfg.SizeCeiling + 4*sweepAt)
	p.hcfg = health.Config[T]{Check: cfg.Check, Interval: cfg.HealthInterval, Timeout: cfg.HealthTimeout, MaxIdleTime: cfg.MaxIdleTime}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.rec = reconciler.New(reconciler.Config{
		Min: cfg.MinIdle, Max: cfg.MaxSize,
		DialTimeout: cfg.DialTimeout, BackoffBase: cfg.DialBackoff, BackoffMax: cfg.DialBackoffMax,
		MaxLifetime: cfg.MaxLifetime, LifetimeJitter: cfg.MaxLifetimeJitter,
		Tick: cfg.ReconcileInterval, SweepAt: sweepAt, Logger: p.log,
	}, p.sh, p.idle, p.reg, (*recHooks[T])(p))
	if cfg.LeakThreshold > 0 {
		p.watchers.Add(1)
		go p.scanLeaks()
	}
	p.log.Info("pool.started", zap.String("event", "pool.started"),
		zap.Int("min_idle", cfg.MinIdle), zap.Int("max_size", cfg.MaxSize), zap.Int("size_ceiling", cfg.SizeCeiling))
	if err := p.warm(ctx); err != nil {
		_ = p.Close(context.Background())
		return nil, err
	}
	return p, nil
}

// warm waits until MinIdle connections are idle.
func (p *Pool[T]) warm(ctx context.Context) error {
	if p.cfg.MinIdle == 0 {
		return nil
	}
	if err := p.rec.Warm(ctx); err != nil {
		return fmt.Errorf("tidepool: warming %d idle connections: %w", p.cfg.MinIdle, err)
	}
	return nil
}

// Conn is a connection handed out by Acquire. It is a small value (copying it is
// fine and allocates nothing); it stays valid until Release or Destroy. Using it
// after that — a second Release, Value after Release — panics, even if the
// connection has meanwhile been handed to somebody else: the handle carries the
// lease it was given, and the pool checks it.
type Conn[T any] struct {
	p     *Pool[T]
	c     *conn.Conn[T]
	lease uint64
}

// Value returns the connection. It panics if the handle was released.
func (h Conn[T]) Value() T {
	if h.c == nil || !h.c.Held(h.lease) {
		h.misuse("Value")
	}
	return h.c.Value()
}

// ID returns the connection's id, as used in logs and the admin listing.
func (h Conn[T]) ID() uint64 {
	if h.c == nil {
		h.misuse("ID")
	}
	return h.c.ID()
}

// CreatedAt returns when the connection was dialed.
func (h Conn[T]) CreatedAt() time.Time {
	if h.c == nil {
		h.misuse("CreatedAt")
	}
	return h.c.Created()
}

// Release returns the connection to the pool: to the oldest waiter if there is
// one, otherwise to the idle queue — or it retires it if it has outlived its
// lifetime, the pool is over its max or closed, or MaxIdle are idle already.
// Releasing twice panics. Releasing after Close forced the connection shut is a
// no-op.
func (h Conn[T]) Release() {
	if h.c == nil || !h.c.Held(h.lease) {
		if h.forceClosed() {
			return
		}
		h.misuse("Release")
	}
	if h.p.track && h.c.Leaked(h.lease) {
		h.p.logLeakReleased(h.c, h.lease)
	}
	h.p.putHeld(h.c, h.lease, false)
}

// Destroy closes the connection instead of returning it (use it when the
// connection is broken); the pool dials a replacement if it needs one.
// Destroying a released handle panics.
func (h Conn[T]) Destroy() {
	if h.c == nil || !h.c.Held(h.lease) {
		if h.forceClosed() {
			return
		}
		h.misuse("Destroy")
	}
	h.p.retireHeld(h.c, h.lease, ReasonDestroyed, nil, false)
}

// forceClosed reports whether the handle's connection was closed under it by
// Close's deadline, which makes a late Release or Destroy legitimate.
func (h Conn[T]) forceClosed() bool {
	return h.c != nil && h.c.ForcedUnder(h.lease)
}

func (h Conn[T]) misuse(op string) {
	if h.c == nil {
		panic("tidepool: " + op + " called on a zero Conn (not one returned by Acquire)")
	}
	panic(fmt.Sprintf("tidepool: %s called on a Conn that was already released or destroyed (conn %d); "+
		"each Acquire must be matched by exactly one Release or Destroy", op, h.c.ID()))
}

// Acquire returns an idle connection, or waits for one: for a release, or for a
// dial that the pool starts on its behalf if it is below its max. Waiters are
// served in arrival order. It returns:
//   - ErrClosed if the pool is closed or closes while it waits;
//   - an error wrapping ErrDial and the dial's error if the dial made for it
//     fails, or at once while the backend is down and no connection is live;
//   - ctx's error (wrapped) when ctx ends first, or ErrAcquireTimeout when
//     ctx has no deadline and Config.AcquireTimeout passes.
//
// A cancelled Acquire never loses a connection: if one was handed to it as it
// gave up, it goes to the next waiter or the idle queue. The dial it caused goes
// on and its connection serves somebody else.
//
// With an idle connection there, Acquire takes no lock and allocates nothing.
func (p *Pool[T]) Acquire(ctx context.Context) (Conn[T], error) {
	if !p.sh.Closed.Load() {
		if h, ok := p.takeIdle(false); ok {
			h.c.CountHandout()
			p.noteHeld(h)
			return h, nil
		}
	}
	return p.acquireSlow(ctx, false)
}

// TryAcquire is Acquire that fails fast: if no connection is idle and the pool
// is at its max, it returns ErrExhausted at once instead of waiting. If the pool
// has room, it waits (within ctx) for the dial it starts; since waiters are
// served in arrival order, that connection may go to an earlier waiter, and
// TryAcquire then waits for the next one like Acquire.
func (p *Pool[T]) TryAcquire(ctx context.Context) (Conn[T], error) {
	if !p.sh.Closed.Load() {
		if h, ok := p.takeIdle(false); ok {
			h.c.CountHandout()
			p.noteHeld(h)
			return h, nil
		}
	}
	return p.acquireSlow(ctx, true)
}

func (p *Pool[T]) acquireSlow(ctx context.Context, failFast bool) (Conn[T], error) {
	if p.sh.Closed.Load() {
		return Conn[T]{}, ErrClosed
	}
	if failFast && p.sh.Live.Load()+p.sh.Dialing.Load() >= p.sh.Max.Load() {
		return Conn[T]{}, ErrExhausted
	}
	if err := ctx.Err(); err != nil {
		return Conn[T]{}, fmt.Errorf("tidepool: acquire: %w", err)
	}
	ownTimeout := false
	if _, ok := ctx.Deadline(); !ok && p.cfg.AcquireTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.AcquireTimeout)
		defer cancel()
		ownTimeout = true
	}
	start := time.Now()
	w := p.wl.get(ctx)
	p.wl.mu.Lock()
	if p.sh.Closed.Load() {
		p.wl.mu.Unlock()
		p.wl.put(w)
		return Conn[T]{}, ErrClosed
	}
	w.since = start
	p.wl.pushLocked(w)
	p.wl.mu.Unlock()

	if p.sh.Live.Load()+p.sh.Dialing.Load() < p.sh.Max.Load() {
		// Room to dial. At the max there is nothing for the loop to do: a
		// retire or a Resize, which will make room, passes through the loop
		// anyway and it reads the waiter count then.
		p.rec.Demand()
	}
	// A connection may have been released between our look at the idle queue
	// and our listing: the releaser may have seen no waiter. Look again now
	// that we are listed (and so visible to every later releaser).
	p.serveWaiters(false)

	var r waitResult[T]
	select {
	case r = <-w.ch:
	case <-ctx.Done():
		p.wl.mu.Lock()
		if w.listed {
			p.wl.unlinkLocked(w)
			p.wl.mu.Unlock()
			p.wl.put(w)
			p.canceled.Add(1)
			return Conn[T]{}, p.ctxErr(ctx, ownTimeout)
		}
		p.wl.mu.Unlock()
		// Somebody unlinked us and is sending (or has sent) a result.
		r = <-w.ch
		if r.err == nil {
			// A hand-off raced our cancellation: pass the connection on.
			p.putHeld(r.c, r.lease, false)
			r = waitResult[T]{err: p.ctxErr(ctx, ownTimeout)}
		}
	}
	p.wl.put(w)
	if r.err != nil {
		if r.err == errEvicted {
			r.err = p.ctxErr(ctx, ownTimeout)
		}
		if ctx.Err() != nil {
			p.canceled.Add(1)
		}
		return Conn[T]{}, r.err
	}
	waitedFor := time.Since(start)
	p.waited.Add(1)
	p.waitNanos.Add(int64(waitedFor))
	p.waitHist.observe(waitedFor)
	h := Conn[T]{p: p, c: r.c, lease: r.lease}
	r.c.CountHandout()
	p.noteHeld(h)
	if ce := p.log.Check(zap.DebugLevel, "acquire.waited"); ce != nil {
		ce.Write(zap.String("event", "acquire.waited"), zap.Uint64("conn_id", r.c.ID()), zap.Duration("waited", waitedFor))
	}
	return h, nil
}

func (p *Pool[T]) ctxErr(ctx context.Context, own bool) error {
	if own && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %v", ErrAcquireTimeout, p.cfg.AcquireTimeout)
	}
	return fmt.Errorf("tidepool: acquire: %w", ctx.Err())
}

// takeIdle dequeues an idle connection and takes it. Tombstones are dropped on
// the way (each drop shortens the queue, so that is bounded by its length);
// at most maxSkips live but unusable ones (doomed, mid-check) are skipped.
func (p *Pool[T]) takeIdle(onLoop bool) (Conn[T], bool) {
	for skips := 0; skips < maxSkips; {
		c, ok := p.idle.Pop()
		if !ok {
			return Conn[T]{}, false
		}
		lease, seen, ok := c.Acquire()
		if !ok {
			if seen == conn.Retired || seen == conn.Closed {
				p.sh.Tombstones.Add(-1) // a tombstone, dropped
				continue
			}
			skips++ // detached mid-check: its watcher puts it back
			continue
		}
		if r := c.Doomed(); r != conn.ReasonNone {
			p.retireHeld(c, lease, r, nil, onLoop)
			skips++
			continue
		}
		return Conn[T]{p: p, c: c, lease: lease}, true
	}
	return Conn[T]{}, false
}

func (p *Pool[T]) noteHeld(h Conn[T]) {
	if !p.track {
		return
	}
	var site *string
	if p.cfg.TrackAcquireSite {
		s := callerStack()
		site = &s
	}
	h.c.SetHeld(h.lease, time.Now().UnixNano(), site)
}

func callerStack() string {
	var pcs [16]uintptr
	n := runtime.Callers(4, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	s := ""
	for {
		f, more := frames.Next()
		s += fmt.Sprintf("%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			return s
		}
	}
}

// putHeld returns c, held under lease by the caller, to a waiter or the idle
// queue, or retires it. onLoop is true when the caller is the reconcile loop.
func (p *Pool[T]) putHeld(c *conn.Conn[T], lease uint64, onLoop bool) {
	if p.sh.Closed.Load() {
		p.retireHeld(c, lease, ReasonClose, nil, onLoop)
		return
	}
	if r := c.Doomed(); r != conn.ReasonNone {
		p.retireHeld(c, lease, r, nil, onLoop)
		return
	}
	if p.sh.Live.Load() > p.sh.Max.Load() && p.claimShrink() {
		if !c.Retire(lease) {
			panic("tidepool: internal error: retire of a connection the caller does not hold")
		}
		p.retireClaimed(c, ReasonShrink, nil, onLoop)
		return
	}
	if p.wl.n.Load() > 0 && p.wl.handOff(c, lease) {
		return
	}
	// With MaxIdle unset the cap is the max, which the connection being
	// released already counts towards: skip the loads.
	if p.cfg.MaxIdle != 0 && p.idleCount() >= p.maxIdle() {
		p.retireHeld(c, lease, ReasonExcessIdle, nil, onLoop)
		return
	}
	p.pushIdle(c, lease, onLoop)
	if p.wl.n.Load() > 0 {
		p.serveWaiters(onLoop)
	}
	if p.sh.Closed.Load() {
		// Close drained the queue before our push landed: have the loop drain
		// it again.
		p.rec.Demand()
	}
}

// pushIdle makes c, held under lease, idle. In the unlikely case that the
// queue is full of tombstones awaiting a sweep, it retires c instead.
func (p *Pool[T]) pushIdle(c *conn.Conn[T], lease uint64, onLoop bool) {
	if !c.Release(lease) {
		panic("tidepool: internal error: idle push of a connection the caller does not hold")
	}
	if !p.idle.Push(c) {
		if l, _, ok := c.Acquire(); ok {
			p.retireHeld(c, l, ReasonExcessIdle, nil, onLoop)
		}
	}
}

// serveWaiters matches idle connections with waiters until one side runs out.
// It closes the lost-wake-up window: whoever lists a waiter or queues a
// connection calls it afterwards, so one of the two always sees the other.
func (p *Pool[T]) serveWaiters(onLoop bool) {
	for p.wl.n.Load() > 0 {
		h, ok := p.takeIdle(onLoop)
		if !ok {
			return
		}
		if !p.wl.handOff(h.c, h.lease) {
			p.pushIdle(h.c, h.lease, onLoop)
		}
	}
}

// claimShrink claims one unit of Live while the pool is over its max.
func (p *Pool[T]) claimShrink() bool {
	for {
		l := p.sh.Live.Load()
		if l <= p.sh.Max.Load() {
			return false
		}
		if p.sh.Live.CompareAndSwap(l, l-1) {
			return true
		}
	}
}

// retireHeld claims c, held under lease, and has the reconciler close it.
func (p *Pool[T]) retireHeld(c *conn.Conn[T], lease uint64, r Reason, err error, onLoop bool) {
	if !c.Retire(lease) {
		panic("tidepool: internal error: retire of a connection the caller does not hold")
	}
	p.sh.Live.Add(-1)
	p.retireClaimed(c, r, err, onLoop)
}

func (p *Pool[T]) retireClaimed(c *conn.Conn[T], r Reason, err error, onLoop bool) {
	if onLoop {
		p.rec.RetireFromLoop(c, r, err)
	} else {
		p.rec.Retire(c, r, err)
	}
}

func (p *Pool[T]) idleCount() int64 {
	return int64(p.idle.Len()) - p.sh.Tombstones.Load()
}

// maxIdle is Config.MaxIdle clamped to the current [min, max] (MaxSize when 0).
func (p *Pool[T]) maxIdle() int64 {
	m, lo, hi := int64(p.cfg.MaxIdle), p.sh.Min.Load(), p.sh.Max.Load()
	if m == 0 || m > hi {
		m = hi
	}
	if m < lo {
		m = lo
	}
	return m
}

// Resize sets new bounds: min idle connections kept warm, max connections in
// all. It returns once the reconcile loop has adopted them. Growing dials at once
// for Acquires already waiting; shrinking closes idle connections at once and
// in-use ones as they are released (Stats.PendingShrink counts those).
// Bad bounds return an error wrapping ErrInvalidResize that names them, and
// change nothing; after Close, Resize returns ErrClosed.
func (p *Pool[T]) Resize(min, max int) error {
	switch {
	case max < 1 || max > p.cfg.SizeCeiling:
		return fmt.Errorf("%w: max = %d: must be in [1, SizeCeiling=%d]", ErrInvalidResize, max, p.cfg.SizeCeiling)
	case min < 0 || min > max:
		return fmt.Errorf("%w: min = %d: must be in [0, max=%d]", ErrInvalidResize, min, max)
	}
	p.resizeMu.Lock()
	defer p.resizeMu.Unlock()
	if p.sh.Closed.Load() {
		return ErrClosed
	}
	p.log.Info("resize.requested", zap.String("event", "resize.requested"), zap.Int("min", min), zap.Int("max", max))
	if err := p.rec.Resize(min, max); err != nil {
		return ErrClosed
	}
	return nil
}

// Close shuts the pool down. New Acquires fail with ErrClosed at once, and so do
// the ones waiting. Idle connections close at once; held ones close as they are
// released. If ctx ends before every holder has released, Close closes the held
// connections too (their later Release is a no-op) and returns an error wrapping
// ctx's. Either way, when Close returns every dialed connection has been closed
// exactly once and no goroutine of the pool is left. A second Close returns
// ErrClosed.
func (p *Pool[T]) Close(ctx context.Context) error {
	if !p.sh.Closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	start := time.Now()
	p.cancel() // stops watchers and the leak scanner; cancels dials in flight
	p.rec.Close(ErrClosed)
	var err error
	select {
	case <-p.rec.Done():
	case <-ctx.Done():
		if n := p.rec.ForceClose(); n > 0 {
			err = fmt.Errorf("tidepool: close: %d held connections were closed under their holders: %w", n, ctx.Err())
		}
		<-p.rec.Done()
	}
	p.watchers.Wait()
	p.log.Info("pool.closed", zap.String("event", "pool.closed"), zap.Duration("took", time.Since(start)),
		zap.Bool("forced", err != nil))
	return err
}
