package fleet

// Log events. Each is one zap entry whose message equals its "event" field;
// every entry also has "fleet" (Options.Name), "member" (the member's id) and
// "pool" (the pool's Stats().Name). The README's log schema lists the fields.
const (
	// EventJoined (info): the member registered under a new etcd lease.
	// Fields: lease, ttl, budget, min_per_member, rejoin (false at Join).
	EventJoined = "fleet.joined"
	// EventGranted (info): the member's grant — what its pool may hold —
	// changed. Exactly one entry per change. Fields: old, new, target, claim,
	// demand (its own), demands (member id → published demand), budget,
	// members.
	EventGranted = "fleet.granted"
	// EventFenced (warn): the local lease deadline passed without a renewal:
	// the pool fell back to holding nothing (its lease in the pool ran out
	// first). Fields: since_renewal, grant (the grant it had).
	EventFenced = "fleet.fenced"
	// EventUnfenced (info): a renewal succeeded after a fence while the etcd
	// lease was still alive: the pool may hold its grant again. Fields: fenced_for.
	EventUnfenced = "fleet.unfenced"
	// EventRenewFailed (warn): a lease renewal failed; logged once per run of
	// failures (the next success or fence ends the run). Fields: error.
	EventRenewFailed = "fleet.renew_failed"
	// EventLeaseLost (warn): etcd no longer knows the member's lease (it
	// expired while the member was cut off or frozen): the member has fenced
	// and joins again under a new lease. Fields: error.
	EventLeaseLost = "fleet.lease_lost"
	// EventLeft (info): Leave finished. Fields: took, forced (held connections
	// were closed under their holders), error.
	EventLeft = "fleet.left"
)
