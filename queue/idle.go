package queue

import (
	"runtime"
	"sync/atomic"

	"github.com/tidepool-go/tidepool/conn"
)

// MaxSkips bounds how many live but unusable connections (being checked, so
// detached rather than taken) one Take passes over before it reports none.
// Tombstones do not count: each one dropped shortens the set.
const MaxSkips = 8

// chunkBits sets the table's chunk size: 64 connections per chunk.
const chunkBits = 6

// maxLocals caps the per-P fronts; Ps beyond it use the shared stack only.
const maxLocals = 256

// local is one P's front: at most one idle connection, alone on its cache
// lines so that two Ps never write the same line.
type local[T any] struct {
	_ [64]byte
	c atomic.Pointer[conn.Conn[T]]
	_ [56]byte
}

type chunk[T any] [1 << chunkBits]atomic.Pointer[conn.Conn[T]]

// Idle is the set of a pool's idle connections: a front of one connection per
// P, then a shared lock-free LIFO stack. See the package comment for the
// protocol and its costs. The zero Idle is not usable; call New.
type Idle[T any] struct {
	// locals are the per-P fronts, indexed by the id procPin returns. Any
	// goroutine: the owning P stores into an empty front and takes from it;
	// others only take (steal).
	locals []local[T]
	// hook, set by tests only (before the set is used), runs where a delay
	// exposes a race: between reading the stack's head and the CAS that moves
	// it, between a release's state CAS and its push, and between a thief's
	// look at a front and its CAS. Read-only; off the front path, one
	// predictable branch.
	hook func()

	_ [64]byte
	// top is the stack's head: tag<<32 | (index+1), 0 in the low half when the
	// stack is empty. The tag changes with every push and pop, so a pop that
	// read an old head cannot succeed after the head went away and came back
	// (the ABA problem of lock-free stacks). Any goroutine, CAS only.
	top atomic.Uint64
	_   [56]byte
	// n counts the connections in the set (tombstones until swept included)
	// when counting is on; any goroutine, atomic add.
	n        atomic.Int64
	counting bool
	_        [48]byte

	// table maps an index to its connection. It only grows; an index is
	// reused only after its connection has left the stack for good
	// (Unregister). Written (grown) by the registering goroutine only; read by
	// any goroutine.
	table atomic.Pointer[[]*chunk[T]]
	// free and next hand out indexes. Owned by the registering goroutine (the
	// pool's reconcile loop); nothing else touches them.
	free []uint32
	// next is the first index never handed out; atomic only so that Len may
	// read it from any goroutine.
	next atomic.Uint32
}

// New returns an empty idle set with one front per P the process has now
// (runtime.GOMAXPROCS, at most 256). Its memory apart from the fronts grows
// with the connections registered, not with any bound. With counting, the
// set counts its members (Count), at the price of one shared atomic add per
// Release and per Take.
func New[T any](counting bool) *Idle[T] {
	n := min(runtime.GOMAXPROCS(0), maxLocals)
	s := &Idle[T]{locals: make([]local[T], n), counting: counting}
	s.table.Store(&[]*chunk[T]{})
	return s
}

// Register gives c its index in the table, before c is ever released into
// the set: the last index Unregister freed, or a new one. Called by one
// goroutine only (the reconcile loop), like Unregister and Sweep; O(1), plus
// two allocations when the table grows (every 64 connections: a new chunk and
// a copy of the chunk list). It panics if c is registered already.
func (s *Idle[T]) Register(c *conn.Conn[T]) {
	if s.registered(c) {
		panic("tidepool/queue: Register of a connection that is registered already")
	}
	var i uint32
	if n := len(s.free); n > 0 {
		i, s.free = s.free[n-1], s.free[:n-1]
	} else {
		i = s.next.Load()
		s.next.Store(i + 1)
	}
	tbl := *s.table.Load()
	if int(i>>chunkBits) >= len(tbl) {
		grown := make([]*chunk[T], len(tbl)+1, max(2*len(tbl), 1))
		copy(grown, tbl)
		grown[len(tbl)] = new(chunk[T])
		s.table.Store(&grown)
		tbl = grown
	}
	tbl[i>>chunkBits][i&(1<<chunkBits-1)].Store(c)
	c.Link().Index = i
}

