package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/queue"
	"github.com/tidepool-go/tidepool/registry"
)

// ErrDial marks errors caused by a failed dial; the dial's own error is wrapped
// too, so errors.Is works on both.
var ErrDial = errors.New("tidepool: dial failed")

// Hooks is what the pool does for the reconciler. Every method is called on the
// reconcile loop and must not block.
type Hooks[T any] interface {
	// Dial makes a new connection value. It runs in its own goroutine.
	Dial(ctx context.Context) (T, error)
	// Close closes a connection value. It runs in its own goroutine.
	Close(v T) error
	// Born receives a newly dialed connection, already registered and held with
	// lease 1, and hands it to a waiter or the idle queue. Any connection it must
	// retire instead it retires with RetireFromLoop.
	Born(c *conn.Conn[T])
	// Waiting returns the number of Acquire calls waiting.
	Waiting() int
	// FailWaiters wakes every waiting Acquire with err and returns how many.
	FailWaiters(err error) int
	// Idle returns the number of acquirable idle connections.
	Idle() int
}

// Shared holds the sizes that the pool's hot path reads. Atomics; see each field
// for who writes it.
type Shared struct {
	// Live counts connections born and not yet claimed for retirement. The
	// reconciler increments it at birth; whoever claims a connection decrements it.
	Live atomic.Int64
	// Dialing counts dials in flight. Reconciler only.
	Dialing atomic.Int64
	// Min and Max are the current bounds: Min idle connections kept warm, Max
	// connections at most. Reconciler only (on Resize).
	Min, Max atomic.Int64
	// Tombstones counts retired connections still sitting in the idle queue.
	// Incremented by whoever retires a queued connection, decremented by whoever
	// dequeues one.
	Tombstones atomic.Int64
	// Closed is set once by Pool.Close, before anything else it does.
	Closed atomic.Bool
}

// Counters are cumulative, written by the loop, read by Stats from anywhere.
type Counters struct {
	Dials, DialErrors, Resizes atomic.Int64
	// RetiredHandouts sums the hand-outs of connections no longer in the
	// registry; Stats adds those of the live ones.
	RetiredHandouts atomic.Int64
	Closes          [conn.NumReasons]atomic.Int64
}

// Config holds the reconciler's settings.
type Config struct {
	Min, Max int
	// DialTimeout bounds one dial.
	DialTimeout time.Duration
	// BackoffBase and BackoffMax bound the delay after consecutive dial failures:
	// base·2^(n-1), capped, with ±50% jitter.
	BackoffBase, BackoffMax time.Duration
	// MaxLifetime (0: none) and LifetimeJitter set each connection's deadline:
	// born + MaxLifetime − rand[0, LifetimeJitter).
	MaxLifetime, LifetimeJitter time.Duration
	// Tick is the period of the maintenance pass that tops up MinIdle after
	// connections were acquired (acquiring sends no command).
	Tick time.Duration
	// SweepAt is the number of tombstones at which the loop sweeps the idle queue.
	SweepAt int
	Logger  *zap.Logger
}

type kind uint8

const (
	cmdDemand kind = iota + 1
	cmdResize
	cmdRetire
	cmdDialed
	cmdClosed
	cmdClose
	cmdForceClose
	cmdWarm
)

type command[T any] struct {
	kind     kind
	c        *conn.Conn[T]
	v        T
	reason   conn.Reason
	err      error
	took     time.Duration
	min, max int
	gen      uint64 // for cmdDialed: the failure generation the dial started in
	reply    chan error
}

// Reconciler owns the size of one pool.
type Reconciler[T any] struct {
	// Set by New, read-only afterwards.
	S     *Shared
	Stats Counters
	cfg   Config
	q     *queue.Queue[*conn.Conn[T]]
	reg   *registry.Registry[T]
	h     Hooks[T]
	log   *zap.Logger
	cmds  chan command[T]
	done  chan struct{} // closed when the loop has exited
	ctx   context.Context
	stop  context.CancelFunc

	demandPending atomic.Bool // dedups demand commands

	// Loop-owned: only the reconcile goroutine reads or writes these.
	nextID     uint64
	fails      int       // consecutive dial failures
	gen        uint64    // bumped by each counted failure; see dialed
	lastErr    error     // last dial error while failing
	probeAt    time.Time // no dial before this while failing
	probeTimer *time.Timer
	closing    bool
	closes     int // close goroutines in flight
	resizing   bool
	resizeAt   time.Time
	warmReply  chan error // answered once Min idle connections exist, or a dial fails
}

