package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/puddle/v2"

	"github.com/tidepool-go/tidepool"
)

// The scenarios. Every pool runs as a sub-benchmark named pool=<name> of one
// Benchmark per scenario (after the scenario's own parameters, such as S2's
// gpp=<goroutines per GOMAXPROCS>), so that `benchstat -col /pool` sets them
// side by side and internal/results can parse them. The baseline a goal names
// runs first in each: puddle, or the client's own pool in S8.
//
// Sizes that depend on GOMAXPROCS are computed inside the leaf benchmark: with
// `-cpu 1,2` the testing package sets GOMAXPROCS for each leaf run, while the
// parent Benchmark function runs only once.

// sub runs body against a pool made by mk from spec() as sub-benchmark
// pool=name, and closes the pool afterwards. spec is called in the leaf, under
// the GOMAXPROCS of that run.
func sub[R, H any](b *testing.B, name string, mk func(context.Context, Spec[R]) (Pool[R, H], error), spec func() Spec[R], body func(*testing.B, Pool[R, H])) {
	b.Run("pool="+name, func(b *testing.B) {
		p, err := mk(context.Background(), spec())
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		defer p.Close()
		body(b, p)
	})
}

// fakes returns a spec function for n FakeConns.
func fakes(n int) func() Spec[*FakeConn] { return func() Spec[*FakeConn] { return FakeSpec(n) } }

// S1: one goroutine, pool of 8, acquire+release.
func BenchmarkS1Single(b *testing.B) {
	spec := fakes(8)
	sub(b, "puddle", NewPuddle, spec, s1)
	sub(b, "tidepool", NewTidepool, spec, s1)
	sub(b, "sql", NewSQLPool, spec, s1)
	sub(b, "chan", NewChanPool, spec, s1)
	sub(b, "mutex", NewMutexPool, spec, s1)
}

func s1[R, H any](b *testing.B, p Pool[R, H]) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, err := p.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Put(h)
	}
}

// S2: parallel acquire+release with as many connections as goroutines, so
// that nobody waits: GPP·GOMAXPROCS goroutines (b.SetParallelism) for each GPP
// in s2GPP, as sub-benchmarks gpp=<GPP>.
var s2GPP = []int{1, 4, 16}

func BenchmarkS2Parallel(b *testing.B) {
	for _, k := range s2GPP {
		b.Run(fmt.Sprintf("gpp=%d", k), func(b *testing.B) {
			spec := func() Spec[*FakeConn] { return FakeSpec(k * runtime.GOMAXPROCS(0)) }
			sub(b, "puddle", NewPuddle, spec, func(b *testing.B, p Pool[*FakeConn, *puddle.Resource[*FakeConn]]) { s2(b, p, k) })
			sub(b, "tidepool", NewTidepool, spec, func(b *testing.B, p Pool[*FakeConn, tidepool.Conn[*FakeConn]]) { s2(b, p, k) })
			sub(b, "sql", NewSQLPool, spec, func(b *testing.B, p Pool[*FakeConn, *sql.Conn]) { s2(b, p, k) })
			sub(b, "chan", NewChanPool, spec, func(b *testing.B, p Pool[*FakeConn, *FakeConn]) { s2(b, p, k) })
			sub(b, "mutex", NewMutexPool, spec, func(b *testing.B, p Pool[*FakeConn, *FakeConn]) { s2(b, p, k) })
		})
	}
}

func s2[R, H any](b *testing.B, p Pool[R, H], gpp int) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(gpp)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := p.Get(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Put(h)
		}
	})
}

// S3: 64 goroutines on 4 connections, each holding its connection for ~300 ns
// of work on it (FakeConn.Work, calibrated). Throughput; fairness (Jain's index
// over the ops each goroutine completed); percentiles of the wait in Get,
// measured on one op in s3SampleEvery of each goroutine (two clock reads; the
// one inside the hold replaces as much work, see Calibration.ClockIters).
const (
	s3Goroutines  = 64
	s3Conns       = 4
	s3SampleEvery = 16
)

