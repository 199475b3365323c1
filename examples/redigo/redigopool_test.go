package redigopool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/examples/internal/testserver"
	"github.com/tidepool-go/tidepool/internal/poll"
	"github.com/tidepool-go/tidepool/netconn"
)

// harness is a pool under test with what it dialed and closed.
type harness struct {
	pool   *tidepool.Pool[redis.Conn]
	mu     sync.Mutex
	dialed []*conn
	closed chan redis.Conn // every connection the pool closes, in order
}

// newPool builds a pool from Config(addr, o), lets tune adjust the config,
// records every connection it dials and closes, and closes it at cleanup.
func newPool(t *testing.T, addr string, o Options, tune func(*tidepool.Config[redis.Conn])) *harness {
	t.Helper()
	h := &harness{closed: make(chan redis.Conn, 64)}
	cfg := Config(addr, o)
	dial, closeFn := cfg.Dial, cfg.Close
	cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
		v, err := dial(ctx)
		if err == nil {
			h.mu.Lock()
			h.dialed = append(h.dialed, v.(*conn))
			h.mu.Unlock()
		}
		return v, err
	}
	cfg.Close = func(v redis.Conn) error {
		err := closeFn(v)
		h.closed <- v
		return err
	}
	cfg.DialTimeout = 5 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.pool = p
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil && !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("pool Close: %v", err)
		}
	})
	return h
}

func (h *harness) conns() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*conn(nil), h.dialed...)
}

// waitClosed waits until the pool has closed n connections (closes run in
// goroutines of the pool's own) and returns them.
func (h *harness) waitClosed(t *testing.T, n int) []redis.Conn {
	t.Helper()
	var got []redis.Conn
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case c := <-h.closed:
			got = append(got, c)
		case <-timeout:
			t.Fatalf("the pool closed %d connections within 10s, want %d", len(got), n)
		}
	}
	return got
}

// rawSocket returns the TCP socket under c (under TLS too).
func rawSocket(c *conn) net.Conn {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c.nc
}

// waitPeerGone waits until the kernel has seen the server's FIN or RST on
// every connection in cs. A server process that exits closes its sockets, but
// the FIN reaches ours a moment later; there is no event to wait on, so this
// polls the sockets (peeks consume nothing, and may run beside the pool's).
func waitPeerGone(t *testing.T, cs []*conn) {
	t.Helper()
	poll.Until(t, "the server's FIN on every client socket", 5*time.Second, func() bool {
		for _, c := range cs {
			if netconn.Alive(context.Background(), rawSocket(c)) == nil {
				return false
			}
		}
		return true
	})
}

// warm acquires n connections at once and releases them all, so that n sit idle.
func warm(t *testing.T, p *tidepool.Pool[redis.Conn], n int) {
	t.Helper()
	hs := make([]tidepool.Conn[redis.Conn], n)
	for i := range hs {
		var err error
		if hs[i], err = p.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := hs[i].Value().Do("PING"); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hs {
		h.Release()
	}
	if s := p.Stats(); s.Idle != n {
		t.Fatalf("after warming: %d idle, want %d", s.Idle, n)
	}
}

// Every connection a pool hands out after the server restarted under its idle
// connections works: the check on acquire sees the dead ones and the pool
// dials new ones. Both layers of the check are shown alone: the peek (no
// PING at all), and the PING (on every hand-out, before the FIN can be
// assumed to have arrived).
func TestRestartUnderIdleConnsHandsOutNoDeadOne(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pingIdle time.Duration
		waitFIN  bool
	}{
		{"peek only", -1, true},
		{"PING every hand-out", time.Nanosecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.RedisFor(t)
			const n = 4
			h := newPool(t, srv.Addr(), Options{PingIdle: tc.pingIdle}, func(c *tidepool.Config[redis.Conn]) {
				c.MaxSize = n
			})
			warm(t, h.pool, n)
			old := h.conns()
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			if tc.waitFIN {
				waitPeerGone(t, old)
			}
			held := make([]tidepool.Conn[redis.Conn], 0, n)
			for i := range n {
				c, err := h.pool.Acquire(t.Context())
				if err != nil {
					t.Fatalf("acquire %d after the restart: %v", i, err)
				}
				held = append(held, c)
				if r, err := redis.String(c.Value().Do("PING")); err != nil || r != "PONG" {
					t.Fatalf("hand-out %d after the restart: PING = %q, %v: a dead connection was handed out", i, r, err)
				}
			}
			for _, c := range held {
				c.Release()
			}
			s := h.pool.Stats()
			if s.AcquireCheckFailures != n {
				t.Errorf("AcquireCheckFailures = %d, want %d (each old connection failed its check once)", s.AcquireCheckFailures, n)
			}
			h.waitClosed(t, n)
			if s := h.pool.Stats(); s.Closed.Health != n {
				t.Errorf("Closed.Health = %d, want %d", s.Closed.Health, n)
			}
		})
	}
}