// Unregister frees c's index for reuse once c can no longer be in the stack,
// and forgets c (the set keeps no pointer to it, except a front that still
// holds it as a tombstone until a Take or Sweep drops it). c must be retired,
// closed or hijacked (no holder left to release it); Unregister panics
// otherwise. It reports false, changing nothing, while c is still in the stack
// (a tombstone, or a push in progress): call it again later (after Sweep).
// Called by the registering goroutine only; one atomic load when it refuses.
func (s *Idle[T]) Unregister(c *conn.Conn[T]) bool {
	if st := c.State(); st != conn.Retired && st != conn.Closed && st != conn.Hijacked {
		panic("tidepool/queue: Unregister of a connection that is " + st.String() +
			"; only a retired, closed or hijacked connection may be unregistered")
	}
	if !s.registered(c) {
		panic("tidepool/queue: Unregister of a connection that is not registered (unregistered twice?)")
	}
	lk := c.Link()
	if lk.In.Load() {
		return false
	}
	i := lk.Index
	tbl := *s.table.Load()
	// A pop that read an old head may still look this slot up; it finds nil
	// and retries (its CAS could not succeed anyway: c left the stack, so the
	// head's tag has moved on).
	tbl[i>>chunkBits][i&(1<<chunkBits-1)].Store(nil)
	s.free = append(s.free, i)
	return true
}

// registered reports whether c holds its index in the table.
func (s *Idle[T]) registered(c *conn.Conn[T]) bool {
	i := c.Link().Index
	return i < s.next.Load() && s.at(i) == c
}

// at returns the connection at index i, or nil if that index is free.
func (s *Idle[T]) at(i uint32) *conn.Conn[T] {
	tbl := *s.table.Load()
	return tbl[i>>chunkBits][i&(1<<chunkBits-1)].Load()
}

// Release moves c, held under lease, back to Idle and into the set. Without
// counting, if the calling P's front still points at c (c was taken from it:
// a front keeps pointing at the connection it handed out, which usually comes
// back), c is back in place with its state CAS alone; if the front is empty,
// or points at a connection that is no longer idle there (held by another
// goroutine, or a tombstone), c goes into it. With counting, a front holds a
// connection only while it is idle, and c goes into it only if it is empty.
// Otherwise c goes onto the stack. It reports false, doing nothing, if lease
// does not hold c (the pool retired it under its holder, or this is a late
// second Release). Cost: one locked instruction when c returns to its front
// (the state CAS), two when it goes into a front, four on the stack path (the
// In CAS, the state CAS, the link store, the head CAS), plus one shared
// atomic add with counting on; no lock, no allocation. While a concurrent
// Release of the same connection holds its In mark, it yields until that one
// finishes.
func (s *Idle[T]) Release(c *conn.Conn[T], lease uint64) bool {
	if !s.counting {
		if ok, done := s.releaseFront(c, lease); done {
			return ok
		}
		return s.releaseStack(c, lease)
	}
	pid := procPin()
	if pid < len(s.locals) {
		l := &s.locals[pid].c
		// Only this P stores into its front (other Ps only take from it),
		// so an empty front stays empty until the Store below.
		if l.Load() == nil {
			if !c.Release(lease) {
				procUnpin()
				return false
			}
			l.Store(c)
			procUnpin()
			s.n.Add(1)
			return true
		}
	}
	procUnpin()
	if !s.releaseStack(c, lease) {
		return false
	}
	s.n.Add(1)
	return true
}

// vacant reports whether a front pointing at c may take another connection:
// c is held (the front only remembers where it came from) or a tombstone.
func vacant[T any](c *conn.Conn[T]) bool {
	switch c.State() {
	case conn.Idle, conn.Checking, conn.Detached:
		return false
	}
	return true
}

// stealable reports whether a front pointing at c lends it to another P's
// Take: c lies in the set (Idle, or Checking: the Take detaches it).
func stealable[T any](c *conn.Conn[T]) bool {
	s := c.State()
	return s == conn.Idle || s == conn.Checking
}

