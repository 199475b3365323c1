package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
)

// Side is one of the two pools.
type Side uint8

// The two sides.
const (
	Primary Side = iota
	Secondary
)

// String returns "primary" or "secondary".
func (s Side) String() string {
	if s == Secondary {
		return "secondary"
	}
	return "primary"
}

// MarshalText makes a Side a JSON string.
func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSide parses "primary" or "secondary".
func ParseSide(s string) (Side, error) {
	switch s {
	case "primary":
		return Primary, nil
	case "secondary":
		return Secondary, nil
	}
	return 0, fmt.Errorf("failover: no side %q: want primary or secondary", s)
}

func (s Side) other() Side { return 1 - s }

// ErrBothDown is wrapped by the error of an Acquire that neither side could
// serve; the error also wraps both sides' errors.
var ErrBothDown = errors.New("failover: both sides failed")

// Error is an error about one side: an Acquire that failed on it (while the
// other side was not tried: ctx ended, or the pool is closed), a Resize it
// refused, a pool that would not start or close. It names the side and wraps
// the cause for errors.Is and errors.As.
type Error struct {
	// Pool is Config.Name.
	Pool string
	Side Side
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("failover pool %q: %s: %v", e.Pool, e.Side, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Pool serves Acquires from a primary pool and, while the primary is
// unhealthy, from a warm secondary. Create it with New; it is safe for
// concurrent use. See the package comment for the state machine.
type Pool[T any] struct {
	// Immutable after New.
	cfg      Config[T]
	log      *zap.Logger
	sides    [2]*tidepool.Pool[T]
	stop     chan struct{} // closed by Close: the monitor returns
	wake     chan struct{} // tells the monitor the state changed; buffered, never blocks
	monDone  chan struct{} // closed when the monitor has returned
	probeCtx context.Context
	endProbe context.CancelFunc // cancels a probe in flight, at Close

	// serving is the side Acquire tries first. Written under mu; read by
	// Acquire with one atomic load, its only access to shared state when
	// the serving side has an idle connection.
	serving atomic.Uint32
	closed  atomic.Bool

	// mu guards the fields below; taken on failures, switches, probes and
	// Stats, never on an Acquire that succeeds at once.
	mu         sync.Mutex
	win        window
	pinned     bool      // forced to the secondary: no probing until SwitchTo(Primary)
	switchedAt time.Time // last switch to the secondary
	restoredAt time.Time // last switch back to the primary
	lastProbe  time.Time // start of the last probe
	probesNow  int       // probes since the last switch to the secondary

	// Counters, written off the fast path.
	switches, restores, fellOver, bothDown, probes, probeFailures atomic.Int64
	failures                                                      [numFailures]atomic.Int64
}

// New starts both pools — the secondary first, warming its MinIdle
// connections within ctx, then the primary — and returns the failover pool,
// serving from the primary. If the primary cannot warm up (its backend is
// down), New does not fail: it starts serving from the secondary
// (reason primary_down_at_start), with a primary pool that keeps dialing in
// the background and is probed like after any switch. A secondary that
// cannot start fails New: the spare must be there. Errors are *Error values
// naming the side; a bad Config returns an error wrapping
// tidepool.ErrInvalidConfig.
func New[T any](ctx context.Context, cfg Config[T]) (*Pool[T], error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	p := &Pool[T]{
		cfg:     cfg,
		log:     cfg.Logger.With(zap.String("pool", cfg.Name)),
		stop:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		monDone: make(chan struct{}),
		win:     newWindow(cfg.Threshold, cfg.Window),
	}
	sec, err := tidepool.New(ctx, cfg.Secondary)
	if err != nil {
		return nil, &Error{Pool: cfg.Name, Side: Secondary, Err: err}
	}
	prim, primErr := tidepool.New(ctx, cfg.Primary)
	if primErr != nil {
		if errors.Is(primErr, tidepool.ErrInvalidConfig) {
			_ = sec.Close(context.Background())
			return nil, &Error{Pool: cfg.Name, Side: Primary, Err: primErr}
		}
		// The primary is down or hangs: start it cold, and let its reconcile
		// loop dial MinIdle in the background (with its backoff).
		cold := cfg.Primary
		minIdle := cold.MinIdle
		cold.MinIdle = 0
		if prim, err = tidepool.New(context.Background(), cold); err != nil {
			_ = sec.Close(context.Background())
			return nil, &Error{Pool: cfg.Name, Side: Primary, Err: err}
		}
		if minIdle > 0 {
			_ = prim.Resize(minIdle, prim.Stats().MaxSize)
		}
	}
	p.sides = [2]*tidepool.Pool[T]{prim, sec}
	p.probeCtx, p.endProbe = context.WithCancel(context.Background())
	serving := Primary
	if primErr != nil {
		serving = Secondary
	}
	p.log.Info(EventStarted, zap.String("event", EventStarted), zap.Stringer("serving", serving))
	if primErr != nil {
		p.mu.Lock()
		p.switchLocked(Secondary, ReasonDownAtStart, primErr)
		p.mu.Unlock()
	}
	go p.monitor()
	return p, nil
}

// Conn is a connection of one side, returned by Acquire: a tidepool.Conn
// (Value, Release, Destroy, ID, CreatedAt, with their guarantees; Release
// returns it to its own side's pool) that also knows its side. A small value:
// copying it is fine and allocates nothing.
type Conn[T any] struct {
	tidepool.Conn[T]
	side Side
}

// Side returns the side the connection belongs to.
func (c Conn[T]) Side() Side { return c.side }

// Serving returns the side new Acquires try first.
func (p *Pool[T]) Serving() Side { return Side(p.serving.Load()) }

// Acquire returns a connection of the serving side or, if that side cannot
// give one, of the other: no Acquire is lost while one side works.
//
// It tries the serving side first, for at most Config.AttemptTimeout (and at
// most half of what is left of ctx's deadline): an idle connection is taken at
// once (no lock, no allocation), otherwise it waits for a release or a dial
// within that budget. If that fails — a dial error, the budget running out —
// it tries the other side with the rest of ctx. A failure of the primary
// counts towards the switch (see Config.Threshold); the Acquire that met it is
// still served by the secondary.
//
// Errors: an error wrapping ErrBothDown and both sides' errors when neither
// side could serve; an *Error naming the side when ctx ended first (wrapping
// ctx's error) or the pool is closed (wrapping tidepool.ErrClosed). A nil
// ctx panics.
func (p *Pool[T]) Acquire(ctx context.Context) (Conn[T], error) {
	if ctx == nil {
		panic("failover: Acquire called with a nil context; pass context.Background() or a context with a deadline")
	}
	first := p.Serving()
	h, err := p.attempt(ctx, first)
	if err == nil {
		return Conn[T]{Conn: h, side: first}, nil
	}
	if ctx.Err() != nil || errors.Is(err, tidepool.ErrClosed) {
		return Conn[T]{}, &Error{Pool: p.cfg.Name, Side: first, Err: err}
	}
	second := first.other()
	h, err2 := p.sides[second].Acquire(ctx)
	if err2 == nil {
		p.fellOver.Add(1)
		return Conn[T]{Conn: h, side: second}, nil
	}
	if ctx.Err() != nil || errors.Is(err2, tidepool.ErrClosed) {
		return Conn[T]{}, &Error{Pool: p.cfg.Name, Side: second, Err: err2}
	}
	if second == Primary && errors.Is(err2, tidepool.ErrDial) {
		p.noteFailure(failDial, err2)
	}
	p.bothDown.Add(1)
	errs := [2]error{}
	errs[first], errs[second] = err, err2
	return Conn[T]{}, fmt.Errorf("%w: failover pool %q: primary: %w; secondary: %w", ErrBothDown, p.cfg.Name, errs[Primary], errs[Secondary])
}

// attempt acquires on side s within the attempt budget, and notes the
// primary's failures.
func (p *Pool[T]) attempt(ctx context.Context, s Side) (tidepool.Conn[T], error) {
	pl := p.sides[s]
	// An idle connection or nothing, at once (TryAcquire never waits).
	h, err := pl.TryAcquire(ctx)
	if err == nil || errors.Is(err, tidepool.ErrClosed) {
		return h, err
	}
	if ctx.Err() != nil {
		return h, fmt.Errorf("tidepool: acquire: %w", ctx.Err())
	}
	budget := p.cfg.AttemptTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)/2)
	}
	actx, cancel := context.WithTimeout(ctx, budget)
	h, err = pl.Acquire(actx)
	timedOut := actx.Err() != nil
	cancel()
	if err == nil || s != Primary || ctx.Err() != nil {
		return h, err
	}
	switch {
	case errors.Is(err, tidepool.ErrDial):
		p.noteFailure(failDial, err)
	case timedOut || errors.Is(err, tidepool.ErrAcquireTimeout):
		// Off the fast path: a Stats walk says whether every connection
		// was held (exhausted) or the pool had room (its dials hang).
		if st := pl.Stats(); st.InUse >= st.MaxSize {
			p.noteFailure(failExhausted, err)
		} else {
			p.noteFailure(failTimeout, err)
		}
	}
	return h, err
}

