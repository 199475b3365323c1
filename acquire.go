package tidepool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/event"
	"github.com/tidepool-go/tidepool/internal/safe"
	"github.com/tidepool-go/tidepool/reconciler"
)

// Acquire returns an idle connection, or waits for one: for a release, or for a
// dial that the pool starts on its behalf if it is below its max. Waiters are
// served in arrival order. It returns:
//   - ErrClosed if the pool is closed or closes while it waits;
//   - an error wrapping ErrDial and the dial's error if the dial made for it
//     fails, or, while the backend is down and nothing is left to release, if
//     the next probe dial comes after its deadline (it waits for that probe
//     otherwise);
//   - ErrTooManyWaiters if Config.MaxWaiters Acquires wait already;
//   - ctx's error (wrapped) when ctx ends first, at once if it has ended
//     already (no connection is taken then), or ErrAcquireTimeout when ctx
//     has no deadline and Config.AcquireTimeout passes.
//
// A nil ctx panics. A cancelled Acquire never loses a connection: if one was
// handed to it as it gave up, it goes to the next waiter or the idle set. The
// dial it caused goes on and its connection serves somebody else.
//
// With an idle connection there and no check or hook to run, Acquire takes no
// lock, allocates nothing and reads no clock: two atomic read-modify-writes.
func (p *Pool[T]) Acquire(ctx context.Context) (Conn[T], error) {
	if ctx == nil {
		panic("tidepool: Acquire called with a nil context")
	}
	// With Acquires waiting, a newcomer queues behind them instead of
	// barging past them to an idle connection (arrival order).
	if ctx.Err() == nil && !p.gate.Closed() && p.wl.n.Load() == 0 {
		if !p.prepared {
			if c, lease, ok := p.idle.Take(); ok {
				if c.Doomed() == conn.ReasonNone {
					return Conn[T]{p: p, c: c, lease: lease}, nil
				}
				// Reset doomed it as it went idle (rare): not a hand-out. For
				// the instant until Uncount, Stats may count it.
				c.Uncount()
				if h, ok, err := p.prepare(ctx, c, lease, false); ok || err != nil {
					return h, err
				}
			}
		} else if c, lease, ok := p.idle.TakeUncounted(); ok { // tentative until prepare passes
			if h, ok, err := p.prepare(ctx, c, lease, false); ok || err != nil {
				return h, err
			}
		}
	}
	return p.acquireSlow(ctx)
}

// TryAcquire returns an idle connection, or ErrExhausted at once: it never
// waits for a release or a dial. If the pool has room, it also starts a dial
// in the background, so that the next Acquire or TryAcquire finds a
// connection. It returns ErrClosed after Close, ctx's error if ctx has ended,
// and, with CheckOnAcquire, the error of a new connection that failed its
// check. ctx bounds the check and hook that may run on the connection it
// hands out.
func (p *Pool[T]) TryAcquire(ctx context.Context) (Conn[T], error) {
	if ctx == nil {
		panic("tidepool: TryAcquire called with a nil context")
	}
	for {
		if p.gate.Closed() {
			return Conn[T]{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Conn[T]{}, fmt.Errorf("tidepool: acquire: %w", err)
		}
		c, lease, ok := p.idle.TakeUncounted() // tentative until prepare passes
		if !ok {
			break
		}
		if h, ok, err := p.prepare(ctx, c, lease, false); ok || err != nil {
			return h, err
		}
	}
	if g := &p.rec.G; g.Slots.Load() < g.Max.Load() {
		p.rec.RequestDial()
	}
	return Conn[T]{}, ErrExhausted
}

// AcquireFunc acquires a connection, calls f with it and gives it back: it is
// released when f returns nil or an ordinary error, and destroyed when f's
// error wraps ErrConnBroken or Config.IsBroken says so, or when f panics or
// calls runtime.Goexit (the panic then goes on). It returns Acquire's error,
// or f's.
func (p *Pool[T]) AcquireFunc(ctx context.Context, f func(v T) error) (err error) {
	h, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			h.Destroy() // f panicked or called Goexit: its protocol state is unknown
		}
	}()
	err = f(h.Value())
	done = true
	if err != nil && p.broken(err) {
		h.Destroy()
	} else {
		h.Release()
	}
	return err
}

