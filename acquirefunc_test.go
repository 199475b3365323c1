package tidepool_test

// AcquireFunc: acquire, run f, then release or destroy the connection by
// what f did. Each test runs in a synctest bubble on simDB (time_test.go), so
// that Stats read after synctest.Wait is exact.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidepool-go/tidepool"
)

// wantReleased checks that c went back to the pool (idle, not closed), the
// only connection of p.
func wantReleased(t *testing.T, p *tidepool.Pool[*simConn], c *simConn, what string) {
	t.Helper()
	synctest.Wait()
	if st := p.Stats(); c.closes.Load() != 0 || st.Idle != 1 || st.InUse != 0 || st.Closed.Destroyed != 0 {
		t.Errorf("%s: closes=%d idle=%d in_use=%d closed(destroyed)=%d, want the connection released (0 1 0 0)",
			what, c.closes.Load(), st.Idle, st.InUse, st.Closed.Destroyed)
	}
}

// wantDestroyed checks that c, the only connection of p, was retired as
// destroyed and closed.
func wantDestroyed(t *testing.T, p *tidepool.Pool[*simConn], c *simConn, what string) {
	t.Helper()
	synctest.Wait()
	if st := p.Stats(); c.closes.Load() != 1 || st.Idle != 0 || st.InUse != 0 || st.Closed.Destroyed != 1 {
		t.Errorf("%s: closes=%d idle=%d in_use=%d closed(destroyed)=%d, want the connection destroyed (1 0 0 1)",
			what, c.closes.Load(), st.Idle, st.InUse, st.Closed.Destroyed)
	}
}

// f's connection goes back to the pool when f returns nil or an ordinary
// error (IsBroken saying no), and AcquireFunc returns f's error unchanged.
func TestAcquireFuncReleasesWhenFReturnsNilOrAnOrdinaryError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		var asked atomic.Int64
		cfg.IsBroken = func(err error) bool { asked.Add(1); return errors.Is(err, io.ErrUnexpectedEOF) }
		p, _ := simPool(t, cfg)
		ctx := context.Background()

		var first *simConn
		if err := p.AcquireFunc(ctx, func(c *simConn) error { first = c; return nil }); err != nil {
			t.Fatalf("AcquireFunc with f returning nil: %v", err)
		}
		wantReleased(t, p, first, "f returned nil")
		if asked.Load() != 0 {
			t.Errorf("IsBroken asked %d times about a nil error", asked.Load())
		}

		errNoRows := errors.New("no rows in result set")
		var second *simConn
		err := p.AcquireFunc(ctx, func(c *simConn) error { second = c; return fmt.Errorf("query: %w", errNoRows) })
		if !errors.Is(err, errNoRows) {
			t.Fatalf("AcquireFunc returned %v, want f's error", err)
		}
		if second != first {
			t.Errorf("second AcquireFunc got conn %d, want the released conn %d", second.id, first.id)
		}
		wantReleased(t, p, first, "f returned an ordinary error")
		if asked.Load() != 1 {
			t.Errorf("IsBroken asked %d times, want once", asked.Load())
		}
		db.shutBy(t, p)
	})
}