// releaseFront is Release's front path without counting. done is false when
// c must go onto the stack instead.
func (s *Idle[T]) releaseFront(c *conn.Conn[T], lease uint64) (ok, done bool) {
	if !c.Held(lease) {
		// A late or doubled Release: not the holder, so it may not touch
		// the holder's fields (Front), and it changes nothing.
		return false, true
	}
	lk := c.Link()
	pid := procPin()
	if pid >= len(s.locals) {
		procUnpin()
		s.forgetFront(c, -1)
		lk.Front = 0
		return false, false
	}
	l := &s.locals[pid].c
	f := l.Load()
	if f == c {
		// c left from this front and the front still points at it.
		ok = c.Release(lease)
		listed := !ok || l.Load() == c
		procUnpin()
		if listed {
			return ok, true
		}
		return s.reclaim(c), true
	}
	// c is listed once: if another P's front still points at it (it was
	// taken there, then its holder moved to this P), that pointer goes.
	s.forgetFront(c, pid)
	if f != nil && !vacant(f) {
		procUnpin()
		lk.Front = 0
		return false, false
	}
	// The front points at c before c turns Idle, never after: whoever
	// acquires c (through a pointer it read earlier, even) then finds Front
	// naming the one front that lists c, and its own Release clears that
	// pointer. The other order left a window in which a thief took c, put
	// it in a second front or on the stack, and this Store listed it again.
	// Until the CAS below, the front points at a held connection: not
	// stealable, skipped by Sweep and Len.
	lk.Front = int32(pid + 1)
	// Only this P stores a connection into its front; other Ps and Sweep
	// only clear it. So while pinned the front is f or nil.
	if f == nil || !l.CompareAndSwap(f, c) {
		l.Store(c)
	}
	ok = c.Release(lease) // if refused (retired under its holder), the front holds a tombstone
	listed := !ok || l.Load() == c
	procUnpin()
	if listed {
		return ok, true
	}
	return s.reclaim(c), true
}

// reclaim settles a front cleared under c between this P's look at it and
// c's Release. Only a thief clears a live connection's front: it read the
// pointer while c was idle, c was taken here and is being put back, and its
// CAS on the front went through. Its acquire of c then either succeeds (it
// holds c, which it puts back) or, if it came before the Release, fails, and
// it drops c as a tombstone: c is idle and listed nowhere. Whoever moves c out
// of Idle first owns it, so reclaim tries: if it wins, c is released again
// (an uncounted lease, not a hand-out); if not, c's new holder, a watcher
// detaching it or its retirer does what follows. It reports true: the
// Release itself went through.
func (s *Idle[T]) reclaim(c *conn.Conn[T]) bool {
	if lease, ok := c.AcquireIdle(true); ok {
		s.Release(c, lease)
	}
	return true
}

// forgetFront clears the pointer at c that another P's front (not pid's) may
// hold. Only c's holder calls it.
func (s *Idle[T]) forgetFront(c *conn.Conn[T], pid int) {
	if h := int(c.Link().Front) - 1; h >= 0 && h != pid && h < len(s.locals) {
		s.locals[h].c.CompareAndSwap(c, nil)
	}
}

// releaseStack is Release's stack path: c is pushed.
func (s *Idle[T]) releaseStack(c *conn.Conn[T], lease uint64) bool {
	// Mark c as being pushed before it becomes Idle: from then on a retirer
	// may claim it, and Unregister must not free its index while the push
	// (or the tombstone it leaves) is pending. The mark is taken with a CAS,
	// not stored: a Release that lease no longer entitles (a late or doubled
	// one) must leave In as it found it, and In may be set because c is in
	// the stack; clearing it there would let Unregister free the index of a
	// connection still linked in.
	lk := c.Link()
	for !lk.In.CompareAndSwap(false, true) {
		// c is in the stack or on its way (then lease cannot hold it), or
		// another Release of c holds the mark for the few instructions of
		// its CAS on the state word.
		if !c.Held(lease) {
			return false
		}
		runtime.Gosched()
	}
	if !c.Release(lease) {
		lk.In.Store(false)
		return false
	}
	if s.hook != nil {
		s.hook()
	}
	s.push(c)
	return true
}

// Count returns how many connections are in the set, tombstones not yet
// swept included. Only meaningful with counting on (New); 0 otherwise.
func (s *Idle[T]) Count() int64 { return s.n.Load() }

func (s *Idle[T]) push(c *conn.Conn[T]) {
	lk := c.Link()
	i := uint64(lk.Index) + 1
	for {
		t := s.top.Load()
		lk.Next.Store(uint32(t))
		if s.hook != nil {
			s.hook()
		}
		if s.top.CompareAndSwap(t, (t>>32+1)<<32|i) {
			return
		}
	}
}

// pop takes the top connection off the stack. Its In mark stays set: the
// caller clears it, or keeps it while it means to push the connection back.
func (s *Idle[T]) pop() (*conn.Conn[T], bool) {
	for {
		t := s.top.Load()
		i := uint32(t)
		if i == 0 {
			return nil, false
		}
		c := s.at(i - 1)
		if c == nil {
			// Unregistered since t was read, so it left the stack and the
			// head has moved on; if it has not, the stack is corrupt.
			if s.top.Load() == t {
				panic("tidepool/queue: the stack's head names a free index (Unregister while in the stack)")
			}
			continue
		}
		n := c.Link().Next.Load()
		if s.hook != nil {
			s.hook()
		}
		if s.top.CompareAndSwap(t, (t>>32+1)<<32|uint64(n)) {
			return c, true
		}
	}
}

