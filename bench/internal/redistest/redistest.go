package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool/bench/internal/proc"
)

// Environment variables read by this package.
const (
	// EnvAddr names a running server (host:port) to use instead of starting one.
	EnvAddr = "TIDEPOOL_BENCH_REDIS_ADDR"
	// EnvServer names the redis-server binary.
	EnvServer = "TIDEPOOL_BENCH_REDIS_SERVER"
	// EnvSkip, when set, is why no server is available: ForTest skips with
	// it (cmd/benchservers sets it when it could not start one).
	EnvSkip = "TIDEPOOL_BENCH_REDIS_SKIP"
)

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

// ErrNotInstalled is wrapped by the errors of FindBin and Start when
// redis-server cannot be found.
var ErrNotInstalled = errors.New("redistest: redis-server not found")

// Server is one redis-server process.
type Server struct {
	port    int
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	log     *proc.Buffer
	version string
}

// FindBin returns the path of redis-server: $TIDEPOOL_BENCH_REDIS_SERVER if
// set, else redis-server on PATH. The error wraps ErrNotInstalled.
func FindBin() (string, error) {
	if p := os.Getenv(EnvServer); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("%w at $%s=%s", ErrNotInstalled, EnvServer, p)
		}
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("%w in $%s or PATH; on Debian: apt-get install redis-server", ErrNotInstalled, EnvServer)
	}
	return p, nil
}

// Start launches redis-server on a free port of 127.0.0.1 with persistence
// off, returning once it answers PING (within 10 s). Stop it with Stop.
func Start(ctx context.Context) (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, log: new(proc.Buffer)}
	var lastErr error
	for range 3 { // the free port may be taken before redis binds it
		if s.port, err = proc.FreePort(); err != nil {
			break
		}
		if lastErr = s.start(ctx, bin); lastErr == nil {
			return s, nil
		}
	}
	s.Stop()
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("redistest: starting redis-server: %v\n%s", lastErr, s.log.String())
}

func (s *Server) start(ctx context.Context, bin string) error {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", s.dir, "--logfile", "")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Pdeathsig: if this process dies without Stop, the server does not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		err := s.hello(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited before answering PING (%v)", cmd.ProcessState)
		case <-ctx.Done():
			s.stopProcess()
			return fmt.Errorf("redis-server did not answer PING within %v: %w", readyTimeout, err)
		case <-time.After(10 * time.Millisecond): // poll: no readiness signal
		}
	}
}

// hello pings the server and reads its version.
func (s *Server) hello(ctx context.Context) error {
	c, err := redis.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Do("PING"); err != nil {
		return err
	}
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		return err
	}
	s.version = infoField(info, "redis_version")
	return nil
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Version returns the server's redis_version.
func (s *Server) Version() string { return s.version }

// Log returns what redis-server has printed so far.
func (s *Server) Log() string { return s.log.String() }

// Stop stops the server (SIGTERM, SIGKILL if it lingers), waits for it and
// removes its directory. Stopping a stopped server only removes the directory.
func (s *Server) Stop() {
	s.stopProcess()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *Server) stopProcess() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// ForTest returns the address of a redis-server for tb: the one named by
// $TIDEPOOL_BENCH_REDIS_ADDR if set, else a server of its own, stopped at tb's
// Cleanup. With $TIDEPOOL_BENCH_REDIS_SKIP set, or without redis-server, it
// skips tb with a message saying why (and fails it under CI, see
// proc.Missing); if the server does not start it fails tb.
func ForTest(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" {
		return addr
	}
	if why := os.Getenv(EnvSkip); why != "" {
		proc.Missing(tb, "no redis-server: "+why)
	}
	if _, err := FindBin(); err != nil {
		proc.Missing(tb, err.Error())
	}
	s, err := Start(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s.Addr()
}

// shared is the server Shared starts, once per process.
var shared struct {
	sync.Mutex
	s   *Server
	err error
}

// Shared is ForTest for a whole test binary: the first call that needs a
// server of its own starts one, and every later call gets the same address.
// The server outlives the test that started it: TestMain must call
// StopShared after m.Run.
func Shared(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv(EnvAddr); v != "" {
		return v
	}
	if why := os.Getenv(EnvSkip); why != "" {
		proc.Missing(tb, "no redis-server: "+why)
	}
	if _, err := FindBin(); err != nil {
		proc.Missing(tb, err.Error())
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	s := shared.s
	return s.Addr()
}

// StopShared stops the server Shared started, if any.
func StopShared() {
	shared.Lock()
	defer shared.Unlock()
	if shared.s != nil {
		shared.s.Stop()
		shared.s = nil
	}
}
