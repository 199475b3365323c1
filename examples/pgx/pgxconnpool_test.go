package pgxconnpool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidepool-go/tidepool"
	pgxconnpool "github.com/tidepool-go/tidepool/examples/pgx"
)

// harness is a pool under test with the connections it closed.
type harness struct {
	pool   *tidepool.Pool[*pgx.Conn]
	closed chan *pgx.Conn
}

// newPool builds a pool from Config on the shared server, lets tune adjust the
// config, records every connection it closes, and closes it at cleanup.
func newPool(t *testing.T, o pgxconnpool.Options, tune func(*tidepool.Config[*pgx.Conn])) *harness {
	t.Helper()
	cc, err := pgx.ParseConfig(serverFor(t))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{closed: make(chan *pgx.Conn, 64)}
	cfg := pgxconnpool.Config(cc, o)
	closeFn := cfg.Close
	cfg.Close = func(c *pgx.Conn) error {
		err := closeFn(c)
		h.closed <- c
		return err
	}
	cfg.DialTimeout = 10 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	p, err := tidepool.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.pool = p
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil && !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("pool Close: %v", err)
		}
	})
	return h
}

// waitClosed waits until the pool has closed n connections and returns them.
func (h *harness) waitClosed(t *testing.T, n int) []*pgx.Conn {
	t.Helper()
	var got []*pgx.Conn
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case c := <-h.closed:
			got = append(got, c)
		case <-timeout:
			t.Fatalf("the pool closed %d connections within 20s, want %d", len(got), n)
		}
	}
	return got
}

// warm acquires n connections at once and releases them, so that n sit idle,
// and returns their backend PIDs.
func warm(t *testing.T, p *tidepool.Pool[*pgx.Conn], n int) []uint32 {
	t.Helper()
	hs := make([]tidepool.Conn[*pgx.Conn], n)
	pids := make([]uint32, n)
	for i := range hs {
		var err error
		if hs[i], err = p.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		pids[i] = hs[i].Value().PgConn().PID()
	}
	for _, h := range hs {
		h.Release()
	}
	if s := p.Stats(); s.Idle != n {
		t.Fatalf("after warming: %d idle, want %d", s.Idle, n)
	}
	return pids
}

// terminate ends the backends pids from an operator's connection and waits
// until each has exited (pg_terminate_backend's timeout argument).
func terminate(t *testing.T, pids ...uint32) {
	t.Helper()
	a := admin(t)
	for _, pid := range pids {
		var ok bool
		if err := a.QueryRow(t.Context(), "SELECT pg_terminate_backend($1, 5000)", int32(pid)).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
		}
	}
}

// A connection whose holder left a transaction open (or failed, or left
// rows unread) is not handed out again: AfterRelease refuses it, the pool
// closes it, and the next holder gets a new backend, outside any
// transaction. A connection left clean is reused.
func TestTransactionLeftOpenIsNotHandedOutAgain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(ctx context.Context, c *pgx.Conn) error
		reuse bool
	}{
		{"transaction left open", func(ctx context.Context, c *pgx.Conn) error {
			tx, err := c.Begin(ctx)
			if err == nil {
				_, err = tx.Exec(ctx, "CREATE TEMP TABLE left_open (x int)")
			}
			return err
		}, false},
		{"failed transaction left", func(ctx context.Context, c *pgx.Conn) error {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			if _, err := c.Exec(ctx, "SELECT 1/0"); err == nil {
				return errors.New("1/0 did not fail")
			}
			return nil
		}, false},
		{"rows not closed", func(ctx context.Context, c *pgx.Conn) error {
			rows, err := c.Query(ctx, "SELECT generate_series(1, 3)")
			if err == nil && !rows.Next() {
				err = errors.New("no row")
			}
			return err // rows left open: the connection is busy
		}, false},
		{"transaction committed", func(ctx context.Context, c *pgx.Conn) error {
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}, true},
		{"failed statement outside a transaction", func(ctx context.Context, c *pgx.Conn) error {
			if _, err := c.Exec(ctx, "SELECT 1/0"); err == nil {
				return errors.New("1/0 did not fail")
			}
			return nil
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPool(t, pgxconnpool.Options{}, func(c *tidepool.Config[*pgx.Conn]) { c.MaxSize = 1 })
			first, err := h.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			pid := first.Value().PgConn().PID()
			if err := tc.do(t.Context(), first.Value()); err != nil {
				t.Fatalf("the holder's work: %v", err)
			}
			if got := pgxconnpool.Reusable(first.Value()); (got == nil) != tc.reuse {
				t.Errorf("Reusable = %v, want reusable=%v", got, tc.reuse)
			}
			first.Release()
			next, err := h.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer next.Release()
			c := next.Value()
			if reused := c.PgConn().PID() == pid; reused != tc.reuse {
				t.Fatalf("the next holder got backend %d again: %v, want %v", pid, reused, tc.reuse)
			}
			if st := c.PgConn().TxStatus(); st != 'I' {
				t.Fatalf("the next holder starts in transaction status %q", st)
			}
			var one int
			if err := c.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("the next holder's query: %v", err)
			}
			if !tc.reuse {
				if old := h.waitClosed(t, 1)[0]; !old.IsClosed() {
					t.Error("the refused connection was not closed")
				}
				if s := h.pool.Stats(); s.Closed.Vetoed != 1 {
					t.Errorf("Closed = %+v, want 1 vetoed", s.Closed)
				}
			}
		})
	}
}

