package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/admin"
)

// Fixed settings of the scenario.
const (
	setupTimeout   = 5 * time.Second        // New and the first Acquire
	acquireTimeout = 2 * time.Second        // one worker Acquire
	closeDeadline  = 2 * time.Second        // the graceful close
	errorPause     = 50 * time.Millisecond  // a worker's pause after a failed Acquire
	healthInterval = 250 * time.Millisecond // checks of idle connections
	warmupWorkers  = 2                      // workers running during warm-up
)

// phase is one step of the scenario. begin runs when it starts, mid (if set)
// halfway through.
type phase struct {
	name   string
	weight float64
	begin  func()
	mid    func()
}

// scenario is one run. The main goroutine runs the phases; the workers, the
// stats ticker and the admin server run in goroutines of their own, all
// stopped before runScenario returns.
type scenario[T any] struct {
	o      options
	t      target[T]
	log    *zap.Logger
	stderr io.Writer // a lockedWriter: the ticker and the main goroutine share it
	pool   *tidepool.Pool[T]
	start  time.Time
	phase  atomic.Pointer[string]

	// stop ends the workers' pauses; cancelled once the pool is closed.
	stop       context.Context
	cancelStop context.CancelFunc
	workers    sync.WaitGroup
	// Workers w < active run; the others park on gate until active changes.
	// setActive stores active before it swaps and closes gate, so a parked
	// worker that read the old gate is woken and one that read the new gate
	// sees the new active.
	active atomic.Int64
	gate   atomic.Pointer[chan struct{}]
	hists  []waitHist // one per worker, written by it, merged after workers.Wait

	// Counters written by the workers.
	acquires, served                   atomic.Int64
	acquireErrs, dialErrs, timeoutErrs atomic.Int64
	ioErrs, replyErrs                  atomic.Int64
	slowestFailedAcquire               atomic.Int64 // ns
}

// runScenario runs the scenario against t and returns the exit code.
func runScenario[T any](o options, t target[T], stdout, stderr io.Writer) int {
	stderr = &lockedWriter{w: stderr}
	if t.backend != nil {
		defer t.backend.Close()
	}
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	s := &scenario[T]{o: o, t: t, stderr: stderr, log: newLogger(stdout), hists: make([]waitHist, o.workers)}
	s.stop, s.cancelStop = context.WithCancel(context.Background())
	defer s.cancelStop()
	s.log.Info("demo.started", zap.String("event", "demo.started"), zap.String("target", t.desc),
		zap.Duration("duration", o.duration), zap.Int("workers", o.workers),
		zap.Int("min_idle", o.min), zap.Int("max_size", o.max))

	if err := s.setup(); err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: %v\n", err)
		return exitFail
	}
	var adminSrv *http.Server
	if o.admin != "" {
		var err error
		if adminSrv, err = s.serveAdmin(); err != nil {
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

	s.runPhases(sigCtx)
	closeErr := s.closePool()
	close(tickerDone)
	ticker.Wait()
	if adminSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = adminSrv.Shutdown(ctx)
		cancel()
	}
	code := s.summarize(closeErr)
	_ = s.log.Sync()
	return code
}

// newLogger logs JSON lines on w, Info and above; each pool entry carries
// "event" (equal to its message) and "pool".
func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
	return zap.New(core)
}