// New starts the reconcile loop for a pool. The loop dials up to cfg.Min idle
// connections at once.
func New[T any](cfg Config, s *Shared, q *queue.Queue[*conn.Conn[T]], reg *registry.Registry[T], h Hooks[T]) *Reconciler[T] {
	ctx, stop := context.WithCancel(context.Background())
	r := &Reconciler[T]{
		S: s, cfg: cfg, q: q, reg: reg, h: h, log: cfg.Logger,
		cmds: make(chan command[T], 1024), done: make(chan struct{}),
		ctx: ctx, stop: stop,
	}
	s.Min.Store(int64(cfg.Min))
	s.Max.Store(int64(cfg.Max))
	go r.loop()
	return r
}

// Done is closed when the loop has exited, after Close: every connection closed.
func (r *Reconciler[T]) Done() <-chan struct{} { return r.done }

func (r *Reconciler[T]) send(c command[T]) bool {
	select {
	case r.cmds <- c:
		return true
	case <-r.done:
		return false
	}
}

// Demand tells the loop that an Acquire is waiting. Never blocks; repeated
// demands before the loop reads one are merged.
func (r *Reconciler[T]) Demand() {
	if r.demandPending.CompareAndSwap(false, true) {
		select {
		case r.cmds <- command[T]{kind: cmdDemand}:
		default:
			// The channel is full, so the loop has work queued and will
			// reconcile, reading the waiter count, after it.
			r.demandPending.Store(false)
		}
	}
}

// Resize asks the loop to adopt new bounds and returns once it has. The caller
// validates the bounds. It fails only if the loop has exited.
func (r *Reconciler[T]) Resize(min, max int) error {
	reply := make(chan error, 1)
	if !r.send(command[T]{kind: cmdResize, min: min, max: max, reply: reply}) {
		return errLoopDone
	}
	select {
	case err := <-reply:
		return err
	case <-r.done:
		return errLoopDone
	}
}

var errLoopDone = errors.New("tidepool: pool is closed")

// Retire hands a connection that the caller has claimed (moved to Retired and
// subtracted from Live) to the loop to be closed. Any goroutine but the loop's.
func (r *Reconciler[T]) Retire(c *conn.Conn[T], reason conn.Reason, err error) {
	r.send(command[T]{kind: cmdRetire, c: c, reason: reason, err: err})
}

// RetireFromLoop is Retire for code running on the loop (inside Hooks.Born).
func (r *Reconciler[T]) RetireFromLoop(c *conn.Conn[T], reason conn.Reason, err error) {
	r.retire(c, reason, err)
}

// Warm waits until Min idle connections exist. It returns the first dial error
// instead if a dial fails first, or ctx's error.
func (r *Reconciler[T]) Warm(ctx context.Context) error {
	reply := make(chan error, 1)
	if !r.send(command[T]{kind: cmdWarm, reply: reply}) {
		return errLoopDone
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return errLoopDone
	}
}

// Close starts the pool's shutdown: no more dials, waiters fail with err, idle
// connections close, and the loop exits once every connection is closed.
func (r *Reconciler[T]) Close(err error) {
	r.send(command[T]{kind: cmdClose, err: err})
}

// ForceClose retires every connection, held ones included, and returns how
// many it took from their holders. Used when Close's context ends before every
// holder released.
func (r *Reconciler[T]) ForceClose() int {
	reply := make(chan error, 1)
	if !r.send(command[T]{kind: cmdForceClose, reply: reply}) {
		return 0
	}
	select {
	case err := <-reply:
		var n forcedCount
		if errors.As(err, &n) {
			return int(n)
		}
	case <-r.done:
	}
	return 0
}

// forcedCount carries ForceClose's count through the reply channel.
type forcedCount int

func (n forcedCount) Error() string { return fmt.Sprintf("%d held connections force-closed", int(n)) }

func (r *Reconciler[T]) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	r.probeTimer = time.NewTimer(time.Hour)
	r.probeTimer.Stop()
	defer r.probeTimer.Stop()
	r.reconcile()
	for {
		select {
		case c := <-r.cmds:
			r.handle(c)
		case <-tick.C:
		case <-r.probeTimer.C:
		}
		if r.closing && r.S.Dialing.Load() == 0 && r.closes == 0 && r.reg.Len() == 0 {
			r.stop()
			return
		}
		r.reconcile()
	}
}