// noteFailure counts a failure of the primary and switches to the secondary
// when it completes Threshold failures within Window.
func (p *Pool[T]) noteFailure(k failure, err error) {
	p.failures[k].Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Serving() != Primary || p.closed.Load() {
		return // the window counts only while the primary serves
	}
	if p.win.add(time.Now(), k) {
		p.switchLocked(Secondary, ReasonThreshold, err)
		// The connections the outage killed go now, not when the
		// primary's health checks find them: the primary serves again
		// only with fresh ones. (Reset returns once the primary's loop
		// has done it; it never blocks on I/O.)
		p.sides[Primary].Reset()
	}
}

// switchLocked makes side to serve, logs the switch, counts it and wakes the
// monitor. Caller holds mu.
func (p *Pool[T]) switchLocked(to Side, reason string, cause error) {
	from := p.Serving()
	now := time.Now() // before the store: an Acquire that returned before now used the old side
	counts := p.win.counts(now)
	p.serving.Store(uint32(to))
	p.win.reset()
	if to == Secondary {
		p.switches.Add(1)
		p.switchedAt, p.probesNow = now, 0
		fields := []zap.Field{zap.String("event", EventSwitched), zap.Stringer("from", from), zap.Stringer("to", to),
			zap.String("reason", reason), zap.Int64("dial_errors", counts.DialErrors), zap.Int64("timeouts", counts.Timeouts),
			zap.Int64("exhausted", counts.Exhausted), zap.Duration("window", p.cfg.Window), zap.Int("threshold", p.cfg.Threshold)}
		if cause != nil {
			fields = append(fields, zap.Error(cause))
		}
		p.log.Warn(EventSwitched, fields...)
	} else {
		p.restores.Add(1)
		p.restoredAt = now
		p.log.Info(EventRestored, zap.String("event", EventRestored), zap.Stringer("from", from), zap.Stringer("to", to),
			zap.String("reason", reason), zap.Duration("on_secondary_for", now.Sub(p.switchedAt)), zap.Int("probes", p.probesNow))
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// SwitchTo forces new Acquires to side s. Forced to the secondary, the pool
// stays there — no probes, no automatic restore — until SwitchTo(Primary);
// forced to the primary, automatic failover is active again (and a primary
// that fails will be switched away from again). Switching to the side that
// serves already changes nothing but the pin. Each change of side is one log
// event with reason "forced". After Close it returns an error wrapping
// tidepool.ErrClosed.
func (p *Pool[T]) SwitchTo(s Side) error {
	if s != Primary && s != Secondary {
		return fmt.Errorf("failover pool %q: SwitchTo(%d): no such side", p.cfg.Name, s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return fmt.Errorf("failover pool %q: %w", p.cfg.Name, tidepool.ErrClosed)
	}
	p.pinned = s == Secondary
	if p.Serving() != s {
		p.switchLocked(s, ReasonForced, nil)
	} else {
		select {
		case p.wake <- struct{}{}: // the pin changed: the monitor re-reads it
		default:
		}
	}
	return nil
}

// monitor probes the primary while the secondary serves (unpinned): first
// HoldTime after the switch, then every ProbeInterval, until a probe answers.
// It is the pool's one goroutine; it returns at Close.
func (p *Pool[T]) monitor() {
	defer close(p.monDone)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		p.mu.Lock()
		probing := p.Serving() == Secondary && !p.pinned
		next := p.switchedAt.Add(p.cfg.HoldTime)
		if p.lastProbe.After(p.switchedAt) {
			next = p.lastProbe.Add(p.cfg.ProbeInterval)
		}
		p.mu.Unlock()
		var fire <-chan time.Time
		var timer *time.Timer
		if probing {
			d := time.Until(next)
			if d <= 0 {
				p.probe()
				continue
			}
			timer = time.NewTimer(d)
			fire = timer.C
		}
		select {
		case <-p.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-p.wake:
			if timer != nil {
				timer.Stop()
			}
		case <-fire:
			p.probe()
		}
	}
}

// probe acquires one connection of the primary, checks it with
// Config.Probe, and restores the primary if both succeed.
func (p *Pool[T]) probe() {
	start := time.Now()
	p.mu.Lock()
	p.lastProbe = start
	p.probesNow++
	p.mu.Unlock()
	p.probes.Add(1)

	err := p.tryPrimary()
	took := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.probeFailures.Add(1)
		p.log.Info(EventProbeFailed, zap.String("event", EventProbeFailed), zap.Error(err),
			zap.Duration("took", took), zap.Int("probes", p.probesNow))
		return
	}
	if p.closed.Load() || p.Serving() != Secondary || p.pinned {
		return // forced or closed while the probe ran
	}
	p.switchLocked(Primary, ReasonProbe, nil)
}

// tryPrimary is one probe: an Acquire on the primary and the check, within
// ProbeTimeout (and cut short by Close).
func (p *Pool[T]) tryPrimary() (err error) {
	ctx, cancel := context.WithTimeout(p.probeCtx, p.cfg.ProbeTimeout)
	defer cancel()
	h, err := p.sides[Primary].Acquire(ctx)
	if err != nil {
		return err
	}
	if p.cfg.Probe == nil {
		h.Release()
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("failover: probe check panicked: %v", r)
		}
		if err != nil {
			h.Destroy()
		} else {
			h.Release()
		}
	}()
	return p.cfg.Probe(ctx, h.Value())
}

