package demobackend_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/internal/demobackend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeNet is an in-memory network for synctest bubbles: its listeners hand out
// net.Pipe ends, on which a blocked goroutine counts as durably blocked.
type pipeNet struct {
	mu  sync.Mutex
	cur *pipeListener
}

func (n *pipeNet) Listen(string) (net.Listener, error) {
	l := &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
	n.mu.Lock()
	n.cur = l
	n.mu.Unlock()
	return l, nil
}

func (n *pipeNet) Dial() (net.Conn, error) {
	n.mu.Lock()
	l := n.cur
	n.mu.Unlock()
	c, s := net.Pipe()
	select {
	case l.ch <- s:
		return c, nil
	case <-l.done:
		return nil, syscall.ECONNREFUSED
	}
}

type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func startPipe(t *testing.T, opts demobackend.Options) (*demobackend.Server, *pipeNet) {
	t.Helper()
	pn := new(pipeNet)
	opts.Listen = pn.Listen
	s, err := demobackend.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, pn
}

func dialPipe(t *testing.T, pn *pipeNet) net.Conn {
	t.Helper()
	c, err := pn.Dial()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startTCP(t *testing.T) *demobackend.Server {
	t.Helper()
	s, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dialTCP(t *testing.T, s *demobackend.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, req string) string {
	t.Helper()
	got, err := demobackend.RoundTrip(c, req)
	if err != nil {
		t.Fatalf("RoundTrip(%q): %v", req, err)
	}
	return got
}

func TestServerAnswersPingGetSetOverTCP(t *testing.T) {
	s := startTCP(t)
	c := dialTCP(t, s)
	for _, tc := range []struct{ req, want string }{
		{"PING", "PONG"},
		{"GET k", "NIL"},
		{"SET k hello world", "OK"},
		{"GET k", "VALUE hello world"},
		{"get k", "VALUE hello world"},
		{"GET", "ERR usage: GET key"},
		{"SET k", "ERR usage: SET key value"},
		{"FLY away", `ERR unknown command "FLY"`},
	} {
		if got := roundTrip(t, c, tc.req); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.req, got, tc.want)
		}
	}
	if st := s.Stats(); st.Requests != 8 || st.Accepted != 1 || st.Open != 1 || !st.Up {
		t.Errorf("Stats = %+v, want 8 requests, 1 accepted, 1 open, up", st)
	}
	if host, _, err := net.SplitHostPort(s.Addr()); err != nil || host != "127.0.0.1" {
		t.Errorf("Addr = %q, want 127.0.0.1:port", s.Addr())
	}
}

func TestEachReplyWaitsLatencyPlusJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency, jitter = 100 * time.Millisecond, 20 * time.Millisecond
		s, pn := startPipe(t, demobackend.Options{Latency: latency, Jitter: jitter})
		defer s.Close()
		c := dialPipe(t, pn)
		defer c.Close()
		seen := map[time.Duration]bool{}
		for range 20 {
			start := time.Now()
			roundTrip(t, c, "PING")
			d := time.Since(start)
			if d < latency || d >= latency+jitter {
				t.Fatalf("reply took %v, want in [%v, %v)", d, latency, latency+jitter)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("20 replies all took the same time %v: no jitter", seen)
		}
		s.SetLatency(0, 0)
		start := time.Now()
		roundTrip(t, c, "PING")
		if d := time.Since(start); d != 0 {
			t.Errorf("after SetLatency(0, 0) a reply took %v, want 0", d)
		}
	})
}

func TestKillIdleSparesConnectionsMidRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, pn := startPipe(t, demobackend.Options{Latency: time.Second})
		defer s.Close()
		busy, idle1, idle2 := dialPipe(t, pn), dialPipe(t, pn), dialPipe(t, pn)
		defer busy.Close()
		defer idle1.Close()
		defer idle2.Close()
		if _, err := busy.Write([]byte("PING\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the request is read; its reply waits out the latency
		if st := s.Stats(); st.Open != 3 || st.Busy != 1 {
			t.Fatalf("before the kill Stats = %+v, want 3 open, 1 busy", st)
		}
		if n := s.KillIdle(10); n != 2 {
			t.Fatalf("KillIdle(10) = %d, want 2 (the idle ones)", n)
		}
		for _, c := range []net.Conn{idle1, idle2} {
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("read on a killed connection: %v, want EOF", err)
			}
		}
		buf := make([]byte, 16)
		n, err := busy.Read(buf)
		if err != nil || string(buf[:n]) != "PONG\n" {
			t.Errorf("busy connection got %q, %v; want its PONG", buf[:n], err)
		}
		if st := s.Stats(); st.Open != 1 || st.Killed != 2 || st.Accepted != 3 {
			t.Errorf("after the kill Stats = %+v, want 1 open, 2 killed, 3 accepted", st)
		}
	})
}

