// Package tidepool is a generic connection pool built as an actor: one
// reconcile loop owns every slot of the pool, from the moment a dial starts
// until that connection's Close has returned; idle connections sit in a
// lock-free set; every live connection is in a registry and has a watcher
// goroutine for its health, lifetime and idle time.
//
// # Using it
//
// Create a pool with New and a Config (only Dial is required). Acquire hands
// out a Conn handle; Release gives it back, Destroy closes it, Hijack takes it
// out of the pool for good. AcquireFunc does the three-way branch for you.
// Resize changes the bounds at run time and serves waiting Acquires at once;
// Reset retires every connection (credential rotation); Stats and InUse report;
// Close shuts down within a deadline. The companion packages: netconn pools
// net.Conn with a one-syscall liveness check, admin serves an HTTP handler for
// operators, metrics exports Prometheus and expvar, shard and failover build
// pools of pools.
//
// # Guarantees
//
// The backend never sees more connections than the max in force, except
// connections held across a shrink (they close on release). User callbacks
// are bounded and panic-safe: a panic becomes a *CallbackError, a callback
// past its timeout counts as failed, and neither stalls the reconcile loop or
// Close. A cancelled or timed-out Acquire never loses a connection or a slot.
// Waiters are served in arrival order. docs/design.md lists the invariants and
// the tests that hold each one.
//
// # Cost
//
// The hot path — Acquire when an idle connection is there, and Release when
// nobody waits — takes no lock, allocates nothing, logs nothing and reads no
// clock: about four atomic operations, most of them on lines that stay in the
// calling core's cache.
package tidepool

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/health"
	"github.com/tidepool-go/tidepool/internal/event"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/reconciler"
	"github.com/tidepool-go/tidepool/registry"
)

// Pool is a pool of connections of type T. Create it with New; it is safe for
// concurrent use.
type Pool[T any] struct {
	// Immutable after New.
	cfg   Config[T]
	log   *zap.Logger
	idle  *queue.Idle[T]
	reg   *registry.Registry[T]
	rec   *reconciler.Reconciler[T]
	gate  *reconciler.Gate
	hcfg  health.Config[T]
	clock coarseClock
	// prepared is true when a hand-out has work beyond the state CAS: a check
	// on acquire, a BeforeAcquire hook, leak tracking.
	prepared bool
	// track: hand-outs record their time (leak detection).
	track bool
	// plainRelease: a release has no hook to run and no idle cap to check.
	plainRelease bool
	ctx          context.Context
	cancel       context.CancelFunc

	// wl holds the waiting Acquires; see waitlist.
	wl waitlist[T]
	// goroutines counts the pool's own goroutines besides the reconcile
	// loop: watchers, their checks, the leak scanner, the clock. Close waits.
	goroutines sync.WaitGroup
	// resizeMu serializes Resize calls (not the hot path).
	resizeMu sync.Mutex
	// closing is set by the first Close.
	closing atomic.Bool
	// suspect is the coarse-clock time of the last failed check on acquire:
	// connections released before it are checked whatever their idle time.
	suspect atomic.Int64
	// rejecting is set while Acquires are being turned away by MaxWaiters,
	// so that a burst is logged once.
	rejecting atomic.Bool

	// Counters, all off the hot path. Acquisitions are counted on each
	// connection (its lease), and Stats sums them.
	n counters
}

// counters are the pool's cumulative counts outside the loop; see Stats.
type counters struct {
	waited, waitNanos, canceled, rejected                     atomic.Int64
	healthChecks, healthFailures, acquireChecks, acquireFails atomic.Int64
	callbackPanics, callbackTimeouts, leaks                   atomic.Int64
	stuckChecks, checksRunning                                atomic.Int64
	waitHist                                                  waitHistogram
	acquiresMax                                               atomic.Int64 // the highest Stats.Acquires reported
}

// sweepAt is the number of tombstones at which the loop sweeps the idle set.
const sweepAt = 16

