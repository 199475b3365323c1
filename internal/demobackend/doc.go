// Package demobackend is the embedded backend of tidepool-demo: a small
// line-based request/response TCP service on 127.0.0.1 whose behaviour the demo
// changes while it runs, to show how a pool reacts.
//
// The protocol is one line per request and one line per reply:
//
//	PING          → PONG
//	GET key       → VALUE <value>   (or NIL when key was never SET)
//	SET key value → OK
//	anything else → ERR <why>
//
// At run time the owner can set the per-request latency and its jitter
// (SetLatency), close server-side connections (KillIdle, KillAll), take the
// whole service down and up again (Down, Up: while down the port refuses
// connections and every open connection is closed) and read counters (Stats).
//
// Goroutines: the Server runs one accept goroutine per listener and one
// goroutine per accepted connection. Every exported method is safe for
// concurrent use; the connection set and the listener are guarded by
// Server.mu, counters and settings are atomics. Close stops them all and
// returns only when every goroutine of the Server has exited.
package demobackend
