package tidepool

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/tidepool-go/tidepool/conn"
)

// Reason says why a connection was retired. It is the "reason" field of the
// conn.retired log entry, the label of the closed-connections metric, and a
// field of Stats.Closed (see ClosedCounts.Of).
type Reason = conn.Reason

// Retirement reasons.
const (
	// ReasonLifetime: the connection reached MaxLifetime (less its jitter);
	// retired at once if idle, on release if held.
	ReasonLifetime = conn.ReasonLifetime
	// ReasonIdle: it sat idle MaxIdleTime while the pool had more than
	// MinIdle idle connections.
	ReasonIdle = conn.ReasonIdle
	// ReasonHealth: it failed Check, in the background or on acquire, or its
	// check ran past HealthTimeout.
	ReasonHealth = conn.ReasonHealth
	// ReasonShrink: the pool was above its max after a Resize (or when a
	// Lease ran out).
	ReasonShrink = conn.ReasonShrink
	// ReasonDestroyed: its holder called Destroy (or AcquireFunc's function
	// said it is broken, or panicked).
	ReasonDestroyed = conn.ReasonDestroyed
	// ReasonClose: the pool was closed.
	ReasonClose = conn.ReasonClose
	// ReasonExcessIdle: it was released while MaxIdle connections were idle.
	ReasonExcessIdle = conn.ReasonExcessIdle
	// ReasonReset: Reset retired it.
	ReasonReset = conn.ReasonReset
	// ReasonVetoed: AfterConnect, BeforeAcquire or AfterRelease refused it,
	// panicked, or ran past HookTimeout.
	ReasonVetoed = conn.ReasonVetoed
	// ReasonLateDial: its dial returned after DialTimeout had counted it
	// failed; it is closed at once and was never handed out.
	ReasonLateDial = conn.ReasonLateDial
)

// Reasons returns every retirement reason, in the order of ClosedCounts' fields.
func Reasons() []Reason {
	return []Reason{ReasonLifetime, ReasonIdle, ReasonHealth, ReasonShrink, ReasonDestroyed, ReasonClose,
		ReasonExcessIdle, ReasonReset, ReasonVetoed, ReasonLateDial}
}

// ClosedCounts counts retired connections by Reason: one field per reason.
type ClosedCounts struct {
	Lifetime   int64 `json:"lifetime"`
	Idle       int64 `json:"idle"`
	Health     int64 `json:"health"`
	Shrink     int64 `json:"shrink"`
	Destroyed  int64 `json:"destroyed"`
	Close      int64 `json:"close"`
	ExcessIdle int64 `json:"excess_idle"`
	Reset      int64 `json:"reset"`
	Vetoed     int64 `json:"vetoed"`
	LateDial   int64 `json:"late_dial"`
}

// field is the one place that maps a Reason to its ClosedCounts field; a test
// fails when a reason or a field is left out.
func (c *ClosedCounts) field(r Reason) *int64 {
	switch r {
	case ReasonLifetime:
		return &c.Lifetime
	case ReasonIdle:
		return &c.Idle
	case ReasonHealth:
		return &c.Health
	case ReasonShrink:
		return &c.Shrink
	case ReasonDestroyed:
		return &c.Destroyed
	case ReasonClose:
		return &c.Close
	case ReasonExcessIdle:
		return &c.ExcessIdle
	case ReasonReset:
		return &c.Reset
	case ReasonVetoed:
		return &c.Vetoed
	case ReasonLateDial:
		return &c.LateDial
	}
	return nil
}

// Of returns the count for r (0 for an unknown reason).
func (c ClosedCounts) Of(r Reason) int64 {
	if f := c.field(r); f != nil {
		return *f
	}
	return 0
}

// Total returns the number of retired connections.
func (c ClosedCounts) Total() int64 {
	var n int64
	for _, r := range Reasons() {
		n += c.Of(r)
	}
	return n
}

