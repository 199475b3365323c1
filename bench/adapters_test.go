package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// maker is a named pool constructor over FakeConns, with the handle erased.
type maker struct {
	name string
	mk   func(context.Context, Spec[*FakeConn]) (Pool[*FakeConn, any], error)
}

func makers() []maker {
	return []maker{
		{"puddle", erase(NewPuddle[*FakeConn])},
		{"tidepool", erase(NewTidepool[*FakeConn])},
		{"sql", erase(NewSQLPool[*FakeConn])},
		{"chan", erase(NewChanPool[*FakeConn])},
		{"mutex", erase(NewMutexPool[*FakeConn])},
	}
}

func TestEveryAdapterHandsEachConnectionToOneHolderAtATime(t *testing.T) {
	for _, m := range makers() {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const size = 4
				p, err := m.mk(t.Context(), FakeSpec(size))
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				seen := map[int64]bool{}
				var held []any
				for range size {
					h, err := p.Get(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					id := p.Value(h).ID
					if seen[id] {
						t.Fatalf("connection %d handed out twice", id)
					}
					seen[id] = true
					held = append(held, h)
				}
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				_, err = p.Get(ctx)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Get on an exhausted pool: got %v, want context.DeadlineExceeded", err)
				}
				first := p.Value(held[0]).ID
				p.Put(held[0])
				h, err := p.Get(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if id := p.Value(h).ID; id != first {
					t.Fatalf("after releasing connection %d the pool handed out %d", first, id)
				}
				held[0] = h
				for _, h := range held {
					p.Put(h)
				}
			})
		})
	}
}

func TestEveryAdapterLosesNoConnectionToCancelledGets(t *testing.T) {
	for _, m := range makers() {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const size, goroutines, rounds = 2, 16, 200
				p, err := m.mk(t.Context(), FakeSpec(size))
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for range rounds {
							ctx, cancel := t.Context(), context.CancelFunc(func() {})
							if g%2 == 1 {
								ctx, cancel = context.WithTimeout(ctx, time.Microsecond)
							}
							h, err := p.Get(ctx)
							cancel()
							if err != nil {
								if g%2 == 0 {
									t.Errorf("Get without deadline failed: %v", err)
								}
								continue
							}
							time.Sleep(time.Microsecond)
							p.Put(h)
						}
					})
				}
				wg.Wait()
				if n := acquirable(p, size, time.Second); n != size {
					t.Fatalf("only %d of %d connections acquirable after the churn", n, size)
				}
			})
		})
	}
}

func TestTidepoolAdapterResizeServesWaitersWithinOneDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := FakeSpec(2)
		dial := spec.Dial
		spec.Dial = func(ctx context.Context) (*FakeConn, error) {
			time.Sleep(time.Millisecond)
			return dial(ctx)
		}
		p, err := NewTidepool(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		a, _ := p.Get(t.Context())
		b, _ := p.Get(t.Context())
		const waiters = 8
		var wg sync.WaitGroup
		served := make(chan time.Duration, waiters)
		var t0 time.Time
		for range waiters {
			wg.Go(func() {
				h, err := p.Get(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				served <- time.Since(t0)
				p.Put(h)
			})
		}
		synctest.Wait()
		if n := p.(WaitCounter).Waiting(); n != waiters {
			t.Fatalf("Waiting() = %d, want %d", n, waiters)
		}
		t0 = time.Now()
		if err := p.(Resizer).Resize(2 + waiters); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(served)
		for d := range served {
			if d > time.Millisecond {
				t.Errorf("a waiter was served %v after the resize; one dial takes 1ms", d)
			}
		}
		p.Put(a)
		p.Put(b)
	})
}

func TestSQLAdapterDoesNotServeWaitersWhenItsLimitRises(t *testing.T) {
	// This is database/sql's behaviour, which S6 reports: SetMaxOpenConns
	// opens nothing for requests already queued.
	synctest.Test(t, func(t *testing.T) {
		p, err := NewSQLPool(t.Context(), FakeSpec(1))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		h, _ := p.Get(t.Context())
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			h2, err := p.Get(ctx)
			if err == nil {
				p.Put(h2)
			}
			errc <- err
		}()
		synctest.Wait()
		_ = p.(Resizer).Resize(2)
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter after raising MaxOpenConns: got %v, want DeadlineExceeded", err)
		}
		p.Put(h)
	})
}

