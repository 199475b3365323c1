package bench

import (
	"context"
	"io"
	"net"
	"sync"
)

// EchoServer is a loopback TCP server on 127.0.0.1 that echoes what it reads,
// one goroutine per connection.
type EchoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu; nil once closed
	wg    sync.WaitGroup
}

// StartEcho listens on 127.0.0.1 on a free port and serves until Close.
func StartEcho() (*EchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &EchoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the server's address.
func (s *EchoServer) Addr() string { return s.ln.Addr().String() }

func (s *EchoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.echo(c)
	}
}

func (s *EchoServer) echo(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if s.conns != nil {
			delete(s.conns, c)
		}
		s.mu.Unlock()
		_ = c.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops the server and closes every connection it accepted, then waits
// for its goroutines.
func (s *EchoServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// EchoSpec returns a Spec of size connections to addr.
func EchoSpec(addr string, size int) Spec[net.Conn] {
	var d net.Dialer
	return Spec[net.Conn]{
		Size:  size,
		Dial:  func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		Close: func(c net.Conn) { _ = c.Close() },
	}
}

// EchoRoundTrip writes buf to c and reads len(buf) bytes back into buf.
func EchoRoundTrip(c net.Conn, buf []byte) error {
	if _, err := c.Write(buf); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf)
	return err
}
