package fleet

// TEMPORARY — this file stands in for the core API v2 (Pool.Lease,
// Pool.ResizeWait, Stats.Slots, Resize(0, 0)) until it lands on main. It is
// the only file that knows how the pool is driven; once the core has those
// methods, this whole file becomes:
//
//	const restMax = 0
//	func slotsOf(_ Pool, s tidepool.Stats) int { return s.Slots }
//	func NewPool[T comparable](ctx context.Context, cfg tidepool.Config[T]) (*tidepool.Pool[T], Pool, error) {
//		if cfg.MinIdle != 0 { return nil, nil, errMinIdle(cfg.MinIdle) }
//		p, err := tidepool.New(ctx, cfg)
//		if err != nil { return nil, nil, err }
//		if err := p.Resize(0, restMax); err != nil { _ = p.Close(ctx); return nil, nil, err }
//		return p, p, nil
//	}
//
// Today's core cannot hold a Resize max of 0, frees a slot before the close
// returns and has no lease; so the adapter below wraps the pool's Dial and
// Close in a gate that does what the v2 pool promises, at the socket level:
//   - it counts slots from the moment a dial starts until Close returns;
//   - a dial starts only while slots < the limit (the lease max before the
//     lease's end, 0 after it or without one), checked against the monotonic
//     clock at the start of every dial: a process resumed after SIGSTOP cannot
//     dial past its lease even if its timers have not fired yet;
//   - at the lease's end it closes every open connection under its holder
//     (the pool later closes it again: that second close is a no-op), and a
//     dial that lands after the end is closed at once.
// It also drives the pool's own max (Resize(0, max(1, limit))), so that the
// pool does not queue dials that the gate would hold back.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidepool-go/tidepool"
)

// restMax is the Resize max a member's pool rests at: what it may hold with no
// valid lease.
const restMax = 0

func errMinIdle(n int) error {
	return fmt.Errorf("%w: Config.MinIdle = %d: a fleet member's pool keeps no warm minimum (it may hold nothing until granted)", ErrInvalidOptions, n)
}

// slotsOf returns the connections the backend may see for p (Stats.Slots in the
// core API v2).
func slotsOf(p Pool, s tidepool.Stats) int {
	if a, ok := p.(slotCounter); ok {
		return a.slots()
	}
	return s.Dialing + s.Total
}

type slotCounter interface{ slots() int }

// NewPool creates a pool ready to join a fleet and returns it with the Pool to
// put in Options.Pool. Config.MinIdle must be 0. The pool holds nothing until
// the member is granted connections; use it like any pool afterwards.
//
// TEMPORARY implementation: T must be comparable (the gate tracks the open
// values), and Acquires that find no grant wait in the pool's dial, which
// counts as dialing, until the grant comes or DialTimeout passes.
func NewPool[T comparable](ctx context.Context, cfg tidepool.Config[T]) (*tidepool.Pool[T], Pool, error) {
	if cfg.MinIdle != 0 {
		return nil, nil, errMinIdle(cfg.MinIdle)
	}
	if cfg.Dial == nil {
		return nil, nil, fmt.Errorf("%w: Config.Dial = nil: a Dial function is required", tidepool.ErrInvalidConfig)
	}
	g := &gate[T]{dial: cfg.Dial, close: cfg.Close, live: make(map[T]*gateEntry), changed: make(chan struct{})}
	if g.close == nil {
		g.close = func(v T) error {
			if c, ok := any(v).(interface{ Close() error }); ok {
				return c.Close()
			}
			return nil
		}
	}
	cfg.Dial, cfg.Close = g.gatedDial, g.gatedClose
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 1
	}
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	a := &adapter[T]{p: p, g: g}
	if err := a.resize(0); err != nil {
		_ = p.Close(ctx)
		return nil, nil, err
	}
	return p, a, nil
}

// adapter is the TEMPORARY Pool over today's *tidepool.Pool.
type adapter[T comparable] struct {
	p *tidepool.Pool[T]
	g *gate[T]
	// resizeMu orders the pool Resizes so the last one reflects the latest
	// limit (a lease renewal racing the lease-end timer).
	resizeMu sync.Mutex
}

func (a *adapter[T]) slots() int { return a.g.slotCount() }

func (a *adapter[T]) Stats() tidepool.Stats { return a.p.Stats() }

// resize sets the pool's min to min and its max to the gate's current limit
// (at least 1: today's pool refuses 0; the gate holds the difference).
func (a *adapter[T]) resize(min int) error {
	a.resizeMu.Lock()
	defer a.resizeMu.Unlock()
	lim := a.g.limit(time.Now())
	return a.p.Resize(min, max(1, lim, min))
}