func BenchmarkS3Contended(b *testing.B) {
	Calibrate()
	spec := fakes(s3Conns)
	sub(b, "puddle", NewPuddle, spec, s3)
	sub(b, "tidepool", NewTidepool, spec, s3)
	sub(b, "sql", NewSQLPool, spec, s3)
	sub(b, "chan", NewChanPool, spec, s3)
	sub(b, "mutex", NewMutexPool, spec, s3)
}

// S3Parked is S3 with every holder yielding its CPU once during its hold
// (runtime.Gosched after the work), as a holder waiting on I/O would. In S3
// the holders never stop running, so with fewer CPUs than connections the
// connections are rarely all taken and a pool that never parks a goroutine
// while one is idle leaves who runs to the scheduler's time slices; here the
// connections run out and the waiters' order shows. Not one of issue 8's
// goals: the evidence behind the S3 fairness reason in reasons.md.
func BenchmarkS3Parked(b *testing.B) {
	Calibrate()
	spec := fakes(s3Conns)
	sub(b, "puddle", NewPuddle, spec, s3Parked)
	sub(b, "tidepool", NewTidepool, spec, s3Parked)
	sub(b, "sql", NewSQLPool, spec, s3Parked)
	sub(b, "chan", NewChanPool, spec, s3Parked)
	sub(b, "mutex", NewMutexPool, spec, s3Parked)
}

func s3[H any](b *testing.B, p Pool[*FakeConn, H]) { s3Run(b, p, false) }

func s3Parked[H any](b *testing.B, p Pool[*FakeConn, H]) { s3Run(b, p, true) }

func s3Run[H any](b *testing.B, p Pool[*FakeConn, H], park bool) {
	ctx := context.Background()
	cal := Calibrate()
	iters, measured := cal.Iters, cal.Iters-cal.ClockIters
	res := Drive(b, s3Goroutines, s3SampleEvery, func(w *Worker) bool {
		if !w.Sampled() {
			h, err := p.Get(ctx)
			if err != nil {
				b.Error(err)
				return false
			}
			p.Value(h).Work(iters)
			if park {
				runtime.Gosched()
			}
			p.Put(h)
			return true
		}
		t0 := Now()
		h, err := p.Get(ctx)
		t1 := Now()
		if err != nil {
			b.Error(err)
			return false
		}
		p.Value(h).Work(measured)
		if park {
			runtime.Gosched()
		}
		p.Put(h)
		w.Record(t1 - t0)
		return true
	})
	q := Percentiles(res.Samples, 0.50, 0.99, 0.999)
	b.ReportMetric(float64(res.OK)/res.Elapsed.Seconds(), "ops/s")
	b.ReportMetric(q[0], "p50-wait-ns")
	b.ReportMetric(q[1], "p99-wait-ns")
	b.ReportMetric(q[2], "p99.9-wait-ns")
	b.ReportMetric(Jain(res.PerG), "fairness")
	b.ReportMetric(float64(iters)*cal.IterNs, "work-ns")
}

// S4: real sockets. A loopback echo server; a pool of 8 connections shared by
// 32 goroutines, each op a 64-byte write and read. The goal compares tidepool
// with the best hand-written pool over the same 8 connections (chan, mutex);
// dial-per-request (no pool) is the floor.
const (
	s4Goroutines = 32
	s4Conns      = 8
	s4Payload    = 64
)

func BenchmarkS4Sockets(b *testing.B) {
	srv, err := StartEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	spec := func() Spec[net.Conn] { return EchoSpec(srv.Addr(), s4Conns) }
	sub(b, "puddle", NewPuddle, spec, s4)
	sub(b, "tidepool", NewTidepool, spec, s4)
	sub(b, "sql", NewSQLPool, spec, s4)
	sub(b, "chan", NewChanPool, spec, s4)
	sub(b, "mutex", NewMutexPool, spec, s4)
	b.Run("pool=dial-per-request", func(b *testing.B) { s4DialPerRequest(b, srv.Addr()) })
}

