package pgxpoolsuite_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

// Regression tests of the tidepool bugs found by running pgx's pgxpool suite
// through the adapter (all three fixed; each failed before its fix).

type reproKey struct{}

// TestReproWarmUpDialCarriesNewContextValues: Config.Dial documents that a
// dial runs under a context carrying the values of the Acquire it was
// started for, and DialIdle does the same with its ctx; but the MinIdle
// dials that New starts (with or without WarmInBackground) run under a
// context without New's values (reconciler.startDial(WhyMinIdle,
// context.Background())), so a trace span or tenant credential given to New
// never reaches the warm-up dials. pgxpool's NewWithConfig documents that
// its startup dials use ctx's values (its TestPoolBackgroundConnectionsContext).
func TestReproWarmUpDialCarriesNewContextValues(t *testing.T) {
	for _, background := range []bool{false, true} {
		ctx := context.WithValue(context.Background(), reproKey{}, "from New")
		seen := make(chan any, 1)
		p, err := tidepool.New(ctx, tidepool.Config[int]{
			Dial: func(ctx context.Context) (int, error) {
				select {
				case seen <- ctx.Value(reproKey{}):
				default:
				}
				return 1, nil
			},
			MinIdle:          1,
			MaxSize:          1,
			WarmInBackground: background,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := <-seen
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.Close(cctx); err != nil {
			t.Error(err)
		}
		cancel()
		if got != "from New" {
			t.Errorf("WarmInBackground=%v: the warm-up dial's ctx.Value = %v, want %q (New's ctx value)", background, got, "from New")
		}
	}
}

// TestReproDialingGaugeLagsHandOff: when a dial made for a waiting Acquire
// succeeds, the reconcile loop hands the connection to the waiter
// (reconciler.dialed: r.h.Born) before it publishes its gauges
// (r.publish runs after dialed returns), so a Stats taken by the caller
// right after Acquire returned, with nothing else happening in the pool,
// can still count that dial in Stats.Dialing (and in Slots as a dial
// rather than a connection): Total 1 + Dialing 1 > Slots 1. The failure
// path publishes first on purpose ("a waiter that reads Stats on its way
// out sees the pool as the failure left it"); the success path does not.
// Through the adapter, pgxpool's TotalConns (Total + Dialing, as puddle
// counts resources under construction) reads 2 after one Acquire on an
// empty pool: TestConnReleaseDestroysClosedConn failed so in one run.
func TestReproDialingGaugeLagsHandOff(t *testing.T) {
	p, err := tidepool.New(context.Background(), tidepool.Config[int]{
		Dial:    func(ctx context.Context) (int, error) { return 1, nil },
		MaxSize: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	var held []tidepool.Conn[int]
	lagged := 0
	for range 2000 {
		c, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if s := p.Stats(); s.Dialing != 0 || s.Total+s.Dialing > s.Slots {
			lagged++
		}
	}
	for _, c := range held {
		c.Release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Error(err)
	}
	if lagged > 0 {
		t.Errorf("%d of 2000 Stats taken right after an Acquire (sequential, nothing else running) counted a dial in flight: Dialing > 0 or Total+Dialing > Slots", lagged)
	}
}

// TestReproLifetimeEndingDuringCheckIsLate: an idle connection whose
// MaxLifetime ends while its background health check runs stays idle, and
// can be handed out, for up to a second more. The watcher runs the check and
// then computes its next wake-up (health.watcher.next); with the deadline
// already past it takes the branch meant for a connection held at its
// deadline ("look again in a second") although the connection is idle, so
// nothing retires it until a second later. The README says a connection is
// retired when it reaches MaxLifetime, "at once if idle". Through the adapter
// pgxpool's TestPoolBackgroundChecksMaxConnLifetime (lifetime 100ms,
// HealthCheckPeriod 100ms, checked 500ms later) failed so in one of three runs:
// the ping started just before the deadline and ended after it.
func TestReproLifetimeEndingDuringCheckIsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lifetime = 100 * time.Millisecond
		p, err := tidepool.New(context.Background(), tidepool.Config[int]{
			Dial: func(ctx context.Context) (int, error) { return 1, nil },
			// The check straddles the lifetime's end: it starts at about
			// 90ms and takes 20ms.
			Check: func(ctx context.Context, v int) error {
				time.Sleep(20 * time.Millisecond)
				return nil
			},
			HealthInterval:    90 * time.Millisecond,
			MaxLifetime:       lifetime,
			MaxLifetimeJitter: 1, // none to speak of
			MinIdle:           1,
			MaxSize:           1,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Close(context.Background()) }()
		time.Sleep(lifetime + 200*time.Millisecond)
		synctest.Wait()
		if s := p.Stats(); s.Closed.Lifetime == 0 {
			t.Errorf("200ms after its lifetime ended, the idle connection is still there (Idle %d, Closed.Lifetime %d)", s.Idle, s.Closed.Lifetime)
			c, err := p.TryAcquire(context.Background())
			if err == nil {
				t.Errorf("and TryAcquire hands it out, %v old (MaxLifetime %v)", time.Since(c.CreatedAt()), lifetime)
				c.Release()
			}
		}
	})
}
