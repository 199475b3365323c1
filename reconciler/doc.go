// Package reconciler is the only part of a pool that changes how many
// connections exist: it owns every slot, from the moment a dial starts until
// that connection's Close has returned.
//
// # Who touches it
//
// One goroutine, started by [Reconciler.Start], runs the reconcile loop. It
// reads commands from an inbox — resize, lease, retire, idle-expired,
// hijacked, dial results, close results, reset, dial-idle requests, warm,
// close, force — and after each batch compares what the pool has with what it
// should have. The inbox is a mutex-guarded slice plus a wake-up channel of
// one: senders append and never block, whatever the loop is doing, and the
// loop may send to itself (a connection it hands to a waiter and that must
// be retired instead goes through the same Retire as any other), so no flag
// has to say "I am the loop". All of the loop's state (the loop-owned fields
// of [Reconciler]) is read and written by that goroutine alone and needs no
// lock. Other goroutines see it through [Gauges], [Counters] and the [Gate].
//
// # Slots
//
// The loop counts dials in flight (those past their timeout included), open
// connections (born and not retired as far as it knows) and closes in flight.
// Their sum, Gauges.Slots, is what the backend may see. It starts a dial only
// while the sum is below the max in force, and a slot is freed only when a
// failed dial returns or a Close returns. Retiring is claimed elsewhere (a CAS
// on the connection's state by whoever decides: a holder, a watcher, the
// loop) and handed over with Retire; the slot stays taken through that.
//
// # It never blocks on I/O or user code
//
// Dials and closes run in goroutines of their own and report back. A dial runs
// under a context that carries the values of the Acquire it was started for but
// is cancelled only by the pool (DialTimeout, Close, an expired lease), so a
// cancelled Acquire does not kill a dial that the next waiter will use. A dial
// still running at its timeout (plus a grace) counts as failed for backoff,
// Stats and waiters but keeps its slot until it returns; a connection it
// returns then is closed at once (reason late_dial).
//
// # Shrinking
//
// When the pool is above its max, idle connections are taken out of the idle
// set and retired at once; the rest is owed by held connections, as a debt in
// the [Gate] that Release reads with one atomic load: a releaser claims a unit
// with a CAS and retires its connection instead of returning it. The loop takes
// the debt back when the pool gets under its max another way.
//
// # Outages
//
// A failed dial starts (or extends) an [Outage]: an exponential backoff with
// jitter, one probe dial at a time. With no connection left, every waiter
// fails with the dial error; otherwise the waiter the dial was for. While
// Acquires wait, a probe goes out at least every ProbeEvery, so a backend that
// returns is noticed within it; an Acquire whose deadline comes before the
// next probe fails at once (the pool checks that before it waits). With
// NoOutage, every waiter gets a dial of its own instead.
//
// # Leases
//
// A lease raises (or lowers) the max until a time. The loop checks the time
// against the monotonic clock before every dial decision (and a timer wakes it
// at the lease's end): past it, the Resize max holds again, dials above it are
// cancelled, idle connections above it retire and held ones are closed under
// their holders — before any further dial, even in a process resumed after
// being frozen.
//
// # Implementation
//
// This package is part of tidepool's implementation: the root package
// (github.com/tidepool-go/tidepool) is the API. It is importable because the
// design keeps each part in a top-level package of its own, but it makes no
// compatibility promise: its names change whenever the pool's inside does.
package reconciler