func s4Bufs() [][]byte {
	bufs := make([][]byte, s4Goroutines)
	for i := range bufs {
		bufs[i] = make([]byte, s4Payload)
	}
	return bufs
}

func reportThroughput(b *testing.B, res LoadResult) {
	b.ReportMetric(float64(res.OK)/res.Elapsed.Seconds(), "ops/s")
}

func s4[H any](b *testing.B, p Pool[net.Conn, H]) {
	ctx := context.Background()
	bufs := s4Bufs()
	res := Drive(b, s4Goroutines, 0, func(w *Worker) bool {
		h, err := p.Get(ctx)
		if err != nil {
			b.Error(err)
			return false
		}
		err = EchoRoundTrip(p.Value(h), bufs[w.G])
		p.Put(h)
		if err != nil {
			b.Error(err)
			return false
		}
		return true
	})
	reportThroughput(b, res)
}

func s4DialPerRequest(b *testing.B, addr string) {
	bufs := s4Bufs()
	res := Drive(b, s4Goroutines, 0, func(w *Worker) bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return false
		}
		// Reset instead of FIN: no TIME_WAIT, so a long run cannot run out of
		// ephemeral ports.
		_ = c.(*net.TCPConn).SetLinger(0)
		err = EchoRoundTrip(c, bufs[w.G])
		_ = c.Close()
		if err != nil {
			b.Error(err)
			return false
		}
		return true
	})
	reportThroughput(b, res)
}

// S5: cancellation churn. 32 goroutines on 4 connections: the even ones
// acquire without a deadline of their own, the odd ones under contexts that
// expire after 5 µs; whoever gets a connection works ~300 ns on it. Every pool
// runs exactly this op; ok-ops/s counts the successful ones. Afterwards lost
// counts the connections that cannot be acquired within 1 s each: gone to a
// cancelled Get. A lost connection is reported, not fatal, so that the
// results show it; the even goroutines wait under a run-wide watchdog context,
// so that a pool that lost all its connections ends the run instead of hanging
// it (stalled counts those Gets).
const (
	s5Goroutines = 32
	s5Conns      = 4
	s5Timeout    = 5 * time.Microsecond
	s5Watchdog   = 2 * time.Minute
)

func BenchmarkS5CancelChurn(b *testing.B) {
	Calibrate()
	spec := fakes(s5Conns)
	sub(b, "puddle", NewPuddle, spec, s5)
	sub(b, "tidepool", NewTidepool, spec, s5)
	sub(b, "sql", NewSQLPool, spec, s5)
	sub(b, "chan", NewChanPool, spec, s5)
	sub(b, "mutex", NewMutexPool, spec, s5)
}

func s5[H any](b *testing.B, p Pool[*FakeConn, H]) {
	watchdog, stop := context.WithTimeout(context.Background(), s5Watchdog)
	defer stop()
	iters := Calibrate().Iters
	var expired, stalled atomic.Int64
	res := Drive(b, s5Goroutines, 0, func(w *Worker) bool {
		ctx, cancel := watchdog, context.CancelFunc(nil)
		if w.G%2 == 1 {
			ctx, cancel = context.WithTimeout(watchdog, s5Timeout)
		}
		h, err := p.Get(ctx)
		if cancel != nil {
			cancel()
		}
		if err != nil {
			if w.G%2 == 1 {
				expired.Add(1)
			} else {
				stalled.Add(1)
			}
			return false
		}
		p.Value(h).Work(iters)
		p.Put(h)
		return true
	})
	lost := s5Conns - acquirable(p, s5Conns, time.Second)
	b.ReportMetric(float64(res.OK)/res.Elapsed.Seconds(), "ok-ops/s")
	b.ReportMetric(float64(expired.Load())/float64(b.N), "expired/op")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(stalled.Load()), "stalled")
	if lost != 0 || stalled.Load() != 0 {
		b.Logf("lost %d of %d connections (only %d acquirable within 1s each after the churn); %d Gets without a deadline of their own stalled until the %v watchdog",
			lost, s5Conns, s5Conns-lost, stalled.Load(), s5Watchdog)
	}
}

