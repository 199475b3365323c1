// Package pgtest runs a throwaway PostgreSQL server for the bench module's S8
// scenarios and their tests: initdb in a temporary directory, trust
// authentication, listening on 127.0.0.1 on a port the kernel picked (no Unix
// socket outside that directory), fsync and synchronous commit off (S8 measures
// pools, not disks). When the caller is root the server runs as the "postgres"
// user, since PostgreSQL refuses to run as root.
//
// Binaries are looked up in $TIDEPOOL_BENCH_PG_BIN, then in Debian's
// /usr/lib/postgresql/<version>/bin (the highest version), then on PATH.
//
// Start and Stop run in the caller's goroutine; a Server also has one goroutine
// of its own, which waits for the postgres process and closes a channel when it
// exits. ForTest hands a test or benchmark the server named by
// $TIDEPOOL_BENCH_PG_DSN (bench/run.sh starts one for the whole run), or starts
// its own and stops it at Cleanup, or skips when PostgreSQL is not installed.
package pgtest
