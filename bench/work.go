package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// FakeConn is the connection of the in-memory scenarios: a small heap object,
// as a real connection would be. Work runs on it, so that what a holder does
// with its connection writes to the connection (as a real client writes its
// buffers) and cannot be optimised away.
type FakeConn struct {
	ID int64
	// Uses counts Work calls; Sum is the work's running state. Only the
	// connection's holder touches them.
	Uses int64
	Sum  uint64
}

// FakeSpec returns a Spec of size FakeConns; Dial never fails or blocks.
func FakeSpec(size int) Spec[*FakeConn] {
	var ids atomic.Int64
	return Spec[*FakeConn]{
		Size: size,
		Dial: func(context.Context) (*FakeConn, error) { return &FakeConn{ID: ids.Add(1)}, nil },
	}
}

// Work does n iterations of busy work with the connection: a xorshift chain
// seeded by c.Sum, stored back into c.Sum. The result depends on every
// iteration and lands in the heap, so the compiler cannot drop the loop, and
// no shared variable is written (a shared sink would bounce one cache line
// between the holders and add contention the scenario does not ask for).
func (c *FakeConn) Work(n int) {
	c.Sum = spin(c.Sum|1, n)
	c.Uses++
}

//go:noinline
func spin(x uint64, n int) uint64 {
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// Calibration is what the scenarios need to know about this machine's speed,
// measured once per process by Calibrate.
type Calibration struct {
	// IterNs is the cost of one iteration of Work, in ns.
	IterNs float64
	// Iters is the number of Work iterations that take WorkTarget (~300 ns).
	Iters int
	// ClockNs is the cost of one clock read (Now), in ns.
	ClockNs float64
	// ClockIters is the number of Work iterations that cost as much as one
	// clock read: a measured op reads the clock once while it holds its
	// connection, and does that many fewer iterations, so that its hold time
	// stays the same as an unmeasured op's.
	ClockIters int
}

// WorkTarget is how long a holder works with its connection in S3 and S5.
const WorkTarget = 300 * time.Nanosecond

// Calibrate returns the process's calibration, measuring it on first use
// (about 20 ms). Each figure is the fastest of several probes, so a probe
// slowed by another process does not inflate it.
var Calibrate = sync.OnceValue(func() Calibration {
	const probe = 1 << 18
	best := time.Duration(1 << 62)
	for range 7 {
		t := time.Now()
		x := spin(1, probe)
		best = min(best, time.Since(t))
		clockSink.Add(int64(x)) // keeps the probe's result alive
	}
	iterNs := float64(best) / probe

	const reads = 1 << 14
	bestClock := time.Duration(1 << 62)
	var sink int64
	for range 7 {
		t := time.Now()
		for range reads {
			sink += Now()
		}
		bestClock = min(bestClock, time.Since(t))
	}
	clockSink.Store(sink)
	clockNs := float64(bestClock) / reads
	c := Calibration{
		IterNs:  iterNs,
		Iters:   max(int(float64(WorkTarget)/iterNs), 1),
		ClockNs: clockNs,
	}
	c.ClockIters = min(int(clockNs/iterNs+0.5), c.Iters)
	return c
})

// clockSink keeps the calibration probes' results, so that they are computed.
var clockSink atomic.Int64

// epoch is the origin of Now.
var epoch = time.Now()

// Now returns monotonic nanoseconds since the process's epoch: one read of
// the monotonic clock (time.Since of a time with a monotonic reading), about
// two thirds of a time.Now, which also reads the wall clock.
func Now() int64 { return int64(time.Since(epoch)) }
