// Package testserver runs the throwaway servers the examples' tests and
// runnable godoc Examples talk to: a redis-server (plain or TLS) and a
// PostgreSQL server, each on 127.0.0.1 on a port the kernel picked, in a
// temporary directory of its own, with persistence off, stopped by the test
// that started it. The library keeps a helper like it under internal/, which
// a separate module cannot import, so this module has its own.
//
// Binaries: redis-server from $TIDEPOOL_REDIS_SERVER or PATH; PostgreSQL's
// initdb and postgres from $TIDEPOOL_PG_BIN, else the highest
// /usr/lib/postgresql/<version>/bin (Debian's layout), else PATH. When the
// caller is root, PostgreSQL (which refuses to run as root) runs as the
// "postgres" user: the process is started with that user's credentials
// (what runuser would do, without a shell in between).
//
// A missing binary skips a test with the reason, and fails it when the CI
// environment variable is set, so that a CI script that forgot to install a
// server cannot pass by skipping (Missing). Main does the same for a whole
// test binary whose Examples need a server.
//
// Goroutines: functions run in the caller's goroutine; each running server
// has one goroutine of its own that waits for the process and closes a
// channel when it exits, and the os/exec copier writes the server's output
// into a Buffer while the test may read it.
package testserver
