// Package queue holds a pool's idle connections: [Idle], a set with one
// front slot per P and a shared lock-free LIFO stack behind the fronts. It is
// part of tidepool's implementation, not of its API: the root package and the
// reconciler use it, users do not.
//
// # What it owns
//
// The fronts, the stack's head, the index table with its free list, and each
// connection's [conn.Link] (Next, In, Index, Front), which no other package
// reads or writes. It does not own the connections' state words (package conn does):
// Release and Take make the Idle↔InUse transitions through conn's CAS
// methods, and Take and Sweep read states to tell live connections from
// tombstones.
//
// # Who touches it
//
//   - Any goroutine: Release (a holder giving its connection back, a watcher
//     putting back a connection whose check an Acquire interrupted, the
//     reconcile loop placing a new connection), Take (Acquire, the waiter
//     hand-off, AcquireAllIdle), Count and Len.
//   - The reconcile loop only: Register, Unregister and Sweep. They share the
//     free list and the table's growth and must not run concurrently with each
//     other; they run concurrently with any Release and Take.
//   - Health watchers never call this package, but they change the states of
//     connections lying in the set (BeginCheck, EndCheck, ClaimIdle,
//     RetireChecked), and the set copes with that at any moment.
//
// # The protocol
//
// Fronts. Each P (up to 256, as many as GOMAXPROCS when New ran) has one slot
// on its own cache lines, and Release and Take pin their goroutine to its P
// (procPin, as sync.Pool does). A front works one of two ways.
//
// Sticky (New(false), the pool's default: no MaxIdle to count against). A
// front keeps pointing at the connection it handed out. Take acquires the
// connection its P's front points at if it is Idle (one state CAS) and leaves
// the pointer; the holder records which front points at it (Link.Front, a
// plain field: only the connection's holder reads or writes it, and the state
// CASes order successive holders). A Release on the same P finds its front
// still pointing at the connection and only CASes the state back to Idle: a
// Release+Take pair on one P costs two locked instructions. A Release on
// another P first clears the stale pointer (CAS to nil, so the connection is
// listed once), then takes its own front if that is empty or vacant (pointing
// at a held connection or a tombstone), or goes onto the stack. It writes
// Link.Front and the front before the state CAS that makes the connection
// Idle, never after, so that whoever acquires the connection next finds
// Link.Front naming the one front that points at it. A front pointing at a
// held connection is not a member of the set: Len skips it, Sweep clears
// from a sticky front only a dead connection (retired, closed, hijacked),
// and other Ps steal from a front only an Idle connection (CAS the front to
// nil, then acquire) or one under check (which they detach). A thief's CAS
// can land after the connection was taken in place and before its holder,
// pinned on the front's P, put it back there; its acquire then fails and it
// moves on, so the holder looks at the front again after its state CAS and,
// finding it cleared, reclaims the connection (an uncounted acquire that
// races the thief's; the winner holds it) and releases it again. A Take
// that finds its own front under check takes it out and detaches it too, so
// that the watcher puts it back through Release when the check passes and a
// waiter hears of it. A Release whose lease no longer holds the connection
// (late or doubled) is refused before it touches any front.
//
// Exclusive (New(true), when the pool counts idle connections for MaxIdle).
// A front holds a member or nothing. Release stores into its P's front only
// when it is empty; only the owning P stores into a front (other Ps only
// take from it, by CAS to nil; Sweep too), so while pinned an empty front
// stays empty between the Load and the Store, and Release needs no CAS on it.
// Take swaps its own front out.
//
// Either way Take then tries the stack, then steals from the other fronts
// (Load, then CAS), starting at the next P.
//
// The tagged stack. Behind the fronts is a Treiber stack whose links are
// uint32 indexes (Link.Next) into a table of connections, and whose head is
// tag<<32 | index+1. Every push and pop increments the tag, so a pop that
// read a head which was popped and pushed back meanwhile fails its CAS
// instead of installing a stale link (the ABA problem). The table is a list
// of 64-connection chunks; it only grows (Register copies the chunk list, never
// the chunks), so a reader holding an old list sees the same slots.
//
// Indexes. Register hands a connection the most recently freed index, or a new
// one. Unregister frees it, and clears the slot so that the set keeps no
// pointer to a dead connection, but only once the connection can no longer be
// linked in the stack: while its In flag is set it refuses, and the loop
// tries again after the next Sweep. An index therefore never names two
// connections that the stack may link.
//
// The In flag. A Release headed for the stack takes the connection's In flag
// with a CAS before its state CAS makes the connection Idle: from that CAS on,
// a retirer may claim the connection and the loop may close it, and
// Unregister must still see it as linked until the push is done and the
// connection has left the stack. A Take clears In after its pop (before it
// acquires the connection); Sweep clears it for the connections it drops and
// leaves it set for those it pushes back; a Release whose state CAS fails
// clears the flag it took. A Release that finds In set either gives up (its
// lease no longer holds the connection: it lies in the stack) or waits a few
// instructions for a concurrent Release of the same connection to finish. So
// a late or doubled Release never changes In. Fronts hold pointers, not
// indexes, and do not use In: an unregistered connection in a front is
// harmless until a Take or Sweep drops it.
//
// Tombstones and Sweep. A connection retired where it lies (ClaimIdle,
// RetireChecked during a check, ForceRetire of an idle one) stays in the set
// as a Retired, later Closed, tombstone. Take drops each tombstone it meets
// (they do not count as skips: each one shortens the set). Sweep, run by the
// loop once it has counted enough of them, pops the whole stack and pushes
// back what keep accepts, bottom first, so the order is kept; for a front it
// asks keep first and takes the connection out only if keep rejects it, then
// asks again now that it owns it: a connection stolen, looked at in use and
// put back meanwhile goes onto the stack instead of being lost.
//
// Connections under check. Take moves a Checking connection to Detached and
// skips it: its watcher now owns it and puts it back (Release) when the check
// passes. One Take skips at most MaxSkips of them and then reports none, so a
// storm of checks cannot make a Take drain the set.
//
// # Order
//
// Most recently used first, per P: a goroutine that releases a connection and
// then takes one on the same P gets that connection back from its front.
// Behind the fronts the stack is LIFO across all Ps. A Take prefers its own
// front, then the stack's top, then other Ps' fronts, so the order is MRU per
// P and MRU behind, not one global MRU order. LIFO keeps a small set of
// connections busy and lets the others age toward their idle timeout, which is
// what a pool that shrinks by idleness wants.
//
// # Cost
//
// No lock, no allocation (except when Register grows the table, once per 64
// connections), no system call. In locked instructions (CAS, swap, and
// atomic stores, which are XCHG on amd64):
//
//   - front path: Release is one state CAS and one store into the front;
//     Take is one swap of the front and one state CAS (plus loads). Four per
//     Release+Take pair; a CPU profile of BenchmarkReleaseTake/serial/idle
//     puts about three quarters of the time in those four instructions (the
//     two state CASes 36%, the store 21%, the swap 19%), 1 to 2% in
//     procPin/procUnpin, and most of the rest in the Take→get→getAny calls.
//   - stack path: Release is the In CAS, the state CAS, the store of Next and
//     the head CAS; Take is the head CAS, the store clearing In and the state
//     CAS. Seven per pair, and the head is one line shared by every P.
//   - a steal: loads of the other fronts until one is full, one CAS.
//   - counting (New(true), when the pool has a MaxIdle): one atomic add on a
//     shared line per Release and per Take.
//
// Measured with the benchmarks in this package (bench_test.go has the
// commands), ten interleaved runs, medians, on a shared 2-core virtual
// machine whose load moved the numbers by 10 to 60% between runs: ratios only.
// None of the patterns allocates.
//
//   - serial Release+Take (the front path): 0.86× the time of a mutex around
//     a slice, 0.68× a buffered channel.
//   - a stack pair costs about 1.5× a front pair; counting adds about a
//     quarter to the front pair.
//   - parallel (each goroutine releases and takes back) at -cpu 2: 2.4× to 5×
//     faster than the mutex and 3.4× to 7.7× faster than the channel, in two
//     sets of runs; the set's CPU time per operation stays where it is at
//     -cpu 1, the mutex's and the channel's grow several times.
//   - handoff (one goroutine only releases, another only takes: every Take a
//     pop or a steal) at -cpu 2: 1.3× to 1.7× the mutex's time and on par
//     with the channel. A one-way cross-core hand-off is paid in cache-line
//     transfers (the front or the head, the connection's Link and state
//     word), and the set moves more lines per connection than a mutex does;
//     the fronts only pay off when goroutines take back what their P released.
package queue
