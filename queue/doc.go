// Package queue holds the pool's idle connections: a bounded lock-free
// multi-producer multi-consumer FIFO (xsync MPMCQueueOf) with an exact length.
//
// # Who touches it
//
// Any goroutine: Acquire pops, Release pushes, the reconciler pops when it
// shrinks the pool or sweeps tombstones, health goroutines push connections that
// an Acquire detached during a check. No goroutine owns it and no lock guards it.
//
// # Guarantees and costs
//
// Push and Pop take no lock and allocate nothing: each is two or three atomic
// operations. xsync's TryEnqueue and TryDequeue may fail spuriously under
// contention; Queue hides that by counting items: a Pop whose dequeue fails
// retries while the count says an item is there and reports empty when it says
// none is. Len is exact whenever no Push or Pop is half-way through.
//
// The queue is bounded: New takes the capacity, and the pool sizes it so that a
// Push can never find it full (every live connection plus the tombstones the
// reconciler lets accumulate before it sweeps).
package queue
