package conn

import (
	"sync/atomic"
	"time"
)

// State is where a connection is in its life. The zero State is invalid.
type State uint8

const (
	// Idle: in the pool's idle set, free to be acquired.
	Idle State = iota + 1
	// InUse: held by exactly one holder (a user, or the pool while it hands the
	// connection over, checks it on acquire or runs a hook on it).
	InUse
	// Checking: still in the idle set, but its watcher is checking it; Acquire
	// must not hand it out.
	Checking
	// Detached: was Checking when an Acquire took it out of the idle set. The
	// watcher now owns it and puts it back (or retires it) when the check ends.
	Detached
	// Retired: claimed for retirement; the reconciler will close it. It may still
	// sit in the idle set as a tombstone until somebody takes it out.
	Retired
	// Closed: the user's Close has returned. Terminal.
	Closed
	// Hijacked: its holder took it out of the pool for good. Terminal for the
	// pool, which never touches the value again.
	Hijacked
)

var stateNames = [...]string{"invalid", "idle", "in_use", "checking", "detached", "retired", "closed", "hijacked"}

// Dead reports whether s is Retired, Closed or Hijacked: a state a
// connection never leaves, in which the pool no longer uses it.
func (s State) Dead() bool { return s == Retired || s == Closed || s == Hijacked }

// String returns the state's name as used in logs and the admin listing.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// Reason says why a connection was retired. It is also the value of the "reason"
// field in the pool's logs and the label of the closed-connections metric.
type Reason uint8

// The retirement reasons. Adding one means adding its name to reasonNames; the
// root package maps each to a Stats field and tests that none is missing.
const (
	// ReasonNone means no retirement is pending.
	ReasonNone Reason = iota
	// ReasonLifetime: the connection reached its max lifetime (with jitter).
	ReasonLifetime
	// ReasonIdle: the connection sat idle longer than the max idle time.
	ReasonIdle
	// ReasonHealth: the connection failed a health check (in the background or
	// on acquire), or its check ran past the health timeout.
	ReasonHealth
	// ReasonShrink: the pool was resized (or its lease ran out) below its size.
	ReasonShrink
	// ReasonDestroyed: the holder called Destroy, or AcquireFunc's function
	// reported the connection broken or panicked.
	ReasonDestroyed
	// ReasonClose: the pool was closed.
	ReasonClose
	// ReasonExcessIdle: released while the pool already held MaxIdle idle connections.
	ReasonExcessIdle
	// ReasonReset: the pool was reset.
	ReasonReset
	// ReasonVetoed: a hook (BeforeAcquire, AfterRelease, AfterConnect) refused
	// the connection or panicked.
	ReasonVetoed
	// ReasonLateDial: its dial returned after the dial timeout had already
	// counted it as failed; it is closed at once.
	ReasonLateDial
	numReasons
)

// NumReasons is the number of reasons, ReasonNone included; reasons index arrays
// of this length.
const NumReasons = int(numReasons)

var reasonNames = [...]string{"none", "lifetime", "idle", "health", "shrink", "destroyed", "close", "excess_idle",
	"reset", "vetoed", "late_dial"}

// String returns the reason's name as used in logs and metrics labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "invalid"
}

const stateBits = 8

func pack(lease uint64, s State) uint64 { return lease<<stateBits | uint64(s) }

func unpack(w uint64) (lease uint64, s State) { return w >> stateBits, State(w & (1<<stateBits - 1)) }

// Link is a connection's place in the idle set's shared stack. It belongs to
// package queue, which is the only code that reads or writes it.
type Link struct {
	// Next is the table index + 1 of the connection below this one in the
	// stack (0: none). Written by a pusher before it publishes the connection.
	Next atomic.Uint32
	// In is set while the connection is in the stack (pushed and not yet popped).
	In atomic.Bool
	// Index is the connection's index in the idle set's table, set once when
	// the reconciler registers the connection there (before it is ever pushed).
	Index uint32
	// Front is 1 + the P whose front slot may point at the connection (0:
	// none). Written only by the connection's holder (when it takes or
	// places the connection), read only by its holder: the state CASes order
	// the two, so it needs no atomic.
	Front int32
}

