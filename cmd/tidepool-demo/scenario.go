package main

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/admin"
	"github.com/tidepool-go/tidepool/metrics"
)

// Fixed settings of the scenario.
const (
	setupTimeout   = 5 * time.Second        // New and the first Acquire
	acquireTimeout = 2 * time.Second        // one worker Acquire
	closeDeadline  = 2 * time.Second        // the graceful close
	errorPause     = 50 * time.Millisecond  // a worker's pause after a failed Acquire
	healthInterval = 250 * time.Millisecond // checks of idle connections
	warmupWorkers  = 2                      // workers running during warm-up
	// leakThreshold turns the pool's hand-out tracking on, so that the
	// admin's GET /conns shows how long each connection has been held. A
	// worker holds one for a request (at most requestTimeout), so a
	// connection held this long is a real leak.
	leakThreshold = 3 * requestTimeout
	// expvarName is the expvar variable holding the pool's Stats under
	// /debug/vars (expvarName_2, … for later runs in the same process).
	expvarName = "tidepool_demo"
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

	// resizeMu serializes the script's resizes with an operator's POST
	// /resize; operator is set (under it) by the first operator resize, after
	// which the script's resizes are skipped. maxes is the history of the
	// pool's max for the summary.
	resizeMu sync.Mutex
	operator *operatorResize
	maxes    []string

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
	s.start = time.Now()
	var adminSrv *http.Server
	if o.admin != "" {
		var err error
		if adminSrv, err = s.serveAdmin(); err != nil {
			_ = s.pool.Close(context.Background())
			fmt.Fprintf(stderr, "tidepool-demo: admin: %v\n", err)
			return exitFail
		}
	}

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
	cfg.LeakThreshold = leakThreshold
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
	s.maxes = []string{fmt.Sprint(s.o.max)}
	return nil
}

// serveAdmin serves, on -admin, what a service would put on its operator
// listener: the admin handler's routes at the root, /metrics for Prometheus
// and /debug/vars with the pool's Stats under expvarName.
func (s *scenario[T]) serveAdmin() (*http.Server, error) {
	ln, err := net.Listen("tcp", s.o.admin)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(s.pool))
	varName := expvarName
	for i := 2; ; i++ {
		// expvar names are process-wide and permanent: a second run in one
		// process (the tests) takes the next free name.
		err := metrics.PublishExpvar(varName, s.pool)
		if err == nil {
			break
		}
		if !errors.Is(err, metrics.ErrNameTaken) {
			ln.Close()
			return nil, err
		}
		varName = fmt.Sprintf("%s_%d", expvarName, i)
	}
	mux := http.NewServeMux()
	mux.Handle("/", s.trackOperatorResizes(admin.Handler(s.pool)))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
	s.log.Info("demo.admin", zap.String("event", "demo.admin"), zap.String("addr", ln.Addr().String()),
		zap.String("expvar", varName))
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(s.stderr, "admin: %s/stats  %s/conns  %s/metrics  %s/debug/vars (.%s)\n", base, base, base, base, varName)
	fmt.Fprintf(s.stderr, "       curl -X POST -d '{\"min\":2,\"max\":32}' %s/resize   (pauses the scripted resizes)\n", base)
	return srv, nil
}

// operatorResize is the first resize an operator made through the admin
// handler.
type operatorResize struct {
	at       time.Duration // since the start of the run
	min, max int
}