// broken reports whether AcquireFunc's function said its connection is broken.
// A panicking IsBroken counts as yes.
func (p *Pool[T]) broken(err error) bool {
	if errors.Is(err, ErrConnBroken) {
		return true
	}
	if p.cfg.IsBroken == nil {
		return false
	}
	ok, perr := safe.Bool("is_broken", func() bool { return p.cfg.IsBroken(err) })
	if perr != nil {
		p.callbackPanicked(perr, 0)
		return true
	}
	return ok
}

// AcquireAllIdle acquires every connection idle right now and returns them
// (none if the pool is closed): for a keep-alive sweep or any maintenance pass
// over idle connections. It runs BeforeAcquire on each but no check on
// acquire (a sweep usually checks them itself). Each must be released or
// destroyed like any other. Cost: O(idle connections).
func (p *Pool[T]) AcquireAllIdle(ctx context.Context) []Conn[T] {
	if ctx == nil {
		panic("tidepool: AcquireAllIdle called with a nil context")
	}
	var out []Conn[T]
	for !p.gate.Closed() {
		c, lease, ok := p.idle.TakeUncounted() // tentative until the hook passes
		if !ok {
			break
		}
		if r := c.Doomed(); r != conn.ReasonNone {
			p.retireHeld(c, lease, r, nil)
			continue
		}
		if p.cfg.BeforeAcquire != nil && !p.beforeAcquire(ctx, c) {
			if ctx.Err() != nil {
				p.putHeld(c, lease) // refused because ctx ended: not the connection's fault
				break
			}
			p.retireHeld(c, lease, ReasonVetoed, nil)
			continue
		}
		c.Recount()
		h := Conn[T]{p: p, c: c, lease: lease}
		p.noteHeld(h)
		out = append(out, h)
	}
	return out
}

// prepare readies a connection taken for a hand-out, whose hand-out the
// caller has uncounted (it is tentative): a doomed one is retired, the check
// on acquire and BeforeAcquire run where configured. It returns the handle
// and ok (the hand-out counted), or an error that ends the Acquire (its ctx
// ended during the check: the connection went back), or neither: the
// connection was retired and the caller tries another. waited says c came to
// a waiting Acquire (from a release or a dial made for it).
func (p *Pool[T]) prepare(ctx context.Context, c *conn.Conn[T], lease uint64, waited bool) (h Conn[T], ok bool, err error) {
	if r := c.Doomed(); r != conn.ReasonNone {
		p.retireHeld(c, lease, r, nil)
		return h, false, nil
	}
	// Judged before the check and the hook: a slow one must not make a new
	// connection look stale.
	fresh := p.fresh(c)
	if p.cfg.CheckOnAcquire && p.checkDue(c) {
		if err := p.checkOnAcquire(ctx, c); err != nil {
			if ctx.Err() != nil {
				// The Acquire gave up, not the connection.
				p.putHeld(c, lease)
				return h, false, fmt.Errorf("tidepool: acquire: %w", ctx.Err())
			}
			p.retireHeld(c, lease, ReasonHealth, err)
			if fresh {
				// It had no time to go stale: the check or the backend is
				// broken, and moving on would only dial and fail again.
				return h, false, fmt.Errorf("tidepool: acquire: a new connection failed its check: %w", err)
			}
			return h, false, nil
		}
	}
	if p.cfg.BeforeAcquire != nil && !p.beforeAcquire(ctx, c) {
		if ctx.Err() != nil {
			// It refused because the Acquire gave up (a ping under ctx):
			// the connection is not to blame.
			p.putHeld(c, lease)
			return h, false, fmt.Errorf("tidepool: acquire: %w", ctx.Err())
		}
		p.retireHeld(c, lease, ReasonVetoed, nil)
		if waited && fresh {
			// Refused what was just dialed for this wait: the hook would
			// refuse the next dial's too. Fail rather than dial without end.
			return h, false, ErrVetoed
		}
		return h, false, nil
	}
	c.Recount()
	h = Conn[T]{p: p, c: c, lease: lease}
	p.noteHeld(h)
	return h, true, nil
}

