package redistest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomodule/redigo/redis"
)

func TestStartServesCommandsAndStopEndsTheServer(t *testing.T) {
	t.Setenv(EnvAddr, "") // start our own even when run.sh exported one
	if _, err := FindBin(); err != nil {
		t.Skip(err)
	}
	s, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Version() == "" {
		t.Error("Version() is empty; want the server's redis_version")
	}
	c, err := redis.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := redis.String(c.Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("GET k = %q, %v; want \"v\"", v, err)
	}
	c.Close()
	dir := s.dir
	s.Stop()
	if _, err := redis.Dial("tcp", s.Addr()); err == nil {
		t.Fatal("the server still accepts connections after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s still there after Stop (stat: %v)", dir, err)
	}
	s.Stop() // a second Stop does nothing
}

func TestFindBinNamesWhatIsMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-redis-server")
	t.Setenv(EnvServer, missing)
	_, err := FindBin()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("FindBin with $%s=%s: got %v, want ErrNotInstalled", EnvServer, missing, err)
	}
	if _, err := Start(context.Background()); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without the binary: got %v, want ErrNotInstalled", err)
	}
}

func TestForTestUsesTheServerNamedInTheEnvironment(t *testing.T) {
	t.Setenv(EnvAddr, "127.0.0.1:1")
	t.Setenv(EnvServer, filepath.Join(t.TempDir(), "absent")) // starting one would skip
	if got := ForTest(t); got != "127.0.0.1:1" {
		t.Fatalf("ForTest = %q, want the address from $%s", got, EnvAddr)
	}
}

func TestInfoFieldReadsOneLine(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	if got := infoField(info, "redis_version"); got != "7.0.15" {
		t.Fatalf("infoField = %q, want 7.0.15", got)
	}
	if got := infoField(info, "redis"); got != "" {
		t.Fatalf("infoField of a prefix = %q, want \"\"", got)
	}
}

func TestForTestSkipsWithTheReasonItIsGiven(t *testing.T) {
	t.Setenv(EnvAddr, "")
	t.Setenv(EnvSkip, "redis-server exited")
	t.Setenv("CI", "")
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		ForTest(t)
		t.Error("ForTest returned although $" + EnvSkip + " is set")
	})
	if !skipped {
		t.Fatal("ForTest did not skip")
	}
}

func TestSharedStartsOneServerPerProcessUntilStopShared(t *testing.T) {
	t.Setenv(EnvAddr, "")
	t.Setenv(EnvSkip, "")
	if _, err := FindBin(); err != nil {
		t.Skip(err)
	}
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatalf("Shared returned %q then %q; want one server", a, b)
	}
	StopShared()
	if _, err := redis.Dial("tcp", a); err == nil {
		t.Fatal("the shared server still accepts connections after StopShared")
	}
}