func (r *Reconciler[T]) handle(c command[T]) {
	switch c.kind {
	case cmdDemand:
		r.demandPending.Store(false)
	case cmdResize:
		r.resize(c)
	case cmdWarm:
		r.warmReply = c.reply
	case cmdRetire:
		r.retire(c.c, c.reason, c.err)
	case cmdDialed:
		r.dialed(c)
	case cmdClosed:
		r.closes--
		if c.err != nil {
			r.log.Warn("conn.close_failed", zap.String("event", "conn.close_failed"),
				zap.Uint64("conn_id", c.c.ID()), zap.Error(c.err))
		}
	case cmdClose:
		r.closing = true
		r.stop() // cancels dials in flight
		n := r.h.FailWaiters(c.err)
		r.log.Info("pool.close_started", zap.String("event", "pool.close_started"),
			zap.Int("waiters_failed", n), zap.Int64("live", r.S.Live.Load()))
	case cmdForceClose:
		n, held := 0, 0
		r.reg.Range(func(cn *conn.Conn[T]) bool {
			if was, ok := cn.ForceRetire(); ok {
				r.S.Live.Add(-1)
				if was == conn.Idle || was == conn.Checking {
					r.S.Tombstones.Add(1)
				}
				if was == conn.InUse {
					held++
				}
				r.retire(cn, conn.ReasonClose, nil)
				n++
			}
			return true
		})
		r.log.Warn("pool.close_forced", zap.String("event", "pool.close_forced"), zap.Int("conns", n), zap.Int("held", held))
		c.reply <- forcedCount(held)
	}
}

func (r *Reconciler[T]) resize(c command[T]) {
	oldMin, oldMax := r.S.Min.Load(), r.S.Max.Load()
	r.S.Min.Store(int64(c.min))
	r.S.Max.Store(int64(c.max))
	r.Stats.Resizes.Add(1)
	r.resizing, r.resizeAt = true, time.Now()
	r.log.Info("resize.adopted", zap.String("event", "resize.adopted"),
		zap.Int64("old_min", oldMin), zap.Int64("old_max", oldMax),
		zap.Int("min", c.min), zap.Int("max", c.max),
		zap.Int64("live", r.S.Live.Load()), zap.Int("waiting", r.h.Waiting()))
	c.reply <- nil
}

// retire closes a claimed connection: forget it, close it in a goroutine.
func (r *Reconciler[T]) retire(c *conn.Conn[T], reason conn.Reason, err error) {
	// Delete before adding: a Stats in between undercounts for a moment
	// (and reports its previous value), never counts the connection twice.
	r.reg.Delete(c.ID())
	r.Stats.RetiredHandouts.Add(int64(c.Handouts()))
	r.Stats.Closes[reason].Add(1)
	fields := []zap.Field{zap.String("event", "conn.retired"),
		zap.Uint64("conn_id", c.ID()), zap.String("reason", reason.String()),
		zap.Duration("age", time.Since(c.Created()))}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	r.log.Info("conn.retired", fields...)
	r.closes++
	go func() {
		cerr := r.h.Close(c.Value())
		c.MarkClosed()
		r.send(command[T]{kind: cmdClosed, c: c, err: cerr})
	}()
}