func TestKillIdleKillsAtMostN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, pn := startPipe(t, demobackend.Options{})
		defer s.Close()
		for range 5 {
			defer dialPipe(t, pn).Close()
		}
		synctest.Wait()
		if n := s.KillIdle(2); n != 2 {
			t.Fatalf("KillIdle(2) = %d, want 2", n)
		}
		if st := s.Stats(); st.Open != 3 {
			t.Errorf("Open = %d after killing 2 of 5, want 3", st.Open)
		}
	})
}

func TestKillAllClosesBusyAndIdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, pn := startPipe(t, demobackend.Options{Latency: time.Hour})
		defer s.Close()
		busy, idle := dialPipe(t, pn), dialPipe(t, pn)
		defer busy.Close()
		defer idle.Close()
		if _, err := busy.Write([]byte("PING\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := s.KillAll(); n != 2 {
			t.Fatalf("KillAll = %d, want 2", n)
		}
		if n := s.KillAll(); n != 0 {
			t.Fatalf("second KillAll = %d, want 0", n)
		}
		for _, c := range []net.Conn{busy, idle} {
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("read on a killed connection: %v, want EOF", err)
			}
		}
		if st := s.Stats(); st.Open != 0 || st.Killed != 2 {
			t.Errorf("Stats = %+v, want 0 open, 2 killed", st)
		}
	})
}

func TestDownRefusesConnectionsOnTheSamePortUntilUp(t *testing.T) {
	s := startTCP(t)
	kept := dialTCP(t, s)
	// A round trip first: until the server has accepted it, the connection
	// sits in the listener's backlog, and Down (closing the listener) resets it.
	if got := roundTrip(t, kept, "PING"); got != "PONG" {
		t.Fatalf("before Down got %q, want PONG", got)
	}
	s.Down()
	s.Down() // twice is fine
	if st := s.Stats(); st.Up {
		t.Fatal("Stats.Up after Down")
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Fatal("dial while down succeeded, want connection refused")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}
	if got := roundTrip(t, kept, "PING"); got != "PONG" {
		t.Errorf("a connection open before Down got %q, want PONG", got)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if err := s.Up(); err != nil {
		t.Fatalf("Up on a server that is up: %v", err)
	}
	if got := roundTrip(t, dialTCP(t, s), "PING"); got != "PONG" {
		t.Errorf("after Up got %q, want PONG", got)
	}
	if st := s.Stats(); !st.Up || st.Accepted != 2 {
		t.Errorf("Stats = %+v, want up, 2 accepted", st)
	}
}

func TestCloseCutsLatencyShortAndLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, err := demobackend.Start(demobackend.Options{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\n")); err != nil {
		t.Fatal(err)
	}
	s.Down()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Up(); !errors.Is(err, demobackend.ErrClosed) {
		t.Errorf("Up after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded, want the connection closed")
	}
}

func TestRoundTripRejectsMalformedReplies(t *testing.T) {
	for _, tc := range []struct{ name, reply string }{
		{"two lines", "A\nB\n"},
		{"no newline", "PONG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := net.Pipe()
			defer c.Close()
			go func() {
				defer srv.Close()
				buf := make([]byte, 16)
				_, _ = srv.Read(buf)
				_, _ = srv.Write([]byte(tc.reply))
			}()
			if got, err := demobackend.RoundTrip(c, "PING"); err == nil {
				t.Errorf("RoundTrip got %q, want an error", got)
			}
		})
	}
	if _, err := demobackend.RoundTrip(nil, "PI\nNG"); !errors.Is(err, demobackend.ErrProtocol) {
		t.Errorf("request with a newline: %v, want ErrProtocol", err)
	}
}
