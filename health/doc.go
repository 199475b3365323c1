// Package health runs one watcher goroutine per pooled connection.
//
// # Who touches it
//
// The pool starts one [Watch] goroutine when a connection is born, if the pool
// has anything to watch (a Check function, a max lifetime or a max idle time).
// That goroutine is the only one that moves its connection into Checking; it
// ends when the connection closes (its Done channel) or the pool's context ends.
//
// # What it does on each wake-up
//
//   - Lifetime: at the connection's deadline (jittered by the pool at birth, so
//     that connections dialed together do not expire together) an idle
//     connection is claimed (Idle→Checking) and retired; a held one is doomed, so
//     that its holder's Release retires it, and is retried on later wake-ups in
//     case it was released before the mark landed.
//   - Idle time: the watcher compares the connection's lease counter with the one
//     it saw last time. An unchanged lease on an idle connection means nobody
//     acquired it in between, so idle time is measured without the hot path
//     writing any timestamp. Precision is one wake-up interval (a quarter of the
//     max idle time, or the health interval when that is shorter). Whether an idle
//     connection may go (the pool keeps MinIdle) is the pool's decision.
//   - Health: every jittered interval an idle connection is claimed
//     (Idle→Checking, so Acquire never hands it out mid-check), checked with a
//     timeout, and either returned to Idle or retired. If an Acquire dequeued it
//     during the check (Detached), the watcher puts it back itself.
//
// In-use connections are never checked: their holder is using them.
package health