// setup builds the pool and checks the backend answers.
func (s *scenario[T]) setup() error {
	cfg := s.t.cfg
	cfg.MaxSize = s.o.max
	cfg.MinIdle = s.o.min
	cfg.HealthInterval = healthInterval
	cfg.HealthTimeout = time.Second
	cfg.MaxLifetime = s.o.duration / 3
	cfg.MaxLifetimeJitter = cfg.MaxLifetime / 3
	cfg.DialTimeout = time.Second
	// After an outage the pool retries within 1.5·DialBackoffMax (the backoff
	// has ±50% jitter, and the dials that fail together at the outage's start
	// push it to its max at once): keep that well inside the recovery phase,
	// which is duration/8.
	cfg.DialBackoff = 50 * time.Millisecond
	cfg.DialBackoffMax = min(500*time.Millisecond, max(cfg.DialBackoff, s.o.duration/32))
	cfg.AcquireTimeout = acquireTimeout
	cfg.Logger = s.log
	cfg.Name = "demo"
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cannot start a pool for %s: %w", s.t.desc, err)
	}
	// MinIdle may be 0, so New may have dialed nothing: make one round trip.
	h, err := p.Acquire(ctx)
	if err == nil {
		err = s.t.request(h.Value(), 0, 0)
		if err != nil {
			h.Destroy()
		} else {
			h.Release()
		}
	}
	if err != nil {
		_ = p.Close(context.Background())
		return fmt.Errorf("%s does not answer: %w", s.t.desc, err)
	}
	s.pool = p
	return nil
}

func (s *scenario[T]) serveAdmin() (*http.Server, error) {
	ln, err := net.Listen("tcp", s.o.admin)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: admin.Handler(s.pool), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
	s.log.Info("demo.admin", zap.String("event", "demo.admin"), zap.String("addr", ln.Addr().String()))
	fmt.Fprintf(s.stderr, "admin: http://%s/stats  (POST /resize {\"min\":2,\"max\":32}, GET /conns)\n", ln.Addr())
	return srv, nil
}

// phases lists the scenario's phases before close.
func (s *scenario[T]) phases() []phase {
	upMax := 2 * s.o.max
	downMax := max(1, s.o.max/2)
	warm := phase{name: "warm-up", weight: 1.5, begin: func() { s.startWorkers(min(warmupWorkers, s.o.workers)) }}
	load := phase{name: "load", weight: 3, begin: func() { s.setActive(s.o.workers) }}
	up := phase{name: "resize-up", weight: 2.5, begin: func() { s.resize(s.o.min, upMax) }}
	down := phase{name: "resize-down", weight: 2.5, begin: func() { s.resize(min(s.o.min, downMax), downMax) }}
	b := s.t.backend
	if b == nil {
		warm.weight, load.weight, up.weight, down.weight = 2, 5, 5, 4
		return []phase{warm, load, up, down}
	}
	// With no load the pool's connections sit idle: health checks find the
	// killed ones. Under full load workers find them first, and Destroy them.
	idleKills := phase{name: "idle-kills", weight: 1.5,
		begin: func() { s.setActive(0) },
		mid: func() {
			n := b.KillIdle(max(1, b.Stats().Open/2))
			s.backendEvent("kill_idle", zap.Int("killed", n))
		},
	}
	busyKills := phase{name: "busy-kills", weight: 1.5, begin: func() {
		s.setActive(s.o.workers)
		s.backendEvent("kill_all", zap.Int("killed", b.KillAll()))
	}}
	outage := phase{name: "outage", weight: 1.5, begin: func() {
		b.Down()
		s.backendEvent("down", zap.Int("killed", b.KillAll()))
	}}
	recovery := phase{name: "recovery", weight: 2, begin: func() {
		if err := b.Up(); err != nil {
			s.backendEvent("up_failed", zap.Error(err))
			return
		}
		s.backendEvent("up")
	}}
	return []phase{warm, load, up, idleKills, busyKills, outage, recovery, down}
}

// runPhases runs every phase but close; an interrupt skips to close.
func (s *scenario[T]) runPhases(sig context.Context) {
	ps := s.phases()
	total := 0.0
	for _, p := range ps {
		total += p.weight
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-sig.Done():
			return false
		}
	}
	for _, p := range ps {
		d := time.Duration(float64(s.o.duration) * p.weight / total)
		s.enter(p.name, d)
		p.begin()
		if p.mid != nil {
			if !wait(d / 2) {
				return
			}
			p.mid()
			d -= d / 2
		}
		if !wait(d) {
			s.log.Warn("demo.interrupted", zap.String("event", "demo.interrupted"))
			return
		}
	}
}

