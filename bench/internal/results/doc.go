// Package results reads `go test -bench` output of the bench module and turns
// it into RESULTS.md's content: the median of every metric per key (scenario,
// parameters, GOMAXPROCS) and pool; the verdict on each goal, judged at every
// point of the sweep; the tables per scenario; the S8 CPU profile summaries;
// the paragraph the README quotes. cmd/ratios and cmd/chart use it. It runs in
// the caller's goroutine and keeps no state of its own.
package results
