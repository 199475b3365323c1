package shard_test

// Isolation on real redis-servers: eight shards, one of them paused with
// SIGSTOP. A paused redis-server still completes TCP handshakes (the kernel
// queues them in its listen backlog) but answers nothing, so on its shard
// requests hang, dials hang in their handshake PING, and Acquires wait: the
// worst kind of slow shard, one that looks alive.
//
// The test proves the other seven never wait on it, by order rather than by
// timing; the benchmark measures their throughput and p99 with and without it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/poll"
	"github.com/tidepool-go/tidepool/internal/redistest"
	"github.com/tidepool-go/tidepool/internal/resp"
	"github.com/tidepool-go/tidepool/shard"
)

// redisConfig pools *resp.Conn to addr; a dial connects and sends PING, so
// that a server that accepts connections without answering makes dials hang
// (until DialTimeout) rather than succeed.
func redisConfig(addr string) tidepool.Config[*resp.Conn] {
	return tidepool.Config[*resp.Conn]{
		Dial: func(ctx context.Context) (*resp.Conn, error) {
			c, err := resp.Dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			if err := c.Ping(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("redis %s: handshake PING: %w", addr, err)
			}
			return c, nil
		},
		Close:       (*resp.Conn).Close,
		Check:       func(ctx context.Context, c *resp.Conn) error { return c.Ping(ctx) },
		MaxSize:     4,
		MinIdle:     1,
		DialTimeout: time.Minute, // dials to the paused server hang, not fail
	}
}

// startRedis starts n redis-servers (skipping the test without redis-server).
func startRedis(tb testing.TB, n int) []*redistest.Server {
	tb.Helper()
	srvs := make([]*redistest.Server, n)
	for i := range srvs {
		srvs[i] = redistest.Start(tb)
	}
	return srvs
}