// Conn is one pooled connection. Create it with [New]; the zero Conn is not usable.
type Conn[T any] struct {
	// word is the lease<<8|state word; see the package comment. Any goroutine,
	// CAS only.
	word atomic.Uint64
	// doom is a Reason to retire the connection at its next release, set by its
	// watcher (lifetime) or by Reset while it is held or being checked.
	doom atomic.Uint32
	// internal counts lease increments that were not hand-outs to a caller: the
	// pool taking the connection for itself (to retire it, to move it to a
	// waiter, a check on acquire that failed, a vetoed hand-out). Slow paths only.
	internal atomic.Uint64
	// lastUsed is the pool's coarse clock (ns since the pool started) at the
	// connection's last release, or at its birth. Written only by the holder
	// before the CAS that releases it; read only by a later holder after the
	// CAS that acquired it. The CAS pair orders the two, so it needs no atomic.
	lastUsed int64
	// link is the connection's place in the idle set (package queue).
	link Link
	// heldSince is the Unix nanosecond time of the last hand-out, written only
	// when the pool tracks acquire times (leak detection); 0 otherwise.
	heldSince atomic.Int64
	// heldLease is the lease heldSince belongs to.
	heldLease atomic.Uint64
	// site is the acquiring stack, written only when the pool tracks acquire
	// sites. Read by leak reports.
	site atomic.Pointer[string]
	// leaked is the lease under which the leak scanner reported this
	// connection held too long; 0 if not reported.
	leaked atomic.Uint64
	// forced is set when the pool retired the connection under its holder
	// (Close's deadline, an expired lease), whose late Release or Destroy is
	// then legitimate.
	forced atomic.Bool

	// Immutable after New.
	value    T
	id       uint64
	created  time.Time
	deadline time.Time // zero: no lifetime limit
	done     chan struct{}
}

// New returns a connection born held (InUse, lease 1) by whoever dialed it, so
// that it can be handed to a waiter or put into the idle set like any release.
// A zero deadline means it never expires. born is the pool's coarse clock at
// birth (the start of its first idle period).
func New[T any](id uint64, v T, created, deadline time.Time, born int64) *Conn[T] {
	c := &Conn[T]{value: v, id: id, created: created, deadline: deadline, done: make(chan struct{}), lastUsed: born}
	c.word.Store(pack(1, InUse))
	return c
}

// Value returns the user's connection value.
func (c *Conn[T]) Value() T { return c.value }

// ID returns the connection's pool-unique id.
func (c *Conn[T]) ID() uint64 { return c.id }

// Created returns when the connection was dialed.
func (c *Conn[T]) Created() time.Time { return c.created }

// Deadline returns the end of the connection's lifetime, or the zero time.
func (c *Conn[T]) Deadline() time.Time { return c.deadline }

// Done is closed when the connection is closed or hijacked; its watcher stops then.
func (c *Conn[T]) Done() <-chan struct{} { return c.done }

// Link returns the connection's place in the idle set (package queue only).
func (c *Conn[T]) Link() *Link { return &c.link }

// Load returns the current lease and state.
func (c *Conn[T]) Load() (lease uint64, s State) { return unpack(c.word.Load()) }

// State returns the current state.
func (c *Conn[T]) State() State { _, s := c.Load(); return s }

// Acquire tries to move an Idle connection to InUse under a new lease, and
// returns that lease. If the connection is being checked it marks it Detached
// (the checker will put it back) and fails. Any other state fails; the state seen
// is returned so the caller can tell tombstones from detached connections.
func (c *Conn[T]) Acquire() (lease uint64, seen State, ok bool) { return c.acquire(false) }

// AcquireUncounted is Acquire for a take that is not (or not yet) a hand-out
// to a caller: the lease increment is uncounted (see Uncount) before the CAS
// that makes it, so that Handouts, read concurrently, never counts it even for
// a moment. A failed attempt leaves the count as it was. One or two more
// atomic adds than Acquire.
func (c *Conn[T]) AcquireUncounted() (lease uint64, seen State, ok bool) { return c.acquire(true) }

func (c *Conn[T]) acquire(uncounted bool) (lease uint64, seen State, ok bool) {
	for {
		w := c.word.Load()
		l, s := unpack(w)
		switch s {
		case Idle:
			if uncounted {
				c.internal.Add(1)
			}
			if c.word.CompareAndSwap(w, pack(l+1, InUse)) {
				return l + 1, InUse, true
			}
			if uncounted {
				c.internal.Add(^uint64(0))
			}
		case Checking:
			if c.word.CompareAndSwap(w, pack(l, Detached)) {
				return 0, Detached, false
			}
		default:
			return 0, s, false
		}
	}
}