// Resize sets one side's bounds with its pool's Resize. Errors are *Error
// values naming the side.
func (p *Pool[T]) Resize(s Side, min, max int) error {
	if s != Primary && s != Secondary {
		return fmt.Errorf("failover pool %q: Resize(%d): no such side", p.cfg.Name, s)
	}
	if err := p.sides[s].Resize(min, max); err != nil {
		return &Error{Pool: p.cfg.Name, Side: s, Err: err}
	}
	return nil
}

// InUse lists the connections of side s held right now (see
// tidepool.Pool.InUse).
func (p *Pool[T]) InUse(s Side) []tidepool.HeldConn {
	if s != Primary && s != Secondary {
		return nil
	}
	return p.sides[s].InUse()
}

// Close stops the monitor (and a probe in flight) and closes both pools,
// concurrently, each with ctx (see tidepool.Pool.Close). New Acquires fail
// with an *Error wrapping tidepool.ErrClosed. When Close returns no goroutine
// of the pool or its two pools is left. The error joins the sides' *Errors;
// a second Close returns an error wrapping tidepool.ErrClosed.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed.CompareAndSwap(false, true) {
		p.mu.Unlock()
		return fmt.Errorf("failover pool %q: %w", p.cfg.Name, tidepool.ErrClosed)
	}
	p.mu.Unlock()
	start := time.Now()
	close(p.stop)
	p.endProbe()
	<-p.monDone
	var errs [2]error
	var wg sync.WaitGroup
	for s, pl := range p.sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pl.Close(ctx); err != nil {
				errs[s] = &Error{Pool: p.cfg.Name, Side: Side(s), Err: err}
			}
		}()
	}
	wg.Wait()
	err := errors.Join(errs[:]...)
	p.log.Info(EventClosed, zap.String("event", EventClosed), zap.Duration("took", time.Since(start)), zap.Bool("forced", err != nil))
	return err
}