// get takes any connection out of the set: the calling P's front, the stack,
// then the other Ps' fronts.
func (s *Idle[T]) get() (*conn.Conn[T], bool) {
	c, ok := s.getAny()
	if ok && s.counting {
		s.n.Add(-1)
	}
	return c, ok
}

func (s *Idle[T]) getAny() (*conn.Conn[T], bool) {
	pid := procPin()
	if pid < len(s.locals) && s.counting {
		// Load first: an empty front is not written, so its line stays
		// shared with the Ps that look at it.
		if l := &s.locals[pid].c; l.Load() != nil {
			if c := l.Swap(nil); c != nil {
				procUnpin()
				return c, true
			}
		}
	}
	procUnpin()
	if c, ok := s.pop(); ok {
		c.Link().In.Store(false)
		return c, true
	}
	// Steal, starting at the next P so that thieves spread out.
	n := len(s.locals)
	for k := 1; k <= n; k++ {
		l := &s.locals[(pid+k)%n].c
		c := l.Load()
		if c == nil || !s.counting && !stealable(c) {
			// Without counting a front may point at a connection its holder
			// has (or a tombstone): not one to take; its P clears it.
			continue
		}
		if s.hook != nil {
			s.hook()
		}
		if l.CompareAndSwap(c, nil) {
			return c, true
		}
	}
	return nil, false
}

// Take takes an idle connection out of the set and acquires it (Idle→InUse),
// returning it and its new lease. Tombstones it meets are dropped; connections
// being checked are detached (their watcher puts them back) and skipped, at
// most MaxSkips of them. ok is false when it found nothing to acquire.
//
// Cost: two locked instructions on the front path (the swap of the front, the
// state CAS), three on the stack path (the head CAS, the store clearing In,
// the state CAS), loads of the other fronts and one CAS for a steal, plus one
// shared atomic add with counting on; no lock, no allocation. Each tombstone
// or detached connection met costs one more pass.
func (s *Idle[T]) Take() (c *conn.Conn[T], lease uint64, ok bool) { return s.take(false) }

// TakeUncounted is Take for a take that is not (or not yet) a hand-out to a
// caller: the pool's own (a shrink, a hand-over to a waiter) or a tentative
// one that a check or hook may refuse. The lease increment is uncounted
// (conn.Uncount) before it is made, so Handouts never counts it, even for a
// moment; the caller Recounts it if the hand-out goes through. One or two
// atomic adds more than Take.
func (s *Idle[T]) TakeUncounted() (c *conn.Conn[T], lease uint64, ok bool) { return s.take(true) }

func (s *Idle[T]) take(uncounted bool) (c *conn.Conn[T], lease uint64, ok bool) {
	skips := 0
	if !s.counting {
		c, lease, ok, detached := s.takeFront(uncounted)
		if ok {
			return c, lease, true
		}
		if detached {
			skips++
		}
	}
	for skips < MaxSkips {
		c, ok := s.get()
		if !ok {
			return nil, 0, false
		}
		lease, seen, ok := acquire(c, uncounted)
		if ok {
			// Link.Front stays as c's last releaser wrote it: a thief's
			// pointer may be stale by now, and c's releaser may have listed
			// it in that front again before c turned Idle. The new holder's
			// Release clears whatever front still points at c.
			return c, lease, true
		}
		if seen == conn.Detached {
			skips++
		}
		// Retired, Closed, Hijacked: a tombstone, dropped.
	}
	return nil, 0, false
}

// acquire is c.Acquire, or c.AcquireUncounted.
func acquire[T any](c *conn.Conn[T], uncounted bool) (uint64, conn.State, bool) {
	if uncounted {
		return c.AcquireUncounted()
	}
	return c.Acquire()
}

