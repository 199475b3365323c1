package main

// The pool-of-pools scenarios, -scenario shards and -scenario failover (see
// scenario_shards.go and scenario_failover.go): their flags, the dispatch
// from run, and what the two share. The default scenario (scenario.go) does
// not use any of this.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/internal/demobackend"
)

// multiOptions are the flags of the pool-of-pools scenarios.
type multiOptions struct {
	scenario string        // default, shards or failover
	shards   int           // shards at start, for -scenario shards
	outage   time.Duration // the primary's outage, for -scenario failover
}

// register adds the flags to fs.
func (m *multiOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&m.scenario, "scenario", "default",
		"default (one pool through load, resizes, kills and an outage); shards (a sharded pool over several embedded backends, one made slow); failover (a primary and a warm secondary, the primary goes down for -outage)")
	fs.IntVar(&m.shards, "shards", 4, "-scenario shards: shards (embedded backends) at start, 2 to 16")
	fs.DurationVar(&m.outage, "outage", 30*time.Second, "-scenario failover: how long the primary backend is down")
}

// check validates the flags once parsed.
func (m *multiOptions) check(target string) error {
	switch m.scenario {
	case "default":
		return nil
	case "shards", "failover":
	default:
		return fmt.Errorf("-scenario %q: want default, shards or failover", m.scenario)
	}
	switch {
	case target != "embedded":
		return fmt.Errorf("-scenario %s runs against embedded backends only; leave -target out", m.scenario)
	case m.shards < 2 || m.shards > 16:
		return fmt.Errorf("-shards %d: must be in [2, 16]", m.shards)
	case m.outage < time.Second:
		return fmt.Errorf("-outage %v: must be at least 1s", m.outage)
	}
	return nil
}

// runMulti runs a pool-of-pools scenario; false if o asks for the default one.
func runMulti(o options, stdout, stderr io.Writer) (int, bool) {
	switch o.multi.scenario {
	case "shards":
		return runShards(o, stdout, stderr), true
	case "failover":
		return runFailover(o, stdout, stderr), true
	}
	return 0, false
}

// Settings both scenarios share.
const (
	multiAcquireTimeout = 500 * time.Millisecond // a worker's Acquire deadline
	multiRetries        = 3                      // attempts per request, past connections an outage killed
)

// startBackends starts n embedded backends; on error it closes those it
// started.
func startBackends(n int) ([]*demobackend.Server, error) {
	var bs []*demobackend.Server
	for range n {
		b, err := demobackend.Start(demobackend.Options{Latency: time.Millisecond, Jitter: time.Millisecond})
		if err != nil {
			for _, b := range bs {
				_ = b.Close()
			}
			return nil, err
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// keyRequest sends GET or SET for key on c (the embedded backend's line
// protocol), alternating with seq.
func keyRequest(c net.Conn, key string, seq uint64) error {
	if seq%2 == 1 {
		return lineRequest(c, "SET "+key+" v"+strconv.FormatUint(seq, 10), "OK")
	}
	return lineRequest(c, "GET "+key, "")
}

// timeline runs named phases one after the other, logging demo.phase for
// each, until they end or sig is done.
type timeline struct {
	log   *zap.Logger
	phase atomic.Pointer[string]
}

type step struct {
	name  string
	dur   time.Duration
	begin func()
}

func (tl *timeline) enter(name string, d time.Duration) {
	tl.phase.Store(&name)
	tl.log.Info("demo.phase", zap.String("event", "demo.phase"), zap.String("phase", name), zap.Duration("for", d))
}

func (tl *timeline) current() string {
	if p := tl.phase.Load(); p != nil {
		return *p
	}
	return ""
}

// run returns false if sig ended the timeline early.
func (tl *timeline) run(sig context.Context, steps []step) bool {
	for _, s := range steps {
		tl.enter(s.name, s.dur)
		if s.begin != nil {
			s.begin()
		}
		t := time.NewTimer(s.dur)
		select {
		case <-t.C:
		case <-sig.Done():
			t.Stop()
			tl.log.Warn("demo.interrupted", zap.String("event", "demo.interrupted"))
			return false
		}
	}
	return true
}

// signals returns a context that ends at SIGINT or SIGTERM.
func signals() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// serveHandler serves h on addr until the returned server is shut down.
func serveHandler(addr string, h http.Handler, log *zap.Logger, stderr io.Writer, hint string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
	log.Info("demo.admin", zap.String("event", "demo.admin"), zap.String("addr", ln.Addr().String()))
	fmt.Fprintf(stderr, "admin: http://%s/stats  (%s)\n", ln.Addr(), hint)
	return srv, nil
}

func shutdown(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// isBroken reports whether a request error means the connection is unusable
// (it is not a mere error reply).
func isBroken(err error) bool { return err != nil && !errors.Is(err, errReply) }
