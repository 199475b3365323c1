package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/poll"
	"github.com/tidepool-go/tidepool/internal/redistest"
	"github.com/tidepool-go/tidepool/internal/resp"
	"github.com/tidepool-go/tidepool/netconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dialStats counts the dials a pool makes through redisConfig.
type dialStats struct {
	started     atomic.Int64
	failed      atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// redisConfig pools *resp.Conn to addr. Dial connects and sends PING, so that
// a server that accepts the TCP connection only to refuse the client (e.g.
// "-ERR max number of clients reached") fails the dial; Check is PING.
func redisConfig(addr string, ds *dialStats) tidepool.Config[*resp.Conn] {
	return tidepool.Config[*resp.Conn]{
		Dial: func(ctx context.Context) (*resp.Conn, error) {
			ds.started.Add(1)
			n := ds.inFlight.Add(1)
			defer ds.inFlight.Add(-1)
			for m := ds.maxInFlight.Load(); n > m && !ds.maxInFlight.CompareAndSwap(m, n); m = ds.maxInFlight.Load() {
			}
			c, err := resp.Dial(ctx, "tcp", addr)
			if err != nil {
				ds.failed.Add(1)
				return nil, err
			}
			if err := c.Ping(ctx); err != nil {
				c.Close()
				ds.failed.Add(1)
				return nil, fmt.Errorf("redis %s: handshake PING: %w", addr, err)
			}
			return c, nil
		},
		Close: (*resp.Conn).Close,
		Check: func(ctx context.Context, c *resp.Conn) error { return c.Ping(ctx) },
	}
}

func newPool(t *testing.T, cfg tidepool.Config[*resp.Conn]) *tidepool.Pool[*resp.Conn] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// Idle pooled connections killed by the server (CLIENT KILL from an admin
// connection) are found by the health check and replaced; after a health
// interval, every connection handed out is a new one and answers PING.
func TestKilledIdleConnectionsAreReplacedBeforeAnyHolderGetsOne(t *testing.T) {
	srv := redistest.Start(t)
	const size = 4
	const interval = 100 * time.Millisecond
	var ds dialStats
	core, logs := observer.New(zap.InfoLevel)
	cfg := redisConfig(srv.Addr(), &ds)
	cfg.MinIdle, cfg.MaxSize = size, size
	cfg.HealthInterval, cfg.HealthTimeout = interval, time.Second
	cfg.ReconcileInterval = 20 * time.Millisecond
	cfg.Logger = zap.New(core)
	p := newPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Learn the ids of the first generation.
	oldIDs := map[uint64]bool{}
	var held []tidepool.Conn[*resp.Conn]
	for range size {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oldIDs[h.ID()] = true
		held = append(held, h)
	}
	for _, h := range held {
		h.Release()
	}

	admin, err := srv.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	if err != nil || r.Err() != nil {
		t.Fatalf("CLIENT KILL: %+v %v", r, err)
	}
	if r.Int != size {
		t.Fatalf("CLIENT KILL killed %d clients, want the pool's %d", r.Int, size)
	}
	killedAt := time.Now()

	took := poll.Until(t, "every killed connection retired for health", 5*time.Second, func() bool {
		return p.Stats().Closed.Health >= size
	})
	// Jittered interval ≤ 1.1×interval; allow scheduling slack under -race.
	if limit := 2*interval + 400*time.Millisecond; took > limit {
		t.Errorf("health retirements took %v after the kill, want ≤ %v", took, limit)
	}
	poll.Until(t, "replacements dialed", 5*time.Second, func() bool { return p.Stats().Idle == size })

	// Hold every connection at once: none may be a killed one.
	held = held[:0]
	for range size {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
		if oldIDs[h.ID()] {
			t.Errorf("conn %d was killed %v ago but handed out", h.ID(), time.Since(killedAt))
		}
		if err := h.Value().Ping(ctx); err != nil {
			t.Errorf("PING on conn %d after recovery: %v", h.ID(), err)
		}
	}
	for _, h := range held {
		h.Release()
	}
	st := p.Stats()
	if st.Closed.Health != size || st.HealthFailures < size {
		t.Errorf("Stats: Closed.Health %d, HealthFailures %d; want %d each", st.Closed.Health, st.HealthFailures, size)
	}
	if n := logs.FilterMessage("conn.retired").FilterField(zap.String("reason", tidepool.ReasonHealth.String())).Len(); n != size {
		t.Errorf("%d conn.retired reason=health entries, want %d", n, size)
	}
	if got := ds.started.Load(); got != 2*size {
		t.Errorf("%d dials, want %d (one generation, one replacement each)", got, 2*size)
	}
	t.Logf("killed %d conns; health retired all within %v; %d health checks", size, took, st.HealthChecks)
}

// A redis restart under load: while the server is down, Acquire fails
// promptly with ErrDial (or hands out a connection whose PING fails, which
// the worker destroys); once it is back, the same pool recovers, and dials
// never exceed MaxSize in flight.
func TestPoolRidesOutARedisRestartUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	const (
		maxSize        = 6
		workers        = 8
		acquireTimeout = 3 * time.Second
		outage         = 700 * time.Millisecond
		dialBackoff    = 20 * time.Millisecond
	)
	var ds dialStats
	cfg := redisConfig(srv.Addr(), &ds)
	cfg.MinIdle, cfg.MaxSize = 2, maxSize
	cfg.HealthInterval, cfg.HealthTimeout = 100*time.Millisecond, 500*time.Millisecond
	cfg.DialTimeout = time.Second
	cfg.DialBackoff, cfg.DialBackoffMax = dialBackoff, 200*time.Millisecond
	cfg.ReconcileInterval = 20 * time.Millisecond
	p := newPool(t, cfg)

	var (
		phase        atomic.Int32 // 0 up, 1 down, 2 back
		ok           [3]atomic.Int64
		acqFail      [3]atomic.Int64
		broken       [3]atomic.Int64
		slowestFail  atomic.Int64 // ns
		maxDialing   atomic.Int64
		mu           sync.Mutex
		unexpected   []error
		stop         = make(chan struct{})
		wg           sync.WaitGroup
		maxIterAfter = int64(200) // successes after the restart that end the test
	)
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(unexpected) < 5 {
			unexpected = append(unexpected, err)
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ph := phase.Load()
				ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
				start := time.Now()
				h, err := p.Acquire(ctx)
				if err != nil {
					took := time.Since(start)
					cancel()
					acqFail[ph].Add(1)
					for s := slowestFail.Load(); int64(took) > s && !slowestFail.CompareAndSwap(s, int64(took)); s = slowestFail.Load() {
					}
					if !errors.Is(err, tidepool.ErrDial) {
						note(fmt.Errorf("phase %d: Acquire error not wrapping ErrDial after %v: %w", ph, took, err))
					}
					time.Sleep(time.Millisecond) // a real client would back off too
					continue
				}
				pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				err = h.Value().Ping(pctx)
				pcancel()
				cancel()
				if err != nil {
					broken[ph].Add(1)
					h.Destroy()
					continue
				}
				h.Release()
				ok[ph].Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // sample the pool's own dial gauge
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if d := int64(p.Stats().Dialing); d > maxDialing.Load() {
				maxDialing.Store(d)
			}
		}
	}()
	finish := func() { close(stop); wg.Wait() }
	defer func() {
		select {
		case <-stop:
		default:
			finish()
		}
	}()

	poll.Until(t, "load on a healthy server", 5*time.Second, func() bool { return ok[0].Load() >= 200 })
	srv.Stop()
	phase.Store(1)
	downAt := time.Now()
	dialsAtDown := ds.started.Load()
	poll.Until(t, "failures during the outage", 5*time.Second, func() bool { return acqFail[1].Load() > 0 })
	for time.Since(downAt) < outage {
		time.Sleep(10 * time.Millisecond) // hold the outage for its length
	}
	dialsDuringOutage := ds.started.Load() - dialsAtDown
	srv.Start()
	phase.Store(2)
	backAt := time.Now()
	dialsAtBack, failedAtBack := ds.started.Load(), ds.failed.Load()
	recovery := poll.Until(t, "recovery after the restart", 10*time.Second, func() bool { return ok[2].Load() >= maxIterAfter })
	finish()

	st := p.Stats()
	dialsAfter := ds.started.Load() - dialsAtBack
	failedAfter := ds.failed.Load() - failedAtBack
	t.Logf("up: %d ok | down %v: %d acquire failures, %d broken conns destroyed, %d dial attempts | back: %d ok, recovered in %v, %d dials (%d failed)",
		ok[0].Load(), time.Since(downAt)-time.Since(backAt), acqFail[1].Load(), broken[1].Load(), dialsDuringOutage,
		ok[2].Load(), recovery, dialsAfter, failedAfter)
	t.Logf("slowest failing Acquire %v (ctx %v); max dials in flight %d, max Stats.Dialing %d; Stats %+v",
		time.Duration(slowestFail.Load()), acquireTimeout, ds.maxInFlight.Load(), maxDialing.Load(), st)

	for _, err := range unexpected {
		t.Error(err)
	}
	if acqFail[1].Load() == 0 {
		t.Error("no Acquire failed during the outage")
	}
	if s := time.Duration(slowestFail.Load()); s > acquireTimeout/3 {
		t.Errorf("slowest failing Acquire took %v; failures must come well before the %v ctx deadline", s, acquireTimeout)
	}
	if m := ds.maxInFlight.Load(); m > maxSize {
		t.Errorf("%d dials in flight at once, MaxSize is %d", m, maxSize)
	}
	if m := maxDialing.Load(); m > maxSize {
		t.Errorf("Stats.Dialing reached %d, MaxSize is %d", m, maxSize)
	}
	// Backoff starts at DialBackoff/2 and doubles: an outage admits few probes.
	if limit := int64(outage/(dialBackoff/2)) + maxSize; dialsDuringOutage > limit {
		t.Errorf("%d dial attempts during a %v outage, want ≤ %d (a dial storm)", dialsDuringOutage, outage, limit)
	}
	// After the restart the pool needs at most MaxSize connections, plus a
	// failed probe or two that raced the restart.
	if dialsAfter > 2*maxSize {
		t.Errorf("%d dials after the restart, want ≤ %d", dialsAfter, 2*maxSize)
	}
	if st.DialErrors == 0 {
		t.Error("Stats.DialErrors = 0 after an outage")
	}
}

