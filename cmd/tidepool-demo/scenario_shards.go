package main

// -scenario shards: a sharded pool over several embedded backends, one shard
// per backend. Workers send GET/SET for random keys, each to its key's shard.
// Each worker is one client stream whose keys all start on one shard (worker
// w on shard w mod n), as a server's requests are independent goroutines: a
// worker stuck on a slow shard is a stuck request of that shard, not a
// thread that other shards' requests queue behind. Halfway, one shard's
// backend turns slow (its replies take longer than a request may): that
// shard's connections are all busy, its Acquires fail at their deadline with
// an error naming it, and the other shards' throughput and waits do not move. Then it recovers, a shard is added (about 1/(n+1)
// of the keys move to it), one is removed gracefully, one is resized, and the
// pool closes. The summary has one row per shard.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/admin"
	"github.com/tidepool-go/tidepool/internal/demobackend"
	"github.com/tidepool-go/tidepool/netconn"
	"github.com/tidepool-go/tidepool/shard"
)

// Settings of the shards scenario.
const (
	slowShard   = "1"                    // the shard whose backend turns slow
	slowLatency = 3 * requestTimeout / 2 // longer than a request may take
	workerKeys  = 1000                   // keys per worker, all on its shard at start
)

// shardCount is what one worker saw of one shard.
type shardCount struct {
	served, acquireErrs, ioErrs, replyErrs int64
	wait                                   waitHist
	lastErr                                string // the last acquire error: it names the shard
}

type shardsRun struct {
	o      options
	log    *zap.Logger
	stderr io.Writer
	tl     timeline
	pool   *shard.Pool[net.Conn]
	// backends by shard name; written by the main goroutine only (the
	// workers never touch them).
	backends map[string]*demobackend.Server
	removed  map[string]bool // shards removed by the scenario
	start    time.Time

	stop     chan struct{} // closed when the pool has closed
	workers  sync.WaitGroup
	removing sync.WaitGroup           // the background RemoveShard
	final    shard.Stats              // the last Stats before Close
	counts   []map[string]*shardCount // one map per worker, written by it, merged after workers.Wait
	keys     [][]string               // each worker\'s keys; read-only once the workers run
	served   atomic.Int64
}

func runShards(o options, stdout, stderr io.Writer) int {
	stderr = &lockedWriter{w: stderr}
	s := &shardsRun{o: o, stderr: stderr, log: newLogger(stdout), backends: map[string]*demobackend.Server{},
		removed: map[string]bool{}, stop: make(chan struct{}), counts: make([]map[string]*shardCount, o.workers)}
	s.tl.log = s.log
	sig, stopSignals := signals()
	defer stopSignals()
	bs, err := startBackends(o.multi.shards + 1) // the last one joins at add-shard
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: starting the embedded backends: %v\n", err)
		return exitFail
	}
	defer func() {
		for _, b := range bs {
			_ = b.Close()
		}
	}()
	var shards []shard.Shard[net.Conn]
	for i, b := range bs[:o.multi.shards] {
		name := strconv.Itoa(i)
		s.backends[name] = b
		shards = append(shards, shard.Shard[net.Conn]{Name: name, Config: s.shardConfig(b)})
	}
	s.log.Info("demo.started", zap.String("event", "demo.started"), zap.String("scenario", "shards"),
		zap.Int("shards", o.multi.shards), zap.Duration("duration", o.duration), zap.Int("workers", o.workers),
		zap.Int("min_idle", min(o.min, s.shardMax())), zap.Int("max_size", s.shardMax()))
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	s.pool, err = shard.New(ctx, shard.Config[net.Conn]{Name: "demo", Shards: shards, Logger: s.log})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: cannot start the sharded pool: %v\n", err)
		return exitFail
	}
	var adminSrv *http.Server
	if o.admin != "" {
		if adminSrv, err = serveHandler(o.admin, admin.ShardHandler(s.pool), s.log, stderr,
			`GET /stats?shard=1, POST /resize?shard=1 {"max":16}, GET /conns?shard=1`); err != nil {
			_ = s.pool.Close(context.Background())
			fmt.Fprintf(stderr, "tidepool-demo: admin: %v\n", err)
			return exitFail
		}
	}

	s.start = time.Now()
	tickerDone := make(chan struct{})
	var ticker sync.WaitGroup
	if !o.quiet {
		ticker.Add(1)
		go s.printStats(tickerDone, &ticker)
	}
	s.keys = make([][]string, o.workers)
	for i, full := 0, false; !full; i++ {
		k := "user:" + strconv.Itoa(i)
		n, _ := strconv.Atoi(s.pool.ShardOf(k))
		for w := n; w < o.workers; w += o.multi.shards {
			if len(s.keys[w]) < workerKeys {
				s.keys[w] = append(s.keys[w], k)
				break
			}
		}
		full = true
		for w := range s.keys {
			full = full && len(s.keys[w]) == workerKeys
		}
	}
	for w := range o.workers {
		s.counts[w] = map[string]*shardCount{}
		s.workers.Add(1)
		go s.work(w)
	}
	s.tl.run(sig, s.steps(bs[o.multi.shards]))
	closeErr := s.closePool()
	close(tickerDone)
	ticker.Wait()
	shutdown(adminSrv)
	code := s.summarize(closeErr)
	_ = s.log.Sync()
	return code
}

