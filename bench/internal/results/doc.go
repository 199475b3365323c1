// Package results reads `go test -bench` output of the bench module and
// computes what the report needs: the median of every metric per scenario and
// pool, and the verdict on each of the targets. It is used by
// cmd/ratios (the RESULTS.md tables) and cmd/chart (chart.svg); it runs in the
// caller's goroutine and keeps no state of its own.
package results
