package netconn_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/poll"
	"github.com/tidepool-go/tidepool/netconn"
)

// echoServer echoes lines back. While reaping is on, it closes connections
// that stayed idle for idleTimeout, as servers with an idle timeout do.
type echoServer struct {
	ln          net.Listener
	idleTimeout time.Duration
	reaping     atomic.Bool
	reaped      atomic.Int64 // connections closed for idleness
	wg          sync.WaitGroup
	mu          sync.Mutex
	conns       map[net.Conn]struct{}
}

func startEcho(t *testing.T, network, addr string, idleTimeout time.Duration) *echoServer {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, idleTimeout: idleTimeout, conns: map[net.Conn]struct{}{}}
	s.reaping.Store(idleTimeout > 0)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.stop)
	return s
}

func (s *echoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *echoServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		if s.idleTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.idleTimeout))
		}
		line, err := br.ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && len(line) == 0 {
			if s.reaping.Load() {
				s.reaped.Add(1)
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, line); err != nil {
			return
		}
	}
}

func (s *echoServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func echo(ctx context.Context, c net.Conn, msg string) error {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	buf := make([]byte, len(msg)+1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg+"\n" {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// A server that closes idle connections: the pool's health check (Alive)
// notices each one, retires it for health, and dials a replacement; every
// connection handed out afterwards works.
func TestPoolRetiresConnectionsTheServerClosedAndReplacesThem(t *testing.T) {
	srv := startEcho(t, "tcp", "127.0.0.1:0", 150*time.Millisecond)
	core, logs := observer.New(zap.InfoLevel)
	cfg := netconn.Config(netconn.Options{Address: srv.ln.Addr().String()})
	cfg.MinIdle, cfg.MaxSize = 3, 4
	cfg.HealthInterval = 30 * time.Millisecond
	cfg.ReconcileInterval = 20 * time.Millisecond
	cfg.Logger = zap.New(core)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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

	// The first generation is reaped by the server and retired by the pool.
	poll.Until(t, "3 health retirements", 10*time.Second, func() bool { return p.Stats().Closed.Health >= 3 })
	// Stop reaping; wait until the pool has retired every connection the
	// server closed, and is back at MinIdle.
	srv.reaping.Store(false)
	poll.Until(t, "every reaped connection retired and replaced", 10*time.Second, func() bool {
		st := p.Stats()
		return st.Closed.Health == srv.reaped.Load() && st.Idle == 3
	})
	st := p.Stats()
	if st.Dials < 3+st.Closed.Health {
		t.Fatalf("Dials = %d, want ≥ %d (3 + a replacement per retirement)", st.Dials, 3+st.Closed.Health)
	}
	if st.Closed.Total() != st.Closed.Health {
		t.Fatalf("Closed = %+v: only health retirements expected", st.Closed)
	}
	if n := logs.FilterMessage("conn.retired").FilterField(zap.String("reason", tidepool.ReasonHealth.String())).Len(); int64(n) != st.Closed.Health {
		t.Fatalf("%d conn.retired reason=health log entries, Stats says %d", n, st.Closed.Health)
	}

	held := make([]tidepool.Conn[net.Conn], 0, 3)
	for range 3 {
		h, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
		if err := echo(ctx, h.Value(), "ping"); err != nil {
			t.Fatalf("conn %d handed out after recovery is broken: %v", h.ID(), err)
		}
	}
	for _, h := range held {
		h.Release()
	}
	t.Logf("server reaped %d, pool: %d dials, %d health checks, %d failed", srv.reaped.Load(), st.Dials, st.HealthChecks, st.HealthFailures)
}

func TestConfigDialsUnixSockets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	startEcho(t, "unix", path, 0)
	cfg := netconn.Config(netconn.Options{Network: "unix", Address: path})
	c, err := cfg.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close(c)
	if err := echo(context.Background(), c, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(context.Background(), c); err != nil {
		t.Fatalf("Check on a healthy unix conn: %v", err)
	}
}

func TestConfigDialHonoursContext(t *testing.T) {
	// A listener that is never accepted from still completes TCP
	// handshakes; a TLS handshake against it must end with the context.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := netconn.Config(netconn.Options{Address: ln.Addr().String(), TLS: &tls.Config{ServerName: "x"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if c, err := cfg.Dial(ctx); err == nil {
		c.Close()
		t.Fatal("TLS dial to a silent server succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Dial took %v with a 100ms context", took)
	}
}
