package queue_test

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/queue"
)

// model is the exact expected content of an idle set used by one goroutine
// on one P: the front, the stack (bottom first), the index free list, and
// each connection's state and lease.
type model struct {
	t     *testing.T
	s     *queue.Idle[int]
	conns []*mconn
	front *mconn
	// sticky: the set counts nothing, and its front keeps pointing at the
	// connection it handed out (a hint, not a member) until a Release puts
	// another one there or a Take or Sweep drops a tombstone.
	sticky bool
	stack  []*mconn
	free   []uint32
	next   uint32
}

type mconn struct {
	c          *tconn
	state      conn.State
	lease      uint64
	index      uint32
	registered bool
	closed     bool // MarkClosed or MarkHijacked ran (once only)
}

const (
	opRegister = iota
	opRelease
	opStaleRelease
	opTake
	opClaimIdle
	opBeginCheck
	opEndCheck
	opRetireChecked
	opDestroy
	opHijack
	opForceRetire
	opClose
	opUnregister
	opSweep
	opFill      // register and release 1 to 16 connections
	opCheckMany // begin checks on up to 16 connections
	numOps
)

var opNames = [...]string{"register", "release", "stale-release", "take", "claim-idle", "begin-check", "end-check",
	"retire-checked", "destroy", "hijack", "force-retire", "close", "unregister", "sweep", "fill", "check-many"}

// frontMember reports whether the front lists its connection (a sticky
// front pointing at a held connection does not).
func (m *model) frontMember() bool {
	return m.front != nil && m.front.state != conn.InUse
}

func (m *model) size() int {
	n := len(m.stack)
	if m.frontMember() {
		n++
	}
	return n
}

// vacant: a sticky front pointing at y may take another connection.
func vacant(y *mconn) bool {
	return y.state != conn.Idle && y.state != conn.Checking && y.state != conn.Detached
}

func (m *model) inStack(x *mconn) bool { return slices.Contains(m.stack, x) }

func (m *model) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf(format, args...)
}