// checkDue reports whether a hand-out of c needs a check on acquire: it was
// idle at least CheckOnAcquireIdle (by the coarse clock, rounded up), or it
// was released before the last failed check.
func (p *Pool[T]) checkDue(c *conn.Conn[T]) bool {
	last := c.LastUsed()
	if last <= p.suspect.Load() {
		return true
	}
	return p.clock.read()-last+int64(clockResolution) > int64(p.cfg.CheckOnAcquireIdle)
}

// fresh reports whether c, on a tentative hand-out, was never handed out
// before and comes straight from its dial (within two ticks of the coarse
// clock). Only its holder may ask.
func (p *Pool[T]) fresh(c *conn.Conn[T]) bool {
	return c.Handouts() == 0 && p.clock.read()-c.LastUsed() <= 2*int64(clockResolution)
}

func (p *Pool[T]) checkOnAcquire(ctx context.Context, c *conn.Conn[T]) error {
	p.n.acquireChecks.Add(1)
	start := p.clock.read()
	err := safe.Call("check", func() error { return p.cfg.Check(ctx, c.Value()) })
	if took := time.Duration(p.clock.read() - start); err == nil && took > p.cfg.HealthTimeout {
		err = safe.TimedOut("check")
		p.callbackTimedOut("check", c.ID(), p.cfg.HealthTimeout)
	}
	if err == nil || ctx.Err() != nil {
		return err
	}
	p.n.acquireFails.Add(1)
	// One dead connection usually means the backend restarted under all of
	// them: check every connection released before now on its next hand-out.
	p.suspect.Store(p.clock.read())
	if safe.IsPanic(err) {
		p.callbackPanicked(err, c.ID())
	}
	p.log.Warn(event.CheckFailed, zap.String("event", event.CheckFailed), zap.Uint64("conn_id", c.ID()),
		zap.String("on", "acquire"), zap.Error(err))
	return err
}

// beforeAcquire runs the BeforeAcquire hook; false vetoes the connection.
func (p *Pool[T]) beforeAcquire(ctx context.Context, c *conn.Conn[T]) bool {
	start := p.clock.read()
	ok, err := safe.Bool("before_acquire", func() bool { return p.cfg.BeforeAcquire(ctx, c.Value()) })
	if err != nil {
		p.callbackPanicked(err, c.ID())
		return false
	}
	if time.Duration(p.clock.read()-start) > p.cfg.HookTimeout {
		p.callbackTimedOut("before_acquire", c.ID(), p.cfg.HookTimeout)
		return false
	}
	return ok
}

// freshVetoes is how many connections dialed for one waiting Acquire
// BeforeAcquire may refuse before the Acquire fails with ErrVetoed.
const freshVetoes = 3

