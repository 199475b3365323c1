package main

// -scenario failover: a failover pool over two embedded backends, a primary
// and a warm secondary. Workers send GET/SET through it; then the primary's
// backend goes down for -outage (every connection closed, the port refusing):
// the pool counts the primary's dial errors, switches to the secondary (one
// failover.switched entry), probes the primary every half second after its
// hold time, and switches back (failover.restored) once the backend is up.
// A request whose connection the outage killed is retried; none is lost. The
// summary has one row per side.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/admin"
	"github.com/tidepool-go/tidepool/failover"
	"github.com/tidepool-go/tidepool/internal/demobackend"
	"github.com/tidepool-go/tidepool/netconn"
)

// sideCount is what one worker saw of one side.
type sideCount struct {
	served, ioErrs, replyErrs int64
	wait                      waitHist
}

type failoverRun struct {
	o         options
	log       *zap.Logger
	stderr    io.Writer
	tl        timeline
	prim, sec *demobackend.Server
	pool      *failover.Pool[net.Conn]
	start     time.Time
	downAt    time.Time // written by the main goroutine, read after the run
	upAt      time.Time

	// Times of the first switch and restore, set by a zap hook on the pool's
	// logger (from whichever goroutine logs them).
	switchedAt, restoredAt atomic.Pointer[time.Time]

	stop     chan struct{} // closed when the pool has closed
	workers  sync.WaitGroup
	counts   [][2]sideCount // one per worker, written by it, merged after workers.Wait
	attempts int            // per request
	final    failover.Stats // the last Stats before Close

	served, acquireErrs, retried, lost atomic.Int64
	lastAcquireErr                     atomic.Pointer[string]
}