// step runs one operation on the set and on the model and compares.
func (m *model) step(op, arg byte) {
	var x *mconn
	if len(m.conns) > 0 {
		x = m.conns[int(arg)%len(m.conns)]
	}
	switch int(op) % numOps {
	case opFill:
		for range arg%16 + 1 {
			m.step(opRegister, 0)
			m.step(opRelease, byte(len(m.conns)-1))
		}
	case opCheckMany:
		for i := range int(arg % 16) {
			m.step(opBeginCheck, byte(len(m.conns)-1-i))
		}
	case opRegister:
		id := len(m.conns) + 1
		c := conn.New(uint64(id), id, time.Time{}, time.Time{}, 0)
		m.s.Register(c)
		want := m.next
		if n := len(m.free); n > 0 {
			want, m.free = m.free[n-1], m.free[:n-1]
		} else {
			m.next++
		}
		if c.Link().Index != want {
			m.fatalf("Register gave index %d, want %d", c.Link().Index, want)
		}
		m.conns = append(m.conns, &mconn{c: c, state: conn.InUse, lease: 1, index: want, registered: true})
	case opRelease:
		if x == nil {
			return
		}
		ok := m.s.Release(x.c, x.lease)
		want := x.state == conn.InUse
		if ok != want {
			m.fatalf("Release of conn %d (%v) = %v, want %v", x.c.ID(), x.state, ok, want)
		}
		if !ok {
			return
		}
		x.state = conn.Idle
		switch {
		case m.sticky && m.front == x:
		case m.front == nil, m.sticky && vacant(m.front):
			m.front = x
		default:
			m.stack = append(m.stack, x)
		}
	case opStaleRelease:
		if x == nil || x.lease < 2 {
			return
		}
		if m.s.Release(x.c, x.lease-1) {
			m.fatalf("Release of conn %d under an old lease succeeded", x.c.ID())
		}
	case opTake:
		m.take()
	case opClaimIdle:
		if x == nil {
			return
		}
		want := x.state == conn.Idle
		if got := x.c.ClaimIdle(); got != want {
			m.fatalf("ClaimIdle on %v = %v", x.state, got)
		}
		if want {
			x.state = conn.Retired
		}
	case opBeginCheck:
		if x == nil {
			return
		}
		want := x.state == conn.Idle
		if got := x.c.BeginCheck(); got != want {
			m.fatalf("BeginCheck on %v = %v", x.state, got)
		}
		if want {
			x.state = conn.Checking
		}
	case opEndCheck:
		if x == nil || (x.state != conn.Checking && x.state != conn.Detached) {
			return
		}
		lease, detached, ok := x.c.EndCheck()
		if !ok || detached != (x.state == conn.Detached) {
			m.fatalf("EndCheck on %v = (%d, %v, %v)", x.state, lease, detached, ok)
		}
		if detached {
			x.state, x.lease = conn.InUse, x.lease+1
			if lease != x.lease {
				m.fatalf("EndCheck lease %d, want %d", lease, x.lease)
			}
		} else {
			x.state = conn.Idle
		}
	case opRetireChecked:
		if x == nil || (x.state != conn.Checking && x.state != conn.Detached) {
			return
		}
		inSet, ok := x.c.RetireChecked()
		if !ok || inSet != (x.state == conn.Checking) {
			m.fatalf("RetireChecked on %v = (%v, %v)", x.state, inSet, ok)
		}
		x.state = conn.Retired
	case opDestroy, opHijack:
		if x == nil {
			return
		}
		want := x.state == conn.InUse
		var got bool
		if int(op)%numOps == opDestroy {
			got = x.c.Retire(x.lease)
		} else {
			got = x.c.Hijack(x.lease)
		}
		if got != want {
			m.fatalf("%s on %v = %v", opNames[int(op)%numOps], x.state, got)
		}
		if want {
			x.state = conn.Retired
			if int(op)%numOps == opHijack {
				x.state = conn.Hijacked
			}
		}
	case opForceRetire:
		if x == nil {
			return
		}
		was, ok := x.c.ForceRetire()
		want := x.state != conn.Retired && x.state != conn.Closed && x.state != conn.Hijacked
		if ok != want || was != x.state {
			m.fatalf("ForceRetire on %v = (%v, %v)", x.state, was, ok)
		}
		if ok {
			x.state = conn.Retired
		}
	case opClose:
		if x == nil || x.closed {
			return
		}
		switch x.state {
		case conn.Retired:
			x.c.MarkClosed()
			x.state, x.closed = conn.Closed, true
		case conn.Hijacked:
			x.c.MarkHijacked()
			x.closed = true
		}
	case opUnregister:
		if x == nil {
			return
		}
		dead := x.state.Dead()
		if !dead || !x.registered {
			func() {
				defer func() {
					if recover() == nil {
						m.fatalf("Unregister of a conn %v (registered %v) did not panic", x.state, x.registered)
					}
				}()
				m.s.Unregister(x.c)
			}()
			return
		}
		want := !m.inStack(x)
		if got := m.s.Unregister(x.c); got != want {
			m.fatalf("Unregister of a %v conn in the stack=%v: %v", x.state, !want, got)
		}
		if want {
			x.registered = false
			m.free = append(m.free, x.index)
		}
	case opSweep:
		// arg chooses keep: the pool's (idle or checking), or drop the
		// connections whose id has bit arg%3 set, live ones included.
		bit := arg % 4
		keep := func(st conn.State, id uint64) bool {
			if bit == 3 {
				return st == conn.Idle || st == conn.Checking
			}
			return id&(1<<bit) == 0
		}
		dropped := 0
		// A sticky front keeps a live connection whatever keep says (its P
		// or its holder may move it at any moment); only a dead one goes.
		if m.front != nil && !(m.sticky && !m.front.state.Dead()) && !keep(m.front.state, m.front.c.ID()) {
			m.front = nil
			dropped++
		}
		kept := m.stack[:0]
		for _, y := range m.stack {
			if keep(y.state, y.c.ID()) {
				kept = append(kept, y)
			} else {
				dropped++
			}
		}
		m.stack = kept
		got := m.s.Sweep(func(c *tconn) bool { return keep(c.State(), c.ID()) })
		if got != dropped {
			m.fatalf("Sweep dropped %d, want %d", got, dropped)
		}
	}
}