// A frozen server (SIGSTOP: its sockets stay open, nothing answers) is what
// the peek cannot see and the PING can: with PINGs, no connection is handed
// out; with the peek alone, a connection that cannot answer is.
func TestPingSeesAFrozenServerThePeekDoesNot(t *testing.T) {
	srv := testserver.RedisFor(t)
	t.Run("PING", func(t *testing.T) {
		h := newPool(t, srv.Addr(), Options{PingIdle: time.Nanosecond, PingTimeout: 100 * time.Millisecond},
			func(c *tidepool.Config[redis.Conn]) { c.MaxSize = 2 })
		warm(t, h.pool, 2)
		if err := srv.Freeze(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.Thaw(); err != nil {
				t.Fatal(err)
			}
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		c, err := h.pool.Acquire(ctx)
		if err == nil {
			c.Release()
			t.Fatal("Acquire handed out a connection to a frozen server")
		}
		if s := h.pool.Stats(); s.AcquireCheckFailures < 2 {
			t.Errorf("AcquireCheckFailures = %d, want at least 2 (both idle connections' PINGs timed out)", s.AcquireCheckFailures)
		}
	})
	t.Run("peek only", func(t *testing.T) {
		h := newPool(t, srv.Addr(), Options{PingIdle: -1}, func(c *tidepool.Config[redis.Conn]) { c.MaxSize = 1 })
		warm(t, h.pool, 1)
		if err := srv.Freeze(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.Thaw(); err != nil {
				t.Fatal(err)
			}
		}()
		c, err := h.pool.Acquire(t.Context())
		if err != nil {
			t.Fatalf("peek only: Acquire = %v, want the (unanswering) idle connection", err)
		}
		_, err = redis.DoWithTimeout(c.Value(), 100*time.Millisecond, "PING")
		if !IsBroken(err) {
			t.Errorf("PING on a frozen server: %v, want a timeout that IsBroken recognises", err)
		}
		c.Release() // refused: redigo closed it after the timeout
		if h.pool.Stats().AcquireCheckFailures != 0 {
			t.Error("the peek failed a connection to a frozen server; it cannot see that")
		}
	})
}

// A connection its holder left in a session state is refused on release
// (closed and replaced), and one left clean is reused. In the MULTI case the
// next holder's command would be QUEUED if it were reused.
func TestConnLeftInSessionStateIsNotReused(t *testing.T) {
	srv := testserver.RedisFor(t)
	for _, tc := range []struct {
		name  string
		do    func(c redis.Conn) error
		reuse bool
	}{
		{"MULTI", func(c redis.Conn) error { _, err := c.Do("MULTI"); return err }, false},
		{"multi, lower case", func(c redis.Conn) error { _, err := c.Do("multi"); return err }, false},
		{"MULTI sent in a pipeline", func(c redis.Conn) error {
			_ = c.Send("MULTI")
			_ = c.Send("INCR", "k")
			_, err := c.Do("")
			return err
		}, false},
		{"WATCH", func(c redis.Conn) error { _, err := c.Do("WATCH", "k"); return err }, false},
		{"SUBSCRIBE", func(c redis.Conn) error { _, err := c.Do("SUBSCRIBE", "ch"); return err }, false},
		{"SELECT", func(c redis.Conn) error { _, err := c.Do("SELECT", 1); return err }, false},
		{"CLIENT TRACKING", func(c redis.Conn) error { _, err := c.Do("CLIENT", "TRACKING", "on"); return err }, false},
		{"Send without Receive", func(c redis.Conn) error {
			_ = c.Send("INCR", "k")
			return c.Flush()
		}, false},
		{"closed by its holder", func(c redis.Conn) error { return c.Close() }, false},
		{"MULTI then EXEC", func(c redis.Conn) error {
			_, _ = c.Do("MULTI")
			_, err := c.Do("EXEC")
			return err
		}, true},
		{"MULTI then DISCARD", func(c redis.Conn) error {
			_, _ = c.Do("MULTI")
			_, err := c.Do("DISCARD")
			return err
		}, true},
		{"WATCH then UNWATCH", func(c redis.Conn) error {
			_, _ = c.Do("WATCH", "k")
			_, err := c.Do("UNWATCH")
			return err
		}, true},
		{"pipeline read to the end", func(c redis.Conn) error {
			_ = c.Send("INCR", "k")
			_ = c.Send("INCR", "k")
			_ = c.Flush()
			_, _ = c.Receive()
			_, err := c.Receive()
			return err
		}, true},
		{"CLIENT GETNAME", func(c redis.Conn) error { _, err := c.Do("CLIENT", "GETNAME"); return err }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPool(t, srv.Addr(), Options{}, func(c *tidepool.Config[redis.Conn]) { c.MaxSize = 1 })
			first, err := h.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			firstID := first.ID()
			if err := tc.do(first.Value()); err != nil {
				t.Fatalf("the holder's commands: %v", err)
			}
			if got := Reusable(first.Value()); (got == nil) != tc.reuse {
				t.Errorf("Reusable = %v, want reusable=%v", got, tc.reuse)
			}
			first.Release()
			next, err := h.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer next.Release()
			if reused := next.ID() == firstID; reused != tc.reuse {
				t.Fatalf("the next Acquire got the same connection: %v, want %v", reused, tc.reuse)
			}
			if r, err := redis.String(next.Value().Do("PING")); err != nil || r != "PONG" {
				t.Fatalf("the next holder's PING = %q, %v; want PONG (not QUEUED, not a stale reply)", r, err)
			}
		})
	}
}