// Stats is a snapshot of a pool, named in an operator's words. Gauges are read
// one after the other without stopping the pool, so under load they may disagree
// by the few connections that moved while they were read.
type Stats struct {
	// Name is Config.Name.
	Name string `json:"name"`
	// MaxSize and MinIdle are the bounds in force (after any Resize, or a
	// Lease's max while it lasts); MaxIdle the effective idle cap;
	// SizeCeiling the largest max Resize accepts.
	MaxSize     int `json:"max_size"`
	MinIdle     int `json:"min_idle"`
	MaxIdle     int `json:"max_idle"`
	SizeCeiling int `json:"size_ceiling"`

	// Slots is what the backend may see of this pool: dials in flight
	// (Dialing), live connections, and connections whose Close has not
	// returned (Closing). It never exceeds MaxSize except by PendingShrink.
	Slots int `json:"slots"`
	// Total live connections: Idle + Checking + InUse. Idle ones can be
	// acquired now; Checking ones are under a background health check;
	// InUse ones are held.
	Total    int `json:"total"`
	Idle     int `json:"idle"`
	Checking int `json:"checking"`
	InUse    int `json:"in_use"`
	// Dialing counts dials in flight, StuckDials those of them past
	// DialTimeout (already counted as failed). Closing counts closes in
	// flight. StuckChecks counts health checks past HealthTimeout still
	// running (their connections are retired already).
	Dialing     int `json:"dialing"`
	StuckDials  int `json:"stuck_dials"`
	Closing     int `json:"closing"`
	StuckChecks int `json:"stuck_checks"`
	// Waiting counts Acquires waiting; PendingShrink, held connections above
	// the max that close on release.
	Waiting       int `json:"waiting"`
	PendingShrink int `json:"pending_shrink"`

	// Acquires counts hand-outs to callers; WaitedAcquires those that had to
	// wait, for WaitDuration in all; CanceledAcquires those whose context
	// ended (or that timed out) while waiting; RejectedAcquires those turned
	// away by MaxWaiters.
	Acquires         int64         `json:"acquires"`
	WaitedAcquires   int64         `json:"waited_acquires"`
	WaitDuration     time.Duration `json:"wait_duration_ns"`
	CanceledAcquires int64         `json:"canceled_acquires"`
	RejectedAcquires int64         `json:"rejected_acquires"`

	// Dials counts connections dialed; DialErrors failed dials (timed-out
	// ones included).
	Dials      int64 `json:"dials"`
	DialErrors int64 `json:"dial_errors"`
	// Closed counts retired connections by reason.
	Closed ClosedCounts `json:"closed"`
	// HealthChecks counts background checks run, HealthFailures those that
	// failed; AcquireChecks and AcquireCheckFailures the same for checks on
	// acquire.
	HealthChecks         int64 `json:"health_checks"`
	HealthFailures       int64 `json:"health_failures"`
	AcquireChecks        int64 `json:"acquire_checks"`
	AcquireCheckFailures int64 `json:"acquire_check_failures"`
	// CallbackPanics counts user callbacks that panicked, CallbackTimeouts
	// those that ran past their timeout.
	CallbackPanics   int64 `json:"callback_panics"`
	CallbackTimeouts int64 `json:"callback_timeouts"`
	// Resizes counts adopted Resize calls, Resets Reset calls, Hijacked
	// connections taken out of the pool by Hijack.
	Resizes  int64 `json:"resizes"`
	Resets   int64 `json:"resets"`
	Hijacked int64 `json:"hijacked"`
	// LeaksSuspected counts hand-outs held longer than Config.LeakThreshold;
	// LeaksHeld is how many such connections are still held.
	LeaksSuspected int64 `json:"leaks_suspected"`
	LeaksHeld      int   `json:"leaks_held"`
	// WaitHistogram counts waited acquisitions by wait time: bucket i counts
	// waits ≤ WaitBuckets()[i] (not cumulative); the last counts longer ones.
	// Acquisitions that found an idle connection are not in it (they waited 0).
	WaitHistogram [len(waitBuckets) + 1]int64 `json:"wait_histogram"`
}

// waitBuckets are the upper bounds of Stats.WaitHistogram's buckets.
var waitBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// WaitBuckets returns the upper bounds of Stats.WaitHistogram's buckets (a
// fresh copy each call).
func WaitBuckets() []time.Duration { return append([]time.Duration(nil), waitBuckets[:]...) }

// waitHistogram counts waits per bucket; only the wait path writes it.
type waitHistogram [len(waitBuckets) + 1]atomic.Int64

func (h *waitHistogram) observe(d time.Duration) {
	i := sort.Search(len(waitBuckets), func(i int) bool { return d <= waitBuckets[i] })
	h[i].Add(1)
}

