package demobackend

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Up after Close.
var ErrClosed = errors.New("demobackend: server closed")

// Options configures a Server. The zero value is a server on a random free
// port of 127.0.0.1 that answers at once.
type Options struct {
	// Latency is added to every reply, plus a random amount in [0, Jitter).
	// Both can be changed later with SetLatency.
	Latency, Jitter time.Duration
	// Listen opens the server's listener: at Start with "127.0.0.1:0", and at
	// every Up with the address the first listener got. Default: a TCP listener
	// (net.Listen("tcp", addr)). Tests pass an in-memory listener here.
	Listen func(addr string) (net.Listener, error)
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	// Accepted counts connections accepted since Start.
	Accepted int64
	// Open is the number of connections open now; Busy how many of them are
	// in the middle of a request.
	Open, Busy int
	// Requests counts replies written.
	Requests int64
	// Killed counts connections closed by KillIdle, KillAll and Close.
	Killed int64
	// Up reports whether the server accepts connections (false after Down).
	Up bool
}

// Server is the embedded backend. Create it with Start; stop it with Close.
type Server struct {
	// Immutable after Start.
	listen func(addr string) (net.Listener, error)
	addr   string
	done   chan struct{} // closed by Close: cuts latency waits short

	// Settings and counters: atomics, written and read from anywhere.
	latency, jitter           atomic.Int64
	accepted, requests, kills atomic.Int64

	// mu guards the fields below. Every goroutine of the Server is added to
	// wg under mu while closed is false, so Close's Wait sees them all.
	mu     sync.Mutex
	ln     net.Listener // nil while down or closed
	conns  map[*serverConn]struct{}
	closed bool
	wg     sync.WaitGroup

	// kvMu guards kv, the values SET and GET work on.
	kvMu sync.Mutex
	kv   map[string]string
}

// serverConn is one accepted connection. busy is written by its serve
// goroutine; killed by whoever closes it first.
type serverConn struct {
	nc     net.Conn
	busy   atomic.Bool
	killed atomic.Bool
}

// Start listens on a random free port of 127.0.0.1 and serves until Close.
func Start(opts Options) (*Server, error) {
	s := &Server{
		listen: opts.Listen,
		done:   make(chan struct{}),
		conns:  make(map[*serverConn]struct{}),
		kv:     make(map[string]string),
	}
	if s.listen == nil {
		s.listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	s.SetLatency(opts.Latency, opts.Jitter)
	ln, err := s.listen("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demobackend: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.mu.Lock()
	s.startAcceptingLocked(ln)
	s.mu.Unlock()
	return s, nil
}

// Addr returns the address the server listens on, "127.0.0.1:port". It stays
// the same across Down and Up.
func (s *Server) Addr() string { return s.addr }

// SetLatency sets the delay of every later reply to latency plus a random
// amount in [0, jitter). Negative values count as 0.
func (s *Server) SetLatency(latency, jitter time.Duration) {
	s.latency.Store(int64(max(latency, 0)))
	s.jitter.Store(int64(max(jitter, 0)))
}

// KillIdle closes up to n connections that are waiting for a request (not in
// the middle of one), chosen at random, from the server's side. It returns how
// many it closed.
func (s *Server) KillIdle(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	killed := 0
	for sc := range s.conns { // map order: a random choice
		if killed >= n {
			break
		}
		if !sc.busy.Load() && s.killLocked(sc) {
			killed++
		}
	}
	return killed
}

// KillAll closes every open connection from the server's side, idle or busy,
// and returns how many it closed.
func (s *Server) KillAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killAllLocked()
}

func (s *Server) killAllLocked() int {
	killed := 0
	for sc := range s.conns {
		if s.killLocked(sc) {
			killed++
		}
	}
	return killed
}

// killLocked closes sc and forgets it at once, so that Stats.Open is exact
// when KillIdle or KillAll returns. It reports whether it was first to close sc.
func (s *Server) killLocked(sc *serverConn) bool {
	delete(s.conns, sc)
	if !sc.killed.CompareAndSwap(false, true) {
		return false
	}
	_ = sc.nc.Close()
	s.kills.Add(1)
	return true
}

// Down stops accepting: the port refuses new connections until Up. Connections
// already open stay open (call KillAll too to simulate a crash). Down on a
// server that is down does nothing.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
}

// Up listens again, on the same address, after Down. Up on a server that is
// up does nothing; after Close it returns ErrClosed.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.ln != nil {
		return nil
	}
	ln, err := s.listen(s.addr)
	if err != nil {
		return fmt.Errorf("demobackend: listen again on %s: %w", s.addr, err)
	}
	s.startAcceptingLocked(ln)
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Open: len(s.conns), Up: s.ln != nil}
	for sc := range s.conns {
		if sc.busy.Load() {
			st.Busy++
		}
	}
	s.mu.Unlock()
	st.Accepted = s.accepted.Load()
	st.Requests = s.requests.Load()
	st.Killed = s.kills.Load()
	return st
}

// Close stops listening, closes every connection and returns when every
// goroutine of the server has exited. Requests waiting out their latency are
// cut short. A second Close does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
	s.killAllLocked()
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) startAcceptingLocked(ln net.Listener) {
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop(ln)
}

// acceptLoop accepts on ln until ln is closed (by Down or Close).
func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			current := s.ln == ln
			s.mu.Unlock()
			if !current || errors.Is(err, net.ErrClosed) {
				return
			}
			// A passing failure (out of file descriptors, say): try again soon.
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-s.done:
				return
			}
		}
		s.mu.Lock()
		if s.closed || s.ln != ln {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		sc := &serverConn{nc: nc}
		s.conns[sc] = struct{}{}
		s.accepted.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(sc)
	}
}

// serve answers sc's requests, one line each, until sc fails or is killed.
func (s *Server) serve(sc *serverConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		if sc.killed.CompareAndSwap(false, true) {
			_ = sc.nc.Close() // the client went away; not a kill
		}
	}()
	r := bufio.NewReader(sc.nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		sc.busy.Store(true)
		reply := s.answer(strings.TrimRight(line, "\r\n"))
		if !s.delay() {
			return
		}
		_, err = sc.nc.Write([]byte(reply + "\n"))
		sc.busy.Store(false)
		if err != nil {
			return
		}
		s.requests.Add(1)
	}
}

// delay waits out one reply's latency; false if the server closed meanwhile.
func (s *Server) delay() bool {
	d := time.Duration(s.latency.Load())
	if j := s.jitter.Load(); j > 0 {
		d += time.Duration(rand.Int64N(j))
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// answer computes the reply to one request line.
func (s *Server) answer(line string) string {
	cmd, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(cmd) {
	case "PING":
		return "PONG"
	case "GET":
		if rest == "" || strings.Contains(rest, " ") {
			return "ERR usage: GET key"
		}
		s.kvMu.Lock()
		v, ok := s.kv[rest]
		s.kvMu.Unlock()
		if !ok {
			return "NIL"
		}
		return "VALUE " + v
	case "SET":
		k, v, ok := strings.Cut(rest, " ")
		if !ok || k == "" {
			return "ERR usage: SET key value"
		}
		s.kvMu.Lock()
		s.kv[k] = v
		s.kvMu.Unlock()
		return "OK"
	default:
		return fmt.Sprintf("ERR unknown command %q", cmd)
	}
}