func TestJainIndexIsOneWhenEqualAndOneOverNWhenOneTakesAll(t *testing.T) {
	for _, c := range []struct {
		xs   []int64
		want float64
	}{
		{[]int64{5, 5, 5, 5}, 1},
		{[]int64{8, 0, 0, 0}, 0.25},
		{[]int64{2, 1}, 0.9},
	} {
		if got := Jain(c.xs); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("Jain(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}

func TestPercentilesPickFromTheSortedWaits(t *testing.T) {
	w := make([]int64, 1000)
	for i := range w {
		w[i] = int64(999 - i)
	}
	got := Percentiles(w, 0.5, 0.99, 0.999)
	if want := []float64{499, 989, 998}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Percentiles = %v, want %v", got, want)
	}
}

func TestDriveRunsExactlyBNOpsAndCountsThemPerGoroutine(t *testing.T) {
	var total, ok int64
	var n int
	testing.Benchmark(func(b *testing.B) {
		res := Drive(b, 8, 0, func(w *Worker) bool { return w.G%2 == 0 })
		n, ok, total = b.N, res.OK, 0
		for _, c := range res.PerG {
			total += c
		}
		if len(res.Samples) != 0 {
			t.Errorf("Drive without sampling kept %d samples", len(res.Samples))
		}
	})
	if total != int64(n) {
		t.Fatalf("goroutines did %d ops in all, want b.N = %d", total, n)
	}
	if ok == 0 || ok == total {
		t.Fatalf("OK = %d of %d: the even goroutines succeed and the odd fail, so it must be in between", ok, total)
	}
}

func TestDriveSamplesEveryKthOpOfEachGoroutineAndSumsTheWorkers(t *testing.T) {
	const g, every = 5, 4
	var bad []string
	testing.Benchmark(func(b *testing.B) {
		var mu sync.Mutex
		seen := make([]int64, g) // ops per goroutine, counted independently
		res := Drive(b, g, every, func(w *Worker) bool {
			mu.Lock()
			i := seen[w.G]
			seen[w.G]++
			mu.Unlock()
			if w.Sampled() != (i%every == 0) {
				bad = append(bad, fmt.Sprintf("goroutine %d op %d: Sampled() = %v", w.G, i, w.Sampled()))
			}
			if w.Sampled() {
				w.Record(int64(w.G)<<40 | i) // encodes who recorded which op
			}
			w.Sums[0]++
			w.Sums[1] += 2
			return true
		})
		want := 0
		for gi, c := range res.PerG {
			if c != seen[gi] {
				bad = append(bad, fmt.Sprintf("PerG[%d] = %d, counted %d", gi, c, seen[gi]))
			}
			want += int((c + every - 1) / every)
		}
		if len(res.Samples) != want {
			bad = append(bad, fmt.Sprintf("b.N=%d: %d samples, want Σ⌈ops/%d⌉ = %d", b.N, len(res.Samples), every, want))
		}
		uniq := map[int64]bool{}
		for _, v := range res.Samples {
			if uniq[v] {
				bad = append(bad, fmt.Sprintf("sample %d kept twice", v))
			}
			uniq[v] = true
		}
		if res.Sums[0] != int64(b.N) || res.Sums[1] != 2*int64(b.N) {
			bad = append(bad, fmt.Sprintf("Sums = %v, want [b.N 2·b.N] with b.N=%d", res.Sums, b.N))
		}
	})
	if len(bad) > 0 {
		t.Fatal(strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}

func TestWorkChangesTheConnectionSoItCannotBeOptimisedAway(t *testing.T) {
	a, b := &FakeConn{}, &FakeConn{}
	a.Work(10)
	b.Work(10)
	if a.Sum == 0 || a.Sum != b.Sum || a.Uses != 1 {
		t.Fatalf("Work(10) from the same state: sums %#x and %#x, uses %d; want equal, non-zero, 1", a.Sum, b.Sum, a.Uses)
	}
	before := a.Sum
	a.Work(1)
	if a.Sum == before {
		t.Fatal("one more iteration left the connection's state unchanged")
	}
	c := Calibrate()
	if c.Iters < 1 || c.IterNs <= 0 || c.ClockNs <= 0 || c.ClockIters < 0 || c.ClockIters > c.Iters {
		t.Fatalf("Calibrate() = %+v: want positive costs and 0 ≤ ClockIters ≤ Iters", c)
	}
}

func TestEchoServerEchoesOverLoopback(t *testing.T) {
	srv, err := StartEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p, err := NewTidepool(t.Context(), EchoSpec(srv.Addr(), 2))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h, err := p.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Put(h)
	buf := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	want := string(buf)
	if err := EchoRoundTrip(p.Value(h), buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != want {
		t.Fatalf("echo returned %q, want %q", buf, want)
	}
}

func TestEveryAdapterHandsEachConnectionToOneHolderAtATimeUnderConcurrency(t *testing.T) {
	for _, m := range makers() {
		t.Run(m.name, func(t *testing.T) {
			const size, goroutines, rounds = 4, 16, 300
			p, err := m.mk(t.Context(), FakeSpec(size))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var holders [size + 1]atomic.Int32 // by connection ID (1..size)
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range rounds {
						h, err := p.Get(t.Context())
						if err != nil {
							t.Error(err)
							return
						}
						c := p.Value(h)
						if n := holders[c.ID].Add(1); n != 1 {
							t.Errorf("connection %d has %d holders at once", c.ID, n)
						}
						c.Work(50) // unsynchronised writes: the race detector sees a second holder too
						holders[c.ID].Add(-1)
						p.Put(h)
					}
				})
			}
			wg.Wait()
			if n := acquirable(p, size, time.Second); n != size {
				t.Fatalf("only %d of %d connections acquirable afterwards", n, size)
			}
		})
	}
}

func TestRecordAllocatesNothingAndKeepsEverySample(t *testing.T) {
	w := &Worker{arena: newArena(100 * sampleChunk)}
	next := int64(0)
	// Counted whole rather than with testing.AllocsPerRun, whose integer
	// division would hide an allocation every few chunks.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 50 * (sampleChunk + 1) { // crosses 50 chunk boundaries
		w.Record(next)
		next++
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n != 0 {
		t.Fatalf("Record allocated %d times over %d calls; want 0", n, next)
	}
	got := w.arena.samples()
	if int64(len(got)) != next {
		t.Fatalf("%d samples kept of %d recorded", len(got), next)
	}
	for i, v := range got {
		if v != int64(i) { // one worker: its chunks are claimed in order
			t.Fatalf("sample %d = %d, want %d", i, v, i)
		}
	}
}
