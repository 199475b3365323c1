package failover

import (
	"time"

	"github.com/tidepool-go/tidepool"
)

// Stats is a snapshot of a failover pool: its own state and counters, and
// each side's tidepool.Stats (read one after the other).
type Stats struct {
	// Name is Config.Name.
	Name string `json:"name"`
	// Serving is the side new Acquires try first; Pinned is true while an
	// operator has forced the secondary (SwitchTo), which stops the probes.
	Serving Side `json:"serving"`
	Pinned  bool `json:"pinned"`
	// SwitchedAt is when the last switch to the secondary happened,
	// RestoredAt the last switch back to the primary (zero if none). Each is
	// taken just before the switch: an Acquire that returned before it was
	// served by the side that served until then.
	SwitchedAt time.Time `json:"switched_at"`
	RestoredAt time.Time `json:"restored_at"`
	// Switches counts switches to the secondary, Restores switches back.
	Switches int64 `json:"switches"`
	Restores int64 `json:"restores"`
	// FellOver counts Acquires that the side tried first could not serve and
	// the other side served; BothDown those that neither could serve.
	FellOver int64 `json:"fell_over"`
	BothDown int64 `json:"both_down"`
	// PrimaryFailures counts the primary's failures since New; Window those
	// in the current window (reset at every switch).
	PrimaryFailures FailureCounts `json:"primary_failures"`
	Window          FailureCounts `json:"window"`
	// Probes counts probes of the primary, ProbeFailures those that got no
	// answer.
	Probes        int64 `json:"probes"`
	ProbeFailures int64 `json:"probe_failures"`
	// Primary and Secondary are the two pools' own Stats; their Acquires say
	// how many connections each side handed out.
	Primary   tidepool.Stats `json:"primary"`
	Secondary tidepool.Stats `json:"secondary"`
}

// Stats returns a snapshot; it costs two pool Stats (O(connections)) and
// takes the pool's mutex for a moment, never a lock Acquire takes when a
// connection is idle.
func (p *Pool[T]) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Name:       p.cfg.Name,
		Serving:    p.Serving(),
		Pinned:     p.pinned,
		SwitchedAt: p.switchedAt,
		RestoredAt: p.restoredAt,
		Window:     p.win.counts(time.Now()),
	}
	p.mu.Unlock()
	s.Switches, s.Restores = p.switches.Load(), p.restores.Load()
	s.FellOver, s.BothDown = p.fellOver.Load(), p.bothDown.Load()
	s.Probes, s.ProbeFailures = p.probes.Load(), p.probeFailures.Load()
	s.PrimaryFailures = FailureCounts{
		DialErrors: p.failures[failDial].Load(),
		Timeouts:   p.failures[failTimeout].Load(),
		Exhausted:  p.failures[failExhausted].Load(),
	}
	s.Primary, s.Secondary = p.sides[Primary].Stats(), p.sides[Secondary].Stats()
	return s
}