// trackOperatorResizes wraps the admin handler: a successful POST /resize
// runs under resizeMu and, the first time, pauses the scripted resizes, so
// that the script never silently undoes an operator's bounds.
func (s *scenario[T]) trackOperatorResizes(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/resize" || r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		s.resizeMu.Lock()
		defer s.resizeMu.Unlock()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status != http.StatusOK {
			return
		}
		st := s.pool.Stats()
		s.maxes = append(s.maxes, fmt.Sprintf("%d (operator)", st.MaxSize))
		if s.operator != nil {
			return
		}
		s.operator = &operatorResize{at: time.Since(s.start), min: st.MinIdle, max: st.MaxSize}
		s.log.Info("demo.operator_resize", zap.String("event", "demo.operator_resize"),
			zap.Int("min", st.MinIdle), zap.Int("max", st.MaxSize), zap.String("phase", s.phaseName()))
		fmt.Fprintf(s.stderr, "%5.1fs operator resized the pool to [%d, %d] through the admin handler: scripted resizes paused for the rest of the run\n",
			s.operator.at.Seconds(), st.MinIdle, st.MaxSize)
	})
}

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// phases lists the scenario's phases before close.
func (s *scenario[T]) phases() []phase {
	upMax := 2 * s.o.max
	downMax := max(1, s.o.max/2)
	warm := phase{name: "warm-up", weight: 1.5, begin: func() { s.startWorkers(min(warmupWorkers, s.o.workers)) }}
	load := phase{name: "load", weight: 3, begin: func() { s.setActive(s.o.workers) }}
	up := phase{name: "resize-up", weight: 2.5, begin: func() { s.resize("resize-up", s.o.min, upMax) }}
	down := phase{name: "resize-down", weight: 2.5, begin: func() { s.resize("resize-down", min(s.o.min, downMax), downMax) }}
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

// phaseName is the current phase, "setup" before the first.
func (s *scenario[T]) phaseName() string {
	if p := s.phase.Load(); p != nil {
		return *p
	}
	return "setup"
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

// resize is a scripted resize: skipped, with a log entry and a line on
// stderr, once an operator has resized the pool.
func (s *scenario[T]) resize(phase string, min, max int) {
	s.resizeMu.Lock()
	defer s.resizeMu.Unlock()
	if op := s.operator; op != nil {
		s.log.Info("demo.resize_skipped", zap.String("event", "demo.resize_skipped"), zap.String("phase", phase),
			zap.Int("min", min), zap.Int("max", max), zap.Int("operator_min", op.min), zap.Int("operator_max", op.max))
		fmt.Fprintf(s.stderr, "%5.1fs %s: scripted resize to [%d, %d] skipped: the operator's [%d, %d] (at %.1fs) stands\n",
			time.Since(s.start).Seconds(), phase, min, max, op.min, op.max, op.at.Seconds())
		return
	}
	if err := s.pool.Resize(min, max); err != nil {
		s.log.Error("demo.resize_failed", zap.String("event", "demo.resize_failed"), zap.Error(err))
		return
	}
	s.maxes = append(s.maxes, fmt.Sprint(max))
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

// errorCount is every failed acquire or request so far.
func (s *scenario[T]) errorCount() int64 {
	return s.acquireErrs.Load() + s.ioErrs.Load() + s.replyErrs.Load()
}

// printStats prints one line per second on stderr until done is closed: the
// pool now, the request and error rates over the last second, and totals
// since the start.
func (s *scenario[T]) printStats(done <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastErrs, lastAt := s.served.Load(), s.errorCount(), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			served, errs := s.served.Load(), s.errorCount()
			secs := now.Sub(lastAt).Seconds()
			rate, errRate := float64(served-last)/secs, float64(errs-lastErrs)/secs
			last, lastErrs, lastAt = served, errs, now
			st := s.pool.Stats()
			fmt.Fprintf(s.stderr, "%5.1fs %-11s now: conns %2d/%-2d idle %2d in-use %2d dialing %d waiting %2d | last 1s: %5.0f req/s %4.0f err/s | total: %d served, %d errors, %d dialed, %d retired\n",
				now.Sub(s.start).Seconds(), s.phaseName(), st.Total, st.MaxSize, st.Idle, st.InUse, st.Dialing, st.Waiting,
				rate, errRate, served, errs, st.Dials, st.Closed.Total())
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
	s.resizeMu.Lock()
	maxes, op := strings.Join(s.maxes, " → "), s.operator
	s.resizeMu.Unlock()
	row("run time", "%.1fs, %d workers, max %s", elapsed.Seconds(), s.o.workers, maxes)
	if op != nil {
		row("operator", "resized to [%d, %d] at %.1fs; the scripted resizes after it were skipped", op.min, op.max, op.at.Seconds())
	}
	row("requests served", "%d (%.0f/s)", served, float64(served)/elapsed.Seconds())
	row("errors", "%d: acquire %d (dial %d, timeout %d), request i/o %d, error reply %d",
		s.errorCount(),
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