// pause stops srv's process with SIGSTOP and returns the function that
// resumes it (SIGCONT); it also resumes at tb's cleanup, before redistest
// stops the server.
func pause(tb testing.TB, srv *redistest.Server) (resume func()) {
	tb.Helper()
	pid := pidOf(tb, srv)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	resume = sync.OnceFunc(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	tb.Cleanup(resume)
	return resume
}

func newRedisPool(tb testing.TB, srvs []*redistest.Server) *shard.Pool[*resp.Conn] {
	tb.Helper()
	var shards []shard.Shard[*resp.Conn]
	for i, s := range srvs {
		shards = append(shards, shard.Shard[*resp.Conn]{Name: strconv.Itoa(i), Config: redisConfig(s.Addr())})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := shard.New(ctx, shard.Config[*resp.Conn]{Name: "cache", Shards: shards})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// redisKeys returns n keys of each shard of p, by shard name.
func redisKeys(p *shard.Pool[*resp.Conn], n int) map[string][]string {
	keys := map[string][]string{}
	need := n * len(p.Shards())
	for i := 0; need > 0; i++ {
		k := "user:" + strconv.Itoa(i)
		s := p.ShardOf(k)
		if len(keys[s]) < n {
			keys[s] = append(keys[s], k)
			need--
		}
	}
	return keys
}

// setGet runs SET key value and GET key on a connection of key's shard.
func setGet(ctx context.Context, p *shard.Pool[*resp.Conn], key, value string) error {
	c, err := p.Acquire(ctx, key)
	if err != nil {
		return err
	}
	if _, err := c.Value().Do(ctx, "SET", key, value); err != nil {
		c.Destroy()
		return fmt.Errorf("shard %s: SET: %w", c.Shard(), err)
	}
	r, err := c.Value().Do(ctx, "GET", key)
	if err != nil {
		c.Destroy()
		return fmt.Errorf("shard %s: GET: %w", c.Shard(), err)
	}
	c.Release()
	if r.Str != value {
		return fmt.Errorf("shard %s: GET %s = %q, want %q", c.Shard(), key, r.Str, value)
	}
	return nil
}

// With one of eight redis-servers paused, the other seven serve every
// request while Acquires and requests on the paused one are provably still
// blocked (none has returned); an Acquire on the paused shard then fails at
// its deadline with an error naming the shard.
func TestPausedRedisShardHoldsUpNoOtherShard(t *testing.T) {
	srvs := startRedis(t, 8)
	p := newRedisPool(t, srvs)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	keys := redisKeys(p, 40)
	const slow = "3"
	resume := pause(t, srvs[3])

	// Eight clients of the paused shard: the first takes its idle connection
	// and hangs in SET; the others wait while the pool's three dials hang.
	stuckCtx, cancelStuck := context.WithCancel(context.Background())
	defer cancelStuck()
	stuck := make(chan error, 8)
	for i := range 8 {
		go func() { stuck <- setGet(stuckCtx, p, keys[slow][i], "x") }()
	}
	var st shard.ShardStats
	if _, ok := poll.Wait(10*time.Second, func() bool {
		st = shardOf(p.Stats(), slow)
		return st.InUse == 1 && st.Waiting == 7 && st.Dialing == 3
	}); !ok {
		t.Fatalf("the paused shard never got stuck: %+v", st)
	}

	// Every shard but the paused one serves 40 keys × SET+GET, concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, 7*40)
	for name, ks := range keys {
		if name == slow {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i, k := range ks {
				if err := setGet(ctx, p, k, "v"+strconv.Itoa(i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("healthy shard: %v", err)
	}
	select {
	case err := <-stuck:
		t.Fatalf("a client of the paused shard returned before the healthy shards were done: %v", err)
	default:
	}
	if st := shardOf(p.Stats(), slow); st.InUse != 1 || st.Waiting != 7 {
		t.Fatalf("the paused shard changed while the others worked: %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Acquire(ctx, keys[slow][8])
	took := time.Since(start)
	var se *shard.Error
	if !errors.As(err, &se) || se.Shard != slow || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), `shard "3" of pool "cache"`) {
		t.Errorf("Acquire on the paused shard = %v, want an error naming shard 3 that wraps DeadlineExceeded", err)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("Acquire on the paused shard failed after %v, want at its 300ms deadline", took)
	}

	cancelStuck()
	for range 8 {
		if err := <-stuck; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "shard 3") && !strings.Contains(err.Error(), `shard "3"`) {
			t.Errorf("client of the paused shard: %v, want a cancellation naming shard 3", err)
		}
	}
	resume()
	for name := range keys {
		if err := setGet(context.Background(), p, keys[name][0], "after"); err != nil {
			t.Errorf("shard %s after the resume: %v", name, err)
		}
	}
}

func shardOf(s shard.Stats, name string) shard.ShardStats {
	for _, st := range s.Shards {
		if st.Shard == name {
			return st
		}
	}
	return shard.ShardStats{}
}

// BenchmarkIsolation measures GET throughput and p99 latency (Acquire, GET,
// Release) on seven healthy redis shards while the eighth is healthy too, and
// while it is paused with SIGSTOP. The two conditions alternate in rounds of
// 1000 operations on the same pool (the eighth server is paused and resumed
// between rounds), so that both see the same machine: on a shared VM the
// noise between two back-to-back runs is larger than the effect measured.
// Throughout, four clients of the eighth shard try one SET every 20 ms with a
// 20 ms deadline; while it is paused all of them fail.
//
// It reports ops/s and p99 of each condition and their ratios
// (paused / healthy): ops-ratio ≥ 0.9 and p99-ratio ≤ 1.1 mean the healthy
// shards stayed within 10 %. Run with
//
//	go test -run '^$' -bench Isolation -benchtime 40000x -count 5 ./shard/
func BenchmarkIsolation(b *testing.B) {
	srvs := startRedis(b, 8)
	p := newRedisPool(b, srvs)
	keys := redisKeys(p, 64)
	const slow = "0"
	var healthy []string
	for name, ks := range keys {
		if name != slow {
			healthy = append(healthy, ks...)
		}
	}
	slices.Sort(healthy)
	ctx := context.Background()
	for _, k := range healthy { // warm every shard and give every key a value
		if err := setGet(ctx, p, k, "v"); err != nil {
			b.Fatal(err)
		}
	}
	pid := pidOf(b, srvs[0])
	b.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) // before redistest stops it
	var paused atomic.Bool
	setPaused := func(on bool) {
		sig := syscall.SIGCONT
		if on {
			sig = syscall.SIGSTOP
		}
		if err := syscall.Kill(pid, sig); err != nil {
			b.Fatal(err)
		}
		paused.Store(on)
	}

	stop := make(chan struct{})
	var bg sync.WaitGroup
	for i := range 4 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				_ = setGet(ctx, p, keys[slow][i], "bg")
				cancel()
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	finish := sync.OnceFunc(func() {
		close(stop)
		bg.Wait()
		setPaused(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	defer finish()

	// Warm up (untimed): a cold runtime and freshly started servers make the
	// first thousands of operations slower.
	if _, _, err := drive(p, healthy, 5000); err != nil {
		b.Fatal(err)
	}
	const round = 1000
	var lat [2][]time.Duration // [healthy, paused]
	var took [2]time.Duration
	b.ResetTimer()
	for done, r := 0, 0; done < b.N; r++ {
		n := min(round, b.N-done)
		cond := r % 2
		b.StopTimer()
		setPaused(cond == 1)
		b.StartTimer()
		l, d, err := drive(p, healthy, n)
		if err != nil {
			b.Fatalf("healthy shard (slow shard paused: %v): %v", paused.Load(), err)
		}
		for _, w := range l {
			lat[cond] = append(lat[cond], w...)
		}
		took[cond] += d
		done += n
	}
	b.StopTimer()
	finish()

	var ops, p99 [2]float64
	for c := range lat {
		if len(lat[c]) == 0 {
			return // b.N too small for both conditions (the first, calibrating run)
		}
		slices.Sort(lat[c])
		ops[c] = float64(len(lat[c])) / took[c].Seconds()
		p99[c] = float64(lat[c][len(lat[c])*99/100])
	}
	b.ReportMetric(ops[0], "healthy-ops/s")
	b.ReportMetric(ops[1], "paused-ops/s")
	b.ReportMetric(ops[1]/ops[0], "ops-ratio")
	b.ReportMetric(p99[0], "healthy-p99-ns")
	b.ReportMetric(p99[1], "paused-p99-ns")
	b.ReportMetric(p99[1]/p99[0], "p99-ratio")
}

// pidOf returns srv's process id, from INFO server.
func pidOf(tb testing.TB, srv *redistest.Server) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := srv.Do(ctx, "INFO", "server")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(r.Str, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
				return pid
			}
		}
	}
	tb.Fatalf("no process_id in INFO server: %q", r.Str)
	return 0
}

// drive runs n GETs (Acquire, GET, Release) on the healthy keys with 14
// workers (two per healthy shard on average; each shard has 4 connections)
// and returns each worker's latencies, the elapsed time and the first error.
func drive(p *shard.Pool[*resp.Conn], healthy []string, n int) ([][]time.Duration, time.Duration, error) {
	const workers = 14
	lat := make([][]time.Duration, workers)
	errs := make([]error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		m := n / workers
		if w < n%workers {
			m++
		}
		lat[w] = make([]time.Duration, 0, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range m {
				key := healthy[(w*7919+i*104729)%len(healthy)]
				t0 := time.Now()
				c, err := p.Acquire(ctx, key)
				if err != nil {
					errs[w] = err
					return
				}
				if _, err := c.Value().Do(ctx, "GET", key); err != nil {
					c.Destroy()
					errs[w] = err
					return
				}
				c.Release()
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), errors.Join(errs...)
}