// With --maxclients below MaxSize, Redis accepts the extra TCP connections
// only to send "-ERR max number of clients reached": the dial's PING turns
// that into a dial error that reaches Acquire (wrapping ErrDial), Stats and
// the log.
func TestMaxClientsRefusalSurfacesAsDialError(t *testing.T) {
	const maxClients = 3
	srv := redistest.Start(t, "--maxclients", fmt.Sprint(maxClients))
	var ds dialStats
	core, logs := observer.New(zap.InfoLevel)
	cfg := redisConfig(srv.Addr(), &ds)
	cfg.MaxSize = 6
	cfg.HealthInterval = 100 * time.Millisecond
	cfg.DialBackoff, cfg.DialBackoffMax = 10*time.Millisecond, 50*time.Millisecond
	cfg.ReconcileInterval = 20 * time.Millisecond
	cfg.Logger = zap.New(core)
	p := newPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var held []tidepool.Conn[*resp.Conn]
	for range maxClients {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire %d of %d allowed clients: %v", len(held)+1, maxClients, err)
		}
		held = append(held, h)
	}
	const msg = "max number of clients reached"
	check := func(err error, took time.Duration) {
		t.Helper()
		switch {
		case err == nil:
			t.Error("Acquire beyond --maxclients succeeded")
		case !errors.Is(err, tidepool.ErrDial):
			t.Errorf("Acquire beyond --maxclients = %v, want ErrDial", err)
		case !strings.Contains(err.Error(), msg):
			t.Errorf("Acquire error %q lacks redis' %q", err, msg)
		case took > 2*time.Second:
			t.Errorf("failing Acquire took %v", took)
		}
	}
	// One at a time, then several at once.
	for range 3 {
		start := time.Now()
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := p.Acquire(actx)
		acancel()
		if err == nil {
			held = append(held, h)
		}
		check(err, time.Since(start))
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	tooks := make([]time.Duration, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			defer acancel()
			h, err := p.Acquire(actx)
			if err == nil {
				h.Release()
			}
			errs[i], tooks[i] = err, time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		check(err, tooks[i])
	}

	st := p.Stats()
	if st.DialErrors == 0 {
		t.Error("Stats.DialErrors = 0")
	}
	failed := logs.FilterMessage("conn.dial_failed").All()
	if len(failed) == 0 {
		t.Fatal("no conn.dial_failed log entry")
	}
	withMsg := 0
	for _, e := range failed {
		if s, ok := e.ContextMap()["error"].(string); ok && strings.Contains(s, msg) {
			withMsg++
		}
	}
	if withMsg == 0 {
		t.Errorf("no conn.dial_failed entry carries %q: %v", msg, failed[0].ContextMap())
	}
	t.Logf("%d dial errors, %d conn.dial_failed entries (%d with redis' message), %d dials started",
		st.DialErrors, len(failed), withMsg, ds.started.Load())

	// Once clients leave, the pool serves again without a restart.
	for _, h := range held {
		h.Release()
	}
	h, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after releasing: %v", err)
	}
	if err := h.Value().Ping(ctx); err != nil {
		t.Fatalf("PING: %v", err)
	}
	h.Release()
}