// Backends terminated while their connections sat idle are not handed out:
// the ping on acquire sees each, the pool dials replacements, and every
// hand-out works. With a PingIdle longer than the idle time the check does
// not run, and the first query meets the dead backend: AcquireFunc destroys
// it (IsBroken), which is the window CheckOnAcquireIdle leaves open.
func TestTerminatedIdleBackendIsNotHandedOut(t *testing.T) {
	t.Run("checked on acquire", func(t *testing.T) {
		const n = 3
		h := newPool(t, pgxconnpool.Options{PingIdle: -1}, func(c *tidepool.Config[*pgx.Conn]) { c.MaxSize = n })
		dead := warm(t, h.pool, n)
		terminate(t, dead...)
		var held []tidepool.Conn[*pgx.Conn]
		defer func() {
			for _, c := range held {
				c.Release()
			}
		}()
		for i := range n {
			c, err := h.pool.Acquire(t.Context())
			if err != nil {
				t.Fatalf("acquire %d: %v", i, err)
			}
			held = append(held, c)
			pid := c.Value().PgConn().PID()
			for _, d := range dead {
				if pid == d {
					t.Fatalf("hand-out %d: terminated backend %d handed out", i, pid)
				}
			}
			var one int
			if err := c.Value().QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("hand-out %d: %v", i, err)
			}
		}
		if s := h.pool.Stats(); s.AcquireCheckFailures != n {
			t.Errorf("AcquireCheckFailures = %d, want %d", s.AcquireCheckFailures, n)
		}
	})
	t.Run("idle less than PingIdle", func(t *testing.T) {
		h := newPool(t, pgxconnpool.Options{PingIdle: time.Hour}, func(c *tidepool.Config[*pgx.Conn]) { c.MaxSize = 1 })
		terminate(t, warm(t, h.pool, 1)...)
		err := h.pool.AcquireFunc(t.Context(), func(c *pgx.Conn) error {
			_, err := c.Exec(t.Context(), "SELECT 1")
			return err
		})
		if !pgxconnpool.IsBroken(err) {
			t.Fatalf("the first query on a terminated backend: %v, want an error IsBroken recognises", err)
		}
		h.waitClosed(t, 1)
		if s := h.pool.Stats(); s.Closed.Destroyed != 1 || s.AcquireChecks != 0 {
			t.Errorf("Closed = %+v, AcquireChecks = %d; want 1 destroyed and no check", s.Closed, s.AcquireChecks)
		}
		err = h.pool.AcquireFunc(t.Context(), func(c *pgx.Conn) error {
			_, err := c.Exec(t.Context(), "SELECT 1")
			return err
		})
		if err != nil {
			t.Fatalf("after the destroy: %v", err)
		}
	})
}

// A LISTEN connection taken out by Hijack: its slot is freed at once (a pool
// of one serves the NOTIFY on a new connection), notifications arrive, and
// the pool never touches it again, not even at Close.
func TestHijackedListenerGetsNotificationsAndFreesItsSlot(t *testing.T) {
	h := newPool(t, pgxconnpool.Options{}, func(c *tidepool.Config[*pgx.Conn]) { c.MaxSize = 1 })
	c, err := h.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	listener := c.Hijack()
	defer listener.Close(context.Background())
	if _, err := listener.Exec(t.Context(), "LISTEN hijack_test"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		err := h.pool.AcquireFunc(ctx, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SELECT pg_notify('hijack_test', $1)", fmt.Sprint(i))
			return err
		})
		if err != nil {
			t.Fatalf("a pool of one could not serve after Hijack: %v", err)
		}
		n, err := listener.WaitForNotification(ctx)
		if err != nil || n.Payload != fmt.Sprint(i) {
			t.Fatalf("notification %d: %+v, %v", i, n, err)
		}
	}
	if s := h.pool.Stats(); s.Hijacked != 1 || s.Slots != 1 {
		t.Errorf("Hijacked = %d, Slots = %d; want 1 and 1 (the replacement)", s.Hijacked, s.Slots)
	}
	if err := h.pool.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := h.waitClosed(t, 1); got[0] == listener {
		t.Fatal("the pool closed the hijacked connection")
	}
	if err := listener.Ping(t.Context()); err != nil {
		t.Fatalf("the listener after the pool closed: %v", err)
	}
}