// AcquireIdle is Acquire for a connection that is only pointed at, not owned,
// by whoever asks: it moves an Idle connection to InUse under a new lease and
// fails, changing nothing, in any other state (a connection being checked is
// not detached). With uncounted the increment is uncounted first, as in
// AcquireUncounted.
func (c *Conn[T]) AcquireIdle(uncounted bool) (lease uint64, ok bool) {
	w := c.word.Load()
	l, s := unpack(w)
	if s != Idle {
		return 0, false
	}
	if uncounted {
		c.internal.Add(1)
	}
	if c.word.CompareAndSwap(w, pack(l+1, InUse)) {
		return l + 1, true
	}
	if uncounted {
		c.internal.Add(^uint64(0))
	}
	return 0, false
}

// Held reports whether lease is the current holder's lease.
func (c *Conn[T]) Held(lease uint64) bool { return c.word.Load() == pack(lease, InUse) }

// Release moves the holder's connection back to Idle (the caller must then put
// it into the idle set). False if lease is not the holder's.
func (c *Conn[T]) Release(lease uint64) bool {
	return c.word.CompareAndSwap(pack(lease, InUse), pack(lease, Idle))
}

// Transfer hands a held connection to a new holder without passing through Idle,
// so no checker or acquirer can take it in between. It returns the new lease.
func (c *Conn[T]) Transfer(lease uint64) (uint64, bool) {
	if c.word.CompareAndSwap(pack(lease, InUse), pack(lease+1, InUse)) {
		return lease + 1, true
	}
	return 0, false
}

// Retire claims a held connection for retirement. False if lease is not the
// holder's (then somebody else owns it).
func (c *Conn[T]) Retire(lease uint64) bool {
	return c.word.CompareAndSwap(pack(lease, InUse), pack(lease, Retired))
}

// Hijack takes a held connection out of the pool for good. False if lease is
// not the holder's.
func (c *Conn[T]) Hijack(lease uint64) bool {
	return c.word.CompareAndSwap(pack(lease, InUse), pack(lease, Hijacked))
}

// ClaimIdle claims an Idle connection for retirement where it lies (it becomes
// a tombstone in the idle set). False if it is not Idle.
func (c *Conn[T]) ClaimIdle() bool {
	w := c.word.Load()
	l, s := unpack(w)
	return s == Idle && c.word.CompareAndSwap(w, pack(l, Retired))
}

// BeginCheck moves an Idle connection to Checking, so that Acquire skips it.
func (c *Conn[T]) BeginCheck() bool {
	w := c.word.Load()
	l, s := unpack(w)
	return s == Idle && c.word.CompareAndSwap(w, pack(l, Checking))
}

// EndCheck ends a check that passed. If the connection is still in the idle set
// it becomes Idle again (detached=false). If an Acquire took it out meanwhile it
// becomes InUse under a new lease, held by the caller, who must put it back
// (detached=true). ok is false if it was force-retired during the check.
func (c *Conn[T]) EndCheck() (lease uint64, detached, ok bool) {
	for {
		w := c.word.Load()
		l, s := unpack(w)
		switch s {
		case Checking:
			if c.word.CompareAndSwap(w, pack(l, Idle)) {
				return 0, false, true
			}
		case Detached:
			// Uncounted before the CAS: a concurrent Handouts may undercount
			// for a moment but never counts the watcher's lease as a hand-out.
			c.internal.Add(1)
			if c.word.CompareAndSwap(w, pack(l+1, InUse)) {
				return l + 1, true, true
			}
			c.internal.Add(^uint64(0))
		case Retired, Closed:
			return 0, false, false
		default:
			panic("tidepool/conn: EndCheck on a connection that is not being checked (state " + s.String() + ")")
		}
	}
}

// RetireChecked claims a connection under check for retirement. inSet reports
// whether it still sits in the idle set (and so becomes a tombstone there).
// ok is false if it was force-retired during the check.
func (c *Conn[T]) RetireChecked() (inSet, ok bool) {
	for {
		w := c.word.Load()
		l, s := unpack(w)
		switch s {
		case Checking:
			if c.word.CompareAndSwap(w, pack(l, Retired)) {
				return true, true
			}
		case Detached:
			if c.word.CompareAndSwap(w, pack(l, Retired)) {
				return false, true
			}
		case Retired, Closed:
			return false, false
		default:
			panic("tidepool/conn: RetireChecked on a connection that is not being checked (state " + s.String() + ")")
		}
	}
}

