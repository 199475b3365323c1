// Package conn holds one pooled connection: the user's value, its identity,
// its birth time and lifetime deadline, its place in the idle set, its
// last-use stamp, and its state as a single atomic word.
//
// # Who touches it
//
// Every goroutine that handles a connection touches its state word, and only
// through compare-and-swap, so that exactly one of them wins each transition:
//
//   - Acquire moves it Idle→InUse (and Checking→Detached when it takes a
//     connection that is being checked);
//   - the holder moves it InUse→Idle on Release, InUse→Retired on Destroy,
//     InUse→Hijacked on Hijack, or InUse→InUse under a new lease when it hands
//     it straight to a waiter (Transfer);
//   - its watcher moves it Idle→Checking and back, or to Retired;
//   - the reconcile loop claims idle ones where they lie (ClaimIdle: Reset),
//     takes any of them at Close's deadline or a lease's end (ForceRetire),
//     and marks it Closed once the user's Close has returned.
//
// docs/design.md draws the states and every transition between them.
//
// # The state word
//
// The word packs a lease counter (upper 56 bits) and a [State] (lower 8 bits).
// Each hand-out to a new holder increments the lease, and a holder's handle
// remembers the lease it was given. A handle whose lease no longer matches the
// word is stale: it belongs to an earlier holder and may not release, destroy or
// use the connection. This is how a double Release is caught without any
// allocation per Acquire. Hand-outs are counted from the lease too (every
// increment but the ones the pool makes for itself, which Uncount records), so
// counting them costs the hot path nothing.
//
// # The last-use stamp
//
// A holder stamps the connection with the pool's coarse clock before the CAS
// that releases it, and the next holder reads the stamp after the CAS that
// acquires it: the two CASes order the plain field, so it needs no atomic.
//
// Nothing here blocks, allocates or logs; every method is a handful of atomic
// operations.
//
// # Implementation
//
// This package is part of tidepool's implementation: the root package
// (github.com/tidepool-go/tidepool) is the API. It is importable because the
// design keeps each part in a top-level package of its own, but it makes no
// compatibility promise: its names change whenever the pool's inside does.
package conn
