// Command tidepool-demo shows a tidepool pool at work: it builds a pool of
// connections, drives steady load through it with many workers, and walks
// through phases — warm-up, load, resize up, backend kills connections, backend
// outage, recovery, resize down, graceful close — while the pool logs every
// lifecycle event as one JSON line and the demo prints a stats line per second
// and a summary table on stderr.
//
// The JSON logs go to stdout when stdout is a pipe or a file (so | jq and
// > events.jsonl work); in a terminal they go to a new file in the temp
// directory instead, whose path the demo prints with a jq hint, so that the
// terminal shows only the stats lines and the summary. -logs chooses.
//
// With no flags it starts an embedded backend on 127.0.0.1 (package
// internal/demobackend) and runs for about 16 seconds:
//
//	go run ./cmd/tidepool-demo
//	go run ./cmd/tidepool-demo | jq 'select(.event=="conn.retired")'
//	go run ./cmd/tidepool-demo -target redis://127.0.0.1:6379 -duration 30s
//	go run ./cmd/tidepool-demo -admin 127.0.0.1:8080 -duration 60s
//
// With -admin it serves the admin handler's routes, /metrics (Prometheus) and
// /debug/vars (expvar). See docs/demo.md for what each phase shows.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync/atomic"
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
	logs     string       // "auto", "-" (stdout) or a file path
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
	fs.StringVar(&o.admin, "admin", "", "serve the admin handler (GET /stats, GET /conns, POST /resize, POST /reset), /metrics and /debug/vars on this address, e.g. 127.0.0.1:8080")
	fs.BoolVar(&o.quiet, "quiet", false, "no per-second stats line on stderr")
	fs.StringVar(&o.logs, "logs", "auto", "where the JSON log lines go: - (stdout), a file path, or auto: stdout when it is a pipe or a file, else a new file in the temp directory")
	o.multi.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tidepool-demo [flags]\n\nRuns a tidepool scenario; pool events are JSON lines (see -logs), stats and the summary go to stderr.\n\n")
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
	case o.logs == "":
		return o, errors.New(`-logs "": want -, auto or a file path`)
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
	logs, err := openLogs(o.logs, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tidepool-demo: %v\n", err)
		return exitFail
	}
	defer logs.close()
	stdout = logs.w // from here on, "stdout" is where the log lines go
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

// logSink is where the JSON log lines go: stdout, or a file.
type logSink struct {
	w      io.Writer
	file   *os.File // nil when w is stdout
	lines  *lineCounter
	stderr io.Writer
}

// openLogs resolves -logs. A file gets a note on stderr with its path and how
// to read it; close closes it and says how many lines it holds.
func openLogs(dest string, stdout, stderr io.Writer) (*logSink, error) {
	if dest == "-" || dest == "auto" && !isTerminal(stdout) {
		return &logSink{w: stdout}, nil
	}
	var f *os.File
	var err error
	if dest == "auto" {
		f, err = os.CreateTemp("", "tidepool-demo-*.jsonl")
	} else {
		f, err = os.Create(dest)
	}
	if err != nil {
		return nil, fmt.Errorf("-logs: %w", err)
	}
	lc := &lineCounter{w: f}
	fmt.Fprintf(stderr, "logs: one JSON line per event in %s (-logs - sends them to stdout)\n", f.Name())
	fmt.Fprintf(stderr, "      follow them from another terminal: tail -f %s | jq -c .\n", f.Name())
	return &logSink{w: lc, file: f, lines: lc, stderr: stderr}, nil
}

func (l *logSink) close() {
	if l.file == nil {
		return
	}
	name := l.file.Name()
	if err := l.file.Close(); err != nil {
		fmt.Fprintf(l.stderr, "tidepool-demo: closing the log file: %v\n", err)
	}
	fmt.Fprintf(l.stderr, "\nlogs: %d JSON lines in %s; for example:\n", l.lines.n.Load(), name)
	fmt.Fprintf(l.stderr, "  jq -c 'select(.event==\"conn.retired\") | {ts, conn_id, reason, age}' %s\n", name)
	fmt.Fprintf(l.stderr, "  jq -r 'select(.event==\"conn.retired\") | .reason' %s | sort | uniq -c\n", name)
}

// isTerminal reports whether w is a character device other than /dev/null:
// a terminal, in practice. Pipes, files and /dev/null are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// lineCounter counts the newlines written through it. zap serializes writes
// (zapcore.Lock), but the count is read by another goroutine: atomic.
type lineCounter struct {
	w io.Writer
	n atomic.Int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
	return n, err
}