// AfterConnect names the session and prepares the listed statements on every
// new connection; a statement the server refuses fails the dial, named.
func TestAfterConnectSetsUpTheSession(t *testing.T) {
	h := newPool(t, pgxconnpool.Options{
		ApplicationName: "it's billing", // a quote: the value is escaped
		Prepare:         map[string]string{"double": "SELECT $1::int * 2", "hello": "SELECT 'hello'"},
	}, func(c *tidepool.Config[*pgx.Conn]) { c.MinIdle = 2 })
	a := admin(t)
	for range 2 {
		err := h.pool.AcquireFunc(t.Context(), func(c *pgx.Conn) error {
			var name string
			err := a.QueryRow(t.Context(), "SELECT application_name FROM pg_stat_activity WHERE pid = $1",
				int32(c.PgConn().PID())).Scan(&name)
			if err != nil || name != "it's billing" {
				return fmt.Errorf("pg_stat_activity shows application_name %q (%v)", name, err)
			}
			var d int
			var s string
			if err := c.QueryRow(t.Context(), "double", 21).Scan(&d); err != nil || d != 42 {
				return fmt.Errorf("prepared statement double: %d, %v", d, err)
			}
			if err := c.QueryRow(t.Context(), "hello").Scan(&s); err != nil || s != "hello" {
				return fmt.Errorf("prepared statement hello: %q, %v", s, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	cc, err := pgx.ParseConfig(serverFor(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := pgxconnpool.Config(cc, pgxconnpool.Options{Prepare: map[string]string{"broken": "SELEKT 1"}})
	cfg.MinIdle = 1
	p, err := tidepool.New(t.Context(), cfg)
	if err == nil {
		_ = p.Close(t.Context())
		t.Fatal("New succeeded with a statement the server refuses")
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42601" || !strings.Contains(err.Error(), `preparing "broken"`) {
		t.Fatalf("New = %v; want the syntax error, naming the statement", err)
	}
}

// IsBroken on the errors pgx really returns.
func TestIsBrokenOnRealErrors(t *testing.T) {
	ctx := t.Context()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, serverFor(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	c := connect()
	_, unique := c.Exec(ctx, "CREATE TEMP TABLE u (x int PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)")
	_, syntax := c.Exec(ctx, "SELEKT 1")
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, ctxDone := c.Exec(done, "SELECT 1")
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	_, midFlight := c.Exec(short, "SELECT pg_sleep(10)")
	midFlightClosed := c.IsClosed()
	_, afterClose := c.Exec(ctx, "SELECT 1")

	victim := connect()
	terminate(t, victim.PgConn().PID())
	_, terminated := victim.Exec(ctx, "SELECT 1")

	for _, tc := range []struct {
		name   string
		err    error
		broken bool
	}{
		{"unique violation", unique, false},
		{"syntax error", syntax, false},
		{"context ended before the query", ctxDone, false},
		{"deadline during the query", midFlight, true},
		{"query on a connection pgx closed", afterClose, true},
		{"backend terminated", terminated, true},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error from the server", tc.name)
			continue
		}
		if got := pgxconnpool.IsBroken(tc.err); got != tc.broken {
			t.Errorf("IsBroken(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.broken)
		}
	}
	if !midFlightClosed {
		t.Error("pgx did not close the connection whose query outlived its deadline; IsBroken's rule assumes it does")
	}
	if !pgconn.SafeToRetry(ctxDone) || pgconn.SafeToRetry(midFlight) {
		t.Errorf("SafeToRetry: context ended before = %v, deadline during = %v; want true, false",
			pgconn.SafeToRetry(ctxDone), pgconn.SafeToRetry(midFlight))
	}
}

// The check's ping keeps the Acquire's deadline but not its cancellation: a
// cancelled Acquire does not cost a healthy connection.
func TestPingContextKeepsTheDeadlineNotTheCancellation(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	pctx, pcancel, err := pgxconnpool.PingContext(parent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer pcancel()
	want, _ := parent.Deadline()
	if got, ok := pctx.Deadline(); !ok || !got.Equal(want) {
		t.Errorf("deadline = %v, want the parent's %v", got, want)
	}
	cancel()
	if pctx.Err() != nil {
		t.Errorf("the ping's context ended with the Acquire's: %v", pctx.Err())
	}
	if _, _, err := pgxconnpool.PingContext(parent, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("PingContext on an ended context: %v, want context.Canceled (and no ping)", err)
	}
	short, _, err := pgxconnpool.PingContext(context.Background(), time.Second)
	if dl, ok := short.Deadline(); err != nil || !ok || time.Until(dl) > time.Second {
		t.Errorf("PingContext without a deadline: %v, %v; want the limit", dl, err)
	}

	// A check on acquire whose Acquire is cancelled during the ping leaves
	// the connection healthy: pg_sleep in another session holds nothing, so
	// the ping just finishes.
	h := newPool(t, pgxconnpool.Options{PingIdle: -1}, func(c *tidepool.Config[*pgx.Conn]) { c.MaxSize = 1 })
	warm(t, h.pool, 1)
	var wg sync.WaitGroup
	for range 20 {
		actx, acancel := context.WithCancel(t.Context())
		wg.Add(1)
		go func() { defer wg.Done(); acancel() }()
		if c, err := h.pool.Acquire(actx); err == nil {
			c.Release()
		}
		wg.Wait()
	}
	if s := h.pool.Stats(); s.AcquireCheckFailures != 0 || s.Closed.Total() != 0 {
		t.Errorf("cancelled Acquires cost connections: %d failed checks, closed %+v", s.AcquireCheckFailures, s.Closed)
	}
}
