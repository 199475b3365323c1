// Package conn holds one pooled connection: the user's value, its identity,
// its birth time and lifetime deadline, and its state as a single atomic word.
//
// # Who touches it
//
// Every goroutine that handles a connection touches its state word, and only
// through compare-and-swap, so that exactly one of them wins each transition:
//
//   - the pool's Acquire path moves it Idle→InUse (and Checking→Detached when it
//     dequeues a connection that is being checked);
//   - the holder moves it InUse→Idle on Release, or InUse→Retired on Destroy;
//   - its health goroutine moves it Idle→Checking and back, or to Retired;
//   - the reconciler moves it to Closed once the user's Close has run.
//
// # The state word
//
// The word packs a lease counter (upper 56 bits) and a [State] (lower 8 bits).
// Each hand-out to a new holder increments the lease, and a holder's handle
// remembers the lease it was given. A handle whose lease no longer matches the
// word is stale: it belongs to an earlier holder and may not release, destroy or
// use the connection. This is how a double Release is caught without any
// allocation per Acquire.
//
// Nothing here blocks, allocates or logs; every method is a handful of atomic
// operations.
package conn
