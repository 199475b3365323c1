// Package fleet shares one connection budget among the pools of many
// processes — the replicas of a service that all talk to one backend with a
// hard connection limit — using an etcd v3 cluster as the coordinator.
//
// Each pool joins a fleet (Join) under an etcd lease, publishes its demand
// (connections in use plus Acquires waiting, peak over a short window), and
// gets a grant: what its pool may hold. Grants are the max-min fair split of
// the Budget over the members' demands, with a floor per member. The promise:
// the sum over members of the connections the backend may see (dialing, open
// or closing, as each pool counts them) never exceeds Budget — through joins,
// leaves, crashes, an etcd leader change, a member cut off from etcd (it
// fences itself, by its own clock, before its lease can expire) and a member
// frozen by SIGSTOP (provided the backend closes idle connections sooner than
// Options.BackendIdleTimeout says). The README of this directory gives the
// protocol, what is stored in etcd, the timing argument and what the fleet
// cannot promise.
//
// What it owns: the member's keys in etcd (its lease, its demand, its claim)
// and its pool's bounds: Join sets them to (0, 0) and grants connections
// through Pool.Lease; nobody else may resize a member's pool.
//
// Goroutines: each Member runs two until Leave. The loop samples the pool
// every SampleInterval, publishes the demand, follows the fleet through an
// etcd watch and moves the member's claim and grant; it alone touches the
// view and the claim. The renewer renews the lease every RenewInterval and
// moves the pool's fence deadline; the grant and deadline it shares with the
// loop are guarded by one mutex, which also orders the calls to Pool.Lease.
// Stats, Handler and Collector read snapshots and may be called from
// anywhere. After Leave returns, no goroutine of the member is left.
//
// This package is its own module (it depends on the etcd client); the core
// module does not depend on it.
package fleet
