package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool/bench/internal/proc"
)

// Environment variables read by this package.
const (
	// EnvDSN names a running server to use instead of starting one.
	EnvDSN = "TIDEPOOL_BENCH_PG_DSN"
	// EnvBin names the directory holding initdb and postgres.
	EnvBin = "TIDEPOOL_BENCH_PG_BIN"
	// EnvSkip, when set, is why no server is available: ForTest skips with
	// it (cmd/benchservers sets it when it could not start one).
	EnvSkip = "TIDEPOOL_BENCH_PG_SKIP"
)

// Timeouts of Start and Stop.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Settings are the server settings Start passes on the postgres command line
// (beside the address, port and socket directory), in order.
var Settings = [][2]string{
	{"fsync", "off"},
	{"synchronous_commit", "off"},
	{"full_page_writes", "off"},
	{"max_connections", "100"},
}

// ErrNotInstalled is wrapped by the errors of FindBin and Start when the
// PostgreSQL binaries cannot be found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found")

// Server is one postgres process with its data directory.
type Server struct {
	port    int
	dir     string // data directory, removed by Stop
	bin     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	log     *proc.Buffer
	version string
}

// FindBin returns the directory holding initdb and postgres: $TIDEPOOL_BENCH_PG_BIN
// if set, else the highest /usr/lib/postgresql/<version>/bin, else the
// directory of initdb on PATH. The error wraps ErrNotInstalled.
func FindBin() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBin); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w in $%s=%s", ErrNotInstalled, EnvBin, dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w in $%s, /usr/lib/postgresql/*/bin or PATH; on Debian: apt-get install postgresql", ErrNotInstalled, EnvBin)
}

// versionOf returns the major version in /usr/lib/postgresql/<version>/bin, or 0.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start runs initdb in a new temporary directory and starts postgres on a free
// port of 127.0.0.1, returning once it accepts a connection (within 30 s).
// Stop it with Stop.
func Start(ctx context.Context) (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	base := os.TempDir()
	if cred != nil {
		base = "/tmp" // postgres must be able to reach the directory; $TMPDIR may be root's alone
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, log: new(proc.Buffer)}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Stdout, initdb.Stderr = s.log, s.log
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, s.log.String())
	}
	// The port is free when FreePort returns but another process may take it
	// before postgres binds it: retry with a new port a few times.
	var lastErr error
	for range 3 {
		if s.port, err = proc.FreePort(); err != nil {
			return nil, err
		}
		if lastErr = s.start(ctx, data, cred); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, fmt.Errorf("pgtest: starting postgres: %v\n%s", lastErr, s.log.String())
}

// credential returns the credential to run PostgreSQL under: nil when the
// caller is not root, the "postgres" user's when it is.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to run as root, but there is no \"postgres\" user to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (s *Server) start(ctx context.Context, data string, cred *syscall.Credential) error {
	args := []string{"-D", data, "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1"}
	for _, kv := range Settings {
		args = append(args, "-c", kv[0]+"="+kv[1])
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Pdeathsig: if this process dies without Stop, the server does not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			err = c.QueryRow(ctx, "SHOW server_version").Scan(&s.version)
			_ = c.Close(ctx)
			if err == nil {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited before accepting connections (%v)", cmd.ProcessState)
		case <-ctx.Done():
			s.stopProcess()
			return fmt.Errorf("postgres did not accept a connection within %v: %w", readyTimeout, err)
		case <-time.After(20 * time.Millisecond): // poll: postgres gives no readiness signal on a pipe
		}
	}
}

// DSN returns a connection string for the server's "postgres" database and user.
func (s *Server) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.port)
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Version returns the server's version (SHOW server_version).
func (s *Server) Version() string { return s.version }

// Dir returns the server's temporary directory (data and socket); Stop removes it.
func (s *Server) Dir() string { return s.dir }

// Log returns what initdb and postgres have printed so far.
func (s *Server) Log() string { return s.log.String() }

// Stop shuts the server down (fast shutdown: SIGINT; SIGQUIT and then SIGKILL
// of its process group if it lingers), waits for it and removes its directory.
// Stopping a stopped server only removes the directory.
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
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.exited:
			return
		case <-time.After(stopTimeout):
		}
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// ForTest returns the DSN of a server for tb: the one named by
// $TIDEPOOL_BENCH_PG_DSN if set, else a server of its own, stopped at tb's
// Cleanup. With $TIDEPOOL_BENCH_PG_SKIP set, or without PostgreSQL, it
// skips tb with a message saying why (and fails it under CI, see
// proc.Missing); if the server does not start it fails tb.
func ForTest(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	if why := os.Getenv(EnvSkip); why != "" {
		proc.Missing(tb, "no PostgreSQL server: "+why)
	}
	if _, err := FindBin(); err != nil {
		proc.Missing(tb, err.Error())
	}
	s, err := Start(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s.DSN()
}

// QuoteSettings renders Settings as "name=value" pairs, for reports.
func QuoteSettings() string {
	parts := make([]string, len(Settings))
	for i, kv := range Settings {
		parts[i] = kv[0] + "=" + kv[1]
	}
	return strings.Join(parts, ", ")
}

// shared is the server Shared starts, once per process.
var shared struct {
	sync.Mutex
	s   *Server
	err error
}

// Shared is ForTest for a whole test binary: the first call that needs a
// server of its own starts one, and every later call gets the same DSN.
// The server outlives the test that started it: TestMain must call
// StopShared after m.Run.
func Shared(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv(EnvDSN); v != "" {
		return v
	}
	if why := os.Getenv(EnvSkip); why != "" {
		proc.Missing(tb, "no PostgreSQL: "+why)
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
	return s.DSN()
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