// drainIdle closes the pool's idle connections when the limit is 0: today's
// pool keeps one at its smallest max of 1. TryAcquire with a done context
// takes an idle connection if there is one and never dials.
func (a *adapter[T]) drainIdle() {
	if a.g.limit(time.Now()) != 0 {
		return
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 1 << 10 {
		c, err := a.p.TryAcquire(done)
		if err != nil {
			return
		}
		c.Destroy()
	}
}

func (a *adapter[T]) Lease(n int, until time.Time) error {
	if n < 0 {
		return fmt.Errorf("%w: lease max = %d: must not be negative", tidepool.ErrInvalidResize, n)
	}
	a.g.setLease(n, until, func() {
		a.g.fence()
		_ = a.resize(0)
		a.drainIdle()
	})
	return a.resize(0)
}

func (a *adapter[T]) ResizeWait(ctx context.Context, min, n int) error {
	if n < 0 || min < 0 || min > n {
		return fmt.Errorf("%w: min = %d, max = %d", tidepool.ErrInvalidResize, min, n)
	}
	a.g.setRest(n)
	if err := a.resize(min); err != nil {
		return err
	}
	if n == 0 {
		a.drainIdle()
	}
	for {
		ch, s := a.g.watch()
		if s <= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			a.g.forceAbove(n)
			if s := a.g.slotCount(); s > n {
				return fmt.Errorf("fleet: %d slots still taken after closing held connections (dials in flight): %w", s, ctx.Err())
			}
			return nil
		}
	}
}

// gate counts and limits the sockets a pool opens. mu guards every field
// below it; dials and closes run outside mu.
type gate[T comparable] struct {
	dial  func(context.Context) (T, error)
	close func(T) error

	mu      sync.Mutex
	slots   int              // dials started + open + closing
	live    map[T]*gateEntry // open connections
	max     int              // the lease's max
	until   time.Time        // the lease's end; zero: no lease
	rest    int              // the limit without a lease (the Resize max)
	timer   *time.Timer      // fires at until
	changed chan struct{}    // closed and replaced when slots or limits change
}

type gateEntry struct{ forced bool }

var errNoGrant = errors.New("fleet: no slot under the pool's lease")

func (g *gate[T]) limitLocked(now time.Time) int {
	if !g.until.IsZero() && now.Before(g.until) {
		return g.max
	}
	return g.rest
}

func (g *gate[T]) limit(now time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limitLocked(now)
}

func (g *gate[T]) slotCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.slots
}

func (g *gate[T]) watch() (<-chan struct{}, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed, g.slots
}

func (g *gate[T]) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *gate[T]) setLease(n int, until time.Time, onEnd func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.max, g.until = n, until
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if !until.IsZero() {
		g.timer = time.AfterFunc(time.Until(until), onEnd)
	}
	g.broadcastLocked()
}

func (g *gate[T]) setRest(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rest = n
	g.broadcastLocked()
}

func (g *gate[T]) gatedDial(ctx context.Context) (T, error) {
	var zero T
	g.mu.Lock()
	for g.slots >= g.limitLocked(time.Now()) {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return zero, fmt.Errorf("%w: %w", errNoGrant, ctx.Err())
		}
		g.mu.Lock()
	}
	g.slots++
	g.mu.Unlock()
	v, err := g.dial(ctx)
	if err != nil {
		g.release()
		return zero, err
	}
	g.mu.Lock()
	if g.slots > g.limitLocked(time.Now()) && !(g.until.IsZero() || time.Now().Before(g.until)) {
		// The lease ended while this dial ran: close it at once.
		g.mu.Unlock()
		_ = g.close(v)
		g.release()
		return zero, fmt.Errorf("%w: the lease ended during the dial", errNoGrant)
	}
	g.live[v] = &gateEntry{}
	g.mu.Unlock()
	return v, nil
}

func (g *gate[T]) gatedClose(v T) error {
	g.mu.Lock()
	e, ok := g.live[v]
	delete(g.live, v)
	g.mu.Unlock()
	if ok && e.forced {
		return nil // closed under its holder at the lease's end
	}
	err := g.close(v)
	if ok {
		g.release()
	}
	return err
}

func (g *gate[T]) release() {
	g.mu.Lock()
	g.slots--
	g.broadcastLocked()
	g.mu.Unlock()
}

// fence runs at the lease's end: unless the lease was renewed meanwhile, it
// closes every open connection above the rest limit under its holder.
func (g *gate[T]) fence() {
	g.mu.Lock()
	if !g.until.IsZero() && time.Now().Before(g.until) {
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.forceAbove(-1)
}

// forceAbove closes open connections until at most n remain (n < 0: down to
// the rest limit) and returns when their closes have returned.
func (g *gate[T]) forceAbove(n int) {
	g.mu.Lock()
	if n < 0 {
		n = g.rest
	}
	var victims []T
	open := 0
	for _, e := range g.live {
		if !e.forced {
			open++
		}
	}
	for v, e := range g.live {
		if open <= n {
			break
		}
		if !e.forced {
			e.forced = true
			victims = append(victims, v)
			open--
		}
	}
	g.mu.Unlock()
	for _, v := range victims {
		_ = g.close(v)
		g.release()
	}
}
