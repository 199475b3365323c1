package queue

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool/conn"
)

// The benchmarks compare the idle set with the two obvious alternatives, a
// mutex around a slice (LIFO) and a buffered channel (FIFO), on the same
// patterns and through the same interface, with the same connection state
// CASes, so that their ratios mean something. Run:
//
//	go test -run '^$' -bench . -benchmem -cpu 1,2 -count 5 ./queue/ | tee new.txt
//	benchstat new.txt
//
// Patterns:
//   - serial: one goroutine releases its connection and takes one back
//     (the idle set's front path);
//   - two-held: one goroutine holds two, releases both, takes two (for the
//     idle set: one front pair and one stack pair; ns/op is per pair);
//   - parallel: b.RunParallel, each goroutine releases and takes;
//   - handoff: one goroutine only releases, another only takes, and sends the
//     connection back over a ring (for the idle set: the taker's front is
//     always empty, so every Take pops the stack or steals the releaser's
//     front).
// BenchmarkStackOnly runs serial and parallel on an idle set without fronts
// (every operation on the shared stack, as for Ps beyond the fronts).
//
// Besides ns/op (wall clock), each benchmark reports cpu-ns/op: the process's
// CPU time (user+system, every thread) per operation. On a shared machine the
// wall clock also counts the time the benchmark's threads waited for a core;
// CPU time does not, so its ratios are steadier there. For the parallel and
// handoff patterns it is the CPU spent per operation across all goroutines
// (spinning included), not throughput.

type cset interface {
	Release(c *conn.Conn[int], lease uint64) bool
	Take() (*conn.Conn[int], uint64, bool)
	Register(c *conn.Conn[int])
}

// mutexSet is a LIFO slice under a mutex: the simplest correct idle list.
type mutexSet struct {
	mu   sync.Mutex
	list []*conn.Conn[int]
}

func (m *mutexSet) Register(*conn.Conn[int]) {}

func (m *mutexSet) Release(c *conn.Conn[int], lease uint64) bool {
	if !c.Release(lease) {
		return false
	}
	m.mu.Lock()
	m.list = append(m.list, c)
	m.mu.Unlock()
	return true
}

func (m *mutexSet) Take() (*conn.Conn[int], uint64, bool) {
	for {
		m.mu.Lock()
		n := len(m.list)
		if n == 0 {
			m.mu.Unlock()
			return nil, 0, false
		}
		c := m.list[n-1]
		m.list[n-1] = nil
		m.list = m.list[:n-1]
		m.mu.Unlock()
		if lease, _, ok := c.Acquire(); ok {
			return c, lease, true
		}
	}
}

// chanSet is a buffered channel (FIFO), sized so that a send never blocks.
type chanSet struct{ ch chan *conn.Conn[int] }

func (s *chanSet) Register(*conn.Conn[int]) {}

func (s *chanSet) Release(c *conn.Conn[int], lease uint64) bool {
	if !c.Release(lease) {
		return false
	}
	s.ch <- c
	return true
}

func (s *chanSet) Take() (*conn.Conn[int], uint64, bool) {
	for {
		select {
		case c := <-s.ch:
			if lease, _, ok := c.Acquire(); ok {
				return c, lease, true
			}
		default:
			return nil, 0, false
		}
	}
}

const benchConns = 256

var impls = []struct {
	name string
	make func() cset
}{
	{"idle", func() cset { return New[int](false) }},
	{"mutex", func() cset { return &mutexSet{} }},
	{"chan", func() cset { return &chanSet{ch: make(chan *conn.Conn[int], benchConns)} }},
}

// held connections, born held under lease 1, registered in s.
func benchHeld(s cset, n int) []bheld {
	hs := make([]bheld, n)
	for i := range hs {
		c := conn.New(uint64(i+1), i, time.Time{}, time.Time{}, 0)
		s.Register(c)
		hs[i] = bheld{c, 1}
	}
	return hs
}

