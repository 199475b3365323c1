package fleet

import "time"

// Stats is a snapshot of a member and of the fleet as it sees it, in an
// operator's words. JSON tags are snake_case.
type Stats struct {
	// Fleet and Member are Options.Name and the member's id; Pool the pool's name.
	Fleet  string `json:"fleet"`
	Member string `json:"member"`
	Pool   string `json:"pool"`
	// Budget and MinPerMember are the fleet's.
	Budget       int `json:"budget"`
	MinPerMember int `json:"min_per_member"`

	// Grant is what the pool may hold while its lease is valid; Claim what
	// etcd has reserved for this member (Grant ≤ Claim always); Target its
	// max-min fair share in the latest view; Demand the demand it published;
	// Slots the pool's connections as the backend may see them.
	Grant  int `json:"grant"`
	Claim  int `json:"claim"`
	Target int `json:"target"`
	Demand int `json:"demand"`
	Slots  int `json:"slots"`
	// Members in the latest view; Claimed the sum of their claims.
	Members int `json:"members"`
	Claimed int `json:"claimed"`

	// Fenced: the lease deadline passed without a renewal (or the lease was
	// lost): the pool holds nothing until a renewal or a new registration.
	Fenced bool `json:"fenced"`
	// Registered: the member has a lease (false after a loss until it has
	// joined again, and after Leave).
	Registered bool `json:"registered"`
	// LeaseTTL is what etcd granted; DeadlineIn the time left before the pool
	// fences itself (0 when fenced).
	LeaseTTL   time.Duration `json:"lease_ttl_ns"`
	DeadlineIn time.Duration `json:"deadline_in_ns"`

	// Counters since Join.
	Renewals      int64 `json:"renewals"`
	RenewFailures int64 `json:"renew_failures"`
	Fences        int64 `json:"fences"`
	LeaseLosses   int64 `json:"lease_losses"`
	Rejoins       int64 `json:"rejoins"`
	GrantChanges  int64 `json:"grant_changes"`

	// View lists the members in join order with their published demand,
	// their claim and their fair share.
	View []MemberView `json:"view"`
}

// MemberView is one member as seen in etcd.
type MemberView struct {
	ID      string `json:"id"`
	Demand  int    `json:"demand"`
	InUse   int    `json:"in_use"`
	Waiting int    `json:"waiting"`
	Claim   int    `json:"claim"`
	Share   int    `json:"share"`
}

// Stats returns the latest snapshot (refreshed by the member's loop at every
// SampleInterval and event). It costs a copy of the view: O(members).
func (m *Member) Stats() Stats {
	m.sm.Lock()
	s := m.snap
	s.View = append([]MemberView(nil), s.View...)
	m.sm.Unlock()
	m.lm.Lock()
	s.Grant = m.grant
	s.Fenced = m.fenced
	s.Registered = m.lease != 0
	s.LeaseTTL = m.ttl
	if m.lease != 0 && !m.fenced {
		s.DeadlineIn = max(0, time.Until(m.deadline))
	}
	m.lm.Unlock()
	s.Renewals = m.renewals.Load()
	s.RenewFailures = m.renewFailures.Load()
	s.Fences = m.fences.Load()
	s.LeaseLosses = m.leaseLosses.Load()
	s.Rejoins = m.rejoins.Load()
	s.GrantChanges = m.grantChanges.Load()
	return s
}

// publishStats copies the loop's state into the snapshot. Loop goroutine (or
// Join/Leave while the loop is not running).
func (m *Member) publishStats() {
	ids, demands := m.view.ordered()
	shares := Share(m.o.Budget, m.o.MinPerMember, demands)
	s := Stats{
		Fleet: m.o.Name, Member: m.o.Member, Pool: m.poolName,
		Budget: m.o.Budget, MinPerMember: m.o.MinPerMember,
		Claim: m.claim, Target: m.target, Demand: m.demand, Slots: m.report.Slots,
		Members: len(ids), Claimed: m.o.Budget - m.view.free(m.o.Budget),
	}
	s.View = make([]MemberView, len(ids))
	for i, id := range ids {
		r := m.view.members[id].r
		s.View[i] = MemberView{ID: id, Demand: r.Demand, InUse: r.InUse, Waiting: r.Waiting, Claim: m.view.claims[id], Share: shares[i]}
	}
	m.sm.Lock()
	m.snap = s
	m.sm.Unlock()
}