func runFailover(o options, stdout, stderr io.Writer) int {
	stderr = &lockedWriter{w: stderr}
	s := &failoverRun{o: o, stderr: stderr, stop: make(chan struct{}), counts: make([][2]sideCount, o.workers),
		// A connection the outage killed fails one attempt and is destroyed;
		// the two pools hold at most 2·sideMax of them, so a request retried
		// that often cannot run out of attempts on dead connections alone.
		attempts: 2*sideMax(o) + 1}
	s.log = newLogger(stdout).WithOptions(zap.Hooks(s.noteSwitch))
	s.tl.log = s.log
	sig, stopSignals := signals()
	defer stopSignals()
	bs, err := startBackends(2)
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: starting the embedded backends: %v\n", err)
		return exitFail
	}
	s.prim, s.sec = bs[0], bs[1]
	defer s.prim.Close()
	defer s.sec.Close()

	// Hold the secondary at least a quarter of the outage (2 s at most)
	// before probing, well above the health interval that retires the
	// connections the outage killed.
	hold := min(2*time.Second, o.multi.outage/4)
	cfg := failover.Config[net.Conn]{
		Name:           "demo",
		Primary:        s.sideConfig(s.prim),
		Secondary:      s.sideConfig(s.sec),
		Logger:         s.log,
		Threshold:      5,
		Window:         5 * time.Second,
		AttemptTimeout: time.Second,
		HoldTime:       hold,
		ProbeInterval:  500 * time.Millisecond,
		ProbeTimeout:   500 * time.Millisecond,
	}
	s.log.Info("demo.started", zap.String("event", "demo.started"), zap.String("scenario", "failover"),
		zap.Duration("duration", o.duration), zap.Duration("outage", o.multi.outage), zap.Int("workers", o.workers),
		zap.Int("min_idle", o.min), zap.Int("max_size", sideMax(o)), zap.Duration("hold_time", hold))
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	s.pool, err = failover.New(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: cannot start the failover pool: %v\n", err)
		return exitFail
	}
	var adminSrv *http.Server
	if o.admin != "" {
		if adminSrv, err = serveHandler(o.admin, admin.FailoverHandler(s.pool), s.log, stderr,
			`POST /switch {"to":"secondary"}, GET /conns?side=primary`); err != nil {
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
	for w := range o.workers {
		s.workers.Add(1)
		go s.work(w)
	}
	s.tl.run(sig, []step{
		{"load", o.duration * 2 / 5, nil},
		// The backend entries are logged before the action: the pool reacts
		// within microseconds, and its entries must come after.
		{"outage", o.multi.outage, func() {
			s.backendEvent("primary", "down", zap.Int("open", s.prim.Stats().Open))
			s.downAt = time.Now()
			s.prim.Down()
			s.prim.KillAll()
		}},
		{"recovery", o.duration * 3 / 5, func() {
			s.backendEvent("primary", "up")
			s.upAt = time.Now()
			if err := s.prim.Up(); err != nil {
				s.backendEvent("primary", "up_failed", zap.Error(err))
			}
		}},
	})
	closeErr := s.closePool()
	close(tickerDone)
	ticker.Wait()
	shutdown(adminSrv)
	code := s.summarize(closeErr)
	_ = s.log.Sync()
	return code
}

// sideMax is each side's MaxSize: at least one connection per worker, so
// that the load alone never exhausts the primary (exhaustion counts as a
// failure): the story is the outage.
func sideMax(o options) int { return max(o.max, o.workers) }

// sideConfig is one side's pool: net.Conns to b, checked with a peek.
func (s *failoverRun) sideConfig(b *demobackend.Server) tidepool.Config[net.Conn] {
	cfg := netconn.Config(netconn.Options{Network: "tcp", Address: b.Addr()})
	cfg.MaxSize, cfg.MinIdle = sideMax(s.o), s.o.min
	cfg.HealthInterval, cfg.HealthTimeout = healthInterval, time.Second
	cfg.DialTimeout = time.Second
	cfg.DialBackoff = 50 * time.Millisecond
	return cfg
}

// noteSwitch is a zap hook: it records when the first switch and restore
// were logged.
func (s *failoverRun) noteSwitch(e zapcore.Entry) error {
	switch e.Message {
	case failover.EventSwitched:
		s.switchedAt.CompareAndSwap(nil, &e.Time)
	case failover.EventRestored:
		s.restoredAt.CompareAndSwap(nil, &e.Time)
	}
	return nil
}

func (s *failoverRun) backendEvent(side, action string, fields ...zap.Field) {
	fields = append([]zap.Field{zap.String("event", "demo.backend"), zap.String("side", side), zap.String("action", action)}, fields...)
	s.log.Info("demo.backend", fields...)
}

// work loops until the pool closes: one request at a time, each retried on a
// fresh connection when the one it got was broken.
func (s *failoverRun) work(w int) {
	defer s.workers.Done()
	counts := &s.counts[w]
	key := "session:" + strconv.Itoa(w)
	for seq := uint64(1); ; seq++ {
		done := false
		for range s.attempts {
			ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
			t0 := time.Now()
			c, err := s.pool.Acquire(ctx)
			took := time.Since(t0)
			cancel()
			if err != nil {
				if errors.Is(err, tidepool.ErrClosed) {
					return
				}
				s.acquireErrs.Add(1)
				msg := err.Error()
				s.lastAcquireErr.Store(&msg)
				select {
				case <-time.After(errorPause):
				case <-s.stop:
					return
				}
				continue
			}
			sc := &counts[c.Side()]
			sc.wait.observe(took)
			err = keyRequest(c.Value(), key, seq)
			if !isBroken(err) {
				c.Release()
				if err == nil {
					sc.served++
					s.served.Add(1)
				} else {
					sc.replyErrs++
				}
				done = true
				break
			}
			c.Destroy() // killed by the outage: retry on another connection
			sc.ioErrs++
			s.retried.Add(1)
		}
		if !done {
			select {
			case <-s.stop:
				return // the close, not the backends, ended it
			default:
			}
			s.lost.Add(1)
		}
	}
}

// closePool closes the pool with a deadline and waits for the workers.
func (s *failoverRun) closePool() error {
	s.tl.enter("close", closeDeadline)
	s.final = s.pool.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	err := s.pool.Close(ctx)
	close(s.stop)
	s.workers.Wait()
	return err
}

// printStats prints one line per second: the rate, the serving side, and
// each side's connections.
func (s *failoverRun) printStats(done <-chan struct{}, wg *sync.WaitGroup) {
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
			fmt.Fprintf(s.stderr, "%5.1fs %-9s %6.0f req/s | serving %-9s | primary %d/%d in use, %d idle | secondary %d/%d in use, %d idle | switches %d restores %d probes %d\n",
				now.Sub(s.start).Seconds(), s.tl.current(), rate, st.Serving,
				st.Primary.InUse, st.Primary.MaxSize, st.Primary.Idle,
				st.Secondary.InUse, st.Secondary.MaxSize, st.Secondary.Idle,
				st.Switches, st.Restores, st.Probes)
		}
	}
}

// sideSummary is one row of the summary.
type sideSummary struct {
	Side      string        `json:"side"`
	Served    int64         `json:"served"`
	IOErrs    int64         `json:"io_errors"`
	ReplyErrs int64         `json:"reply_errors"`
	WaitP50   time.Duration `json:"acquire_wait_p50"`
	WaitP99   time.Duration `json:"acquire_wait_p99"`
	Dials     int64         `json:"dials"`
	DialErrs  int64         `json:"dial_errors"`
}

