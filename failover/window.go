package failover

import "time"

// failure is the kind of a primary failure that counts towards a switch.
type failure uint8

const (
	failDial      failure = iota // the Acquire failed with tidepool.ErrDial
	failTimeout                  // it timed out with room in the pool: dials or the backend hang
	failExhausted                // it timed out with the pool at its max: every connection held
	numFailures
)

// FailureCounts counts primary failures by kind.
type FailureCounts struct {
	// DialErrors: Acquires on the primary that failed with tidepool.ErrDial.
	DialErrors int64 `json:"dial_errors"`
	// Timeouts: Acquires on the primary that got no connection within
	// Config.AttemptTimeout while the pool had room (its dials hang).
	Timeouts int64 `json:"timeouts"`
	// Exhausted: the same, while every connection of the primary was held.
	Exhausted int64 `json:"exhausted"`
}

// Total returns the sum of the counts.
func (c FailureCounts) Total() int64 { return c.DialErrors + c.Timeouts + c.Exhausted }

func (c *FailureCounts) add(k failure) {
	switch k {
	case failDial:
		c.DialErrors++
	case failTimeout:
		c.Timeouts++
	case failExhausted:
		c.Exhausted++
	}
}

// window remembers the last Threshold failures of the primary, to tell
// whether Threshold of them fell within span. Guarded by Pool.mu.
type window struct {
	span time.Duration
	ring []failureAt // the last len(ring) failures; ring[next] is the oldest when full
	next int
	n    int
}

type failureAt struct {
	at   time.Time
	kind failure
}

func newWindow(threshold int, span time.Duration) window {
	return window{span: span, ring: make([]failureAt, threshold)}
}

// add records a failure at now and reports whether the last Threshold
// failures, this one included, all fell within span of now.
func (w *window) add(now time.Time, k failure) bool {
	w.ring[w.next] = failureAt{at: now, kind: k}
	w.next = (w.next + 1) % len(w.ring)
	if w.n < len(w.ring) {
		w.n++
	}
	if w.n < len(w.ring) {
		return false
	}
	return now.Sub(w.ring[w.next].at) <= w.span
}

// counts returns the failures within span of now, by kind.
func (w *window) counts(now time.Time) FailureCounts {
	var c FailureCounts
	for i := 0; i < w.n; i++ {
		f := w.ring[(w.next-1-i+len(w.ring))%len(w.ring)]
		if now.Sub(f.at) > w.span {
			break // older ones are older still
		}
		c.add(f.kind)
	}
	return c
}

// reset forgets every failure.
func (w *window) reset() { w.next, w.n = 0, 0 }
