package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartServesQueriesAndStopRemovesEverything(t *testing.T) {
	t.Setenv(EnvDSN, "") // start our own even when run.sh exported one
	if _, err := FindBin(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	s, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.Version(), "1") {
		t.Errorf("Version() = %q; want the server_version", s.Version())
	}
	c, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := c.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Errorf("SHOW fsync = %q, %v; want off (Settings)", fsync, err)
	}
	var addr string
	if err := c.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil || addr != "127.0.0.1" {
		t.Errorf("server address = %q, %v; want 127.0.0.1", addr, err)
	}
	_ = c.Close(ctx)
	dir := s.Dir()
	s.Stop()
	if c, err := pgx.Connect(ctx, s.DSN()); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the server still accepts connections after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s still there after Stop (stat: %v)", dir, err)
	}
	s.Stop() // a second Stop does nothing
}

func TestFindBinNamesWhatIsMissing(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(EnvBin, empty)
	_, err := FindBin()
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("FindBin with $%s=%s: got %v, want ErrNotInstalled naming the directory", EnvBin, empty, err)
	}
	if _, err := Start(context.Background()); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without the binaries: got %v, want ErrNotInstalled", err)
	}
}

func TestForTestUsesTheServerNamedInTheEnvironment(t *testing.T) {
	const dsn = "host=127.0.0.1 port=1 user=postgres"
	t.Setenv(EnvDSN, dsn)
	t.Setenv(EnvBin, filepath.Join(t.TempDir(), "absent")) // starting one would skip
	if got := ForTest(t); got != dsn {
		t.Fatalf("ForTest = %q, want the DSN from $%s", got, EnvDSN)
	}
}

func TestVersionOfReadsDebiansLayout(t *testing.T) {
	for dir, want := range map[string]int{
		"/usr/lib/postgresql/15/bin": 15,
		"/usr/lib/postgresql/9/bin":  9,
		"/usr/local/bin":             0,
	} {
		if got := versionOf(dir); got != want {
			t.Errorf("versionOf(%s) = %d, want %d", dir, got, want)
		}
	}
}

func TestForTestSkipsWithTheReasonItIsGiven(t *testing.T) {
	t.Setenv(EnvDSN, "")
	t.Setenv(EnvSkip, "initdb failed: disk full")
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
	t.Setenv(EnvDSN, "")
	t.Setenv(EnvSkip, "")
	if _, err := FindBin(); err != nil {
		t.Skip(err)
	}
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatalf("Shared returned %q then %q; want one server", a, b)
	}
	c, err := pgx.Connect(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(t.Context())
	StopShared()
	if c, err := pgx.Connect(t.Context(), a); err == nil {
		_ = c.Close(t.Context())
		t.Fatal("the shared server still accepts connections after StopShared")
	}
}