// acquirable acquires up to n connections at once, each within timeout, and
// returns how many it got; it releases them all afterwards.
func acquirable[R, H any](p Pool[R, H], n int, timeout time.Duration) int {
	held := make([]H, 0, n)
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		h, err := p.Get(ctx)
		cancel()
		if err != nil {
			break
		}
		held = append(held, h)
	}
	for _, h := range held {
		p.Put(h)
	}
	return len(held)
}

// S6: resize under load. A pool of max 4, all held, 32 Gets waiting; Resize to
// 36 and time until all 32 are served. Dials sleep s6DialLatency.
const (
	s6Start       = 4
	s6Waiters     = 32
	s6DialLatency = time.Millisecond
	// s6GiveUp bounds how long a waiter waits: pools that cannot grow for
	// waiters leave them unserved, and that is a result, not a hang.
	s6GiveUp = 250 * time.Millisecond
)

func BenchmarkS6ResizeUnderLoad(b *testing.B) {
	spec := FakeSpec(s6Start)
	dial := spec.Dial
	var slowest atomic.Int64 // the slowest dial since the last reset, ns
	spec.Dial = func(ctx context.Context) (*FakeConn, error) {
		t := time.Now()
		time.Sleep(s6DialLatency)
		d := int64(time.Since(t))
		for {
			m := slowest.Load()
			if d <= m || slowest.CompareAndSwap(m, d) {
				break
			}
		}
		return dial(ctx)
	}
	s6 := func(b *testing.B, mk func(context.Context, Spec[*FakeConn]) (Pool[*FakeConn, any], error)) {
		s6Body(b, mk, spec, &slowest)
	}
	b.Run("pool=puddle", func(b *testing.B) {
		b.Skip("puddle cannot grow: Config.MaxSize is fixed at NewPool and there is no setter")
	})
	b.Run("pool=tidepool", func(b *testing.B) { s6(b, erase(NewTidepool[*FakeConn])) })
	b.Run("pool=sql", func(b *testing.B) { s6(b, erase(NewSQLPool[*FakeConn])) })
	b.Run("pool=chan", func(b *testing.B) { b.Skip("fixed size by construction") })
	b.Run("pool=mutex", func(b *testing.B) { b.Skip("fixed size by construction") })
}

// erased makes a Pool[R, any] of a Pool[R, H], for the scenarios that hold
// many handles and are not about per-op cost.
type erased[R, H any] struct{ p Pool[R, H] }

func (e erased[R, H]) Get(ctx context.Context) (any, error) { return e.p.Get(ctx) }
func (e erased[R, H]) Put(h any)                            { e.p.Put(h.(H)) }
func (e erased[R, H]) Value(h any) R                        { return e.p.Value(h.(H)) }
func (e erased[R, H]) Close()                               { e.p.Close() }
func (e erased[R, H]) inner() any                           { return e.p }

func erase[R, H any](mk func(context.Context, Spec[R]) (Pool[R, H], error)) func(context.Context, Spec[R]) (Pool[R, any], error) {
	return func(ctx context.Context, spec Spec[R]) (Pool[R, any], error) {
		p, err := mk(ctx, spec)
		if err != nil {
			return nil, err
		}
		return erased[R, H]{p}, nil
	}
}