// The connection is destroyed, not released, when f's error wraps
// ErrConnBroken, when Config.IsBroken says the error means a broken
// connection, and when IsBroken panics (which is logged and counted).
func TestAcquireFuncDestroysTheConnWhenFsErrorSaysItIsBroken(t *testing.T) {
	cases := []struct {
		name     string
		isBroken func(error) bool
		err      error
		panics   bool
	}{
		{"wraps ErrConnBroken", nil, fmt.Errorf("read: %w", tidepool.ErrConnBroken), false},
		{"IsBroken says so", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
			fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF), false},
		{"IsBroken panics", func(error) bool { panic("is_broken exploded") }, errors.New("timeout"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				db := newSimDB(t)
				cfg := db.config()
				cfg.IsBroken = tc.isBroken
				p, logs := simPool(t, cfg)
				ctx := context.Background()
				var used *simConn
				err := p.AcquireFunc(ctx, func(c *simConn) error { used = c; return tc.err })
				if !errors.Is(err, tc.err) {
					t.Fatalf("AcquireFunc returned %v, want f's error %v", err, tc.err)
				}
				wantDestroyed(t, p, used, tc.name)
				if tc.panics {
					wantCallbackLogged(t, logs, "callback.panicked", "is_broken")
					if n := p.Stats().CallbackPanics; n != 1 {
						t.Errorf("Stats.CallbackPanics = %d after IsBroken panicked, want 1", n)
					}
				}
				var next *simConn
				if err := p.AcquireFunc(ctx, func(c *simConn) error { next = c; return nil }); err != nil || next == used {
					t.Errorf("next AcquireFunc: err=%v, conn reused=%v; want a new connection", err, next == used)
				}
				db.shutBy(t, p)
			})
		})
	}
}

// When f panics, its connection is destroyed (its protocol state is
// unknown) and the panic goes on to AcquireFunc's caller with its value.
func TestAcquireFuncDestroysTheConnAndRepanicsWhenFPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, _ := simPool(t, db.config())
		var used *simConn
		func() {
			defer func() {
				if r := recover(); r != "half-written request" {
					t.Errorf("recovered %v from AcquireFunc, want f's panic value", r)
				}
			}()
			_ = p.AcquireFunc(context.Background(), func(c *simConn) error {
				used = c
				panic("half-written request")
			})
			t.Error("AcquireFunc returned although f panicked")
		}()
		wantDestroyed(t, p, used, "f panicked")
		if n := p.Stats().CallbackPanics; n != 0 {
			t.Errorf("f's panic was counted as a callback panic (%d): it is the caller's, and goes on", n)
		}
		db.shutBy(t, p)
	})
}

// When f calls runtime.Goexit (t.FailNow inside f, for one), its connection
// is destroyed, not leaked.
func TestAcquireFuncDestroysTheConnWhenFCallsGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		p, _ := simPool(t, db.config())
		var used *simConn
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			_ = p.AcquireFunc(context.Background(), func(c *simConn) error {
				used = c
				runtime.Goexit()
				return nil
			})
			t.Error("AcquireFunc returned although f called Goexit")
		}()
		<-exited
		wantDestroyed(t, p, used, "f called Goexit")
		db.shutBy(t, p)
	})
}

// When Acquire fails, AcquireFunc returns its error and never calls f.
func TestAcquireFuncReturnsAcquiresErrorWithoutCallingF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newSimDB(t)
		cfg := db.config()
		cfg.MaxSize = 1
		p, _ := simPool(t, cfg)
		called := 0
		f := func(*simConn) error { called++; return nil }

		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.AcquireFunc(cancelled, f); !errors.Is(err, context.Canceled) {
			t.Errorf("AcquireFunc with a cancelled context: %v, want context.Canceled", err)
		}
		h, _ := take(t, p)
		short, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := p.AcquireFunc(short, f); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AcquireFunc on an exhausted pool: %v, want context.DeadlineExceeded", err)
		}
		cancel()
		give(h)
		db.down.Store(true)
		p.Reset() // the idle connection goes; the next Acquire must dial
		if err := p.AcquireFunc(context.Background(), f); !errors.Is(err, tidepool.ErrDial) {
			t.Errorf("AcquireFunc with the backend down: %v, want ErrDial", err)
		}
		db.down.Store(false)
		db.shutBy(t, p)
		if err := p.AcquireFunc(context.Background(), f); !errors.Is(err, tidepool.ErrClosed) {
			t.Errorf("AcquireFunc after Close: %v, want ErrClosed", err)
		}
		if called != 0 {
			t.Errorf("f called %d times although Acquire failed", called)
		}
	})
}