type bheld struct {
	c     *conn.Conn[int]
	lease uint64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports cpu-ns/op when the benchmark function returns.
func cpuMeter(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func mustTake(b *testing.B, s cset) bheld {
	c, lease, ok := s.Take()
	if !ok {
		b.Fatal("Take found nothing")
	}
	return bheld{c, lease}
}

func BenchmarkReleaseTake(b *testing.B) {
	for _, impl := range impls {
		b.Run("serial/"+impl.name, func(b *testing.B) { benchSerial(b, impl.make()) })
	}
	for _, impl := range impls {
		b.Run("two-held/"+impl.name, func(b *testing.B) {
			s := impl.make()
			hs := benchHeld(s, 2)
			b.ReportAllocs()
			defer cpuMeter(b)()
			for b.Loop() {
				s.Release(hs[0].c, hs[0].lease)
				s.Release(hs[1].c, hs[1].lease)
				hs[0] = mustTake(b, s)
				hs[1] = mustTake(b, s)
			}
		})
	}
	for _, impl := range impls {
		b.Run("parallel/"+impl.name, func(b *testing.B) { benchParallel(b, impl.make()) })
	}
	for _, impl := range impls {
		b.Run("handoff/"+impl.name, func(b *testing.B) { benchHandoff(b, impl.make()) })
	}
}

func BenchmarkStackOnly(b *testing.B) {
	stackOnly := func() cset {
		s := New[int](false)
		s.locals = nil // no fronts: every operation goes through the stack
		return s
	}
	b.Run("serial", func(b *testing.B) { benchSerial(b, stackOnly()) })
	b.Run("parallel", func(b *testing.B) { benchParallel(b, stackOnly()) })
}

// BenchmarkCounting is the serial pattern with the idle count on (MaxIdle set).
func BenchmarkCounting(b *testing.B) {
	benchSerial(b, New[int](true))
}

func benchSerial(b *testing.B, s cset) {
	h := benchHeld(s, 1)[0]
	b.ReportAllocs()
	defer cpuMeter(b)()
	for b.Loop() {
		s.Release(h.c, h.lease)
		h = mustTake(b, s)
	}
}

func benchParallel(b *testing.B, s cset) {
	hs := benchHeld(s, benchConns)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuMeter(b)()
	b.RunParallel(func(pb *testing.PB) {
		h := hs[next.Add(1)-1]
		for pb.Next() {
			s.Release(h.c, h.lease)
			for {
				c, lease, ok := s.Take()
				if ok {
					h = bheld{c, lease}
					break
				}
			}
		}
		s.Release(h.c, h.lease)
	})
}

// ring carries taken connections back from the taker to the releaser: one
// writer, one reader, never full (it holds every connection).
type ring struct {
	buf  [benchConns]bheld
	_    [64]byte
	head atomic.Uint64 // next to read; reader only
	_    [56]byte
	tail atomic.Uint64 // next to write; writer only
}

func (r *ring) put(h bheld) {
	t := r.tail.Load()
	r.buf[t%benchConns] = h
	r.tail.Store(t + 1)
}

func (r *ring) get() (bheld, bool) {
	h := r.head.Load()
	if h == r.tail.Load() {
		return bheld{}, false
	}
	x := r.buf[h%benchConns]
	r.head.Store(h + 1)
	return x, true
}

// benchHandoff: the benchmark goroutine only releases; a second goroutine
// only takes (b.N connections in all) and hands each back over a ring.
func benchHandoff(b *testing.B, s cset) {
	hs := benchHeld(s, 16)
	r := new(ring)
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuMeter(b)()
	n := b.N
	go func() {
		defer close(done)
		for got := 0; got < n; {
			c, lease, ok := s.Take()
			if !ok {
				runtime.Gosched()
				continue
			}
			r.put(bheld{c, lease})
			got++
		}
	}()
	for sent := 0; sent < n; {
		if len(hs) == 0 {
			h, ok := r.get()
			if !ok {
				runtime.Gosched()
				continue
			}
			hs = append(hs, h)
		}
		h := hs[len(hs)-1]
		hs = hs[:len(hs)-1]
		s.Release(h.c, h.lease)
		sent++
	}
	<-done
}