// Stats returns a snapshot. It walks the registry, so it costs O(connections);
// it takes no lock that Acquire or Release take.
func (p *Pool[T]) Stats() Stats {
	g, k := &p.rec.G, &p.rec.Stats
	s := Stats{
		Name:        p.cfg.Name,
		MaxSize:     int(g.Max.Load()),
		MinIdle:     int(g.Min.Load()),
		MaxIdle:     int(p.maxIdle()),
		SizeCeiling: p.cfg.SizeCeiling,
		Slots:       int(g.Slots.Load()),
		Dialing:     int(g.Dialing.Load()),
		StuckDials:  int(g.StuckDials.Load()),
		Closing:     int(g.Closing.Load()),
		StuckChecks: int(p.n.stuckChecks.Load()),
		Waiting:     int(p.wl.n.Load()),
		// Debt is owed by held connections; with the pool closed the gate
		// carries no debt that matters.
		PendingShrink: int(p.gate.Debt()),

		WaitedAcquires:       p.n.waited.Load(),
		WaitDuration:         time.Duration(p.n.waitNanos.Load()),
		CanceledAcquires:     p.n.canceled.Load(),
		RejectedAcquires:     p.n.rejected.Load(),
		Dials:                k.Dials.Load(),
		DialErrors:           k.DialErrors.Load(),
		HealthChecks:         p.n.healthChecks.Load(),
		HealthFailures:       p.n.healthFailures.Load(),
		AcquireChecks:        p.n.acquireChecks.Load(),
		AcquireCheckFailures: p.n.acquireFails.Load(),
		CallbackPanics:       p.n.callbackPanics.Load(),
		CallbackTimeouts:     p.n.callbackTimeouts.Load(),
		Resizes:              k.Resizes.Load(),
		Resets:               k.Resets.Load(),
		Hijacked:             k.Hijacked.Load(),
		LeaksSuspected:       p.n.leaks.Load(),
	}
	for i := range p.n.waitHist {
		s.WaitHistogram[i] = p.n.waitHist[i].Load()
	}
	for _, r := range Reasons() {
		*s.Closed.field(r) = k.Closes[r].Load()
	}
	// Read the retired sum first: a connection retired during the walk is then
	// missed (a moment's undercount), never counted twice.
	retired := k.RetiredHandouts.Load()
	var handouts int64
	p.reg.Range(func(c *conn.Conn[T]) bool {
		handouts += int64(c.Handouts())
		lease, st := c.Load()
		switch st {
		case conn.Idle:
			s.Idle++
		case conn.Checking, conn.Detached:
			// Detached: taken out of the idle set mid-check; its watcher puts
			// it back. Nobody can acquire either until the check ends.
			s.Checking++
		case conn.InUse:
			s.InUse++
			if p.track && c.Leaked(lease) {
				s.LeaksHeld++
			}
		}
		return true
	})
	s.Acquires = p.acquiresSeen(handouts + retired)
	s.Total = s.Idle + s.Checking + s.InUse
	return s
}

// HeldConn describes one connection in use, for the admin listing.
type HeldConn struct {
	ID uint64 `json:"id"`
	// Age is how long ago it was dialed.
	Age time.Duration `json:"age_ns"`
	// HeldFor is how long its holder has had it; 0 unless the pool tracks
	// hand-out times (Config.LeakThreshold or Config.TrackAcquireSite).
	HeldFor time.Duration `json:"held_for_ns"`
	// Leaked reports whether it was reported as a suspected leak.
	Leaked bool `json:"leaked"`
	// AcquiredAt is the acquiring stack when Config.TrackAcquireSite is on.
	AcquiredAt string `json:"acquired_at,omitempty"`
}

// InUse lists the connections held right now. O(connections).
func (p *Pool[T]) InUse() []HeldConn {
	now := time.Now()
	var out []HeldConn
	p.reg.Range(func(c *conn.Conn[T]) bool {
		lease, st := c.Load()
		if st != conn.InUse {
			return true
		}
		h := HeldConn{ID: c.ID(), Age: now.Sub(c.Created())}
		if since := c.HeldSince(lease); since != 0 {
			// Handed out during this walk: held for a moment, not for less.
			h.HeldFor = max(now.Sub(time.Unix(0, since)), 0)
			h.Leaked = c.Leaked(lease)
			h.AcquiredAt = c.Site()
		}
		out = append(out, h)
		return true
	})
	return out
}

// acquiresSeen keeps the summed acquisition count monotonic: a connection
// retiring during the walk is missed for a moment (never counted twice), and a
// counter must never go down.
func (p *Pool[T]) acquiresSeen(v int64) int64 {
	for {
		last := p.n.acquiresMax.Load()
		if v <= last {
			return last
		}
		if p.n.acquiresMax.CompareAndSwap(last, v) {
			return v
		}
	}
}
