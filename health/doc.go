// Package health runs one watcher goroutine per pooled connection.
//
// # Who touches it
//
// The pool starts one [Watch] goroutine when a connection is born, if the pool
// has anything to watch (a Check function, a max lifetime or a max idle time).
// That goroutine is the only one that moves its connection into Checking; it
// ends when the connection closes or is hijacked (its Done channel), or at its
// next wake-up once the pool's context has ended.
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
//     writing any timestamp. Precision: a quarter of the max idle time. An
//     expired one is claimed and handed to the reconcile loop, which decides
//     (the pool keeps MinIdle) and ends the check itself if it keeps it.
//   - Health: every jittered interval an idle connection is claimed
//     (Idle→Checking, so Acquire never hands it out mid-check) and checked. The
//     check runs in a goroutine of its own and the watcher waits at most the
//     timeout (plus a grace, so that a check that honours its context always
//     wins the race): a check still running then counts as failed, its
//     connection is retired (and closed, which often unblocks the check), and
//     the check is counted stuck until it returns. A panicking check is a
//     failed check. If an Acquire took the connection during the check
//     (Detached), the watcher puts it back itself; a connection doomed
//     meanwhile (Reset) is retired instead.
//
// In-use connections are never checked by their watcher: their holder is
// using them (the pool's check on acquire runs on the acquiring goroutine).
//
// # Implementation
//
// This package is part of tidepool's implementation: the root package
// (github.com/tidepool-go/tidepool) is the API. It is importable because the
// design keeps each part in a top-level package of its own, but it makes no
// compatibility promise: its names change whenever the pool's inside does.
package health
