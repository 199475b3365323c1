package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Worker is one goroutine of Drive: its index, its counters and its samples.
// Only that goroutine touches it while the ops run (Drive reads it after they
// have all returned), and each Worker sits on cache lines of its own, so that
// counting costs no cross-core traffic.
type Worker struct {
	// G is the goroutine's index, 0 ≤ G < the number of goroutines.
	G int
	// Sums are two accumulators for the scenario's own use (S8 adds the time
	// spent in Get and in Put); Drive adds them up over the workers.
	Sums [2]int64

	ops, ok int64
	mask    int64   // sample when ops&mask == 0; -1: never
	buf     []int64 // the current chunk of samples, filled up to len
	arena   *arena
	_       [128]byte // keeps the next Worker's fields off this one's lines (and their prefetch pair)
}

// Sampled reports whether the op about to run is one to measure: every
// sampleEvery-th op of this worker, starting with its first. It costs a mask
// and a compare, and depends only on the worker's own op count, so which ops
// are measured does not depend on how the pool behaves.
func (w *Worker) Sampled() bool { return w.mask >= 0 && w.ops&w.mask == 0 }

// Record keeps one sample (a wait or a latency, in ns; any value but
// math.MinInt64, which marks an empty slot). The storage is preallocated
// before the timer starts and claimed in chunks, so Record never allocates and
// workers never share a cache line.
func (w *Worker) Record(v int64) {
	if len(w.buf) == cap(w.buf) {
		w.buf = w.arena.chunk()
	}
	w.buf = append(w.buf, v)
}

// sampleChunk is how many samples a worker claims from the arena at once:
// 4 KiB, so that chunks of different workers share no cache line.
const sampleChunk = 512

// arena is the preallocated storage of a Drive's samples, every slot empty
// (math.MinInt64) until a worker records into it.
type arena struct {
	buf  []int64
	next atomic.Int64
}

func newArena(n int) *arena {
	a := &arena{buf: make([]int64, n)}
	for i := range a.buf {
		a.buf[i] = math.MinInt64
	}
	return a
}

// samples returns the recorded values: the claimed chunks without their empty
// tails.
func (a *arena) samples() []int64 {
	var out []int64
	for _, v := range a.buf[:min(a.next.Load(), int64(len(a.buf)))] {
		if v != math.MinInt64 {
			out = append(out, v)
		}
	}
	return out
}

func (a *arena) chunk() []int64 {
	i := a.next.Add(sampleChunk) - sampleChunk
	if i+sampleChunk > int64(len(a.buf)) {
		panic("bench: sample arena exhausted (more samples than Drive sized it for)")
	}
	return a.buf[i : i : i+sampleChunk]
}

// LoadResult is what Drive measured.
type LoadResult struct {
	Elapsed time.Duration
	// PerG counts the ops each goroutine did, successful or not.
	PerG []int64
	// OK counts the ops that reported success.
	OK int64
	// Samples holds what the ops recorded, in no particular order.
	Samples []int64
	// Sums adds up the workers' Sums.
	Sums [2]int64
}

// maxBatch bounds how many ops a goroutine claims at once from the shared
// budget.
const maxBatch = 64

// Drive runs b.N ops over g goroutines, timing only the ops. op is called with
// the goroutine's Worker and reports whether the op succeeded; it measures what
// it wants on the ops for which w.Sampled() is true, one in sampleEvery (a
// power of two; 0: none), and keeps the result with w.Record.
//
// The goroutines share the budget of b.N ops: each claims a batch of up to
// maxBatch ops at a time from one atomic counter (one shared write per batch,
// not per op), so a goroutine that gets its connection more often does more of
// the ops, and PerG shows how fairly the pool served them. The goroutines start
// together on a channel close once all are running.
//
// Drive resets the benchmark's timer and memory counters first, so that ns/op,
// B/op and allocs/op cover the ops alone, not the pool's setup before it; call
// it once per benchmark function.
func Drive(b *testing.B, g, sampleEvery int, op func(w *Worker) bool) LoadResult {
	b.StopTimer()
	b.ResetTimer()
	n := b.N
	mask := int64(-1)
	var ar *arena
	if sampleEvery > 0 {
		if sampleEvery&(sampleEvery-1) != 0 {
			panic("bench: Drive's sampleEvery must be a power of two")
		}
		mask = int64(sampleEvery - 1)
		// Each worker records at most ⌈ops/sampleEvery⌉ samples and leaves at
		// most one chunk partly used.
		ar = newArena(n/sampleEvery + g + g*sampleChunk)
	}
	batch := int64(min(max(n/(g*64), 1), maxBatch))
	workers := make([]Worker, g)
	var next atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(g)
	done.Add(g)
	for gi := range workers {
		w := &workers[gi]
		w.G, w.mask, w.arena = gi, mask, ar
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			for {
				lo := next.Add(batch) - batch
				if lo >= int64(n) {
					return
				}
				for range min(batch, int64(n)-lo) {
					if op(w) {
						w.ok++
					}
					w.ops++
				}
			}
		}()
	}
	ready.Wait()
	stopProfile := startProfile(b)
	b.StartTimer()
	t0 := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	stopProfile()
	res := LoadResult{Elapsed: elapsed, PerG: make([]int64, g)}
	for i := range workers {
		w := &workers[i]
		res.PerG[i] = w.ops
		res.OK += w.ok
		res.Sums[0] += w.Sums[0]
		res.Sums[1] += w.Sums[1]
	}
	if ar != nil {
		res.Samples = ar.samples()
	}
	return res
}

// EnvProfileDir names a directory: when it is set, Drive writes a CPU profile
// of its timed region to <dir>/<benchmark name, "/" → "_", with the
// -<GOMAXPROCS> suffix of the result line>.pprof, so that a
// profile shows the ops and not the pool's setup. A benchmark runs Drive once
// per b.N it tries; the last and longest run's profile is the one that stays.
// run.sh sets it for the S8 profiling pass.
const EnvProfileDir = "TIDEPOOL_BENCH_PROFILE_DIR"

// startProfile starts the CPU profile EnvProfileDir asks for and returns the
// function that stops it (a no-op when there is none, or when another profile,
// such as -test.cpuprofile, is already running).
func startProfile(b *testing.B) func() {
	dir := os.Getenv(EnvProfileDir)
	if dir == "" {
		return func() {}
	}
	name := strings.ReplaceAll(b.Name(), "/", "_")
	if procs := runtime.GOMAXPROCS(0); procs != 1 {
		name += fmt.Sprintf("-%d", procs) // as the result line names it
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		b.Logf("no CPU profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Logf("no CPU profile: %v", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("writing the CPU profile: %v", err)
		}
	}
}

// Percentiles sorts xs and returns the given quantiles (0..1) of it, by the
// nearest-rank-below rule (index ⌊q·(n−1)⌋); zeros when xs is empty.
func Percentiles(xs []int64, qs ...float64) []float64 {
	slices.Sort(xs)
	out := make([]float64, len(qs))
	if len(xs) == 0 {
		return out
	}
	for i, q := range qs {
		k := int(q * float64(len(xs)-1))
		out[i] = float64(xs[k])
	}
	return out
}

// Jain returns Jain's fairness index of xs: (Σx)² / (n·Σx²), 1 when all are
// equal, 1/n when one got everything.
func Jain(xs []int64) float64 {
	var s, s2 float64
	for _, x := range xs {
		f := float64(x)
		s += f
		s2 += f * f
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}