// ForceRetire claims the connection for retirement whatever its state, as
// Close does when its deadline passes. It reports the state it found, and false
// if the connection was already Retired, Closed or Hijacked.
func (c *Conn[T]) ForceRetire() (was State, ok bool) {
	for {
		w := c.word.Load()
		l, s := unpack(w)
		if s.Dead() {
			return s, false
		}
		// Mark before the CAS, so the holder never sees Retired unmarked.
		c.forced.Store(s == InUse)
		if c.word.CompareAndSwap(w, pack(l, Retired)) {
			return s, true
		}
	}
}

// Uncount records that a lease increment on this connection is not (or not
// yet) a hand-out to a caller (see Handouts). The pool calls it as soon as it
// takes a connection for itself or tentatively for a caller, so that Stats
// never counts a hand-out that a check or a hook then refuses.
func (c *Conn[T]) Uncount() { c.internal.Add(1) }

// Recount undoes one Uncount: the tentative hand-out went through.
func (c *Conn[T]) Recount() { c.internal.Add(^uint64(0)) }

// Handouts returns how many times the connection was handed to a caller: every
// lease increment but the ones the pool made for itself (Uncount). It costs the
// hot path nothing: the lease is incremented by the hand-out's CAS anyway.
func (c *Conn[T]) Handouts() uint64 {
	l, _ := c.Load()
	return l - 1 - c.internal.Load()
}

// ForcedUnder reports whether the pool retired the connection from the holder
// of lease (ForceRetire).
func (c *Conn[T]) ForcedUnder(lease uint64) bool {
	l, s := c.Load()
	return l == lease && (s == Retired || s == Closed) && c.forced.Load()
}

// MarkClosed records that the user's Close has returned and stops the watcher.
// Only the reconciler calls it, once.
func (c *Conn[T]) MarkClosed() {
	for {
		w := c.word.Load()
		l, _ := unpack(w)
		if c.word.CompareAndSwap(w, pack(l, Closed)) {
			close(c.done)
			return
		}
	}
}

// MarkHijacked stops the watcher of a hijacked connection. Only the
// reconciler calls it, once.
func (c *Conn[T]) MarkHijacked() { close(c.done) }

// Doom asks that the connection be retired for r at its next release. The
// first reason wins.
func (c *Conn[T]) Doom(r Reason) { c.doom.CompareAndSwap(0, uint32(r)) }

// Doomed returns the pending retirement reason, or ReasonNone.
func (c *Conn[T]) Doomed() Reason { return Reason(c.doom.Load()) }

// LastUsed returns the coarse-clock time of the connection's last release (or
// its birth). Only its holder may call it, after the CAS that acquired it.
func (c *Conn[T]) LastUsed() int64 { return c.lastUsed }

// SetLastUsed records the coarse-clock time of a release. Only its holder may
// call it, before the CAS that releases it.
func (c *Conn[T]) SetLastUsed(t int64) { c.lastUsed = t }

// SetHeld records the hand-out under lease: its time (Unix ns) and optional
// acquiring stack.
func (c *Conn[T]) SetHeld(lease uint64, nanos int64, site *string) {
	c.heldLease.Store(0)
	c.heldSince.Store(nanos)
	c.site.Store(site)
	c.heldLease.Store(lease)
}

// HeldSince returns the Unix ns time of the hand-out under lease, or 0 if none
// was recorded for that lease.
func (c *Conn[T]) HeldSince(lease uint64) int64 {
	if c.heldLease.Load() != lease {
		return 0
	}
	t := c.heldSince.Load()
	if c.heldLease.Load() != lease {
		return 0
	}
	return t
}

// Site returns the recorded acquiring stack, or "".
func (c *Conn[T]) Site() string {
	if p := c.site.Load(); p != nil {
		return *p
	}
	return ""
}

// MarkLeaked records that the hand-out under lease was reported as a suspected
// leak. It reports false if that lease was reported already.
func (c *Conn[T]) MarkLeaked(lease uint64) bool {
	old := c.leaked.Load()
	return old != lease && c.leaked.CompareAndSwap(old, lease)
}

// Leaked reports whether the hand-out under lease was reported as a suspected leak.
func (c *Conn[T]) Leaked(lease uint64) bool { return c.leaked.Load() == lease }
