package health

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/safe"
)

// Hooks is what the pool does for a watcher. Every method is called from the
// watcher goroutine and must not block.
type Hooks[T any] interface {
	// Retire retires c, which the watcher has claimed (Checking or Detached), for
	// reason r; err is the failed check's error, if any.
	Retire(c *conn.Conn[T], r conn.Reason, err error)
	// IdleExpired hands over c, claimed by the watcher (Checking or Detached)
	// because it sat idle for MaxIdleTime. The pool retires it unless that
	// would take it below its minimum of idle connections, and otherwise ends
	// the check itself.
	IdleExpired(c *conn.Conn[T])
	// PutBack returns c, held under lease by the watcher after a detached check,
	// to a waiter or the idle set.
	PutBack(c *conn.Conn[T], lease uint64)
	// Checked reports a finished health check (err nil on success). A check
	// that ran past its timeout is reported once, at the timeout, with a
	// *safe.CallbackError whose TimedOut is set.
	Checked(c *conn.Conn[T], err error, took time.Duration)
}

// Config says what a watcher enforces. The zero value watches nothing.
type Config[T any] struct {
	// Check tests an idle connection; nil disables health checks.
	Check func(ctx context.Context, v T) error
	// Interval between checks (jittered ±10%). Must be > 0 when Check is set.
	Interval time.Duration
	// Timeout bounds one check: a check still running Timeout after it started
	// counts as failed (the connection is retired) even if it never returns.
	Timeout time.Duration
	// MaxIdleTime retires connections idle that long; 0 disables it.
	MaxIdleTime time.Duration
	// Stuck counts checks that ran past Timeout and have not returned yet;
	// Active counts checks running now; Running tracks the check goroutines,
	// so that the pool's Close can wait for them. Each may be nil.
	Stuck, Active *atomic.Int64
	Running       *sync.WaitGroup
}

func add(n *atomic.Int64, d int64) {
	if n != nil {
		n.Add(d)
	}
}

// Needed reports whether a connection with the given lifetime deadline needs a
// watcher at all under cfg.
func (cfg *Config[T]) Needed(deadline time.Time) bool {
	return cfg.Check != nil || cfg.MaxIdleTime > 0 || !deadline.IsZero()
}

// Jitter returns d scaled by a uniformly random factor in [0.9, 1.1).
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Grace is how long after a callback's timeout the pool still waits for it to
// return before it counts it as stuck: a callback that honours its context
// returns right at the timeout, and must not lose that race.
func Grace(timeout time.Duration) time.Duration { return max(timeout/10, time.Millisecond) }

// Watch runs c's watcher until c closes. ctx bounds its checks; a watcher whose
// ctx has ended returns at its next wake-up. Run it in its own goroutine.
func Watch[T any](ctx context.Context, c *conn.Conn[T], cfg *Config[T], h Hooks[T]) {
	w := watcher[T]{c: c, cfg: cfg, h: h}
	now := time.Now()
	w.lastActive = now
	w.lastLease, _ = c.Load()
	if cfg.Check != nil {
		w.nextCheck = now.Add(Jitter(cfg.Interval))
	}
	t := time.NewTimer(w.next(now))
	defer t.Stop()
	for {
		// ctx is not selected on: Close closes every connection, which closes
		// Done, and one channel fewer in this select is memory saved per
		// idle connection.
		select {
		case <-c.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return
		}
		if w.step(ctx, time.Now()) {
			return
		}
		t.Reset(w.next(time.Now()))
	}
}

type watcher[T any] struct {
	c          *conn.Conn[T]
	cfg        *Config[T]
	h          Hooks[T]
	lastLease  uint64
	lastHeld   bool      // held at the last look
	lastActive time.Time // the last look at which it was held or had been used
	nextCheck  time.Time
}

// idleTick is how often activity is sampled: a fifth of MaxIdleTime, so that
// with ±10% jitter the start of an idle period is known within a quarter.
func (w *watcher[T]) idleTick() time.Duration {
	return max(w.cfg.MaxIdleTime/5, time.Millisecond)
}