// shardConfig is one shard's pool: net.Conns to b, checked with a peek.
func (s *shardsRun) shardConfig(b *demobackend.Server) tidepool.Config[net.Conn] {
	cfg := netconn.Config(netconn.Options{Network: "tcp", Address: b.Addr()})
	cfg.MaxSize, cfg.MinIdle = s.shardMax(), min(s.o.min, s.shardMax())
	cfg.HealthInterval, cfg.HealthTimeout = healthInterval, time.Second
	cfg.DialTimeout = time.Second
	cfg.DialBackoff, cfg.DialBackoffMax = 50*time.Millisecond, 500*time.Millisecond
	return cfg
}

// shardMax is each shard's MaxSize: half of -max, so that with the default
// 32 workers over 4 shards a shard's workers outnumber its connections and a
// slow shard has waiters, whose Acquires fail at their deadline.
func (s *shardsRun) shardMax() int { return max(1, s.o.max/2) }

// steps lists the scenario's phases before close; newcomer is the backend of
// the shard added at add-shard.
func (s *shardsRun) steps(newcomer *demobackend.Server) []step {
	weights := []float64{1, 2.5, 3.5, 1.5, 2, 2, 2}
	total := 0.0
	for _, w := range weights {
		total += w
	}
	d := func(i int) time.Duration { return time.Duration(float64(s.o.duration) * weights[i] / total) }
	added := strconv.Itoa(s.o.multi.shards)
	return []step{
		{"warm-up", d(0), nil},
		{"load", d(1), nil},
		{"slow-shard", d(2), func() {
			s.backends[slowShard].SetLatency(slowLatency, 0)
			s.backendEvent(slowShard, "slow", zap.Duration("latency", slowLatency))
		}},
		{"shard-recovers", d(3), func() {
			s.backends[slowShard].SetLatency(time.Millisecond, time.Millisecond)
			s.backendEvent(slowShard, "fast")
		}},
		{"add-shard", d(4), func() {
			ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
			defer cancel()
			if err := s.pool.AddShard(ctx, shard.Shard[net.Conn]{Name: added, Config: s.shardConfig(newcomer)}); err != nil {
				s.log.Error("demo.add_shard_failed", zap.String("event", "demo.add_shard_failed"), zap.Error(err))
				return
			}
			s.backends[added] = newcomer
		}},
		{"remove-shard", d(5), func() {
			// In the background: the removal waits for the shard's held
			// connections, which finish within a request.
			s.removing.Add(1)
			go func() {
				defer s.removing.Done()
				ctx, cancel := context.WithTimeout(context.Background(), closeDeadline)
				defer cancel()
				if err := s.pool.RemoveShard(ctx, "0"); err != nil {
					s.log.Error("demo.remove_shard_failed", zap.String("event", "demo.remove_shard_failed"), zap.Error(err))
				}
			}()
			s.removed["0"] = true
		}},
		{"resize-shard", d(6), func() {
			if err := s.pool.Resize("2", min(s.o.min, s.shardMax()), 2*s.shardMax()); err != nil {
				s.log.Error("demo.resize_failed", zap.String("event", "demo.resize_failed"), zap.Error(err))
			}
		}},
	}
}

