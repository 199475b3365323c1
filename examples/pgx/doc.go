// Package pgxconnpool pools *pgx.Conn (github.com/jackc/pgx/v5) with
// tidepool: a recipe for a real client, with every hook in its place. New
// returns a *tidepool.Pool[*pgx.Conn]; Config returns the tidepool.Config it
// uses, for callers who set sizes, a logger or a name before tidepool.New.
// (The directory is examples/pgx; the package is named pgxconnpool so that
// it does not shadow pgx's own pgxpool where both are imported.)
//
// What each hook does here:
//   - Dial: pgx.ConnectConfig under the pool's dial context (it carries the
//     Acquire's values, and only the pool cancels it).
//   - AfterConnect: the session setup: application_name (one round trip)
//     and the statements of Options.Prepare, prepared by name (one round trip
//     each), so every connection can run them by name.
//   - Check: conn.Ping, on hand-outs of connections idle at least PingIdle
//     (CheckOnAcquireIdle, 1 s by default: pgxpool's ShouldPing) and on idle
//     connections every HealthInterval.
//   - AfterRelease: refuses a connection that is closed, busy (a query whose
//     rows were not closed) or inside a transaction (TxStatus not 'I'),
//     as pgxpool's Release does (Reusable).
//   - Close: conn.Close under CloseTimeout, then waits for pgx's own cleanup
//     of the socket, so that the pool's slot is not freed while the socket
//     is still open.
//   - IsBroken: which errors of an AcquireFunc function mean the connection
//     is gone: pgconn.ErrConnClosed, FATAL and connection-class server
//     errors, network errors, and a timeout after the query was sent.
//   - Hijack: LISTEN/NOTIFY takes a connection out of the pool for good.
//
// docs/recipes.md tells the same story with what each check can and cannot
// see and what it costs.
//
// Goroutines: the package starts none (pgx starts one when it closes a
// connection asynchronously; Close waits for it). Dial and AfterConnect run
// in the pool's dial goroutine; Check in a connection's watcher goroutine or
// on the acquiring goroutine; AfterRelease on the releasing goroutine; Close
// in the pool's close goroutine. The pool hands a connection to one of them
// at a time, as a *pgx.Conn requires.
package pgxconnpool
