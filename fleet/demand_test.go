package fleet

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestDemandRisesAtOnceAndFallsOnlyAfterAWindow is the anti-oscillation
// half of the demand signal: a peak is published with the next sample, a drop
// only when a whole window has been lower.
func TestDemandRisesAtOnceAndFallsOnlyAfterAWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := demandEstimator{window: time.Second, atGrant: -1}
		step := 100 * time.Millisecond
		at := func(inUse, waiting int) int {
			d, _ := e.sample(time.Now(), inUse, waiting, 0, inUse, 100)
			time.Sleep(step)
			return d
		}
		if d := at(2, 0); d != 2 {
			t.Fatalf("first sample: demand %d, want 2", d)
		}
		if d := at(5, 3); d != 8 {
			t.Fatalf("in use 5 + waiting 3: demand %d, want 8 at once", d)
		}
		for i := range 9 { // 0.9 s of lower load: the peak holds
			if d := at(1, 0); d != 8 {
				t.Fatalf("sample %d after the peak: demand %d, want the peak 8 for a whole window", i, d)
			}
		}
		if d := at(1, 0); d != 1 {
			t.Fatalf("a window after the peak: demand %d, want 1", d)
		}
	})
}

// TestDemandCountsWaitsAtTheGrantAsUnmet: Acquires that waited while the
// pool stood at its grant mean more load than any sample saw.
func TestDemandCountsWaitsAtTheGrantAsUnmet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := demandEstimator{window: time.Second, atGrant: -1}
		// Growing towards the grant: waits while dialing are not unmet demand.
		e.sample(time.Now(), 1, 0, 4, 2, 4)
		time.Sleep(100 * time.Millisecond)
		d, _ := e.sample(time.Now(), 3, 0, 10, 4, 4)
		if d != 3 {
			t.Fatalf("waits while the pool grew to its grant: demand %d, want 3", d)
		}
		time.Sleep(100 * time.Millisecond)
		d, waits := e.sample(time.Now(), 3, 0, 14, 4, 4)
		if waits != 4 || d != 3 {
			t.Fatalf("one interval of waits at the grant (a straggler): demand %d (waits %d), want 3", d, waits)
		}
		time.Sleep(100 * time.Millisecond)
		d, waits = e.sample(time.Now(), 3, 0, 16, 4, 4)
		if waits != 2 || d != 5 {
			t.Fatalf("a second interval of waits at the grant of 4: demand %d (waits %d), want grant+1 = 5", d, waits)
		}
		time.Sleep(2 * time.Second)
		// Waits below the grant (dials in flight) are not unmet demand.
		d, _ = e.sample(time.Now(), 2, 0, 20, 2, 4)
		if d != 2 {
			t.Fatalf("waits below the grant: demand %d, want 2", d)
		}
		// Nor are waits across a grant change.
		time.Sleep(100 * time.Millisecond)
		e.sample(time.Now(), 4, 0, 22, 4, 4)
		time.Sleep(100 * time.Millisecond)
		if d, _ = e.sample(time.Now(), 4, 0, 25, 6, 6); d > 4 {
			t.Fatalf("waits across a grant change: demand %d, want 4", d)
		}
	})
}
