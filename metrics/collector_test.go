package metrics

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is the pooled value: a plain struct numbered by dial order.
type fakeConn struct{ n int64 }

// newPool returns a pool of fakeConns that dial instantly (the n-th dial
// returns fakeConn{n}); the test closes it when it ends.
func newPool(t *testing.T, cfg tidepool.Config[fakeConn]) *tidepool.Pool[fakeConn] {
	t.Helper()
	var dials atomic.Int64
	if cfg.Dial == nil {
		cfg.Dial = func(context.Context) (fakeConn, error) { return fakeConn{n: dials.Add(1)}, nil }
	}
	if cfg.Name == "" {
		cfg.Name = "orders"
	}
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("tidepool.New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func acquire(t *testing.T, p *tidepool.Pool[fakeConn]) tidepool.Conn[fakeConn] {
	t.Helper()
	h, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h
}

// compare checks c's metrics named in names (all of them if none) against the
// exposition text want.
func compare(t *testing.T, c prometheus.Collector, want string, names ...string) {
	t.Helper()
	for i, n := range names {
		names[i] = "tidepool_" + n
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// closedText is the expected tidepool_closed_total family of pool "orders".
func closedText(lifetime, idle, health, shrink, destroyed, closed, excess int) string {
	return strings.NewReplacer(
		"LIFETIME", itoa(lifetime), "IDLE", itoa(idle), "HEALTH", itoa(health), "SHRINK", itoa(shrink),
		"DESTROYED", itoa(destroyed), "CLOSE", itoa(closed), "EXCESS", itoa(excess),
	).Replace(`
# HELP tidepool_closed_total Connections retired, by reason.
# TYPE tidepool_closed_total counter
tidepool_closed_total{pool="orders",reason="close"} CLOSE
tidepool_closed_total{pool="orders",reason="destroyed"} DESTROYED
tidepool_closed_total{pool="orders",reason="excess_idle"} EXCESS
tidepool_closed_total{pool="orders",reason="health"} HEALTH
tidepool_closed_total{pool="orders",reason="idle"} IDLE
tidepool_closed_total{pool="orders",reason="late_dial"} 0
tidepool_closed_total{pool="orders",reason="lifetime"} LIFETIME
tidepool_closed_total{pool="orders",reason="reset"} 0
tidepool_closed_total{pool="orders",reason="shrink"} SHRINK
tidepool_closed_total{pool="orders",reason="vetoed"} 0
`)
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestCollectorExportsEveryStatsFieldFromAKnownState drives a pool through
// dials, a destroy, a 30ms wait, a cancelled wait, a shrink under load and a
// waiter stuck behind it, then compares every metric of one scrape; then closes
// the pool and checks what Close retired.
func TestCollectorExportsEveryStatsFieldFromAKnownState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, SizeCeiling: 16})
		c := NewCollector(p)

		// Three acquisitions on an empty pool: each waits (0s of bubble
		// time) for the dial it causes.
		h1, h2, h3 := acquire(t, p), acquire(t, p), acquire(t, p)
		h3.Destroy()
		h4, h5 := acquire(t, p), acquire(t, p) // 4 held: the pool is full
		synctest.Wait()

		// A waiter served by a release 30ms later.
		got := make(chan tidepool.Conn[fakeConn])
		go func() {
			h, err := p.Acquire(context.Background())
			if err != nil {
				t.Errorf("waiting Acquire: %v", err)
			}
			got <- h
		}()
		time.Sleep(30 * time.Millisecond)
		h5.Release()
		h6 := <-got

		// A waiter whose context ends first.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire on a full pool with a 100ms context: %v, want DeadlineExceeded", err)
		}
		cancel()

		// Shrink to [1, 2] with 4 held: one release closes at once, one
		// connection stays pending, and a new waiter finds no room.
		if err := p.Resize(1, 2); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		h1.Release()
		waiterErr := make(chan error)
		go func() {
			h, err := p.Acquire(context.Background())
			if err == nil {
				h.Release()
			}
			waiterErr <- err
		}()
		synctest.Wait()

		compare(t, c, `
# HELP tidepool_connections Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held).
# TYPE tidepool_connections gauge
tidepool_connections{pool="orders",state="idle"} 0
tidepool_connections{pool="orders",state="checking"} 0
tidepool_connections{pool="orders",state="in_use"} 3
# HELP tidepool_connections_max Most connections the pool may hold (MaxSize, after any Resize).
# TYPE tidepool_connections_max gauge
tidepool_connections_max{pool="orders"} 2
# HELP tidepool_connections_min_idle Idle connections the pool keeps warm (MinIdle, after any Resize).
# TYPE tidepool_connections_min_idle gauge
tidepool_connections_min_idle{pool="orders"} 1
# HELP tidepool_connections_max_idle Most idle connections the pool keeps; a release beyond it closes the connection.
# TYPE tidepool_connections_max_idle gauge
tidepool_connections_max_idle{pool="orders"} 2
# HELP tidepool_connections_size_ceiling Largest MaxSize that Resize accepts.
# TYPE tidepool_connections_size_ceiling gauge
tidepool_connections_size_ceiling{pool="orders"} 16
# HELP tidepool_dialing Dials in flight.
# TYPE tidepool_dialing gauge
tidepool_dialing{pool="orders"} 0
# HELP tidepool_waiting Acquire calls waiting for a connection.
# TYPE tidepool_waiting gauge
tidepool_waiting{pool="orders"} 1
# HELP tidepool_pending_shrink In-use connections above the max after a shrink; they close on release.
# TYPE tidepool_pending_shrink gauge
tidepool_pending_shrink{pool="orders"} 1
# HELP tidepool_acquires_total Successful acquisitions.
# TYPE tidepool_acquires_total counter
tidepool_acquires_total{pool="orders"} 6
# HELP tidepool_waited_acquires_total Successful acquisitions that had to wait for a connection.
# TYPE tidepool_waited_acquires_total counter
tidepool_waited_acquires_total{pool="orders"} 6
# HELP tidepool_canceled_acquires_total Acquire calls whose context ended, or that timed out, while waiting.
# TYPE tidepool_canceled_acquires_total counter
tidepool_canceled_acquires_total{pool="orders"} 1
# HELP tidepool_dials_total Connections dialed.
# TYPE tidepool_dials_total counter
tidepool_dials_total{pool="orders"} 5
# HELP tidepool_dial_errors_total Dials that failed.
# TYPE tidepool_dial_errors_total counter
tidepool_dial_errors_total{pool="orders"} 0
`+closedText(0, 0, 0, 1, 1, 0, 0)+`
# HELP tidepool_health_checks_total Health checks run on idle connections.
# TYPE tidepool_health_checks_total counter
tidepool_health_checks_total{pool="orders"} 0
# HELP tidepool_health_failures_total Health checks that failed (the connection was retired).
# TYPE tidepool_health_failures_total counter
tidepool_health_failures_total{pool="orders"} 0
# HELP tidepool_resizes_total Resize calls adopted by the pool.
# TYPE tidepool_resizes_total counter
tidepool_resizes_total{pool="orders"} 1
# HELP tidepool_leaks_suspected_total Hand-outs held longer than the leak threshold.
# TYPE tidepool_leaks_suspected_total counter
tidepool_leaks_suspected_total{pool="orders"} 0
# HELP tidepool_leaks_held Connections held longer than the leak threshold and not yet released.
# TYPE tidepool_leaks_held gauge
tidepool_leaks_held{pool="orders"} 0
# HELP tidepool_acquire_wait_seconds How long acquisitions that had to wait waited (those that found an idle connection are not counted).
# TYPE tidepool_acquire_wait_seconds histogram
tidepool_acquire_wait_seconds_bucket{pool="orders",le="5e-05"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0001"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.00025"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0005"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.001"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0025"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.005"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.01"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.025"} 5
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.05"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.1"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.25"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.5"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="1"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="2.5"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="5"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="10"} 6
tidepool_acquire_wait_seconds_bucket{pool="orders",le="+Inf"} 6
tidepool_acquire_wait_seconds_sum{pool="orders"} 0.03
tidepool_acquire_wait_seconds_count{pool="orders"} 6
# HELP tidepool_acquire_check_failures_total Checks on acquire that failed (the connection was retired, the Acquire moved on).
# TYPE tidepool_acquire_check_failures_total counter
tidepool_acquire_check_failures_total{pool="orders"} 0
# HELP tidepool_acquire_checks_total Checks run on idle connections before handing them out.
# TYPE tidepool_acquire_checks_total counter
tidepool_acquire_checks_total{pool="orders"} 0
# HELP tidepool_callback_panics_total User callbacks that panicked (recovered; the callback counted as failed).
# TYPE tidepool_callback_panics_total counter
tidepool_callback_panics_total{pool="orders"} 0
# HELP tidepool_callback_timeouts_total User callbacks that ran past their timeout (counted as failed).
# TYPE tidepool_callback_timeouts_total counter
tidepool_callback_timeouts_total{pool="orders"} 0
# HELP tidepool_closing Retired connections whose Close has not returned (they still hold their slot).
# TYPE tidepool_closing gauge
tidepool_closing{pool="orders"} 0
# HELP tidepool_hijacked_total Connections taken out of the pool for good by Hijack.
# TYPE tidepool_hijacked_total counter
tidepool_hijacked_total{pool="orders"} 0
# HELP tidepool_rejected_acquires_total Acquire calls refused at once because MaxWaiters were waiting.
# TYPE tidepool_rejected_acquires_total counter
tidepool_rejected_acquires_total{pool="orders"} 0
# HELP tidepool_resets_total Reset calls.
# TYPE tidepool_resets_total counter
tidepool_resets_total{pool="orders"} 0
# HELP tidepool_slots Connections the backend may see: dialing, live and closing. At most MaxSize, except pending_shrink.
# TYPE tidepool_slots gauge
tidepool_slots{pool="orders"} 3
# HELP tidepool_stuck_callbacks User callbacks still running past their timeout, by callback (their dials count as failed, their checks' connections are retired).
# TYPE tidepool_stuck_callbacks gauge
tidepool_stuck_callbacks{callback="check",pool="orders"} 0
tidepool_stuck_callbacks{callback="dial",pool="orders"} 0
`)

		// Releasing the rest: h2 closes for the shrink, h4 goes to the
		// waiter (who releases it), h6 goes idle. Close retires both idle.
		h2.Release()
		h4.Release()
		if err := <-waiterErr; err != nil {
			t.Fatalf("waiter behind the shrink: %v", err)
		}
		h6.Release()
		if err := p.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		compare(t, c, closedText(0, 0, 0, 2, 1, 2, 0)+`
# HELP tidepool_connections Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held).
# TYPE tidepool_connections gauge
tidepool_connections{pool="orders",state="idle"} 0
tidepool_connections{pool="orders",state="checking"} 0
tidepool_connections{pool="orders",state="in_use"} 0
# HELP tidepool_acquires_total Successful acquisitions.
# TYPE tidepool_acquires_total counter
tidepool_acquires_total{pool="orders"} 7
`, "closed_total", "connections", "acquires_total")
	})
}