// takeFront is Take's front path without counting: it acquires the
// connection the calling P's front points at if that one is idle, leaving the
// pointer in place (the connection usually comes back to it), and clears the
// front of a tombstone. detached reports that it detached a connection under
// check (a skip).
func (s *Idle[T]) takeFront(uncounted bool) (c *conn.Conn[T], lease uint64, ok, detached bool) {
	pid := procPin()
	if pid < len(s.locals) {
		l := &s.locals[pid].c
		if c = l.Load(); c != nil {
			if lease, ok = c.AcquireIdle(uncounted); ok {
				procUnpin()
				c.Link().Front = int32(pid + 1)
				return c, lease, true, false
			}
			switch st := c.State(); {
			case st.Dead():
				l.CompareAndSwap(c, nil) // a tombstone: dropped
			case st == conn.Checking:
				// Under check: taken out and detached, so that its watcher
				// puts it back through Release when the check passes (and a
				// waiter hears of it); left here it would turn Idle unseen.
				if l.CompareAndSwap(c, nil) {
					procUnpin()
					if lease, _, ok := acquire(c, uncounted); ok { // the check ended first
						return c, lease, true, false
					}
					return nil, 0, false, true
				}
			}
		}
	}
	procUnpin()
	return nil, 0, false, false
}

// Sweep takes every connection out of the set and puts back the ones keep
// accepts, in their order, dropping the others (tombstones). A front's
// connection keep accepts stays in its front. With exclusive fronts
// (counting), one it rejects is taken out and asked about again (keep may be
// called twice for it): if keep now accepts it (it changed meanwhile) it goes
// onto the stack instead. With sticky fronts, only a dead connection
// (retired, closed, hijacked) that keep rejects is cleared from a front;
// a live one stays, whatever keep says, since its P or its holder may move
// it at any moment (a front pointing at a held connection does not list it).
// Concurrent Takes may find the set empty while it runs, and concurrent
// Releases go on as usual. Called by the registering goroutine only;
// O(connections in the set). It returns how many it dropped.
func (s *Idle[T]) Sweep(keep func(c *conn.Conn[T]) bool) int {
	dropped := 0
	var back []*conn.Conn[T]
	for i := range s.locals {
		l := &s.locals[i].c
		c := l.Load()
		if c == nil {
			continue
		}
		if !s.counting {
			// A sticky front may point at a live connection that its P
			// takes and puts back in place, or that its holder re-lists
			// there, at any moment: clearing it could race with that
			// (the sweep could not tell whether it or the holder owns the
			// connection), so only a dead one, which never comes back,
			// is dropped.
			if c.State().Dead() && !keep(c) && l.CompareAndSwap(c, nil) {
				dropped++
			}
			continue
		}
		if keep(c) || !l.CompareAndSwap(c, nil) {
			continue
		}
		// Only now does the sweep own c (an exclusive front lists only
		// idle connections, so the CAS took it out of the set); it may
		// have changed since keep looked. Judge it again.
		if keep(c) {
			back = append(back, c)
		} else {
			dropped++
		}
	}
	var kept []*conn.Conn[T]
	for {
		c, ok := s.pop()
		if !ok {
			break
		}
		if keep(c) {
			kept = append(kept, c) // In stays set: c goes back
		} else {
			c.Link().In.Store(false)
			dropped++
		}
	}
	// Push back bottom first, so the stack keeps its order.
	for i := len(kept) - 1; i >= 0; i-- {
		s.push(kept[i])
	}
	for _, c := range back {
		lk := c.Link()
		if s.at(lk.Index) != c {
			// Unregistered (keep accepted a dead connection): its index
			// may name another one now, so it must not be pushed.
			dropped++
			continue
		}
		// Nobody holds c, so only a refused Release (a stale lease) can
		// hold the mark, for a few instructions.
		for !lk.In.CompareAndSwap(false, true) {
			runtime.Gosched()
		}
		s.push(c)
	}
	if s.counting {
		s.n.Add(int64(-dropped))
	}
	return dropped
}

// Len counts the connections in the set, tombstones and connections being
// checked included. O(Ps + connections in the stack) and only a snapshot under
// concurrent use; for tests and diagnostics.
func (s *Idle[T]) Len() int {
	n := 0
	for i := range s.locals {
		if c := s.locals[i].c.Load(); c != nil && c.State() != conn.InUse {
			n++ // a front pointing at a held connection does not list it
		}
	}
	// Bounded by the indexes ever handed out, in case concurrent pushes and
	// pops make the walk revisit a connection.
	for i, steps := uint32(s.top.Load()), uint32(0); i != 0 && steps <= s.next.Load(); steps++ {
		c := s.at(i - 1)
		if c == nil {
			break // unregistered meanwhile: the walk is stale
		}
		n++
		i = c.Link().Next.Load()
	}
	return n
}
