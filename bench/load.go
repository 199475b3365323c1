package bench

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FakeConn is the connection of the in-memory scenarios: a small heap object,
// as a real connection would be, that does nothing.
type FakeConn struct {
	ID   int64
	Uses int64
}

// FakeSpec returns a Spec of size FakeConns, dialed at once.
func FakeSpec(size int) Spec[*FakeConn] {
	var ids atomic.Int64
	return Spec[*FakeConn]{
		Size: size,
		Dial: func(context.Context) (*FakeConn, error) { return &FakeConn{ID: ids.Add(1)}, nil },
	}
}

var busySink atomic.Uint64

// busyIters is the number of busyLoop iterations that take about 300 ns here,
// measured once by calibrateBusy.
var busyIters = sync.OnceValue(func() int { return calibrateBusy(300 * time.Nanosecond) })

//go:noinline
func busyLoop(n int) {
	x := uint64(n) | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	busySink.Store(x)
}

func calibrateBusy(target time.Duration) int {
	const probe = 1 << 20
	best := time.Duration(1 << 62)
	for range 5 {
		t := time.Now()
		busyLoop(probe)
		if d := time.Since(t); d < best {
			best = d
		}
	}
	n := int(float64(probe) * float64(target) / float64(best))
	return max(n, 1)
}

// BusyWork spins for about 300 ns, the work a holder does with a connection.
func BusyWork() { busyLoop(busyIters()) }

// LoadResult is what Drive measured.
type LoadResult struct {
	Elapsed time.Duration
	// Waits holds one acquire wait (ns) per op, in no particular order; ops
	// that report no wait leave 0.
	Waits []int64
	// PerG counts the ops each goroutine did.
	PerG []int64
	// OK counts the ops that reported success.
	OK int64
}

type paddedCount struct {
	n, ok int64
	_     [48]byte
}

// batch is how many ops a goroutine claims at once from the shared budget.
const batch = 4

// Drive runs b.N ops over g goroutines and times them. op is called with the
// goroutine's index and returns the op's acquire wait and whether it
// succeeded. The waits go into one slice preallocated for b.N ops: a goroutine
// claims a batch of op indices from a shared counter and writes its waits at
// those indices, so no goroutine ever contends for a slot and merging is free.
// The timer covers only the ops.
func Drive(b *testing.B, g int, op func(gi int) (wait time.Duration, ok bool)) LoadResult {
	b.StopTimer()
	n := b.N
	res := LoadResult{Waits: make([]int64, n), PerG: make([]int64, g)}
	counts := make([]paddedCount, g)
	var next atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(g)
	done.Add(g)
	for gi := range g {
		go func() {
			defer done.Done()
			c := &counts[gi]
			ready.Done()
			<-start
			for {
				lo := next.Add(batch) - batch
				if lo >= int64(n) {
					return
				}
				hi := min(lo+batch, int64(n))
				for i := lo; i < hi; i++ {
					w, ok := op(gi)
					res.Waits[i] = int64(w)
					c.n++
					if ok {
						c.ok++
					}
				}
			}
		}()
	}
	ready.Wait()
	b.StartTimer()
	t0 := time.Now()
	close(start)
	done.Wait()
	res.Elapsed = time.Since(t0)
	b.StopTimer()
	for i := range counts {
		res.PerG[i] = counts[i].n
		res.OK += counts[i].ok
	}
	return res
}

// Percentiles sorts waits and returns the given quantiles (0..1) of it.
func Percentiles(waits []int64, qs ...float64) []float64 {
	slices.Sort(waits)
	out := make([]float64, len(qs))
	if len(waits) == 0 {
		return out
	}
	for i, q := range qs {
		k := int(q * float64(len(waits)-1))
		out[i] = float64(waits[k])
	}
	return out
}

// Jain returns Jain's fairness index of xs: (Σx)² / (n·Σx²), 1 when all are
// equal, 1/n when one got everything.
func Jain(xs []int64) float64 {
	var s, s2 float64
	for _, x := range xs {
		f := float64(x)
		s += f
		s2 += f * f
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

// EchoServer is a loopback TCP server on 127.0.0.1 that echoes what it reads,
// one goroutine per connection.
type EchoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
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
