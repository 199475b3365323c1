package fleet

import "time"

// demandEstimator turns pool samples into the demand a member publishes: the
// peak, over the last window, of (in use + waiting), raised to grant+1 when
// Acquires had to wait in two sample intervals in a row while the pool stood
// at the same grant all along (bursts that come and go between samples).
// Waits while the pool was still growing towards its grant, or a straggler
// served just after a grant change, are not unmet demand: counting them would
// inflate the demand by itself and make grants flap by one. The peak rises with the first sample that
// shows more load and falls only when a whole window has been lower: that
// asymmetry is what keeps grants from chasing noise.
//
// Owned by the member's loop goroutine; not safe for concurrent use.
type demandEstimator struct {
	window   time.Duration
	samples  []demandSample // oldest first, within window
	waited   int64          // WaitedAcquires at the previous sample
	primed   bool
	atGrant  int  // the grant if the pool stood at it at the previous sample, else -1
	waitedAt bool // the previous interval had waits, at that grant
}

type demandSample struct {
	at time.Time
	v  int
}

// sample is one reading of the pool. It returns the current estimate and the
// waits seen since the previous sample.
func (e *demandEstimator) sample(now time.Time, inUse, waiting int, waitedTotal int64, slots, grant int) (demand int, waits int64) {
	v := inUse + waiting
	if e.primed {
		waits = waitedTotal - e.waited
	}
	e.waited, e.primed = waitedTotal, true
	saturated := slots >= grant && grant > 0
	steady := saturated && e.atGrant == grant && waits > 0
	if steady && e.waitedAt && v <= grant {
		v = grant + 1
	}
	e.waitedAt = steady
	e.atGrant = -1
	if saturated {
		e.atGrant = grant
	}
	cut := 0
	for cut < len(e.samples) && now.Sub(e.samples[cut].at) >= e.window {
		cut++
	}
	e.samples = append(e.samples[:0], e.samples[cut:]...)
	e.samples = append(e.samples, demandSample{at: now, v: v})
	for _, s := range e.samples {
		demand = max(demand, s.v)
	}
	return demand, waits
}