func s6Body(b *testing.B, mk func(context.Context, Spec[*FakeConn]) (Pool[*FakeConn, any], error), spec Spec[*FakeConn], slowest *atomic.Int64) {
	var sumServe, sumBeyond, worst time.Duration
	served := 0
	for i := 0; i < b.N; i++ {
		p, err := mk(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		inner := p.(interface{ inner() any }).inner()
		rs, wc := inner.(Resizer), inner.(WaitCounter)
		var held []any
		for range s6Start {
			h, err := p.Get(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, h)
		}
		got := make([]any, s6Waiters)
		at := make([]time.Time, s6Waiters)
		var wg sync.WaitGroup
		for w := range s6Waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), s6GiveUp)
				defer cancel()
				if h, err := p.Get(ctx); err == nil {
					at[w], got[w] = time.Now(), h
				}
			}()
		}
		for deadline := time.Now().Add(5 * time.Second); wc.Waiting() < s6Waiters; {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d Gets are waiting after 5s", wc.Waiting(), s6Waiters)
			}
			runtime.Gosched()
		}
		slowest.Store(0)
		t0 := time.Now()
		if err := rs.Resize(s6Start + s6Waiters); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		n, last := 0, t0
		for w := range s6Waiters {
			if got[w] != nil {
				n++
				held = append(held, got[w])
				if at[w].After(last) {
					last = at[w]
				}
			}
		}
		served += n
		if n == s6Waiters {
			d := last.Sub(t0)
			sumServe += d
			sumBeyond += d - time.Duration(slowest.Load())
			worst = max(worst, d)
		}
		for _, h := range held {
			p.Put(h)
		}
		p.Close()
	}
	b.ReportMetric(float64(served)/float64(b.N*s6Waiters), "served-frac")
	if full := served / s6Waiters; served == b.N*s6Waiters && full > 0 {
		b.ReportMetric(float64(sumServe)/float64(b.N), "serve-ns")
		b.ReportMetric(float64(sumServe)/float64(b.N)-float64(s6DialLatency), "beyond-dial-ns")
		b.ReportMetric(float64(sumBeyond)/float64(b.N), "beyond-slowest-dial-ns")
		b.ReportMetric(float64(worst), "serve-max-ns")
	} else {
		b.Logf("served %d of %d waiters within %v after the resize: this pool does not dial for waiters when its limit rises",
			served, b.N*s6Waiters, s6GiveUp)
	}
}

// S7: memory per idle connection, at 10,000 connections. tidepool gets a Check
// and a MaxLifetime, so that every connection has its watcher goroutine.
const s7Conns = 10_000

func BenchmarkS7IdleMemory(b *testing.B) {
	watched := TidepoolWith(func(c *tidepool.Config[*FakeConn]) {
		c.Check = func(context.Context, *FakeConn) error { return nil }
		c.HealthInterval = time.Hour
		c.MaxLifetime = time.Hour
	})
	b.Run("pool=puddle", func(b *testing.B) { s7(b, erase(NewPuddle[*FakeConn])) })
	b.Run("pool=tidepool", func(b *testing.B) { s7(b, erase(watched)) })
	b.Run("pool=sql", func(b *testing.B) { s7(b, erase(NewSQLPool[*FakeConn])) })
	b.Run("pool=chan", func(b *testing.B) { s7(b, erase(NewChanPool[*FakeConn])) })
	b.Run("pool=mutex", func(b *testing.B) { s7(b, erase(NewMutexPool[*FakeConn])) })
}

func inuse() (bytes uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

func s7(b *testing.B, mk func(context.Context, Spec[*FakeConn]) (Pool[*FakeConn, any], error)) {
	var sum float64
	var gs int
	for i := 0; i < b.N; i++ {
		spec := FakeSpec(s7Conns)
		before, g0 := inuse()
		p, err := mk(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		after, g1 := inuse()
		sum += (float64(after) - float64(before)) / s7Conns
		gs = g1 - g0
		p.Close()
	}
	b.ReportMetric(sum/float64(b.N), "B/idle-conn")
	b.ReportMetric(float64(gs)/s7Conns, "goroutines/conn")
}
