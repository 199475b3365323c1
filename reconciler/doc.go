// Package reconciler is the only part of a pool that changes how many
// connections exist.
//
// # Who touches it
//
// One goroutine, started by [New], runs the reconcile loop. It reads commands
// from one channel — demand from waiters, resize, retire, dial results, close
// results, close and force-close — and after each one compares what the pool has
// with what it should have: it retires idle connections above the max, starts
// dials for waiters and for the minimum of idle connections, and backs off when
// dials fail. All of its state (the loop-owned fields of [Reconciler]) is read
// and written by that goroutine alone, so it needs no lock. Other goroutines see
// the sizes through the atomics in [Shared] and the counters in [Counters].
//
// # It never blocks on I/O
//
// Dials and closes run in their own goroutines and report back as commands. A
// dial runs under the pool's context (cancelled by Close) with the dial timeout,
// never under the context of the Acquire that caused it, so a cancelled Acquire
// does not kill a dial that the next waiter will use.
//
// # Claims
//
// Other goroutines may claim a connection for retirement (a release past its
// lifetime, a failed check, Destroy, a release while the pool is over its max):
// whoever wins the connection's CAS into Retired decrements Shared.Live and sends
// a retire command. The reconciler then deletes it from the registry and closes
// it. Live therefore counts connections that are born and not claimed; the
// reconciler dials only while Live+Dialing is below the max.
//
// # Outages
//
// A failed dial fails every current waiter with the dial error and starts an
// exponential backoff with jitter. While backing off, waiters that no live
// connection could serve fail at once; when the backoff ends, one dial (a
// half-open probe) goes out if anybody needs a connection, and only its success
// reopens normal dialing. So the pool recovers by itself, and never has more dials
// in flight than free slots.
package reconciler