func (r *Reconciler[T]) dialed(c command[T]) {
	r.S.Dialing.Add(-1)
	if c.err != nil {
		r.Stats.DialErrors.Add(1)
		r.lastErr = c.err
		// Dials already in flight when the backend died fail together; only
		// the first of them counts towards the backoff (the others started
		// before it failed), so one outage does not jump straight to
		// DialBackoffMax.
		if c.gen == r.gen || r.fails == 0 {
			r.gen++
			r.fails++
			wait := r.backoff()
			r.probeAt = time.Now().Add(wait)
			r.probeTimer.Reset(wait)
		}
		wait := time.Until(r.probeAt)
		err := fmt.Errorf("%w: %w", ErrDial, c.err)
		if r.warmReply != nil {
			r.warmReply <- err
			r.warmReply = nil
		}
		n := 0
		if !r.closing {
			n = r.h.FailWaiters(err)
		}
		r.log.Warn("conn.dial_failed", zap.String("event", "conn.dial_failed"),
			zap.Error(c.err), zap.Duration("took", c.took), zap.Int("attempt", r.fails),
			zap.Duration("retry_in", wait), zap.Int("waiters_failed", n))
		return
	}
	if r.fails > 0 {
		r.log.Info("pool.recovered", zap.String("event", "pool.recovered"), zap.Int("failed_dials", r.fails))
		r.fails, r.lastErr = 0, nil
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
	cn := conn.New(r.nextID, c.v, now, deadline)
	r.reg.Store(cn)
	r.S.Live.Add(1)
	r.log.Info("conn.dialed", zap.String("event", "conn.dialed"),
		zap.Uint64("conn_id", cn.ID()), zap.Duration("took", c.took))
	if r.closing {
		if cn.Retire(1) {
			r.S.Live.Add(-1)
			r.retire(cn, conn.ReasonClose, nil)
		}
		return
	}
	r.h.Born(cn)
}

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

func (r *Reconciler[T]) startDial() {
	r.S.Dialing.Add(1)
	gen := r.gen
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
		start := time.Now()
		v, err := r.h.Dial(ctx)
		took := time.Since(start)
		if err == nil && ctx.Err() != nil && r.ctx.Err() != nil {
			// The pool closed while this dial finished: close what we got.
			_ = r.h.Close(v)
			err = r.ctx.Err()
		}
		cancel()
		r.send(command[T]{kind: cmdDialed, v: v, err: err, took: took, gen: gen})
	}()
}

// drainIdle pops every idle connection and retires it for reason, up to n.
func (r *Reconciler[T]) drainIdle(n int64, reason conn.Reason) {
	for i := int64(0); i < n; {
		c, ok := r.q.Pop()
		if !ok {
			return
		}
		lease, seen, ok := c.Acquire()
		if !ok {
			if seen == conn.Retired || seen == conn.Closed {
				r.S.Tombstones.Add(-1)
			}
			continue // tombstone dropped, or detached (its checker puts it back)
		}
		if c.Retire(lease) {
			r.S.Live.Add(-1)
			r.retire(c, reason, nil)
			i++
		}
	}
}

// sweep drops the tombstones from the idle queue, keeping the rest in order.
func (r *Reconciler[T]) sweep() {
	for n := r.q.Len(); n > 0 && r.S.Tombstones.Load() > 0; n-- {
		c, ok := r.q.Pop()
		if !ok {
			return
		}
		if s := c.State(); s == conn.Retired || s == conn.Closed {
			r.S.Tombstones.Add(-1)
			continue
		}
		if !r.q.Push(c) {
			panic("tidepool/reconciler: idle queue full during sweep")
		}
	}
}

func (r *Reconciler[T]) reconcile() {
	if r.closing {
		r.drainIdle(1<<62, conn.ReasonClose)
		return
	}
	max, min := r.S.Max.Load(), r.S.Min.Load()
	if over := r.S.Live.Load() - max; over > 0 {
		r.drainIdle(over, conn.ReasonShrink)
	}
	if r.S.Tombstones.Load() >= int64(r.cfg.SweepAt) {
		r.sweep()
	}
	live, dialing := r.S.Live.Load(), r.S.Dialing.Load()
	waiting, idle := int64(r.h.Waiting()), int64(r.h.Idle())
	now := time.Now()
	failing := r.fails > 0
	backingOff := failing && now.Before(r.probeAt)

	if backingOff && waiting > 0 && live == 0 && dialing == 0 {
		err := fmt.Errorf("%w (backend down, next attempt in %v): %w", ErrDial,
			r.probeAt.Sub(now).Round(time.Millisecond), r.lastErr)
		r.h.FailWaiters(err)
		waiting = 0
	}

	need := waiting - dialing
	if m := min - idle - dialing; m > need {
		need = m
	}
	if free := max - live - dialing; free < need {
		need = free
	}
	if failing {
		if backingOff {
			need = 0
		} else if p := 1 - dialing; p < need {
			need = p // a single half-open probe
		}
	}
	for ; need > 0; need-- {
		r.startDial()
	}

	if r.warmReply != nil && idle >= min {
		r.warmReply <- nil
		r.warmReply = nil
	}
	if r.resizing && live <= max && (idle >= min || live+dialing >= max) && dialing == 0 {
		r.resizing = false
		r.log.Info("resize.reached", zap.String("event", "resize.reached"),
			zap.Int64("min", min), zap.Int64("max", max), zap.Int64("live", live),
			zap.Int64("idle", idle), zap.Duration("took", time.Since(r.resizeAt)))
	}
}
