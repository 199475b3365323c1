package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool/internal/resp"
)

// ReadyTimeout bounds how long Start waits for a new server to answer PING.
const ReadyTimeout = 10 * time.Second

// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 5 * time.Second

// Server is one redis-server process (or the slot for one, while stopped).
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string

	// Owned by the test goroutine.
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *lockedBuffer
}

// Start launches redis-server on a free 127.0.0.1 port with
// --save "" --appendonly no, plus extraArgs (e.g. "--maxclients", "3"), and
// returns once it answers PING. The server is stopped at t.Cleanup.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found in PATH (CI is set, so this fails instead of skipping): %v", err)
		}
		t.Skipf("redis-server not found in PATH; install it (apt-get install redis-server) to run this test")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: extraArgs}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("redis-server output:\n%s", s.log.String())
		}
	})
	// The free port is found by binding and releasing it; another process
	// may take it in between, so retry with a new port a few times.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v\n%s", lastErr, s.log.String())
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's host:port on 127.0.0.1. It does not change across
// Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Start starts a stopped server again on the same port and waits until it
// answers PING; it fails the test if it cannot.
func (s *Server) Start() {
	s.t.Helper()
	if s.Running() {
		s.t.Fatal("redistest: Start on a running server")
	}
	// The old listening socket is gone with the old process; redis sets
	// SO_REUSEADDR, so TIME_WAIT connections do not block the port. A port
	// stolen meanwhile by another process is retried until ReadyTimeout.
	deadline := time.Now().Add(ReadyTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: restarting redis-server on port %d: %v\n%s", s.port, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond) // the port is held by someone else
	}
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Stop stops the server (SIGTERM, then SIGKILL after a few seconds) and waits
// for it to exit. Stopping a stopped server does nothing. Clients see their
// connections closed.
func (s *Server) Stop() {
	if !s.Running() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// start launches the process on s.port and waits until it answers PING.
func (s *Server) start() error {
	if s.log == nil {
		s.log = new(lockedBuffer)
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited before answering PING (%v)", cmd.ProcessState)
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("redis-server did not answer PING within %v: %w", ReadyTimeout, err)
		case <-time.After(10 * time.Millisecond): // poll: the process gives no readiness signal
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := resp.Dial(ctx, "tcp", s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx)
}

// Do runs one command on a fresh connection (an admin connection, not a
// pooled one) and returns the reply; a Redis error reply is returned as an
// error.
func (s *Server) Do(ctx context.Context, args ...string) (resp.Reply, error) {
	c, err := resp.Dial(ctx, "tcp", s.Addr())
	if err != nil {
		return resp.Reply{}, err
	}
	defer c.Close()
	r, err := c.Do(ctx, args...)
	if err != nil {
		return r, err
	}
	return r, r.Err()
}

// Dial opens a client connection to the server, closed at t.Cleanup.
func (s *Server) Dial(ctx context.Context) (*resp.Conn, error) {
	c, err := resp.Dial(ctx, "tcp", s.Addr())
	if err != nil {
		return nil, err
	}
	s.t.Cleanup(func() { c.Close() })
	return c, nil
}

// Log returns what the server has printed so far.
func (s *Server) Log() string { return s.log.String() }

// lockedBuffer is the server's output; the process's copier goroutine writes
// it while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
