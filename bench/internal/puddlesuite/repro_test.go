package puddlesuite_test

import (
	"context"
	"testing"

	"github.com/tidepool-go/tidepool"
)

// TestReproStatsCountsDeliveredDialAsDialing is the regression test of a bug
// puddle's suite found: once Acquire has returned a connection the pool
// dialed for it, Stats must not still count that dial as in flight. The
// reconcile loop handed the new connection to the waiter before it published
// its gauges, so a Stats call right after Acquire returned could read
// Dialing = 1 for a dial that was over, with the connection in InUse:
// Dialing + Total exceeded Slots (documented as dialing + live + closing),
// and a puddle user saw TotalResources one above the truth (1–5 % of reads).
func TestReproStatsCountsDeliveredDialAsDialing(t *testing.T) {
	ctx := context.Background()
	p, err := tidepool.New(ctx, tidepool.Config[int]{
		Dial:    func(context.Context) (int, error) { return 1, nil },
		MaxSize: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	const rounds = 2000
	stale := 0
	var first tidepool.Stats
	for range rounds {
		c, err := p.Acquire(ctx) // nothing idle: the pool dials for it
		if err != nil {
			t.Fatal(err)
		}
		s := p.Stats()
		if s.Dialing != 0 {
			if stale == 0 {
				first = s
			}
			stale++
		}
		c.Destroy() // so that the next Acquire dials again
	}
	if stale > 0 {
		t.Fatalf("%d of %d Stats calls made right after Acquire returned a freshly dialed connection "+
			"counted the finished dial: first one Dialing=%d InUse=%d Total=%d Slots=%d (want Dialing=0, Dialing+Total <= Slots)",
			stale, rounds, first.Dialing, first.InUse, first.Total, first.Slots)
	}
}
