package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const run1 = `BenchmarkS1Single/pool=puddle-2 100 90 ns/op 0 allocs/op
BenchmarkS1Single/pool=tidepool-2 100 60 ns/op 0 allocs/op
BenchmarkS1Single/pool=mutex-2 100 20 ns/op 0 allocs/op
BenchmarkS8Redis/op=get/pool=redigo-2 100 1 ns/op 40000 ops/s 1000000 p99-ns 5 allocs/op
BenchmarkS8Redis/op=get/pool=tidepool-2 100 1 ns/op 41000 ops/s 900000 p99-ns 4 allocs/op
`

func files(t *testing.T) (string, string) {
	dir := t.TempDir()
	res, reasons := filepath.Join(dir, "results.txt"), filepath.Join(dir, "reasons.md")
	if err := os.WriteFile(res, []byte(run1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reasons, []byte("- S1.mutex: two CASes where the mutex pool takes one lock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return res, reasons
}

func TestRatiosWritesGoalsWithReasonsTablesAndS8Configs(t *testing.T) {
	res, reasons := files(t)
	var b strings.Builder
	if err := run(&b, res, reasons, "", 5, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"## Goals of issue 8",
		"| `S1.puddle` |", "**missed**", // 60/90 = 0.67 > 1/3
		"two CASes where the mutex pool takes one lock", // S1.mutex's reason from the file
		"| `S8.redis-get.ops` |",
		"- **pgxpool**: MaxConns = MinConns = 8", // S8Configs from package bench
		"(5 rounds, GOMAXPROCS 2;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestRatiosReadmeModeWritesOnlyTheParagraph(t *testing.T) {
	res, reasons := files(t)
	var b strings.Builder
	if err := run(&b, res, reasons, "", 5, true); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.HasPrefix(out, "In the last full run") || strings.Contains(out, "##") {
		t.Fatalf("-readme output:\n%s", out)
	}
}

func TestRatiosFailsOnAMissingResultsFile(t *testing.T) {
	var b strings.Builder
	if err := run(&b, filepath.Join(t.TempDir(), "none.txt"), "reasons.md", "", 1, false); err == nil {
		t.Fatal("no error for a missing results file")
	}
}
