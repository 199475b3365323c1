// Package redistest runs a real redis-server for tests: Start launches one on
// a free 127.0.0.1 port with persistence off, waits until it answers PING,
// and stops it when the test ends. Stop, Start and Restart (on the same port)
// let tests simulate outages.
//
// If redis-server is not in PATH, Start skips the test, or fails it when the
// CI environment variable is set (CI installs redis-server with apt).
//
// A Server belongs to the test goroutine that started it: call Stop, Start
// and Restart from there (or serialize the calls). Addr and Port may be read
// from any goroutine. The package starts one goroutine per server process (to
// reap it), which ends when the process exits.
package redistest
