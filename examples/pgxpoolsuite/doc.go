// Package pgxpoolsuite runs pgx v5's own pgxpool test suite against tidepool.
//
// It is a thin adapter: the subset of pgxpool's API that pgxpool's
// pool_test.go, conn_test.go, tx_test.go, batch_results_test.go and
// tracer_test.go use (all 71 of pgx v5.12.0's pgxpool tests): Pool, Config,
// Conn, Stat, Tx and the tracer interfaces, each call mapped onto tidepool's
// public API over a tidepool.Pool[*pgx.Conn]. It keeps no connections of its
// own: every connection lives in the tidepool pool, and the only state the
// adapter adds is per handle (released or not) and per pool (its Config, a
// Close once).
//
// The mapping (pgxpool → tidepool):
//   - MaxConns → MaxSize; max(MinConns, MinIdleConns) → MinIdle (tidepool keeps
//     idle connections warm; it has no bound on total connections from below),
//     dialed in the background (WarmInBackground), as pgxpool does;
//   - MaxConnLifetime and its jitter → MaxLifetime = MaxConnLifetime +
//     MaxConnLifetimeJitter with MaxLifetimeJitter = MaxConnLifetimeJitter
//     (pgxpool adds its jitter, tidepool subtracts it; 1ns when pgxpool has
//     none, as tidepool's 0 means MaxLifetime/10); MaxConnIdleTime →
//     MaxIdleTime; HealthCheckPeriod → HealthInterval (background pings of
//     idle connections);
//   - BeforeConnect and pgx.ConnectConfig → Dial, AfterConnect → AfterConnect,
//     BeforeAcquire → BeforeAcquire, BeforeClose → BeforeClose; AfterRelease →
//     AfterRelease after the adapter's own test (closed, busy or in a
//     transaction: refused, so destroyed), as pgxpool's Release does;
//   - pgxpool's default ShouldPing (idle more than a second) → Check (a ping
//     under PingTimeout) with CheckOnAcquire and CheckOnAcquireIdle = 1s;
//     a custom ShouldPing, and PrepareConn, run in the adapter's Acquire
//     after tidepool's, as pgxpool runs them after puddle's;
//   - dials: DisableOutageMode (each Acquire dials for itself and fails with
//     its own dial's error, pgxpool's way), DialTimeout one minute (pgxpool's
//     bound on background dials);
//   - Stat: TotalConns = Total + Dialing, IdleConns = Idle + Checking,
//     AcquiredConns = InUse, ConstructingConns = Dialing, NewConnsCount =
//     Dials + DialErrors (attempts), MaxLifetimeDestroyCount and
//     MaxIdleDestroyCount = Closed.Lifetime and Closed.Idle, AcquireCount =
//     Acquires, EmptyAcquireCount = WaitedAcquires, CanceledAcquireCount =
//     CanceledAcquires, AcquireDuration and EmptyAcquireWaitTime = WaitDuration.
//
// Which goroutines touch it: any; a Pool is safe for concurrent use, a Conn,
// like pgxpool's, belongs to one goroutine at a time.
//
// rows.go, tx.go, batch_results.go, tracer.go, internal/pgmock and the tests are pgx's (MIT, see
// LICENSE-pgx), adapted to this package.
package pgxpoolsuite
