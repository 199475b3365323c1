package tidepool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidepool-go/tidepool"
)

// fakeConn is a pooled value that knows whether it was closed, and how often.
type fakeConn struct {
	id     int64
	closed atomic.Int32
}

// backend is a fake server: it dials fakeConns, can be taken down, and records
// every connection it made.
type backend struct {
	mu      sync.Mutex
	conns   []*fakeConn
	next    atomic.Int64
	down    atomic.Bool
	dialErr error
	dialing atomic.Int64  // dials in flight
	maxDial atomic.Int64  // most dials in flight at once
	dials   atomic.Int64  // dial attempts
	gate    chan struct{} // if non-nil, each dial waits for a token
}

var errBackendDown = errors.New("backend: connection refused")

func newBackend() *backend { return &backend{dialErr: errBackendDown} }

func (b *backend) dial(ctx context.Context) (*fakeConn, error) {
	n := b.dialing.Add(1)
	defer b.dialing.Add(-1)
	for {
		m := b.maxDial.Load()
		if n <= m || b.maxDial.CompareAndSwap(m, n) {
			break
		}
	}
	b.dials.Add(1)
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.down.Load() {
		return nil, b.dialErr
	}
	c := &fakeConn{id: b.next.Add(1)}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	return c, nil
}

func (b *backend) close(c *fakeConn) error {
	c.closed.Add(1)
	return nil
}

// live returns how many dialed connections are not closed yet.
func (b *backend) live() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.conns {
		if c.closed.Load() == 0 {
			n++
		}
	}
	return n
}

// checkClosedOnce fails t unless every dialed connection was closed exactly once.
func (b *backend) checkClosedOnce(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		if n := c.closed.Load(); n != 1 {
			t.Errorf("conn %d closed %d times, want exactly 1", c.id, n)
		}
	}
}

func (b *backend) config() tidepool.Config[*fakeConn] {
	return tidepool.Config[*fakeConn]{Dial: b.dial, Close: b.close, MaxSize: 4}
}

func newPool(t *testing.T, cfg tidepool.Config[*fakeConn]) *tidepool.Pool[*fakeConn] {
	t.Helper()
	p, err := tidepool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// poolOfSize returns a fresh backend and a pool of at most max connections on it.
func poolOfSize(t *testing.T, max int) (*backend, *tidepool.Pool[*fakeConn]) {
	t.Helper()
	b := newBackend()
	cfg := b.config()
	cfg.MaxSize = max
	return b, newPool(t, cfg)
}

func closePool(t *testing.T, p interface{ Close(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustAcquire(t *testing.T, p *tidepool.Pool[*fakeConn]) tidepool.Conn[*fakeConn] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h
}
