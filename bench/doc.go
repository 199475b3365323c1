// Package bench compares tidepool with other Go connection pools on the same
// scenarios, in one process, so that benchstat can put them side by side.
//
// It owns the adapters — one small file per pool, each behind [Pool]: puddle,
// database/sql, a channel pool, a mutex+slice pool, tidepool, and for S8 the
// clients' own pools, pgxpool and redigo's redis.Pool, with [S8Tidepool]
// configuring tidepool like them — and the load helpers the scenarios share:
// [Drive], which runs many goroutines against a pool and keeps per-goroutine
// counts and sampled timings without sharing a cache line; [FakeConn.Work],
// the calibrated work a holder does; a loopback echo server; the S8 ops against
// PostgreSQL and Redis. The scenarios are the Benchmark functions in the test
// files; run.sh runs them in rounds and writes RESULTS.md and chart.svg.
// internal/pgtest and internal/redistest start throwaway servers for S8;
// internal/results parses and judges the output; cmd/ratios, cmd/chart and
// cmd/benchservers are run.sh's tools.
//
// Goroutines: every adapter is safe for concurrent use by the benchmark's
// goroutines; Drive's goroutines each own one [Worker]; the echo server runs one
// goroutine per accepted connection until it is closed. Nothing here is
// imported by the library: this is a separate module, so the library's go.mod
// gains no dependency from it.
package bench