func (p *Pool[T]) acquireSlow(ctx context.Context) (Conn[T], error) {
	if p.gate.Closed() {
		return Conn[T]{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Conn[T]{}, fmt.Errorf("tidepool: acquire: %w", err)
	}
	deadline, own := ctx.Deadline()
	own = !own && p.cfg.AcquireTimeout > 0
	if own {
		deadline = time.Now().Add(p.cfg.AcquireTimeout)
	}
	var waitStart time.Time
	vetoes := 0
	for {
		if p.gate.Closed() {
			return Conn[T]{}, ErrClosed
		}
		for p.wl.n.Load() == 0 { // nobody waits: no queue to respect
			c, lease, ok := p.idle.TakeUncounted() // tentative until prepare passes
			if !ok {
				break
			}
			if h, ok, err := p.prepare(ctx, c, lease, false); ok || err != nil {
				return p.served(h, waitStart), err
			}
		}
		if waitStart.IsZero() {
			waitStart = time.Now()
		}
		c, lease, err := p.wait(ctx, deadline, own)
		if err != nil {
			return Conn[T]{}, err
		}
		h, ok, err := p.prepare(ctx, c, lease, true)
		if err == ErrVetoed && vetoes+1 < freshVetoes {
			vetoes++ // maybe bad luck: dial once more
			continue
		}
		if ok || err != nil {
			return p.served(h, waitStart), err
		}
	}
}

// served records an Acquire that had to wait (waitStart set) and returns h.
func (p *Pool[T]) served(h Conn[T], waitStart time.Time) Conn[T] {
	if h.c == nil || waitStart.IsZero() {
		return h
	}
	waited := time.Since(waitStart)
	p.n.waited.Add(1)
	p.n.waitNanos.Add(int64(waited))
	p.n.waitHist.observe(waited)
	if ce := p.log.Check(zap.DebugLevel, event.AcquireWaited); ce != nil {
		ce.Write(zap.String("event", event.AcquireWaited), zap.Uint64("conn_id", h.c.ID()), zap.Duration("waited", waited))
	}
	return h
}

// wait lists the caller as a waiter and waits for a connection, handed over
// under its lease, or an error. deadline is the Acquire's (zero: none); own
// says it is Config.AcquireTimeout's rather than ctx's.
func (p *Pool[T]) wait(ctx context.Context, deadline time.Time, own bool) (*conn.Conn[T], uint64, error) {
	if err := p.outageErr(deadline); err != nil {
		return nil, 0, err
	}
	w := p.wl.get(ctx)
	p.wl.mu.Lock()
	if p.gate.Closed() {
		p.wl.mu.Unlock()
		p.wl.put(w)
		return nil, 0, ErrClosed
	}
	if max := p.cfg.MaxWaiters; max > 0 && p.wl.n.Load() >= int64(max) {
		p.wl.mu.Unlock()
		p.wl.put(w)
		return nil, 0, p.reject(max)
	}
	p.wl.pushLocked(w)
	p.wl.mu.Unlock()
	if p.rejecting.Load() {
		p.rejecting.Store(false) // the burst is over: room again
	}
	if g := &p.rec.G; g.Slots.Load() < g.Max.Load() || g.Outage.Load() != nil {
		// Room to dial, or a probe to bring forward: the loop reads the
		// waiter count when it wakes. At the max there is nothing for it to
		// do: what makes room (a retire, a Resize) passes through it anyway.
		p.rec.Wake()
	}
	// A connection may have been released between our look at the idle set
	// and our listing, by a releaser that saw no waiter: look again now that
	// we are listed (and so visible to every later releaser).
	p.serveWaiters()

	var expired <-chan time.Time
	if own {
		if w.timer == nil {
			w.timer = time.NewTimer(time.Until(deadline))
		} else {
			w.timer.Reset(time.Until(deadline))
		}
		expired = w.timer.C
	}
	var r waitResult[T]
	if done := ctx.Done(); done == nil && expired == nil {
		r = <-w.ch // nothing can end this wait but a result: no select
	} else {
		select {
		case r = <-w.ch:
		case <-done:
		case <-expired:
		}
	}
	if own {
		w.timer.Stop()
	}
	if r.c == nil && r.err == nil {
		// Cancelled or timed out: leave the list, unless somebody unlinked
		// us already and is sending (or has sent) a result.
		p.wl.mu.Lock()
		listed := w.listed
		if listed {
			p.wl.unlinkLocked(w)
		}
		p.wl.mu.Unlock()
		if !listed {
			r = <-w.ch
			if r.err == nil {
				// A hand-off raced our cancellation: pass the connection on
				// (its hand-over was never counted).
				p.putHeld(r.c, r.lease)
			}
		}
		r = waitResult[T]{err: errEvicted}
	}
	p.wl.put(w)
	if r.err != nil {
		if r.err == errEvicted {
			p.n.canceled.Add(1)
			r.err = p.waitErr(ctx, own)
		}
		return nil, 0, r.err
	}
	return r.c, r.lease, nil
}

// waitErr is the error of a wait that ended by ctx or AcquireTimeout. While
// dials fail it says so, since that is usually why nothing came.
func (p *Pool[T]) waitErr(ctx context.Context, own bool) error {
	var err error
	if ctx.Err() == nil && own {
		err = fmt.Errorf("%w after %v", ErrAcquireTimeout, p.cfg.AcquireTimeout)
	} else if ctx.Err() != nil {
		err = fmt.Errorf("tidepool: acquire: %w", ctx.Err())
	} else {
		err = fmt.Errorf("tidepool: acquire: %w", context.DeadlineExceeded)
	}
	if o := p.rec.G.Outage.Load(); o != nil {
		err = fmt.Errorf("%w (dials are failing: %v)", err, o.Err)
	}
	return err
}

// outageErr returns the error for an Acquire that would wait in vain: the
// backend is down (outage mode on), nothing is left that a holder could
// release, no probe is in flight, and the next one comes after deadline.
func (p *Pool[T]) outageErr(deadline time.Time) error {
	if p.cfg.DisableOutageMode || deadline.IsZero() {
		return nil
	}
	o := p.rec.G.Outage.Load()
	if o == nil || o.Probing || p.rec.G.Open.Load() > 0 {
		return nil
	}
	if pe := probeEvery(p.cfg); deadline.Before(o.NextProbe(pe)) {
		return reconciler.OutageError(o, time.Now(), pe)
	}
	return nil
}

// reject turns an Acquire away for MaxWaiters, logging once per burst.
func (p *Pool[T]) reject(max int) error {
	p.n.rejected.Add(1)
	if !p.rejecting.Load() && p.rejecting.CompareAndSwap(false, true) {
		p.log.Warn(event.AcquireRejected, zap.String("event", event.AcquireRejected), zap.Int("max_waiters", max))
	}
	return fmt.Errorf("%w: %d Acquires are waiting already (MaxWaiters)", ErrTooManyWaiters, max)
}

// serveWaiters matches idle connections with waiters until one side runs out.
// It closes the lost-wake-up window: whoever lists a waiter or puts a
// connection into the idle set calls it afterwards, so one of the two always
// sees the other.
func (p *Pool[T]) serveWaiters() {
	for p.wl.n.Load() > 0 {
		c, lease, ok := p.idle.TakeUncounted() // taken to be handed over: the hand-over counts
		if !ok {
			return
		}
		if !p.wl.handOff(c, lease) {
			// The waiters left meanwhile. Back it goes; a waiter that comes
			// now lists itself first and then finds it.
			p.idle.Release(c, lease)
			return
		}
	}
}

// putHeld returns c, held under lease by the caller (the holder, a watcher,
// the loop), to a waiter or the idle set, or retires it. It does not stamp
// c's last use: callers that used it do that first.
func (p *Pool[T]) putHeld(c *conn.Conn[T], lease uint64) {
	if g := p.gate.Load(); g != 0 {
		if p.gate.Closed() {
			p.retireHeld(c, lease, ReasonClose, nil)
			return
		}
		if p.gate.ClaimDebt() {
			if c.Retire(lease) {
				p.rec.RetireOwed(c)
			} else {
				p.gate.UnclaimDebt() // retired under us already
			}
			return
		}
	}
	if r := c.Doomed(); r != conn.ReasonNone {
		p.retireHeld(c, lease, r, nil)
		return
	}
	if p.wl.n.Load() > 0 && p.wl.handOff(c, lease) {
		return
	}
	if p.cfg.MaxIdle != 0 && p.idle.Count() >= p.maxIdle() {
		p.retireHeld(c, lease, ReasonExcessIdle, nil)
		return
	}
	if !p.idle.Release(c, lease) {
		return // retired under its holder
	}
	if p.wl.n.Load() > 0 {
		p.serveWaiters()
	}
	if p.gate.Closed() {
		// Close drained the idle set before our release landed: have the
		// loop drain it again.
		p.rec.Wake()
	}
}

// retireHeld claims c, held under lease, and has the reconciler close it. If
// the pool retired it under its holder already, there is nothing to do.
func (p *Pool[T]) retireHeld(c *conn.Conn[T], lease uint64, r Reason, err error) {
	if c.Retire(lease) {
		p.rec.Retire(c, r, err, false)
	}
}

// maxIdle is Config.MaxIdle clamped to the current [min, max].
func (p *Pool[T]) maxIdle() int64 {
	m, lo, hi := int64(p.cfg.MaxIdle), p.rec.G.Min.Load(), p.rec.G.Max.Load()
	if m == 0 || m > hi {
		m = hi
	}
	return max(m, lo)
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
	n := runtime.Callers(5, pcs[:])
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