func (s *shardsRun) backendEvent(name, action string, fields ...zap.Field) {
	fields = append([]zap.Field{zap.String("event", "demo.backend"), zap.String("shard", name), zap.String("action", action)}, fields...)
	s.log.Info("demo.backend", fields...)
}

// work loops acquire → request → release on random keys until the pool
// closes.
func (s *shardsRun) work(w int) {
	defer s.workers.Done()
	r := rand.New(rand.NewPCG(uint64(w), 0x5eed))
	counts, keys := s.counts[w], s.keys[w]
	count := func(name string) *shardCount {
		c := counts[name]
		if c == nil {
			c = new(shardCount)
			counts[name] = c
		}
		return c
	}
	for seq := uint64(1); ; seq++ {
		key := keys[r.IntN(len(keys))]
		ctx, cancel := context.WithTimeout(context.Background(), multiAcquireTimeout)
		t0 := time.Now()
		c, err := s.pool.Acquire(ctx, key)
		took := time.Since(t0)
		cancel()
		if err != nil {
			if errors.Is(err, tidepool.ErrClosed) {
				return
			}
			name := "?"
			var se *shard.Error
			if errors.As(err, &se) {
				name = se.Shard
			}
			sc := count(name)
			sc.acquireErrs++
			sc.lastErr = err.Error()
			select {
			case <-time.After(errorPause):
			case <-s.stop:
				return
			}
			continue
		}
		sc := count(c.Shard())
		sc.wait.observe(took)
		switch err := keyRequest(c.Value(), key, seq); {
		case err == nil:
			c.Release()
			sc.served++
			s.served.Add(1)
		case !isBroken(err):
			c.Release()
			sc.replyErrs++
		default:
			c.Destroy()
			sc.ioErrs++
		}
	}
}

// closePool closes the pool with a deadline and waits for the workers.
func (s *shardsRun) closePool() error {
	s.tl.enter("close", closeDeadline)
	s.final = s.pool.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	err := s.pool.Close(ctx)
	close(s.stop)
	s.workers.Wait()
	s.removing.Wait()
	return err
}

// printStats prints one line per second: the request rate, and each shard's
// connections in use of its max and its waiters.
func (s *shardsRun) printStats(done <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastAt := s.served.Load(), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			served := s.served.Load()
			rate := float64(served-last) / now.Sub(lastAt).Seconds()
			last, lastAt = served, now
			line := fmt.Sprintf("%5.1fs %-14s %6.0f req/s |", now.Sub(s.start).Seconds(), s.tl.current(), rate)
			for _, st := range s.pool.Stats().Shards {
				mark := ""
				if st.Draining {
					mark = " draining"
				}
				line += fmt.Sprintf(" %s: %d/%d w%d%s |", st.Shard, st.InUse, st.MaxSize, st.Waiting, mark)
			}
			fmt.Fprintln(s.stderr, line)
		}
	}
}

// shardSummary is one row of the summary.
type shardSummary struct {
	Shard       string        `json:"shard"`
	State       string        `json:"state"`
	Served      int64         `json:"served"`
	AcquireErrs int64         `json:"acquire_errors"`
	IOErrs      int64         `json:"io_errors"`
	ReplyErrs   int64         `json:"reply_errors"`
	WaitP50     time.Duration `json:"acquire_wait_p50"`
	WaitP99     time.Duration `json:"acquire_wait_p99"`
	Dials       int64         `json:"dials"`
	MaxSize     int           `json:"max_size"`
	LastErr     string        `json:"last_acquire_error,omitempty"`
}

