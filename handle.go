package tidepool

import (
	"fmt"
	"time"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/safe"
)

// Conn is a connection handed out by Acquire. It is a small value (copying it
// is fine and allocates nothing); it stays valid until Release, Destroy or
// Hijack. Using it after that — a second Release, Value after Release — panics,
// even if the connection has meanwhile been handed to somebody else: the
// handle carries the lease it was given, and the pool checks it.
type Conn[T any] struct {
	p     *Pool[T]
	c     *conn.Conn[T]
	lease uint64
}

// valid panics unless the handle holds its connection, or held it when the
// pool closed it under its holder (Close's deadline, an expired Lease): then
// the holder's next use of the value fails like any use of a dead connection.
func (h Conn[T]) valid(op string) {
	if h.c == nil || !h.c.Held(h.lease) && !h.forceClosed() {
		h.misuse(op)
	}
}

// Value returns the connection. It panics if the handle was released. If the
// pool closed the connection under its holder (Close's deadline, an expired
// Lease), it returns the closed value: using it fails as a dead connection
// does, and Release or Destroy are then no-ops.
func (h Conn[T]) Value() T {
	h.valid("Value")
	return h.c.Value()
}

// ID returns the connection's id, as used in logs and the admin listing. It
// panics if the handle was released.
func (h Conn[T]) ID() uint64 {
	h.valid("ID")
	return h.c.ID()
}

// CreatedAt returns when the connection was dialed. It panics if the handle
// was released.
func (h Conn[T]) CreatedAt() time.Time {
	h.valid("CreatedAt")
	return h.c.Created()
}

// LastUsed returns when the connection was last released (or dialed, if it
// never was), to within 5 ms: the pool stamps releases with a coarse clock so
// that the hot path reads none. It panics if the handle was released.
func (h Conn[T]) LastUsed() time.Time {
	h.valid("LastUsed")
	return h.p.clock.start.Add(time.Duration(h.c.LastUsed()))
}

// IdleDuration returns how long ago the connection was last released (or
// dialed): at hand-out, how long it sat idle. Resolution 5 ms. It panics if
// the handle was released.
func (h Conn[T]) IdleDuration() time.Duration {
	h.valid("IdleDuration")
	return time.Duration(h.p.clock.read() - h.c.LastUsed())
}

// Release returns the connection to the pool: to the oldest waiter if there is
// one, otherwise to the idle set — or it retires it if it has outlived its
// lifetime, the pool is over its max or closed, MaxIdle are idle already, or
// AfterRelease refuses it. Releasing twice panics. Releasing after the pool
// closed the connection under its holder (Close's deadline, an expired Lease)
// is a no-op. With nobody waiting and no hook, it takes no lock, allocates
// nothing and reads no clock: two atomic read-modify-writes.
func (h Conn[T]) Release() {
	c, p := h.c, h.p
	if c == nil || !c.Held(h.lease) {
		if h.forceClosed() {
			return
		}
		h.misuse("Release")
	}
	if p.track && c.Leaked(h.lease) {
		p.logLeakReleased(c, h.lease)
	}
	c.SetLastUsed(p.clock.read())
	if p.plainRelease && p.gate.Load() == 0 && c.Doomed() == conn.ReasonNone && p.wl.n.Load() == 0 {
		if p.idle.Release(c, h.lease) && p.wl.n.Load() > 0 {
			p.serveWaiters()
		}
		return
	}
	if p.cfg.AfterRelease != nil && !p.afterRelease(c) {
		p.retireHeld(c, h.lease, ReasonVetoed, nil)
		return
	}
	p.putHeld(c, h.lease)
}

// afterRelease runs the AfterRelease hook; false destroys the connection.
func (p *Pool[T]) afterRelease(c *conn.Conn[T]) bool {
	start := p.clock.read()
	ok, err := safe.Bool("after_release", func() bool { return p.cfg.AfterRelease(c.Value()) })
	if err != nil {
		p.callbackPanicked(err, c.ID())
		return false
	}
	if time.Duration(p.clock.read()-start) > p.cfg.HookTimeout {
		p.callbackTimedOut("after_release", c.ID(), p.cfg.HookTimeout)
		return false
	}
	return ok
}

// Destroy closes the connection instead of returning it (use it when the
// connection is broken); the pool dials a replacement if it needs one. With
// CheckOnAcquire, it also has every connection released before it checked on
// its next hand-out, as a failed check on acquire does.
// Destroying a released handle panics; after the pool closed the connection
// under its holder it is a no-op.
func (h Conn[T]) Destroy() {
	if h.c == nil || !h.c.Held(h.lease) {
		if h.forceClosed() {
			return
		}
		h.misuse("Destroy")
	}
	if h.p.cfg.CheckOnAcquire {
		// A broken connection usually means the backend went away under
		// the others too: check every one released before now on its next
		// hand-out, however briefly it was idle.
		h.p.suspect.Store(h.p.clock.read())
	}
	h.p.retireHeld(h.c, h.lease, ReasonDestroyed, nil)
}

// Hijack takes the connection out of the pool for good and returns it: its
// slot is freed at once (the pool may dial a replacement), the pool never
// touches the value again (no check, no Close), and closing it is the
// caller's job. For pub/sub, LISTEN or a long stream. The handle is spent
// afterwards. Hijacking a released handle panics; after the pool closed the
// connection under its holder, Hijack returns the (closed) value.
func (h Conn[T]) Hijack() T {
	if h.c == nil || !h.c.Hijack(h.lease) {
		if h.forceClosed() {
			return h.c.Value()
		}
		h.misuse("Hijack")
	}
	h.p.rec.Hijacked(h.c)
	return h.c.Value()
}

// forceClosed reports whether the handle's connection was closed under it by
// the pool (ForceRetire), which makes a late Release or Destroy legitimate.
func (h Conn[T]) forceClosed() bool {
	return h.c != nil && h.c.ForcedUnder(h.lease)
}

func (h Conn[T]) misuse(op string) {
	if h.c == nil {
		panic("tidepool: " + op + " called on a zero Conn (not one returned by Acquire)")
	}
	panic(fmt.Sprintf("tidepool: %s called on a Conn that was already released, destroyed or hijacked (conn %d); "+
		"each Acquire must be matched by exactly one Release, Destroy or Hijack", op, h.c.ID()))
}
