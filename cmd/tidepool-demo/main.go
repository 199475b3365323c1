// Command tidepool-demo shows a tidepool pool at work: it builds a pool of
// connections, drives steady load through it with many workers, and walks
// through phases — warm-up, load, resize up, backend kills connections, backend
// outage, recovery, resize down, graceful close — while the pool logs every
// lifecycle event as one JSON line on stdout (pipe it to jq) and the demo
// prints a stats line per second and a summary table on stderr.
//
// With no flags it starts an embedded backend on 127.0.0.1 (package
// internal/demobackend) and runs for about 16 seconds:
//
//	go run ./cmd/tidepool-demo
//	go run ./cmd/tidepool-demo | jq 'select(.event=="conn.retired")'
//	go run ./cmd/tidepool-demo -target redis://127.0.0.1:6379 -duration 30s
//	go run ./cmd/tidepool-demo -admin 127.0.0.1:8080 -duration 60s
//
// See docs/demo.md for what each phase shows.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes of run.
const (
	exitOK    = 0
	exitFail  = 1 // setup failed, or the scenario went wrong
	exitUsage = 2 // bad flags
)

// options are the parsed flags.
type options struct {
	target   string // "embedded", "tcp://host:port" or "redis://host:port"
	kind     string // "embedded", "tcp" or "redis"
	addr     string // host:port for tcp and redis
	duration time.Duration
	workers  int
	max, min int
	admin    string
	quiet    bool
	multi    multiOptions // -scenario, -shards, -outage (scenario_multi.go)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("tidepool-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.target, "target", "embedded",
		"backend: embedded (an in-process server on 127.0.0.1), tcp://host:port (a line server answering PING), or redis://host:port")
	fs.DurationVar(&o.duration, "duration", 16*time.Second, "total run time; the phases scale with it")
	fs.IntVar(&o.workers, "workers", 32, "concurrent workers, each looping acquire → request → release")
	fs.IntVar(&o.max, "max", 8, "pool MaxSize at start (resized to 2×max, then max/2)")
	fs.IntVar(&o.min, "min", 2, "pool MinIdle")
	fs.StringVar(&o.admin, "admin", "", "serve the admin handler (GET /stats, POST /resize, GET /conns) on this address, e.g. 127.0.0.1:8080")
	fs.BoolVar(&o.quiet, "quiet", false, "no per-second stats line on stderr")
	o.multi.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tidepool-demo [flags]\n\nRuns a tidepool scenario; pool events go to stdout as JSON lines, stats to stderr.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case o.duration < time.Second:
		return o, fmt.Errorf("-duration %v: must be at least 1s", o.duration)
	case o.workers < 1:
		return o, fmt.Errorf("-workers %d: must be at least 1", o.workers)
	case o.max < 1:
		return o, fmt.Errorf("-max %d: must be at least 1", o.max)
	case o.min < 0 || o.min > o.max:
		return o, fmt.Errorf("-min %d: must be in [0, max=%d]", o.min, o.max)
	}
	if err := o.multi.check(o.target); err != nil {
		return o, err
	}
	if o.target == "embedded" {
		o.kind = "embedded"
		return o, nil
	}
	u, err := url.Parse(o.target)
	if err != nil {
		return o, fmt.Errorf("-target %q: %w", o.target, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "redis" {
		return o, fmt.Errorf("-target %q: want embedded, tcp://host:port or redis://host:port", o.target)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil || u.Path != "" && u.Path != "/" {
		return o, fmt.Errorf("-target %q: want %s://host:port", o.target, u.Scheme)
	}
	o.kind, o.addr = u.Scheme, u.Host
	return o, nil
}

// run is the whole program, testable: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: %v\n", err)
		return exitUsage
	}
	if code, ok := runMulti(o, stdout, stderr); ok {
		return code
	}
	switch o.kind {
	case "embedded":
		t, err := embeddedTarget()
		if err != nil {
			fmt.Fprintf(stderr, "tidepool-demo: starting the embedded backend: %v\n", err)
			return exitFail
		}
		return runScenario(o, t, stdout, stderr)
	case "tcp":
		return runScenario(o, lineTarget(o.addr), stdout, stderr)
	default:
		return runScenario(o, redisTarget(o.addr), stdout, stderr)
	}
}