// AcquireFunc destroys a connection the server killed (a network error
// IsBroken recognises), and one whose server turned into a replica
// (READONLY); a connection that redigo closed after its context ended is not
// recognised by IsBroken but refused by AfterRelease. Each way is counted
// under its own reason.
func TestAcquireFuncRetiresBrokenConnections(t *testing.T) {
	srv := testserver.RedisFor(t)
	t.Run("killed by the server", func(t *testing.T) {
		h := newPool(t, srv.Addr(), Options{}, nil)
		err := h.pool.AcquireFunc(t.Context(), func(c redis.Conn) error {
			id, err := redis.Int64(c.Do("CLIENT", "ID"))
			if err != nil {
				return err
			}
			if _, err := srv.Do("CLIENT", "KILL", "ID", id); err != nil {
				return fmt.Errorf("admin: %w", err)
			}
			_, err = c.Do("GET", "k")
			return err
		})
		if !IsBroken(err) {
			t.Fatalf("AcquireFunc = %v, want a network error", err)
		}
		h.waitClosed(t, 1)
		if s := h.pool.Stats(); s.Closed.Destroyed != 1 || s.Closed.Vetoed != 0 {
			t.Errorf("Closed = %+v, want 1 destroyed (IsBroken)", s.Closed)
		}
	})
	t.Run("READONLY", func(t *testing.T) {
		h := newPool(t, srv.Addr(), Options{}, nil)
		if _, err := srv.Do("REPLICAOF", "127.0.0.1", "1"); err != nil { // a primary that is not there
			t.Fatal(err)
		}
		defer func() {
			if _, err := srv.Do("REPLICAOF", "NO", "ONE"); err != nil {
				t.Fatal(err)
			}
		}()
		err := h.pool.AcquireFunc(t.Context(), func(c redis.Conn) error {
			_, err := c.Do("SET", "k", "v")
			return err
		})
		if !strings.HasPrefix(fmt.Sprint(err), "READONLY") || !IsBroken(err) {
			t.Fatalf("SET on a replica: %v, want READONLY, which IsBroken recognises", err)
		}
		h.waitClosed(t, 1)
		if s := h.pool.Stats(); s.Closed.Destroyed != 1 {
			t.Errorf("Closed = %+v, want 1 destroyed", s.Closed)
		}
	})
	t.Run("context ended in DoContext", func(t *testing.T) {
		h := newPool(t, srv.Addr(), Options{}, nil)
		err := h.pool.AcquireFunc(t.Context(), func(c redis.Conn) error {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			_, err := redis.DoContext(c, ctx, "BLPOP", "nothing-here", 0)
			return err
		})
		// redigo races its context watcher against the read deadline it set
		// from ctx: either error may come back, and each has its own path.
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			if IsBroken(err) {
				t.Fatalf("IsBroken(%v) = true, want false: the connection knows", err)
			}
			h.waitClosed(t, 1)
			if s := h.pool.Stats(); s.Closed.Vetoed != 1 || s.Closed.Destroyed != 0 {
				t.Errorf("Closed = %+v, want 1 vetoed (AfterRelease saw redigo's error)", s.Closed)
			}
		case errors.As(err, &ne) && ne.Timeout():
			if !IsBroken(err) {
				t.Fatalf("IsBroken(%v) = false, want true: a read timed out mid-reply", err)
			}
			h.waitClosed(t, 1)
			if s := h.pool.Stats(); s.Closed.Destroyed != 1 {
				t.Errorf("Closed = %+v, want 1 destroyed (f said broken)", s.Closed)
			}
		default:
			t.Fatalf("AcquireFunc = %v, want context.DeadlineExceeded or a read timeout", err)
		}
	})
}

