package fleet

// Tests of the promises a member's pool keeps for Lease, ResizeWait and
// Stats.Slots, at the level of the connections a backend would see.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

// backendConn is one connection as a fake backend counts it.
type backendConn struct {
	b      *fakeBackend
	closed atomic.Bool
}

func (c *backendConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.b.open.Add(-1)
		c.b.closes.Add(1)
	}
	return nil
}

type fakeBackend struct {
	open, dials, closes atomic.Int64
	maxOpen             atomic.Int64
	dialDelay           time.Duration
}

func (b *fakeBackend) dial(ctx context.Context) (*backendConn, error) {
	if b.dialDelay > 0 {
		select {
		case <-time.After(b.dialDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b.dials.Add(1)
	n := b.open.Add(1)
	for m := b.maxOpen.Load(); n > m && !b.maxOpen.CompareAndSwap(m, n); m = b.maxOpen.Load() {
	}
	return &backendConn{b: b}, nil
}

func newGatedPool(t *testing.T, b *fakeBackend) (*tidepool.Pool[*backendConn], Pool) {
	t.Helper()
	p, fp, err := NewPool(t.Context(), tidepool.Config[*backendConn]{
		Dial: b.dial, DialTimeout: 5 * time.Second, SizeCeiling: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, fp
}

func acquireN(t *testing.T, p *tidepool.Pool[*backendConn], n int) []tidepool.Conn[*backendConn] {
	t.Helper()
	out := make([]tidepool.Conn[*backendConn], n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Errorf("acquire %d: %v", i, err)
				return
			}
			out[i] = c
		})
	}
	wg.Wait()
	return out
}

func TestLeaseBoundsTheBackendAndFencesHeldConnectionsAtItsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBackend{}
		p, fp := newGatedPool(t, b)
		defer p.Close(context.Background())

		// Without a lease the pool dials nothing.
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		if _, err := p.Acquire(ctx); err == nil {
			t.Fatal("Acquire without a lease succeeded")
		}
		cancel()
		if n := b.dials.Load(); n != 0 {
			t.Fatalf("%d dials without a lease", n)
		}

		end := time.Now().Add(time.Second)
		if err := fp.Lease(3, end); err != nil {
			t.Fatal(err)
		}
		held := acquireN(t, p, 3)
		if n := b.open.Load(); n != 3 {
			t.Fatalf("backend sees %d connections, want 3", n)
		}
		if s := slotsOf(fp, fp.Stats()); s != 3 {
			t.Fatalf("slots = %d, want 3", s)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
		if _, err := p.Acquire(ctx); err == nil {
			t.Fatal("a 4th Acquire succeeded under a lease of 3")
		}
		cancel()

		// At the lease's end the held connections are closed under their
		// holders; their later Release closes nothing twice.
		time.Sleep(time.Until(end) + time.Millisecond)
		synctest.Wait()
		if n := b.open.Load(); n != 0 {
			t.Fatalf("after the lease's end the backend sees %d connections, want 0", n)
		}
		for _, c := range held {
			c.Release()
		}
		synctest.Wait()
		if b.closes.Load() != b.dials.Load() {
			t.Fatalf("%d dials, %d closes", b.dials.Load(), b.closes.Load())
		}
		if s := slotsOf(fp, fp.Stats()); s != 0 {
			t.Fatalf("slots = %d after the fence, want 0", s)
		}

		// Past the end nothing dials until the lease is renewed, and nothing
		// closed under its holder is handed out again.
		dials := b.dials.Load()
		for range 2 {
			ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
			c, err := p.Acquire(ctx)
			cancel()
			if err == nil {
				t.Fatalf("Acquire after the lease's end got a connection (closed: %v)", c.Value().closed.Load())
			}
		}
		if b.dials.Load() != dials || b.open.Load() != 0 {
			t.Fatalf("after the lease's end: %d new dials, %d open", b.dials.Load()-dials, b.open.Load())
		}
		if err := fp.Lease(2, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		c := acquireN(t, p, 1)[0]
		c.Release()
		if b.dials.Load() <= dials {
			t.Fatal("no dial after the renewal")
		}
		if m := b.maxOpen.Load(); m > 3 {
			t.Fatalf("backend saw %d connections at once, lease max 3", m)
		}
	})
}

// TestDialThatLandsAfterTheLeaseEndIsClosedAtOnce: a dial started under the
// lease but returning after its end must not be handed out.
func TestDialThatLandsAfterTheLeaseEndIsClosedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBackend{dialDelay: 500 * time.Millisecond}
		p, fp := newGatedPool(t, b)
		defer p.Close(context.Background())
		if err := fp.Lease(2, time.Now().Add(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := p.Acquire(ctx); err == nil {
			t.Fatal("Acquire got a connection dialed across the lease's end")
		}
		synctest.Wait()
		if n := b.open.Load(); n != 0 {
			t.Fatalf("backend sees %d connections after the lease's end", n)
		}
		if s := slotsOf(fp, fp.Stats()); s != 0 {
			t.Fatalf("slots = %d", s)
		}
	})
}

// TestResizeWaitClosesHeldConnectionsWhenCtxEnds: holders get until ctx's
// end, then their connections are closed under them.
func TestResizeWaitClosesHeldConnectionsWhenCtxEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBackend{}
		p, fp := newGatedPool(t, b)
		defer p.Close(context.Background())
		if err := fp.Lease(4, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		held := acquireN(t, p, 4)
		held[0].Release()
		if err := fp.Lease(0, time.Time{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := fp.ResizeWait(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 500*time.Millisecond {
			t.Fatalf("ResizeWait returned after %v, before ctx's end, with connections held", took)
		}
		if n := b.open.Load(); n != 0 {
			t.Fatalf("backend sees %d connections after ResizeWait(0)", n)
		}
		for _, c := range held[1:] {
			c.Release()
		}
	})
}

func TestNewPoolRefusesMinIdle(t *testing.T) {
	_, _, err := NewPool(t.Context(), tidepool.Config[*backendConn]{Dial: (&fakeBackend{}).dial, MinIdle: 2, MaxSize: 4})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("NewPool with MinIdle 2: %v, want ErrInvalidOptions", err)
	}
}