func (s *scenario[T]) enter(name string, d time.Duration) {
	s.phase.Store(&name)
	s.log.Info("demo.phase", zap.String("event", "demo.phase"), zap.String("phase", name), zap.Duration("for", d))
}

func (s *scenario[T]) backendEvent(action string, fields ...zap.Field) {
	st := s.t.backend.Stats()
	fields = append([]zap.Field{zap.String("event", "demo.backend"), zap.String("action", action)}, fields...)
	fields = append(fields, zap.Int("open", st.Open), zap.Bool("up", st.Up))
	s.log.Info("demo.backend", fields...)
}

func (s *scenario[T]) resize(min, max int) {
	if err := s.pool.Resize(min, max); err != nil {
		s.log.Error("demo.resize_failed", zap.String("event", "demo.resize_failed"), zap.Error(err))
	}
}

// startWorkers starts every worker, the first n of them active.
func (s *scenario[T]) startWorkers(n int) {
	gate := make(chan struct{})
	s.gate.Store(&gate)
	s.active.Store(int64(n))
	for w := range s.o.workers {
		s.workers.Add(1)
		go s.work(w)
	}
}

// setActive makes the first n workers run and parks the others.
func (s *scenario[T]) setActive(n int) {
	s.active.Store(int64(n))
	gate := make(chan struct{})
	close(*s.gate.Swap(&gate))
	s.log.Info("demo.load", zap.String("event", "demo.load"), zap.Int("active_workers", n))
}

// park waits while worker w is not active; false when the pool has closed.
func (s *scenario[T]) park(w int) bool {
	for {
		gate := *s.gate.Load()
		if int64(w) < s.active.Load() {
			return true
		}
		select {
		case <-gate:
		case <-s.stop.Done():
			return false
		}
	}
}

// work loops acquire → request → release until the pool closes.
func (s *scenario[T]) work(w int) {
	defer s.workers.Done()
	h := &s.hists[w]
	for seq := uint64(1); ; seq++ {
		if !s.park(w) {
			return
		}
		t0 := time.Now()
		c, err := s.pool.Acquire(s.stop)
		took := time.Since(t0)
		if err != nil {
			if errors.Is(err, tidepool.ErrClosed) || s.stop.Err() != nil {
				return
			}
			s.acquireFailed(err, took)
			select {
			case <-time.After(errorPause):
			case <-s.stop.Done():
				return
			}
			continue
		}
		s.acquires.Add(1)
		h.observe(took)
		switch err := s.t.request(c.Value(), w, seq); {
		case err == nil:
			c.Release()
			s.served.Add(1)
		case errors.Is(err, errReply):
			c.Release()
			s.replyErrs.Add(1)
		default:
			c.Destroy() // broken: the pool dials a replacement if it needs one
			s.ioErrs.Add(1)
		}
	}
}

func (s *scenario[T]) acquireFailed(err error, took time.Duration) {
	s.acquireErrs.Add(1)
	switch {
	case errors.Is(err, tidepool.ErrDial):
		s.dialErrs.Add(1)
	case errors.Is(err, tidepool.ErrAcquireTimeout):
		s.timeoutErrs.Add(1)
	}
	for {
		old := s.slowestFailedAcquire.Load()
		if int64(took) <= old || s.slowestFailedAcquire.CompareAndSwap(old, int64(took)) {
			return
		}
	}
}

// closePool closes the pool gracefully, with a deadline, and waits for the
// workers: they stop when their Acquire returns ErrClosed.
func (s *scenario[T]) closePool() error {
	s.enter("close", closeDeadline)
	ctx, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	err := s.pool.Close(ctx)
	s.cancelStop()
	s.workers.Wait()
	return err
}

// printStats prints one line per second on stderr until done is closed.
func (s *scenario[T]) printStats(done <-chan struct{}, wg *sync.WaitGroup) {
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
			st := s.pool.Stats()
			fmt.Fprintf(s.stderr, "%5.1fs %-13s conns %2d/%-2d idle %2d in-use %2d dialing %d waiting %2d | %6.0f req/s  errors %d  dialed %d  retired %d\n",
				now.Sub(s.start).Seconds(), *s.phase.Load(), st.Total, st.MaxSize, st.Idle, st.InUse, st.Dialing, st.Waiting,
				rate, s.acquireErrs.Load()+s.ioErrs.Load()+s.replyErrs.Load(), st.Dials, st.Closed.Total())
		}
	}
}