func TestCollectorHistogramPutsLongWaitsOnlyInInf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 1})
		c := NewCollector(p)
		h := acquire(t, p) // waits 0s for its dial
		got := make(chan tidepool.Conn[fakeConn])
		go func() {
			h, err := p.Acquire(context.Background())
			if err != nil {
				t.Errorf("waiting Acquire: %v", err)
			}
			got <- h
		}()
		time.Sleep(12 * time.Second) // beyond the largest bucket, 10s
		h.Release()
		(<-got).Release()
		synctest.Wait()

		compare(t, c, `
# HELP tidepool_acquire_wait_seconds How long acquisitions that had to wait waited (those that found an idle connection are not counted).
# TYPE tidepool_acquire_wait_seconds histogram
tidepool_acquire_wait_seconds_bucket{pool="orders",le="5e-05"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0001"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.00025"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0005"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.001"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.0025"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.005"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.01"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.025"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.05"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.1"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.25"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="0.5"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="1"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="2.5"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="5"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="10"} 1
tidepool_acquire_wait_seconds_bucket{pool="orders",le="+Inf"} 2
tidepool_acquire_wait_seconds_sum{pool="orders"} 12
tidepool_acquire_wait_seconds_count{pool="orders"} 2
`, "acquire_wait_seconds")
	})
}

func TestCollectorCountsExcessIdleCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, MaxIdle: 1})
		c := NewCollector(p)
		h1, h2 := acquire(t, p), acquire(t, p)
		h1.Release()
		h2.Release() // one idle already: this one closes
		synctest.Wait()
		compare(t, c, closedText(0, 0, 0, 0, 0, 0, 1)+`
# HELP tidepool_connections_max_idle Most idle connections the pool keeps; a release beyond it closes the connection.
# TYPE tidepool_connections_max_idle gauge
tidepool_connections_max_idle{pool="orders"} 1
`, "closed_total", "connections_max_idle")
	})
}

func TestCollectorCountsHealthChecksAndFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{
			MaxSize: 4, HealthInterval: 10 * time.Second,
			Check: func(_ context.Context, v fakeConn) error {
				if v.n == 2 {
					return errors.New("connection reset")
				}
				return nil
			},
		})
		c := NewCollector(p)
		h1, h2, h3 := acquire(t, p), acquire(t, p), acquire(t, p)
		h1.Release()
		h2.Release()
		h3.Release()
		// The first check of each comes 9s to 11s after its dial, the second
		// not before 18s.
		time.Sleep(12 * time.Second)
		synctest.Wait()
		compare(t, c, closedText(0, 0, 1, 0, 0, 0, 0)+`
# HELP tidepool_health_checks_total Health checks run on idle connections.
# TYPE tidepool_health_checks_total counter
tidepool_health_checks_total{pool="orders"} 3
# HELP tidepool_health_failures_total Health checks that failed (the connection was retired).
# TYPE tidepool_health_failures_total counter
tidepool_health_failures_total{pool="orders"} 1
# HELP tidepool_connections Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held).
# TYPE tidepool_connections gauge
tidepool_connections{pool="orders",state="idle"} 2
tidepool_connections{pool="orders",state="checking"} 0
tidepool_connections{pool="orders",state="in_use"} 0
`, "closed_total", "health_checks_total", "health_failures_total", "connections")
	})
}