// A redis-server restarted under a pool of 8 idle connections (netconn.Config:
// Alive as Check, checked on every hand-out; the default HealthInterval, so no
// background check runs in the meantime): none of 100 Acquires that follow
// hands out a dead connection. Each dead one is found by its peek, retired,
// and the Acquire moves on.
func TestNoDeadConnectionIsHandedOutAfterARedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	cfg := netconn.Config(netconn.Options{Address: srv.Addr()})
	cfg.MinIdle, cfg.MaxSize = 8, 8
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if s := p.Stats(); s.Idle != 8 {
		t.Fatalf("warm pool has %d idle, want 8", s.Idle)
	}
	// Restart returns once the old process is gone (the kernel closed its
	// sockets: on loopback the FINs are in our receive queues already) and
	// the new one answers.
	srv.Restart()
	dead := 0
	for i := range 100 {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire #%d after the restart: %v", i, err)
		}
		c := resp.NewConn(h.Value())
		if err := c.Ping(ctx); err != nil {
			dead++
			if dead == 1 {
				t.Errorf("Acquire #%d handed out a dead connection: PING: %v", i, err)
			}
			h.Destroy()
			continue
		}
		h.Release()
	}
	// Most recently used first: the loop above may have reused one or two
	// connections and left the other old ones idle. Holding eight at once
	// reaches every one of them.
	var held []tidepool.Conn[net.Conn]
	for i := range 8 {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire %d of 8 held at once: %v", i, err)
		}
		if err := resp.NewConn(h.Value()).Ping(ctx); err != nil {
			dead++
			t.Errorf("Acquire %d of 8 held at once handed out a dead connection: PING: %v", i, err)
		}
		held = append(held, h)
	}
	for _, h := range held {
		h.Release()
	}
	if dead > 0 {
		t.Fatalf("%d connections handed out after the restart were dead", dead)
	}
	s := p.Stats()
	if s.AcquireCheckFailures < 8 || s.Closed.Health < 8 {
		t.Fatalf("after the restart: %d checks on acquire failed, %d retired for health; want the 8 old ones found by their peek",
			s.AcquireCheckFailures, s.Closed.Health)
	}
	t.Logf("after the restart: %d checks on acquire, %d failed; 0 dead connections handed out", s.AcquireChecks, s.AcquireCheckFailures)
}