// IsBroken on the errors redigo really returns.
func TestIsBrokenOnRealErrors(t *testing.T) {
	srv := testserver.RedisFor(t)
	c, err := redis.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "str", "x"); err != nil {
		t.Fatal(err)
	}
	_, wrongType := c.Do("LPUSH", "str", "y")
	_, errNil := redis.String(c.Do("GET", "absent"))
	_, conversion := redis.Int(c.Do("GET", "str"))
	_, timeout := redis.DoWithTimeout(c, 50*time.Millisecond, "BLPOP", "absent", 0)
	_, afterTimeout := c.Do("PING") // redigo closed it
	for _, tc := range []struct {
		name   string
		err    error
		broken bool
	}{
		{"nil", nil, false},
		{"WRONGTYPE reply", wrongType, false},
		{"redis.ErrNil", errNil, false},
		{"conversion", conversion, false},
		{"read timeout", timeout, true},
		{"use after redigo closed it", afterTimeout, true},
		{"EOF", fmt.Errorf("wrapped: %w", io.EOF), true},
		{"deadline", os.ErrDeadlineExceeded, true},
		{"MASTERDOWN reply", redis.Error("MASTERDOWN Link with MASTER is down"), true},
		{"context canceled", context.Canceled, false},
		{"context deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), false},
	} {
		if tc.err == nil && tc.name != "nil" {
			t.Errorf("%s: the server returned no error", tc.name)
			continue
		}
		if got := IsBroken(tc.err); got != tc.broken {
			t.Errorf("IsBroken(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.broken)
		}
	}
}

// Reset retires every connection dialed with the old credentials: the idle
// ones at once, the held one on its release; every connection handed out
// afterwards was dialed with the new ones, and the server is left with no
// connection of the old user.
func TestResetRetiresEveryConnection(t *testing.T) {
	srv := testserver.RedisFor(t)
	for _, user := range []string{"app-v1", "app-v2"} {
		if _, err := srv.Do("ACL", "SETUSER", user, "on", ">"+user+"-secret", "~*", "+@all"); err != nil {
			t.Fatal(err)
		}
	}
	var current atomic.Value
	current.Store("app-v1")
	const size = 4
	h := newPool(t, srv.Addr(), Options{
		Credentials: func(context.Context) (string, string, error) {
			u := current.Load().(string)
			return u, u + "-secret", nil
		},
	}, func(c *tidepool.Config[redis.Conn]) { c.MaxSize = size })
	warm(t, h.pool, size-1)
	held, err := h.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := redis.String(held.Value().Do("ACL", "WHOAMI")); who != "app-v1" {
		t.Fatalf("before the rotation: WHOAMI = %q", who)
	}

	current.Store("app-v2")
	h.pool.Reset()
	var fresh []tidepool.Conn[redis.Conn]
	for range size - 1 {
		c, err := h.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, c)
		if who, err := redis.String(c.Value().Do("ACL", "WHOAMI")); who != "app-v2" {
			t.Fatalf("after Reset: a connection of %q was handed out (%v)", who, err)
		}
	}
	held.Release() // dialed before the Reset: retired now
	for _, c := range fresh {
		c.Release()
	}
	const old = size - 1 // warmed, one of them held across the Reset
	h.waitClosed(t, old)
	s := h.pool.Stats()
	if s.Resets != 1 || s.Closed.Reset != old {
		t.Errorf("Resets = %d, Closed.Reset = %d; want 1 and %d", s.Resets, s.Closed.Reset, old)
	}
	list, err := redis.String(srv.Do("CLIENT", "LIST"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list, "user=app-v1 ") {
		t.Fatalf("a connection of the old user is still open on the server:\n%s", list)
	}
}

// AfterConnect sets up the session (AUTH with a username, SELECT, CLIENT
// SETNAME) on every new connection, and reads the three replies at once.
func TestAfterConnectSetsUpTheSession(t *testing.T) {
	srv := testserver.RedisFor(t)
	if _, err := srv.Do("ACL", "SETUSER", "svc", "on", ">pw", "~*", "+@all"); err != nil {
		t.Fatal(err)
	}
	h := newPool(t, srv.Addr(), Options{Username: "svc", Password: "pw", DB: 3, ClientName: "billing"}, nil)
	err := h.pool.AcquireFunc(t.Context(), func(c redis.Conn) error {
		who, _ := redis.String(c.Do("ACL", "WHOAMI"))
		name, _ := redis.String(c.Do("CLIENT", "GETNAME"))
		info, err := redis.String(c.Do("CLIENT", "INFO"))
		if who != "svc" || name != "billing" || !strings.Contains(info, " db=3 ") {
			return fmt.Errorf("session: user %q, name %q, info %q", who, name, info)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := h.pool.Stats(); s.Closed.Vetoed != 0 {
		t.Errorf("the session setup's own commands made the connection look dirty: %+v", s.Closed)
	}
}

// A session setup the server refuses fails the dial with the command named.
func TestAfterConnectErrorFailsTheDial(t *testing.T) {
	srv := testserver.RedisFor(t)
	cfg := Config(srv.Addr(), Options{Username: "nobody", Password: "wrong", ClientName: "x"})
	cfg.MinIdle = 1
	p, err := tidepool.New(t.Context(), cfg)
	if err == nil {
		_ = p.Close(t.Context())
		t.Fatal("New succeeded with a wrong password")
	}
	var re redis.Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "session setup: AUTH: WRONGPASS") {
		t.Fatalf("New = %v; want the AUTH step's WRONGPASS reply", err)
	}
}

// Pub/sub's connection leaves the pool by Hijack: its slot is freed at once
// (a pool of one dials another), the pool never closes it, and it works.
func TestHijackFreesTheSlot(t *testing.T) {
	srv := testserver.RedisFor(t)
	h := newPool(t, srv.Addr(), Options{}, func(c *tidepool.Config[redis.Conn]) { c.MaxSize = 1 })
	c, err := h.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	psc := redis.PubSubConn{Conn: c.Hijack()}
	defer psc.Close()
	if err := psc.Subscribe("ch"); err != nil {
		t.Fatal(err)
	}
	if _, ok := psc.ReceiveWithTimeout(5 * time.Second).(redis.Subscription); !ok {
		t.Fatal("no subscription confirmation")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = h.pool.AcquireFunc(ctx, func(c redis.Conn) error {
		_, err := c.Do("PUBLISH", "ch", "hello")
		return err
	})
	if err != nil {
		t.Fatalf("a pool of one could not serve after Hijack: %v", err)
	}
	if m, ok := psc.ReceiveWithTimeout(5 * time.Second).(redis.Message); !ok || string(m.Data) != "hello" {
		t.Fatalf("the hijacked connection received %v", m)
	}
	if s := h.pool.Stats(); s.Hijacked != 1 || s.Slots != 1 {
		t.Errorf("Hijacked = %d, Slots = %d; want 1 and 1 (the replacement)", s.Hijacked, s.Slots)
	}
	if err := h.pool.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := h.waitClosed(t, 1); got[0] == psc.Conn {
		t.Fatal("the pool closed the hijacked connection")
	}
	if psc.Conn.Err() != nil {
		t.Fatalf("the hijacked connection is broken after the pool closed: %v", psc.Conn.Err())
	}
}

// With TLS, the check peeks through the *tls.Conn: a healthy connection is
// never taken for dead, although the TLS 1.3 session tickets the server sends
// after the handshake wait on its socket like a stray reply; and a restart is
// still seen.
func TestTLSPeekTellsRecordsFromReplies(t *testing.T) {
	srv := testserver.RedisTLSFor(t)
	const n = 3
	h := newPool(t, srv.Addr(), Options{TLS: srv.TLS(), PingIdle: -1}, func(c *tidepool.Config[redis.Conn]) {
		c.MaxSize, c.MinIdle = n, n // dialed idle: nothing has read from them since the handshake
	})
	waitTickets(t, h.conns())
	hs := make([]tidepool.Conn[redis.Conn], n)
	for i := range hs {
		var err error
		if hs[i], err = h.pool.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range hs {
		c.Release()
	}
	for range 5 {
		warm(t, h.pool, n)
	}
	if s := h.pool.Stats(); s.AcquireCheckFailures != 0 || s.Dials != n {
		t.Fatalf("healthy TLS connections: %d checks, %d failed, %d dials; want none failed and %d dials",
			s.AcquireChecks, s.AcquireCheckFailures, s.Dials, n)
	}
	old := h.conns()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitPeerGone(t, old)
	for i := range n {
		err := h.pool.AcquireFunc(t.Context(), func(c redis.Conn) error {
			_, err := c.Do("PING")
			return err
		})
		if err != nil {
			t.Fatalf("hand-out %d after the restart: %v", i, err)
		}
	}
	if s := h.pool.Stats(); s.AcquireCheckFailures == 0 {
		t.Error("no check on acquire failed after the restart; the old connections were not looked at")
	}
}

// waitTickets waits until bytes the client has not read (the server's TLS 1.3
// session tickets) wait on the raw socket of every connection in cs.
func waitTickets(t *testing.T, cs []*conn) {
	t.Helper()
	poll.Until(t, "bytes on every idle TLS connection (without the server's TLS 1.3 session tickets "+
		"this test cannot show the peek telling them from replies)", 5*time.Second, func() bool {
		for _, c := range cs {
			if !errors.Is(netconn.Alive(context.Background(), rawSocket(c)), netconn.ErrUnexpectedData) {
				return false
			}
		}
		return true
	})
}