// New creates a pool. If cfg.MinIdle > 0 it waits until MinIdle connections
// are dialed, unless cfg.WarmInBackground is set; if a dial fails or ctx ends
// first, New closes the pool and returns the error. An invalid cfg returns an
// error wrapping ErrInvalidConfig that names the field and its value. A nil
// ctx panics.
func New[T any](ctx context.Context, cfg Config[T]) (*Pool[T], error) {
	if ctx == nil {
		panic("tidepool: New called with a nil context")
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	p := &Pool[T]{
		cfg:          cfg,
		log:          cfg.Logger.With(zap.String("pool", cfg.Name)),
		reg:          registry.New[T](),
		idle:         queue.New[T](cfg.MaxIdle != 0),
		track:        cfg.LeakThreshold > 0 || cfg.TrackAcquireSite,
		plainRelease: cfg.AfterRelease == nil && cfg.MaxIdle == 0,
	}
	p.prepared = cfg.CheckOnAcquire || cfg.BeforeAcquire != nil || p.track
	p.clock.start = time.Now()
	p.suspect.Store(math.MinInt64) // no check on acquire has failed yet
	p.hcfg = health.Config[T]{Check: cfg.Check, Interval: cfg.HealthInterval, Timeout: cfg.HealthTimeout,
		MaxIdleTime: cfg.MaxIdleTime, Stuck: &p.n.stuckChecks, Running: &p.goroutines, Active: &p.n.checksRunning}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.rec = reconciler.New(reconciler.Config{
		Min: cfg.MinIdle, Max: cfg.MaxSize,
		DialTimeout: cfg.DialTimeout, BackoffBase: cfg.DialBackoff, BackoffMax: cfg.DialBackoffMax,
		ProbeEvery: probeEvery(cfg), NoOutage: cfg.DisableOutageMode,
		MaxLifetime: cfg.MaxLifetime, LifetimeJitter: cfg.MaxLifetimeJitter,
		Tick: cfg.ReconcileInterval, SweepAt: sweepAt, Logger: p.log,
		Values: context.WithoutCancel(ctx), // the pool's own dials carry New's values
	}, p.idle, p.reg, (*loopHooks[T])(p))
	p.gate = &p.rec.Gate
	p.rec.Start()
	p.goroutines.Add(1)
	go func() {
		defer p.goroutines.Done()
		p.clock.run(p.ctx)
	}()
	if cfg.LeakThreshold > 0 {
		p.goroutines.Add(1)
		go p.scanLeaks()
	}
	p.log.Info(event.PoolStarted, zap.String("event", event.PoolStarted),
		zap.Int("min_idle", cfg.MinIdle), zap.Int("max_size", cfg.MaxSize), zap.Bool("warm_in_background", cfg.WarmInBackground))
	if cfg.MinIdle > 0 && !cfg.WarmInBackground {
		if err := p.rec.Warm(ctx); err != nil {
			_ = p.Close(context.Background())
			return nil, fmt.Errorf("%w (while warming %d idle connections)", err, cfg.MinIdle)
		}
	}
	return p, nil
}

// probeEvery is the longest the pool leaves waiting Acquires without a probe
// during an outage: 500ms, or DialBackoff if that is longer.
func probeEvery[T any](cfg Config[T]) time.Duration {
	return max(reconciler.DefaultProbeEvery, cfg.DialBackoff)
}

// Name returns Config.Name.
func (p *Pool[T]) Name() string { return p.cfg.Name }

// Resize sets new bounds: min idle connections kept warm, max connections in
// all (dialing, idle, in use and closing). A max of 0 holds nothing: the pool
// dials nothing and Acquires wait (for a later Resize) until their deadline.
// It returns once the reconcile loop has adopted them. Growing dials at once for Acquires already waiting;
// shrinking closes idle connections at once and in-use ones as they are
// released (Stats.PendingShrink counts those). Bad bounds return an error
// wrapping ErrInvalidResize that names them, and change nothing; after Close,
// Resize returns ErrClosed. Safe to call from any goroutine; calls are
// serialized.
func (p *Pool[T]) Resize(min, max int) error {
	if err := p.checkBounds(min, max); err != nil {
		return err
	}
	p.resizeMu.Lock()
	defer p.resizeMu.Unlock()
	if p.closing.Load() {
		return ErrClosed
	}
	p.log.Info(event.ResizeRequested, zap.String("event", event.ResizeRequested), zap.Int("min", min), zap.Int("max", max))
	return p.rec.Resize(min, max)
}

func (p *Pool[T]) checkBounds(min, max int) error {
	switch {
	case max < 0 || max > p.cfg.SizeCeiling:
		return fmt.Errorf("%w: max = %d: must be in [0, SizeCeiling=%d]", ErrInvalidResize, max, p.cfg.SizeCeiling)
	case min < 0 || min > max:
		return fmt.Errorf("%w: min = %d: must be in [0, max=%d]", ErrInvalidResize, min, max)
	}
	return nil
}

// ResizeWait is Resize followed by waiting until the backend sees at most
// max connections of this pool (Stats.Slots ≤ max). Held connections above
// the new max retire as they are released; if ctx ends first, the ones still
// held are closed under their holders (their late Release or Destroy is then
// a no-op; logged as resize.forced), and ResizeWait returns nil once those
// closes have returned: the bound holds. It waits at most a short grace
// (100ms) for Close callbacks after ctx ends, and returns an error wrapping
// ctx's, naming the slots still taken, if the bound does not hold by then
// (a Close or a dial that hangs). A nil ctx panics.
func (p *Pool[T]) ResizeWait(ctx context.Context, min, max int) error {
	if ctx == nil {
		panic("tidepool: ResizeWait called with a nil context")
	}
	if err := p.Resize(min, max); err != nil {
		return err
	}
	if err := p.rec.Within(ctx, max); err == nil {
		return nil
	}
	held := p.rec.ForceOver(max)
	if held > 0 {
		p.log.Warn(event.ResizeForced, zap.String("event", event.ResizeForced), zap.Int("max", max), zap.Int("held", held))
	}
	gctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	if err := p.rec.Within(gctx, max); err != nil {
		s := p.Stats()
		return fmt.Errorf("tidepool: resize: %d slots still taken above max %d after closing %s (%d dialing, %d closing): %w",
			s.Slots, max, heldConns(held), s.Dialing, s.Closing, ctx.Err())
	}
	return nil
}

// Lease lets the pool hold up to max connections until the time until, then
// fall back to its Resize max: at that instant the reconcile loop closes idle
// connections above it, closes held ones under their holders, and cancels
// dials above it — before it starts any new dial. Calling Lease again renews
// or changes it; a zero until cancels it. It is the fence of a coordinator
// that hands out connection budgets (package fleet): a process whose
// coordinator cannot reach it (or that was frozen) falls back by itself, on
// the monotonic clock. max must be in [0, SizeCeiling].
func (p *Pool[T]) Lease(max int, until time.Time) error {
	if err := p.checkBounds(0, max); err != nil {
		return err
	}
	if p.closing.Load() {
		return ErrClosed
	}
	return p.rec.Lease(max, until)
}

// Reset retires every connection: idle ones at once, held ones when they are
// released. Dials in flight are cancelled (one that connects anyway is closed
// at once; a DialIdle waiting for one gets a new dial); new dials replace them
// as needed, at once for waiting Acquires.
// Use it after rotating credentials or when the backend moved (DNS, failover).
// It returns once the reconcile loop has done it (logged as pool.reset,
// counted in Stats.Resets); after Close it does nothing.
func (p *Pool[T]) Reset() {
	if p.closing.Load() {
		return
	}
	_ = p.rec.Reset()
}

// DialIdle dials one connection into the idle set (to warm the pool beyond
// MinIdle before a burst) and returns the dial's error. It fails at once with
// ErrExhausted when the pool is at its max (outage or not), with an error
// wrapping ErrDial while the backend is down and backing off, and with ErrClosed after Close. If ctx ends
// first it returns ctx's error, and the dial goes on. The dial's context
// carries ctx's values (trace spans, credentials), as an Acquire's does, but
// not its cancellation.
func (p *Pool[T]) DialIdle(ctx context.Context) error {
	if ctx == nil {
		panic("tidepool: DialIdle called with a nil context")
	}
	if p.closing.Load() {
		return ErrClosed
	}
	return p.rec.DialIdle(ctx)
}

// closeGrace is how long Close and ResizeWait still wait, after their
// context ended and they forced held connections shut, for those closes to
// return.
const closeGrace = 100 * time.Millisecond

// Close shuts the pool down. New Acquires fail with ErrClosed at once, and so do
// the ones waiting. Idle connections close at once; held ones close as they are
// released; dials in flight are cancelled. If ctx ends before every holder has
// released, Close closes the held connections too (their later Release is a
// no-op), waits a short grace (100ms) for those closes, and returns an error
// wrapping ctx's that says how many held connections it took and how many
// callbacks (dials, checks, closes) were still running; their results are
// closed when they come back. So Close returns by ctx's deadline (plus the
// grace) whatever callbacks do. Without such errors, when Close returns every
// dialed connection has been closed exactly once and no goroutine of the pool
// is left. A second Close returns ErrClosed; a nil ctx panics.
func (p *Pool[T]) Close(ctx context.Context) error {
	if ctx == nil {
		panic("tidepool: Close called with a nil context")
	}
	if !p.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	start := time.Now()
	p.gate.Close()
	p.cancel() // stops watchers, their checks, the leak scanner and the clock
	p.rec.Close(ErrClosed)
	done := make(chan struct{})
	go func() {
		<-p.rec.Done()
		p.goroutines.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		forced := p.rec.Force()
		grace := time.NewTimer(closeGrace)
		select {
		case <-done:
		case <-grace.C:
		}
		grace.Stop()
		err = p.closeError(forced, done, ctx.Err())
	}
	p.log.Info(event.PoolClosed, zap.String("event", event.PoolClosed), zap.Duration("took", time.Since(start)),
		zap.Bool("forced", err != nil))
	return err
}

func (p *Pool[T]) closeError(forced reconciler.Forced, done chan struct{}, cause error) error {
	select {
	case <-done:
		if forced.Held == 0 {
			return nil
		}
		return fmt.Errorf("tidepool: close: %s: %w", heldForced(forced.Held), cause)
	default:
	}
	dials, checks, closes := p.rec.G.Dialing.Load(), p.n.checksRunning.Load(), p.rec.G.Closing.Load()
	p.log.Warn(event.CloseStuck, zap.String("event", event.CloseStuck), zap.Int64("dials", dials),
		zap.Int64("checks", checks), zap.Int64("closes", closes), zap.Int("held_forced", forced.Held))
	return fmt.Errorf("tidepool: close: %s; "+
		"still running: %d dials, %d checks, %d closes (their results are closed when they return): %w",
		heldForced(forced.Held), dials, checks, closes, cause)
}

// heldConns says "1 held connection" or "n held connections".
func heldConns(n int) string {
	if n == 1 {
		return "1 held connection"
	}
	return fmt.Sprintf("%d held connections", n)
}

// heldForced says how many held connections Close closed under their holders.
func heldForced(n int) string {
	if n == 1 {
		return "1 held connection was closed under its holder"
	}
	return fmt.Sprintf("%d held connections were closed under their holders", n)
}