// summarize prints one row per shard on stderr, logs demo.summary, and
// returns the exit code.
func (s *shardsRun) summarize(closeErr error) int {
	merged := map[string]*shardCount{}
	for _, m := range s.counts {
		for name, c := range m {
			t := merged[name]
			if t == nil {
				t = new(shardCount)
				merged[name] = t
			}
			t.served += c.served
			t.acquireErrs += c.acquireErrs
			t.ioErrs += c.ioErrs
			t.replyErrs += c.replyErrs
			t.wait.merge(&c.wait)
			if c.lastErr != "" {
				t.lastErr = c.lastErr
			}
		}
	}
	final := map[string]shard.ShardStats{}
	for _, st := range s.final.Shards {
		final[st.Shard] = st
	}
	names := make([]string, 0, len(merged))
	for name := range merged {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, errA := strconv.Atoi(names[i])
		b, errB := strconv.Atoi(names[j])
		if errA != nil || errB != nil {
			return names[i] < names[j]
		}
		return a < b
	})
	var rows []shardSummary
	var served int64
	for _, name := range names {
		c := merged[name]
		served += c.served
		state := "serving"
		switch {
		case s.removed[name]:
			state = "removed"
		case name == slowShard:
			state = "was slow"
		case name == strconv.Itoa(s.o.multi.shards):
			state = "added"
		}
		st := final[name]
		rows = append(rows, shardSummary{Shard: name, State: state, Served: c.served, AcquireErrs: c.acquireErrs,
			IOErrs: c.ioErrs, ReplyErrs: c.replyErrs, WaitP50: c.wait.quantile(0.5), WaitP99: c.wait.quantile(0.99),
			Dials: st.Dials, MaxSize: st.MaxSize, LastErr: c.lastErr})
	}
	elapsed := time.Since(s.start)
	w := s.stderr
	fmt.Fprintf(w, "\ntidepool-demo summary (shards)\n")
	fmt.Fprintf(w, "  %-22s %d embedded backends, one shard each, then one added and one removed\n", "target", s.o.multi.shards)
	fmt.Fprintf(w, "  %-22s %.1fs, %d workers, max %d per shard; shard %s slow (%v replies) in slow-shard\n", "run time",
		elapsed.Seconds(), s.o.workers, s.shardMax(), slowShard, slowLatency)
	fmt.Fprintf(w, "  %-22s %d (%.0f/s)\n", "requests served", served, float64(served)/elapsed.Seconds())
	fmt.Fprintf(w, "\n  %-6s %-9s %9s %9s %9s %11s %11s %6s %4s\n", "shard", "state", "requests", "acq errs", "i/o errs", "wait p50", "wait p99", "dials", "max")
	for _, r := range rows {
		dials, maxSize := strconv.FormatInt(r.Dials, 10), strconv.Itoa(r.MaxSize)
		if r.State == "removed" {
			dials, maxSize = "-", "-"
		}
		fmt.Fprintf(w, "  %-6s %-9s %9d %9d %9d %11v %11v %6s %4s\n", r.Shard, r.State, r.Served, r.AcquireErrs, r.IOErrs,
			r.WaitP50.Round(time.Microsecond), r.WaitP99.Round(time.Microsecond), dials, maxSize)
	}
	if c := merged[slowShard]; c != nil && c.lastErr != "" {
		fmt.Fprintf(w, "\n  %-22s %s\n", "slow shard's last error", c.lastErr)
	}
	code := exitOK
	switch {
	case closeErr != nil:
		fmt.Fprintf(w, "  %-22s FAILED: %v\n", "close", closeErr)
		code = exitFail
	case served == 0:
		fmt.Fprintf(w, "  %-22s FAILED: no request was served\n", "result")
		code = exitFail
	default:
		fmt.Fprintf(w, "  %-22s graceful\n", "close")
	}
	st := s.final
	s.log.Info("demo.summary", zap.String("event", "demo.summary"), zap.String("scenario", "shards"),
		zap.Duration("elapsed", elapsed), zap.Int64("served", served), zap.Any("shards", rows),
		zap.Int64("shards_added", st.Added), zap.Int64("shards_removed", st.Removed),
		zap.Int64("rerouted", st.Rerouted), zap.Bool("close_forced", closeErr != nil))
	return code
}
