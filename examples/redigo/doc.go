// Package redigopool pools github.com/gomodule/redigo connections with
// tidepool: a recipe for a real client, with every hook in its place. New
// returns a *tidepool.Pool[redis.Conn]; Config returns the tidepool.Config
// it uses, for callers who set sizes, a logger or a name before tidepool.New.
//
// What each hook does here:
//   - Dial: redis.DialContext, with a dial function of our own so that the
//     pool keeps the socket (net.Conn, or *tls.Conn with TLS) redigo hides.
//   - AfterConnect: the session setup (AUTH, SELECT, CLIENT SETNAME),
//     pipelined into one round trip, under the dial's context.
//   - Check, on every hand-out (CheckOnAcquire, CheckOnAcquireIdle 0) and
//     every HealthInterval: the connection's own error, then a non-blocking
//     peek at the socket (netconn.Alive: one system call, no round trip),
//     then a PING only if the connection has not been seen working for
//     PingIdle (default 1 s).
//   - AfterRelease: refuses a connection its holder left in a state the next
//     holder must not inherit (Reusable): broken, inside MULTI, holding
//     WATCHes, subscribed, monitoring, replies left unread, or a session
//     setting changed (SELECT, AUTH, HELLO, RESET, CLIENT REPLY/TRACKING).
//   - IsBroken: which errors of an AcquireFunc function mean the connection
//     is gone (network errors, timeouts) or points at the wrong server
//     (READONLY, MASTERDOWN after a failover).
//   - Reset: after rotating credentials (Options.Credentials is asked at
//     every dial), retire every connection dialed with the old ones.
//   - Hijack: pub/sub takes its connection out of the pool for good.
//
// docs/recipes.md tells the same story with what each check can and cannot
// see and what it costs.
//
// The connection the pool holds wraps redigo's: it passes every call through
// and watches the command names go by to know the session state its holder
// leaves behind. Use it like any redis.Conn (redis.DoContext and
// redis.DoWithTimeout work on it); do not use it after Release.
//
// Goroutines: the package starts none. Dial and AfterConnect run in the
// pool's dial goroutine; Check in a connection's watcher goroutine or on the
// acquiring goroutine; AfterRelease on the releasing goroutine; Close in the
// pool's close goroutine. The pool hands a connection to one of them at a
// time, which orders their accesses to its session state.
package redigopool
