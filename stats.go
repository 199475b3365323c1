package tidepool

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/tidepool-go/tidepool/conn"
)

// Stats is a snapshot of a pool, named in an operator's words. Gauges are read
// one after the other without stopping the pool, so under load they may disagree
// by the few connections that moved while they were read.
type Stats struct {
	// Name is Config.Name.
	Name string `json:"name"`
	// MaxSize and MinIdle are the current bounds (after any Resize); MaxIdle the
	// effective idle cap; SizeCeiling the largest MaxSize Resize accepts.
	MaxSize     int `json:"max_size"`
	MinIdle     int `json:"min_idle"`
	MaxIdle     int `json:"max_idle"`
	SizeCeiling int `json:"size_ceiling"`

	// Total live connections (idle + in use); Idle ones, in the queue or under a
	// health check; InUse ones, held; Dialing, dials in flight; Waiting, Acquires
	// waiting; PendingShrink, connections above MaxSize that close on release.
	Total         int `json:"total"`
	Idle          int `json:"idle"`
	InUse         int `json:"in_use"`
	Dialing       int `json:"dialing"`
	Waiting       int `json:"waiting"`
	PendingShrink int `json:"pending_shrink"`

	// Acquires counts successful acquisitions; WaitedAcquires those that had to
	// wait, for WaitDuration in all; CanceledAcquires those whose context ended
	// (or that timed out) while waiting.
	Acquires         int64         `json:"acquires"`
	WaitedAcquires   int64         `json:"waited_acquires"`
	WaitDuration     time.Duration `json:"wait_duration_ns"`
	CanceledAcquires int64         `json:"canceled_acquires"`

	// Dials counts connections dialed; DialErrors failed dials.
	Dials      int64 `json:"dials"`
	DialErrors int64 `json:"dial_errors"`
	// Closed counts retired connections by reason.
	Closed ClosedCounts `json:"closed"`
	// HealthChecks counts checks run, HealthFailures those that failed.
	HealthChecks   int64 `json:"health_checks"`
	HealthFailures int64 `json:"health_failures"`
	// Resizes counts adopted Resize calls.
	Resizes int64 `json:"resizes"`
	// LeaksSuspected counts hand-outs held longer than Config.LeakThreshold;
	// LeaksHeld is how many such connections are still held.
	LeaksSuspected int64 `json:"leaks_suspected"`
	LeaksHeld      int   `json:"leaks_held"`
	// WaitHistogram counts waited acquisitions by wait time: bucket i counts
	// waits ≤ WaitBuckets[i] (not cumulative); the last counts longer ones.
	// Acquisitions that found an idle connection are not in it (they waited 0).
	WaitHistogram [len(WaitBuckets) + 1]int64 `json:"wait_histogram"`
}

// WaitBuckets are the upper bounds of Stats.WaitHistogram's buckets.
var WaitBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// waitHistogram counts waits per bucket; only the wait path writes it.
type waitHistogram [len(WaitBuckets) + 1]atomic.Int64

func (h *waitHistogram) observe(d time.Duration) {
	i := sort.Search(len(WaitBuckets), func(i int) bool { return d <= WaitBuckets[i] })
	h[i].Add(1)
}

// ClosedCounts counts retired connections by Reason.
type ClosedCounts struct {
	Lifetime   int64 `json:"lifetime"`
	Idle       int64 `json:"idle"`
	Health     int64 `json:"health"`
	Shrink     int64 `json:"shrink"`
	Destroyed  int64 `json:"destroyed"`
	Close      int64 `json:"close"`
	ExcessIdle int64 `json:"excess_idle"`
}

// Total returns the number of retired connections.
func (c ClosedCounts) Total() int64 {
	return c.Lifetime + c.Idle + c.Health + c.Shrink + c.Destroyed + c.Close + c.ExcessIdle
}

// Stats returns a snapshot. It walks the registry, so it costs O(connections);
// it takes no lock that Acquire or Release take.
func (p *Pool[T]) Stats() Stats {
	s := Stats{
		Name:        p.cfg.Name,
		MaxSize:     int(p.sh.Max.Load()),
		MinIdle:     int(p.sh.Min.Load()),
		MaxIdle:     int(p.maxIdle()),
		SizeCeiling: p.cfg.SizeCeiling,
		Dialing:     int(p.sh.Dialing.Load()),
		Waiting:     int(p.wl.n.Load()),

		WaitedAcquires:   p.waited.Load(),
		WaitDuration:     time.Duration(p.waitNanos.Load()),
		CanceledAcquires: p.canceled.Load(),
		Dials:            p.rec.Stats.Dials.Load(),
		DialErrors:       p.rec.Stats.DialErrors.Load(),
		HealthChecks:     p.healthChecks.Load(),
		HealthFailures:   p.healthFailures.Load(),
		Resizes:          p.rec.Stats.Resizes.Load(),
		LeaksSuspected:   p.leaks.Load(),
	}
	for i := range p.waitHist {
		s.WaitHistogram[i] = p.waitHist[i].Load()
	}
	cl := &p.rec.Stats.Closes
	s.Closed = ClosedCounts{
		Lifetime: cl[conn.ReasonLifetime].Load(), Idle: cl[conn.ReasonIdle].Load(),
		Health: cl[conn.ReasonHealth].Load(), Shrink: cl[conn.ReasonShrink].Load(),
		Destroyed: cl[conn.ReasonDestroyed].Load(), Close: cl[conn.ReasonClose].Load(),
		ExcessIdle: cl[conn.ReasonExcessIdle].Load(),
	}
	// Read the retired sum first: a connection retired during the walk is then
	// missed (a moment's undercount), never counted twice.
	retired := p.rec.Stats.RetiredHandouts.Load()
	var handouts int64
	p.reg.Range(func(c *conn.Conn[T]) bool {
		handouts += int64(c.Handouts())
		lease, st := c.Load()
		switch st {
		case conn.Idle, conn.Checking, conn.Detached:
			// Detached: dequeued mid-check and skipped; its watcher puts it back.
			s.Idle++
		case conn.InUse:
			s.InUse++
			if p.track && c.Leaked(lease) {
				s.LeaksHeld++
			}
		}
		return true
	})
	s.Acquires = p.acquiresSeen(handouts + retired)
	s.Total = s.Idle + s.InUse
	if over := int(p.sh.Live.Load()) - s.MaxSize; over > 0 {
		s.PendingShrink = over
	}
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
			h.HeldFor = now.Sub(time.Unix(0, since))
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
		last := p.acquiresMax.Load()
		if v <= last {
			return last
		}
		if p.acquiresMax.CompareAndSwap(last, v) {
			return v
		}
	}
}