// summarize prints the summary table on stderr, logs it as a demo.summary
// entry, and returns the exit code.
func (s *scenario[T]) summarize(closeErr error) int {
	var h waitHist
	for i := range s.hists {
		h.merge(&s.hists[i])
	}
	st := s.pool.Stats()
	elapsed := time.Since(s.start)
	acquires, served := s.acquires.Load(), s.served.Load()
	reuse := 0.0
	if acquires > 0 {
		reuse = 1 - float64(st.Dials)/float64(acquires)
	}
	p50, p99 := h.quantile(0.50), h.quantile(0.99)
	cl := st.Closed

	w := s.stderr
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-22s "+format+"\n", append([]any{name}, args...)...)
	}
	fmt.Fprintf(w, "\ntidepool-demo summary\n")
	row("target", "%s", s.t.desc)
	row("run time", "%.1fs, %d workers, max %d → %d → %d", elapsed.Seconds(), s.o.workers, s.o.max, 2*s.o.max, max(1, s.o.max/2))
	row("requests served", "%d (%.0f/s)", served, float64(served)/elapsed.Seconds())
	row("errors", "%d: acquire %d (dial %d, timeout %d), request i/o %d, error reply %d",
		s.acquireErrs.Load()+s.ioErrs.Load()+s.replyErrs.Load(),
		s.acquireErrs.Load(), s.dialErrs.Load(), s.timeoutErrs.Load(), s.ioErrs.Load(), s.replyErrs.Load())
	row("slowest failed acquire", "%v", time.Duration(s.slowestFailedAcquire.Load()).Round(time.Microsecond))
	row("acquire wait p50", "%v", p50.Round(time.Microsecond/10))
	row("acquire wait p99", "%v", p99.Round(time.Microsecond/10))
	row("acquire wait max", "%v", h.max.Round(time.Microsecond/10))
	row("reuse ratio", "%.2f%% (%d dials for %d acquires)", 100*reuse, st.Dials, acquires)
	row("connections dialed", "%d (dial errors %d)", st.Dials, st.DialErrors)
	row("retired by reason", "%d: lifetime %d, idle %d, health %d, shrink %d, destroyed %d, close %d, excess_idle %d",
		cl.Total(), cl.Lifetime, cl.Idle, cl.Health, cl.Shrink, cl.Destroyed, cl.Close, cl.ExcessIdle)
	row("health checks", "%d (%d failed)", st.HealthChecks, st.HealthFailures)
	if b := s.t.backend; b != nil {
		bs := b.Stats()
		row("backend", "accepted %d, killed %d, replies %d", bs.Accepted, bs.Killed, bs.Requests)
	}
	code := exitOK
	switch {
	case closeErr != nil:
		row("close", "FAILED: %v", closeErr)
		code = exitFail
	case served == 0:
		row("result", "FAILED: no request was served")
		code = exitFail
	default:
		row("close", "graceful")
	}

	s.log.Info("demo.summary", zap.String("event", "demo.summary"),
		zap.Duration("elapsed", elapsed), zap.Int64("served", served), zap.Int64("acquires", acquires),
		zap.Int64("acquire_errors", s.acquireErrs.Load()), zap.Int64("io_errors", s.ioErrs.Load()),
		zap.Int64("reply_errors", s.replyErrs.Load()),
		zap.Duration("acquire_wait_p50", p50), zap.Duration("acquire_wait_p99", p99),
		zap.Float64("reuse_ratio", reuse), zap.Int64("dials", st.Dials), zap.Int64("dial_errors", st.DialErrors),
		zap.Any("retired", cl), zap.Bool("close_forced", closeErr != nil))
	return code
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
