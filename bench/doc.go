// Package bench compares tidepool with other Go connection pools on the same
// scenarios, in one process, so that benchstat can put them side by side.
//
// It owns the adapters — one small file per pool, each behind [Pool] — and the
// load helpers the scenarios share (a loopback echo server, busy work, a
// driver that runs many goroutines against a pool and records per-op waits).
// The scenarios themselves are the Benchmark functions in bench_test.go; run.sh
// runs them all and writes RESULTS.md and chart.svg.
//
// Goroutines: every adapter is safe for concurrent use by the benchmark's
// goroutines; the echo server runs one goroutine per accepted connection until
// it is closed. Nothing here is imported by the library: this is a separate
// module, so the library's go.mod gains no dependency from it.
package bench
