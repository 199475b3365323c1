package testserver

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
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPgBin names the directory holding initdb and postgres.
const EnvPgBin = "TIDEPOOL_PG_BIN"

// Timeouts of the PostgreSQL helpers.
const (
	pgReady = 30 * time.Second // a new server accepts a connection
	pgStop  = 10 * time.Second // per signal: SIGINT (fast shutdown), then SIGQUIT, then SIGKILL
)

// FindPostgres returns the directory holding initdb and postgres:
// $TIDEPOOL_PG_BIN if set, else the highest /usr/lib/postgresql/<version>/bin,
// else the directory of initdb on PATH. The error wraps ErrNotInstalled.
func FindPostgres() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvPgBin); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: PostgreSQL's initdb and postgres not in $%s=%s", ErrNotInstalled, EnvPgBin, dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("%w: PostgreSQL's initdb and postgres not in $%s, /usr/lib/postgresql/*/bin or PATH; on Debian: apt-get install postgresql", ErrNotInstalled, EnvPgBin)
}

// Postgres is one PostgreSQL server with its data directory.
type Postgres struct {
	port    int
	dir     string
	log     *Buffer
	proc    *process
	version string
}

// LaunchPostgres runs initdb in a new temporary directory (trust
// authentication, user "postgres") and starts postgres on a free port of
// 127.0.0.1 (its Unix socket stays in that directory), returning once it
// accepts a connection. fsync and synchronous_commit are off: the tests
// measure pools, not disks. Close it with Close.
func LaunchPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := FindPostgres()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	base := os.TempDir()
	if cred != nil {
		base = "/tmp" // the postgres user must reach it; root's $TMPDIR may be private
	}
	dir, err := os.MkdirTemp(base, "testserver-pg-")
	if err != nil {
		return nil, err
	}
	s := &Postgres{dir: dir, log: new(Buffer)}
	ok := false
	defer func() {
		if !ok {
			s.Close()
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
		return nil, fmt.Errorf("testserver: initdb: %v\n%s", err, s.log.String())
	}
	var lastErr error
	for range 3 { // the free port may be taken before postgres binds it
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = s.start(ctx, bin, data, cred); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, fmt.Errorf("testserver: starting postgres: %v\n%s", lastErr, s.log.String())
}

// PostgresFor starts a PostgreSQL server for tb (LaunchPostgres) and closes it
// at tb's Cleanup. Without the binaries it skips tb, or fails it under CI.
func PostgresFor(tb testing.TB) *Postgres {
	tb.Helper()
	if _, err := FindPostgres(); err != nil {
		Missing(tb, err.Error())
	}
	s, err := LaunchPostgres(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Close()
		if tb.Failed() {
			tb.Logf("postgres output:\n%s", s.Log())
		}
	})
	return s
}

// pgCredential returns the credential to run PostgreSQL under: nil when the
// caller is not root, the "postgres" user's when it is.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("testserver: running as root, PostgreSQL refuses to run as root, and there is no \"postgres\" user to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("testserver: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (s *Postgres) start(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	p, err := spawn(cmd, s.log, &syscall.SysProcAttr{Credential: cred})
	if err != nil {
		return err
	}
	s.proc = p
	ctx, cancel := context.WithTimeout(ctx, pgReady)
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
		case <-p.exited:
			return fmt.Errorf("postgres exited before accepting connections (%v)", p.cmd.ProcessState)
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("postgres did not accept a connection within %v: %w", pgReady, err)
		case <-time.After(20 * time.Millisecond): // poll: postgres gives no readiness signal
		}
	}
}

// DSN returns a connection string for the "postgres" database and user.
func (s *Postgres) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.port)
}

// Version returns the server's version (SHOW server_version).
func (s *Postgres) Version() string { return s.version }

// Log returns what initdb and postgres have printed so far.
func (s *Postgres) Log() string { return s.log.String() }

// Close shuts the server down (fast shutdown; SIGQUIT, then SIGKILL if it
// lingers), waits for it and removes its directory.
func (s *Postgres) Close() {
	s.stop()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *Postgres) stop() {
	if !s.proc.running() {
		return
	}
	_ = s.proc.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(pgStop)
	defer t.Stop()
	select {
	case <-s.proc.exited:
		return
	case <-t.C:
	}
	s.proc.stop(syscall.SIGQUIT, pgStop)
}