// next returns how long to sleep until the next thing to do.
func (w *watcher[T]) next(now time.Time) time.Duration {
	at := time.Time{}
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if d := w.c.Deadline(); !d.IsZero() {
		if !d.After(now) {
			if _, st := w.c.Load(); st == conn.Idle {
				// Idle past its lifetime (it ran out while a check was
				// running): retire it now, not a second later.
				return 0
			}
			// Past the deadline while held: the connection is doomed and
			// nothing else is due for it. Look again in a second, in case
			// it was released before the doom mark landed.
			return time.Second
		}
		earliest(d)
	}
	earliest(w.nextCheck)
	if w.cfg.MaxIdleTime > 0 {
		earliest(now.Add(Jitter(w.idleTick())))
		// Wake exactly when the idle time is up, so that the only error is
		// in when the idle period started.
		if at := w.lastActive.Add(w.cfg.MaxIdleTime); at.After(now) {
			earliest(at)
		}
	}
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	return d
}

// step does whatever is due and reports whether the watcher is finished.
func (w *watcher[T]) step(ctx context.Context, now time.Time) (done bool) {
	c := w.c
	lease, st := c.Load()
	if st.Dead() {
		return true
	}
	// Used since the last look (a new lease), held now, or held then and
	// released since: the idle period starts no earlier than now.
	if st == conn.InUse || lease != w.lastLease || w.lastHeld {
		w.lastLease, w.lastActive = lease, now
	}
	w.lastHeld = st == conn.InUse

	if d := c.Deadline(); !d.IsZero() && !now.Before(d) {
		if c.BeginCheck() {
			w.h.Retire(c, conn.ReasonLifetime, nil)
			return true
		}
		if st == conn.InUse {
			c.Doom(conn.ReasonLifetime)
		}
		return false
	}

	if w.cfg.MaxIdleTime > 0 && now.Sub(w.lastActive) >= w.cfg.MaxIdleTime {
		if c.BeginCheck() {
			// The pool decides (it keeps MinIdle) and ends the check if it
			// keeps the connection; the idle clock restarts either way.
			w.lastActive = now
			w.h.IdleExpired(c)
			return false
		}
	}

	if w.cfg.Check != nil && !now.Before(w.nextCheck) {
		w.nextCheck = now.Add(Jitter(w.cfg.Interval))
		if c.BeginCheck() {
			return w.check(ctx)
		}
	}
	return false
}

// check runs the user's Check on c, which the watcher has claimed, in a
// goroutine of its own, and waits at most Timeout (plus Grace) for it. A check
// still running then counts as failed: c is retired (and closed, which often
// unblocks the check), and the check's goroutine is counted in cfg.Stuck until
// it returns.
func (w *watcher[T]) check(ctx context.Context) (done bool) {
	c, cfg := w.c, w.cfg
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	result := make(chan error, 1)
	var stuck atomic.Bool
	start := time.Now()
	if cfg.Running != nil {
		cfg.Running.Add(1)
	}
	add(cfg.Active, 1)
	go func() {
		if cfg.Running != nil {
			defer cfg.Running.Done()
		}
		defer add(cfg.Active, -1)
		defer cancel()
		result <- safe.Call("check", func() error { return cfg.Check(cctx, c.Value()) })
		if stuck.CompareAndSwap(true, false) {
			add(cfg.Stuck, -1) // it was counted stuck: it is not any more
		}
	}()
	timer := time.NewTimer(cfg.Timeout + Grace(cfg.Timeout))
	defer timer.Stop()
	var err error
	select {
	case err = <-result:
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	case <-timer.C:
		// Count it stuck before raising the flag; whoever clears the flag
		// (the goroutine when it returns, or we if it just did) uncounts it.
		add(cfg.Stuck, 1)
		stuck.Store(true)
		select {
		case err = <-result:
			// It returned just now: not stuck after all.
			if stuck.CompareAndSwap(true, false) {
				add(cfg.Stuck, -1)
			}
		default:
		}
		if err == nil {
			err = safe.TimedOut("check")
		}
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		// The pool is closing: Close retires the connection, not us.
		w.endCheck()
		return true
	}
	w.h.Checked(c, err, took)
	if err != nil {
		w.h.Retire(c, conn.ReasonHealth, err)
		return true
	}
	w.endCheck()
	return false
}

// endCheck ends a check that passed. A connection that Reset doomed meanwhile
// is retired instead of going back.
func (w *watcher[T]) endCheck() {
	if r := w.c.Doomed(); r != conn.ReasonNone {
		w.h.Retire(w.c, r, nil)
		return
	}
	if lease, detached, _ := w.c.EndCheck(); detached {
		w.lastLease = lease
		w.h.PutBack(w.c, lease)
	}
}