func (m *model) take() {
	var want *mconn
	skips := 0
	if m.sticky && m.front != nil {
		switch y := m.front; y.state {
		case conn.Idle:
			y.state, y.lease = conn.InUse, y.lease+1 // the front keeps pointing at it
			want = y
		case conn.Checking:
			y.state, m.front = conn.Detached, nil // its watcher puts it back
			skips++
		case conn.Retired, conn.Closed, conn.Hijacked:
			m.front = nil
		}
	}
	for want == nil && skips < queue.MaxSkips {
		var y *mconn
		switch {
		case m.front != nil && !m.sticky:
			y, m.front = m.front, nil
		case len(m.stack) > 0:
			y, m.stack = m.stack[len(m.stack)-1], m.stack[:len(m.stack)-1]
		}
		if y == nil {
			break
		}
		if y.state == conn.Idle {
			y.state, y.lease = conn.InUse, y.lease+1
			want = y
			break
		}
		if y.state == conn.Checking {
			y.state = conn.Detached
			skips++
		}
	}
	c, lease, ok := m.s.Take()
	switch {
	case want == nil && ok:
		m.fatalf("Take returned conn %d, want none", c.ID())
	case want != nil && !ok:
		m.fatalf("Take found none, want conn %d", want.c.ID())
	case want != nil && (c != want.c || lease != want.lease):
		m.fatalf("Take returned conn %d lease %d, want conn %d lease %d", c.ID(), lease, want.c.ID(), want.lease)
	}
}

// check compares everything observable with the model.
func (m *model) check() {
	m.t.Helper()
	if n := m.s.Len(); n != m.size() {
		m.fatalf("Len = %d, want %d", n, m.size())
	}
	if want := int64(m.size()); m.sticky {
		if n := m.s.Count(); n != 0 {
			m.fatalf("Count without counting = %d, want 0", n)
		}
	} else if n := m.s.Count(); n != want {
		m.fatalf("Count = %d, want %d", n, want)
	}
	for _, x := range m.conns {
		lease, st := x.c.Load()
		if st != x.state || lease != x.lease {
			m.fatalf("conn %d is %v under lease %d, want %v under %d", x.c.ID(), st, lease, x.state, x.lease)
		}
		if in := x.c.Link().In.Load(); in != m.inStack(x) {
			m.fatalf("conn %d has In=%v, in the stack=%v", x.c.ID(), in, !in)
		}
	}
}

// FuzzIdleSetAgainstModel drives the set from one goroutine on one P with
// operations decoded from the input (two bytes each: the operation and the
// connection it applies to) and compares every result, the order of Take
// included, with an exact model. Run: go test -fuzz FuzzIdleSetAgainstModel ./queue/
func FuzzIdleSetAgainstModel(f *testing.F) {
	prev := runtime.GOMAXPROCS(1) // one P: one front, no migration between calls
	f.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	f.Add([]byte{opRegister, 0, opRelease, 0, opTake, 0, opRelease, 0})
	f.Add([]byte{opRegister, 0, opRegister, 0, opRegister, 0, opRelease, 0, opRelease, 1, opRelease, 2,
		opClaimIdle, 1, opBeginCheck, 2, opTake, 0, opTake, 0, opEndCheck, 2, opRelease, 2, opTake, 0})
	f.Add([]byte{opRegister, 0, opRegister, 0, opRelease, 0, opRelease, 1, opStaleRelease, 1, opClaimIdle, 1,
		opClose, 1, opUnregister, 1, opSweep, 3, opUnregister, 1, opRegister, 0, opRelease, 2, opTake, 0})
	f.Add([]byte{opRegister, 0, opRegister, 0, opRegister, 0, opRelease, 0, opRelease, 1, opRelease, 2,
		opBeginCheck, 1, opRetireChecked, 1, opForceRetire, 2, opSweep, 3, opDestroy, 0, opTake, 0, opDestroy, 0,
		opClose, 0, opUnregister, 0, opHijack, 1, opUnregister, 1})
	// More connections under check than one Take passes over.
	f.Add([]byte{opFill, 15, opTake, 0, opCheckMany, 10, opTake, 0, opTake, 0, opEndCheck, 15, opTake, 0})
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 0))
		data := make([]byte, 600)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		// Bias toward registering and releasing early so the set fills.
		for i := 0; i < 40; i += 4 {
			data[i], data[i+2], data[i+3] = opRegister, opRelease, byte(i/4)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		for _, sticky := range []bool{false, true} {
			m := &model{t: t, s: queue.New[int](!sticky), sticky: sticky}
			for i := 0; i+1 < len(data); i += 2 {
				m.step(data[i], data[i+1])
				m.check()
				if t.Failed() {
					t.Logf("sticky=%v", sticky)
					return
				}
			}
			// Drain: Take order is the model's to the end.
			for n := -1; m.size() > 0 && m.size() != n; {
				n = m.size()
				m.take()
				m.check()
			}
			m.take()
		}
	})
}
