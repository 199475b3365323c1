package failover_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
	"github.com/tidepool-go/tidepool/internal/poll"
	"github.com/tidepool-go/tidepool/internal/redistest"
	"github.com/tidepool-go/tidepool/internal/resp"
)

// redisConfig pools *resp.Conn to addr: a dial connects and sends PING; the
// health check is PING.
func redisConfig(addr string) tidepool.Config[*resp.Conn] {
	return tidepool.Config[*resp.Conn]{
		Dial: func(ctx context.Context) (*resp.Conn, error) {
			c, err := resp.Dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			if err := c.Ping(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("redis %s: handshake PING: %w", addr, err)
			}
			return c, nil
		},
		Close:          (*resp.Conn).Close,
		Check:          func(ctx context.Context, c *resp.Conn) error { return c.Ping(ctx) },
		MaxSize:        6,
		MinIdle:        2,
		HealthInterval: 100 * time.Millisecond,
		HealthTimeout:  500 * time.Millisecond,
		DialTimeout:    time.Second,
		DialBackoff:    20 * time.Millisecond,
		DialBackoffMax: 200 * time.Millisecond,
	}
}

// served is one Acquire of the load: when it started and returned, and
// which side served it.
type served struct {
	at, end time.Time
	side    failover.Side
}

// The acceptance test, with a shortened outage: under steady load, the
// primary redis-server is stopped and started again. Judged by events and
// counts, not by wall-clock bounds:
//   - no request is lost: every request succeeds, at most after retrying
//     past a connection the outage killed; no Acquire fails (the secondary
//     is up throughout);
//   - exactly one failover.switched (reason threshold) during the outage and
//     one failover.restored (reason probe) after the restart, in that order;
//   - every Acquire that started after the switch was logged and returned
//     before the restore was decided (Stats.RestoredAt) was served by the
//     secondary; every one that started after the restore was logged, by the
//     primary. (An Acquire that straddles a switch may be served by either.)
//
// The measured detection and recovery latencies are logged.
func TestRedisPrimaryOutageFailsOverAndBackWithoutLosingARequest(t *testing.T) {
	prim, sec := redistest.Start(t), redistest.Start(t)
	core, logs := observer.New(zapcore.InfoLevel)
	p, err := failover.New(context.Background(), failover.Config[*resp.Conn]{
		Name:           "sessions",
		Primary:        redisConfig(prim.Addr()),
		Secondary:      redisConfig(sec.Addr()),
		Logger:         zap.New(core),
		Threshold:      3,
		Window:         2 * time.Second,
		AttemptTimeout: time.Second,            // generous: a starved 2-core machine must not look like a failure
		HoldTime:       300 * time.Millisecond, // above the 100ms HealthInterval
		ProbeInterval:  100 * time.Millisecond,
		ProbeTimeout:   500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	const (
		workers  = 8
		attempts = 5
		outage   = time.Second
	)
	var (
		mu        sync.Mutex
		log       []served
		ok        atomic.Int64
		okPrimary atomic.Int64 // after the restart
		restarted atomic.Bool
		lost      atomic.Int64
		acqErrs   atomic.Int64
		ioErrs    atomic.Int64
		firstErrs []error
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(firstErrs) < 5 {
			firstErrs = append(firstErrs, err)
		}
	}
	request := func(key, value string) bool {
		for range attempts {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			c, err := p.Acquire(ctx)
			if err != nil {
				cancel()
				acqErrs.Add(1)
				note(err)
				continue
			}
			end := time.Now()
			mu.Lock()
			log = append(log, served{at: start, end: end, side: c.Side()})
			mu.Unlock()
			_, err = c.Value().Do(ctx, "SET", key, value)
			cancel()
			if err != nil {
				c.Destroy() // killed by the outage: retry on a fresh connection
				ioErrs.Add(1)
				continue
			}
			c.Release()
			if restarted.Load() && c.Side() == failover.Primary {
				okPrimary.Add(1)
			}
			return true
		}
		return false
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if request("k"+strconv.Itoa(w), strconv.Itoa(i)) {
					ok.Add(1)
				} else {
					lost.Add(1)
				}
			}
		}()
	}
	finish := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer finish()

	poll.Until(t, "load on the primary", 10*time.Second, func() bool { return ok.Load() >= 200 })
	stoppedAt := time.Now() // the stop starts here: the pool may notice before Stop returns
	prim.Stop()
	poll.Until(t, "the switch", 10*time.Second, func() bool { return logs.FilterMessage(failover.EventSwitched).Len() > 0 })
	for time.Since(stoppedAt) < outage {
		time.Sleep(10 * time.Millisecond) // hold the outage for its length
	}
	okDuringOutage := ok.Load()
	startedAt := time.Now() // the start begins here: a probe may succeed before Start returns
	prim.Start()
	restarted.Store(true)
	poll.Until(t, "the restore", 10*time.Second, func() bool { return logs.FilterMessage(failover.EventRestored).Len() > 0 })
	poll.Until(t, "load on the restored primary", 10*time.Second, func() bool { return okPrimary.Load() >= 200 })
	finish()

	for _, err := range firstErrs {
		t.Errorf("Acquire failed with the secondary up: %v", err)
	}
	if n := lost.Load(); n != 0 {
		t.Errorf("%d requests lost (failed %d attempts each)", n, attempts)
	}
	sw := logs.FilterMessage(failover.EventSwitched).All()
	re := logs.FilterMessage(failover.EventRestored).All()
	if len(sw) != 1 || len(re) != 1 {
		t.Fatalf("%d failover.switched and %d failover.restored entries, want 1 each", len(sw), len(re))
	}
	switchedAt, restoredAt := sw[0].Time, re[0].Time
	st := p.Stats()
	if r := sw[0].ContextMap()["reason"]; r != failover.ReasonThreshold {
		t.Errorf("switch reason %v, want threshold", r)
	}
	if r := re[0].ContextMap()["reason"]; r != failover.ReasonProbe {
		t.Errorf("restore reason %v, want probe", r)
	}
	if !(stoppedAt.Before(switchedAt) && switchedAt.Before(startedAt) && startedAt.Before(st.RestoredAt) && st.RestoredAt.Before(restoredAt)) {
		t.Errorf("order: stopped %v, switched %v, started %v, restored %v; want in that order",
			stoppedAt, switchedAt, startedAt, restoredAt)
	}
	var onSecondary, wrong int
	for _, s := range log {
		bad := false
		switch {
		case s.at.After(switchedAt) && s.end.Before(st.RestoredAt):
			if s.side != failover.Secondary {
				bad = true
			} else {
				onSecondary++
			}
		case s.at.After(restoredAt) && s.side != failover.Primary:
			bad = true
		}
		if bad {
			wrong++
			if wrong <= 3 {
				t.Logf("served by the %s: started %v after the switch was logged, returned %v after the restore was decided",
					s.side, s.at.Sub(switchedAt), s.end.Sub(st.RestoredAt))
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d Acquires were served by the side that was not serving when they started", wrong)
	}
	if onSecondary == 0 {
		t.Error("no Acquire was served by the secondary during the outage")
	}
	if st.Switches != 1 || st.Restores != 1 || st.BothDown != 0 {
		t.Errorf("Stats: %d switches, %d restores, %d both down; want 1, 1, 0", st.Switches, st.Restores, st.BothDown)
	}
	t.Logf("outage %v: switched %v after the stop (%+v), restored %v after the restart (%d probes); "+
		"%d requests ok (%d during the outage), %d on the secondary between the switch and the restore, "+
		"%d request I/O errors retried, %d fell over",
		outage, switchedAt.Sub(stoppedAt).Round(time.Millisecond), st.PrimaryFailures,
		restoredAt.Sub(startedAt).Round(time.Millisecond), st.Probes,
		ok.Load(), okDuringOutage, onSecondary, ioErrs.Load(), st.FellOver)
}
