package testserver

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ErrNotInstalled is wrapped by the errors of the Launch functions when a
// server binary cannot be found.
var ErrNotInstalled = errors.New("testserver: server binary not installed")

// freePort asks the kernel for a free TCP port on 127.0.0.1 by binding port 0
// and closing the listener. Another process may take it before the server
// binds it, so callers retry with a new port when the server fails to start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Buffer collects a child process's output: the os/exec copier goroutine
// writes it while a test reads it. Safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// process is one running server process.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// spawn starts cmd with its output into log; the server dies with the test
// binary (Pdeathsig) if the binary dies without stopping it.
func spawn(cmd *exec.Cmd, log *Buffer, attr *syscall.SysProcAttr) (*process, error) {
	cmd.Stdout, cmd.Stderr = log, log
	if attr == nil {
		attr = new(syscall.SysProcAttr)
	}
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to grace for the exit, then kills the process
// group and waits for it. Stopping a stopped process does nothing.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// Missing reports that a server a test needs is not installed: the test is
// skipped with msg, or fails when the CI environment variable is set.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	tb.Skip(msg)
}

// Main runs a test binary whose runnable Examples talk to a server and
// returns its exit code (pass it to os.Exit). launch starts the shared
// server(s) and returns how to stop them. If launch fails because a binary is
// missing (ErrNotInstalled) and CI is not set, Main says so on stderr, leaves
// the Examples out (-test.skip=^Example, unless a -skip was given) and runs
// the tests, which skip themselves through Missing; any other launch failure,
// or a missing binary under CI, fails the run. After the run Main stops the
// servers and, if everything passed, fails the run when goroutines are left
// (goleak): no pool goroutine may outlive Close.
func Main(m *testing.M, launch func() (stop func(), err error)) int {
	flag.Parse()
	stop, err := launch()
	switch {
	case err == nil:
	case errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "":
		fmt.Fprintf(os.Stderr, "%v\ntestserver: the Examples are skipped, and so is every test that needs the server\n", err)
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			_ = flag.Set("test.skip", "^Example")
		}
	case errors.Is(err, ErrNotInstalled):
		fmt.Fprintf(os.Stderr, "%v (CI is set, so the run fails instead of skipping)\n", err)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "starting the shared server: %v\n", err)
		return 1
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			return 1
		}
	}
	return code
}
