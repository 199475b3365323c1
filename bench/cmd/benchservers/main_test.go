package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
	"github.com/tidepool-go/tidepool/bench/internal/proc"
	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

// env parses the export lines start writes.
func env(t *testing.T, lines []string) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "servers.env")
	if err := writeEnv(path, lines); err != nil {
		t.Fatal(err)
	}
	// Let the shell read the file, as run.sh does, and print the variables;
	// in an environment of its own, so that a server run.sh exported to this
	// test does not show up as one start exported.
	cmd := exec.Command("bash", "-c", `. "$1" && env | grep '^TIDEPOOL_BENCH_'`, "-", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v\n%s", path, err, strings.Join(lines, "\n"))
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

func TestStartExportsReachableServersAndStopEndsThem(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil {
		proc.Missing(t, err.Error())
	}
	if _, err := redistest.FindBin(); err != nil {
		proc.Missing(t, err.Error())
	}
	ctx := context.Background()
	lines, stop := start(ctx)
	defer stop()
	vars := env(t, lines)
	dsn, addr := vars[pgtest.EnvDSN], vars[redistest.EnvAddr]
	if dsn == "" || addr == "" || vars["TIDEPOOL_BENCH_PG_VERSION"] == "" || vars["TIDEPOOL_BENCH_REDIS_VERSION"] == "" {
		t.Fatalf("exports = %v; want both servers' addresses and versions", vars)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("PostgreSQL at the exported DSN: %v", err)
	}
	_ = c.Close(ctx)
	rc, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("redis-server at the exported address: %v", err)
	}
	rc.Close()
	stop()
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		_ = c.Close(ctx)
		t.Error("PostgreSQL still accepts connections after stop")
	}
	if _, err := redis.Dial("tcp", addr); err == nil {
		t.Error("redis-server still accepts connections after stop")
	}
}

func TestAServerThatCannotStartIsExportedAsASkipReason(t *testing.T) {
	t.Setenv(pgtest.EnvBin, t.TempDir())                                 // no binaries there
	t.Setenv(redistest.EnvServer, filepath.Join(t.TempDir(), "missing")) // nor here
	lines, stop := start(context.Background())
	defer stop()
	vars := env(t, lines)
	if !strings.Contains(vars[pgtest.EnvSkip], "not found") || !strings.Contains(vars[redistest.EnvSkip], "not found") {
		t.Fatalf("exports = %v; want the skip reasons", vars)
	}
	if vars[pgtest.EnvDSN] != "" || vars[redistest.EnvAddr] != "" {
		t.Fatalf("exports = %v; want no addresses", vars)
	}
}

func TestExportQuotesForTheShell(t *testing.T) {
	vars := env(t, []string{export("TIDEPOOL_BENCH_X", `it's "quoted" $HOME`)})
	if got := vars["TIDEPOOL_BENCH_X"]; got != `it's "quoted" $HOME` {
		t.Fatalf("the shell read %q", got)
	}
}

func TestWriteEnvLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	if err := writeEnv(filepath.Join(dir, "servers.env"), []string{"export A='1'"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "servers.env" {
		t.Fatalf("directory holds %v, want servers.env alone", entries)
	}
}
