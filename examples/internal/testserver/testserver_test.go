package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a testing.TB that records Skip and Fatalf; like the real ones,
// they end the caller (here by a panic that missing recovers).
type recorder struct {
	testing.TB
	skipped, fatal string
}

type stop struct{}

func (r *recorder) Helper()                   {}
func (r *recorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); panic(stop{}) }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); panic(stop{}) }

// missing calls Missing on r and returns when it ends r.
func missing(r *recorder, msg string) {
	defer func() {
		if v := recover(); v != nil && v != (stop{}) {
			panic(v)
		}
	}()
	Missing(r, msg)
}

func TestMissingSkipsOutsideCIAndFailsUnderIt(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	missing(r, "no server")
	if r.skipped != "no server" || r.fatal != "" {
		t.Errorf("outside CI: skipped %q, fatal %q; want a skip", r.skipped, r.fatal)
	}
	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	missing(r, "no server")
	if r.skipped != "" || !strings.Contains(r.fatal, "no server") || !strings.Contains(r.fatal, "CI is set") {
		t.Errorf("under CI: skipped %q, fatal %q; want a failure naming the reason", r.skipped, r.fatal)
	}
}

func TestFindersNameWhatIsMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	t.Setenv(EnvRedisServer, dir)
	t.Setenv(EnvPgBin, dir)
	if _, err := FindRedis(); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), dir) {
		t.Errorf("FindRedis = %v; want ErrNotInstalled naming %s", err, dir)
	}
	if _, err := FindPostgres(); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), dir) {
		t.Errorf("FindPostgres = %v; want ErrNotInstalled naming %s", err, dir)
	}
	if _, err := LaunchRedis(); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("LaunchRedis without the binary = %v; want ErrNotInstalled", err)
	}
}

// A Redis server keeps its address across Stop and Start; clients see the
// restart as closed connections; Freeze stops it answering; Close removes
// its directory.
func TestRedisRestartsAtTheSameAddress(t *testing.T) {
	r := RedisFor(t)
	c, err := redis.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	addr := r.Addr()
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr {
		t.Fatalf("address changed across Restart: %s, then %s", addr, r.Addr())
	}
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("a connection made before the restart still works")
	}
	if v, err := r.Do("GET", "k"); err != nil || v != nil {
		t.Fatalf("after the restart GET k = %v, %v; want nil (persistence is off)", v, err)
	}

	if err := r.Freeze(); err != nil {
		t.Fatal(err)
	}
	fc, err := redis.Dial("tcp", r.Addr()) // the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if _, err := redis.DoWithTimeout(fc, 50*time.Millisecond, "PING"); err == nil {
		t.Fatal("a frozen server answered")
	}
	if err := r.Thaw(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Do("PING"); err != nil {
		t.Fatalf("after Thaw: %v", err)
	}
	dir := r.dir
	r.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left after Close (%v)", dir, err)
	}
}

func TestRedisTLSServesOnlyTLS(t *testing.T) {
	r := RedisTLSFor(t)
	c, err := redis.Dial("tcp", r.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(r.TLS()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := redis.String(c.Do("PING")); err != nil || v != "PONG" {
		t.Fatalf("PING over TLS = %q, %v", v, err)
	}
	plain, err := redis.Dial("tcp", r.Addr(), redis.DialReadTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Do("PING"); err == nil {
		t.Fatal("the TLS server answered a plain-text PING")
	}
}

func TestPostgresServesAndCloseRemovesEverything(t *testing.T) {
	if _, err := FindPostgres(); err != nil {
		Missing(t, err.Error())
	}
	ctx := context.Background()
	s, err := LaunchPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	var addr, fsync string
	if err := c.QueryRow(ctx, "SELECT host(inet_server_addr()), current_setting('fsync')").Scan(&addr, &fsync); err != nil {
		t.Fatal(err)
	}
	_ = c.Close(ctx)
	if addr != "127.0.0.1" || fsync != "off" {
		t.Errorf("server on %q with fsync %q; want 127.0.0.1 and off", addr, fsync)
	}
	if !strings.HasPrefix(s.Version(), "1") {
		t.Errorf("Version() = %q", s.Version())
	}
	dir := s.dir
	s.Close()
	if c, err := pgx.Connect(ctx, s.DSN()); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the server accepts connections after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left after Close (%v)", dir, err)
	}
}
