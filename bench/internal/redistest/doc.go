// Package redistest runs a throwaway redis-server for the bench module's S8
// scenarios and their tests: on 127.0.0.1, on a port the kernel picked, with
// persistence off, in a temporary directory. (The library has a helper of the
// same name under internal/; a separate module cannot import it, so this is
// the bench module's own, smaller one.)
//
// The binary is $TIDEPOOL_BENCH_REDIS_SERVER if set, else redis-server on PATH.
// Start and Stop run in the caller's goroutine; a Server also has one goroutine
// of its own, which waits for the process and closes a channel when it exits.
// ForTest hands a test or benchmark the server named by
// $TIDEPOOL_BENCH_REDIS_ADDR (bench/run.sh starts one for the whole run), or
// starts its own and stops it at Cleanup, or skips when redis-server is not
// installed.
package redistest