// summarize prints one row per side on stderr, logs demo.summary, and
// returns the exit code.
func (s *failoverRun) summarize(closeErr error) int {
	var merged [2]sideCount
	for _, c := range s.counts {
		for i := range c {
			merged[i].served += c[i].served
			merged[i].ioErrs += c[i].ioErrs
			merged[i].replyErrs += c[i].replyErrs
			merged[i].wait.merge(&c[i].wait)
		}
	}
	st := s.final
	rows := make([]sideSummary, 2)
	for i, ps := range [2]tidepool.Stats{st.Primary, st.Secondary} {
		m := &merged[i]
		rows[i] = sideSummary{Side: failover.Side(i).String(), Served: m.served, IOErrs: m.ioErrs, ReplyErrs: m.replyErrs,
			WaitP50: m.wait.quantile(0.5), WaitP99: m.wait.quantile(0.99), Dials: ps.Dials, DialErrs: ps.DialErrors}
	}
	var detected, resumed time.Duration
	if t := s.switchedAt.Load(); t != nil && !s.downAt.IsZero() {
		detected = t.Sub(s.downAt)
	}
	if t := s.restoredAt.Load(); t != nil && !s.upAt.IsZero() {
		resumed = t.Sub(s.upAt)
	}
	elapsed := time.Since(s.start)
	served := merged[0].served + merged[1].served
	w := s.stderr
	fmt.Fprintf(w, "\ntidepool-demo summary (failover)\n")
	fmt.Fprintf(w, "  %-22s primary embedded %s, secondary embedded %s\n", "target", s.prim.Addr(), s.sec.Addr())
	fmt.Fprintf(w, "  %-22s %.1fs, %d workers, max %d per side; primary down for %v\n", "run time",
		elapsed.Seconds(), s.o.workers, sideMax(s.o), s.o.multi.outage)
	fmt.Fprintf(w, "  %-22s %d (%.0f/s)\n", "requests served", served, float64(served)/elapsed.Seconds())
	fmt.Fprintf(w, "\n  %-10s %9s %9s %11s %11s %6s %9s\n", "side", "requests", "i/o errs", "wait p50", "wait p99", "dials", "dial errs")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-10s %9d %9d %11v %11v %6d %9d\n", r.Side, r.Served, r.IOErrs,
			r.WaitP50.Round(time.Microsecond), r.WaitP99.Round(time.Microsecond), r.Dials, r.DialErrs)
	}
	fmt.Fprintf(w, "\n  %-22s %d, %v after the primary went down (primary failures %+v)\n", "switches", st.Switches,
		detected.Round(time.Millisecond), st.PrimaryFailures)
	fmt.Fprintf(w, "  %-22s %d, %v after it came back (%d probes, %d failed)\n", "restores", st.Restores,
		resumed.Round(time.Millisecond), st.Probes, st.ProbeFailures)
	fmt.Fprintf(w, "  %-22s %d (Acquires served by the other side: %d; requests retried past killed connections: %d; acquire errors: %d)\n",
		"lost requests", s.lost.Load(), st.FellOver, s.retried.Load(), s.acquireErrs.Load())
	if e := s.lastAcquireErr.Load(); e != nil {
		fmt.Fprintf(w, "  %-22s %s\n", "last acquire error", *e)
	}
	code := exitOK
	switch {
	case closeErr != nil:
		fmt.Fprintf(w, "  %-22s FAILED: %v\n", "close", closeErr)
		code = exitFail
	case s.lost.Load() > 0:
		fmt.Fprintf(w, "  %-22s FAILED: %d requests lost\n", "result", s.lost.Load())
		code = exitFail
	case st.Switches == 0 || st.Restores == 0:
		fmt.Fprintf(w, "  %-22s FAILED: the pool did not switch and restore (%d, %d)\n", "result", st.Switches, st.Restores)
		code = exitFail
	default:
		fmt.Fprintf(w, "  %-22s graceful\n", "close")
	}
	s.log.Info("demo.summary", zap.String("event", "demo.summary"), zap.String("scenario", "failover"),
		zap.Duration("elapsed", elapsed), zap.Int64("served", served), zap.Any("sides", rows),
		zap.Int64("switches", st.Switches), zap.Int64("restores", st.Restores),
		zap.Duration("switched_after", detected), zap.Duration("restored_after", resumed),
		zap.Int64("lost", s.lost.Load()), zap.Int64("retried", s.retried.Load()),
		zap.Int64("acquire_errors", s.acquireErrs.Load()), zap.Int64("fell_over", st.FellOver),
		zap.Bool("close_forced", closeErr != nil))
	return code
}