func TestCollectorCountsLifetimeAndIdleTimeCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Lifetime 10s exactly (1ns of jitter rounds to none); idle time 30s.
		p := newPool(t, tidepool.Config[fakeConn]{
			MaxSize: 4, MaxLifetime: 10 * time.Second, MaxLifetimeJitter: 1, MaxIdleTime: 30 * time.Second,
		})
		c := NewCollector(p)
		acquire(t, p).Release()
		time.Sleep(11 * time.Second)
		synctest.Wait()
		compare(t, c, closedText(1, 0, 0, 0, 0, 0, 0), "closed_total")

		q := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, MaxIdleTime: 4 * time.Second})
		c = NewCollector(q)
		acquire(t, q).Release()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		compare(t, c, closedText(0, 1, 0, 0, 0, 0, 0), "closed_total")
	})
}

func TestCollectorReportsSuspectedAndStillHeldLeaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4, LeakThreshold: 10 * time.Second})
		c := NewCollector(p)
		h1, h2 := acquire(t, p), acquire(t, p)
		time.Sleep(15 * time.Second)
		h1.Release()
		synctest.Wait()
		compare(t, c, `
# HELP tidepool_leaks_suspected_total Hand-outs held longer than the leak threshold.
# TYPE tidepool_leaks_suspected_total counter
tidepool_leaks_suspected_total{pool="orders"} 2
# HELP tidepool_leaks_held Connections held longer than the leak threshold and not yet released.
# TYPE tidepool_leaks_held gauge
tidepool_leaks_held{pool="orders"} 1
`, "leaks_suspected_total", "leaks_held")
		h2.Release()
	})
}

func TestCollectorCountsDialErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, tidepool.Config[fakeConn]{
			MaxSize: 4,
			Dial:    func(context.Context) (fakeConn, error) { return fakeConn{}, errors.New("connection refused") },
		})
		c := NewCollector(p)
		if _, err := p.Acquire(context.Background()); !errors.Is(err, tidepool.ErrDial) {
			t.Fatalf("Acquire with a failing Dial: %v, want ErrDial", err)
		}
		synctest.Wait()
		compare(t, c, `
# HELP tidepool_dial_errors_total Dials that failed.
# TYPE tidepool_dial_errors_total counter
tidepool_dial_errors_total{pool="orders"} 1
# HELP tidepool_dials_total Connections dialed.
# TYPE tidepool_dials_total counter
tidepool_dials_total{pool="orders"} 0
`, "dial_errors_total", "dials_total")
	})
}

func TestCollectorPassesLint(t *testing.T) {
	p := newPool(t, tidepool.Config[fakeConn]{MaxSize: 4})
	acquire(t, p).Release()
	problems, err := testutil.CollectAndLint(NewCollector(p))
	if err != nil {
		t.Fatalf("CollectAndLint: %v", err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
	if n := testutil.CollectAndCount(NewCollector(p)); n != 42 {
		t.Errorf("one scrape has %d metrics, want 42 (10 of them closed_total, 3 connections, 2 stuck_callbacks)", n)
	}
}

func TestCollectorsOfDistinctPoolsShareARegistryButNamesMustDiffer(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := newPool(t, tidepool.Config[fakeConn]{Name: "orders"})
	b := newPool(t, tidepool.Config[fakeConn]{Name: "users"})
	if err := reg.Register(NewCollector(a)); err != nil {
		t.Fatalf("registering orders: %v", err)
	}
	if err := reg.Register(NewCollector(b)); err != nil {
		t.Fatalf("registering users next to orders: %v", err)
	}
	if err := reg.Register(NewCollector(a)); err == nil {
		t.Error("registering a second collector for pool orders succeeded; want a duplicate error")
	}
	// The same pool under an extra label is a distinct series set.
	if err := reg.Register(NewCollector(a, WithConstLabels(prometheus.Labels{"pool": "orders-replica"}))); err != nil {
		t.Errorf("registering orders relabelled: %v", err)
	}
	n, err := testutil.GatherAndCount(reg, "tidepool_connections_max")
	if err != nil || n != 3 {
		t.Errorf("gathered %d tidepool_connections_max series (err %v), want 3", n, err)
	}
}

// TestConnectionDetachedMidCheckIsNotCountedInUse: an Acquire that takes a
// connection under a health check skips it (it becomes Detached, owned by its
// watcher until the check ends). Nobody can acquire it and nobody holds it, so
// it counts as checking: tidepool_connections{state="in_use"} says 1, as GET
// /conns lists 1 (it once said 2), and state="idle" says 0, since no Acquire
// could have it.
func TestConnectionDetachedMidCheckIsNotCountedInUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		p := newPool(t, tidepool.Config[fakeConn]{
			MaxSize: 2, HealthInterval: 10 * time.Second,
			Check: func(ctx context.Context, v fakeConn) error {
				if v.n == 1 {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return nil
			},
		})
		c := NewCollector(p)
		acquire(t, p).Release()      // conn 1, idle
		time.Sleep(12 * time.Second) // its check started and blocks
		synctest.Wait()
		h := acquire(t, p) // skips conn 1 (detached), dials conn 2
		synctest.Wait()
		if held := p.InUse(); len(held) != 1 || held[0].ID != h.ID() {
			t.Fatalf("InUse() = %+v, want only conn %d", held, h.ID())
		}
		compare(t, c, `
# HELP tidepool_connections Live connections, by state: idle (acquirable now), checking (under a background health check) or in_use (held).
# TYPE tidepool_connections gauge
tidepool_connections{pool="orders",state="idle"} 0
tidepool_connections{pool="orders",state="checking"} 1
tidepool_connections{pool="orders",state="in_use"} 1
`, "connections")
		close(release)
		synctest.Wait()
		h.Release()
	})
}
