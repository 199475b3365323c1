package tidepool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/tidepool-go/tidepool"
)

// Close waits for holders until its context ends; then it closes what they
// still hold, and says so in its error. A late Release is then a no-op, and
// every Acquire fails with ErrClosed.
func ExamplePool_Close() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:  func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		Close: func(c *fakeConn) error { c.closed.Add(1); return nil },
	})
	c, _ := p.Acquire(ctx) // a holder that does not give it back in time

	deadline, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := p.Close(deadline)
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	fmt.Println("closed under its holder:", c.Value().closed.Load() == 1)
	c.Release() // a no-op now
	_, err = p.Acquire(ctx)
	fmt.Println(errors.Is(err, tidepool.ErrClosed))
	// Output:
	// tidepool: close: 1 held connection was closed under its holder: context deadline exceeded
	// true
	// closed under its holder: true
	// true
}

// Leak tracking: with LeakThreshold set, a connection held longer is reported
// once (a conn.leak_suspected log entry and Stats.LeaksSuspected), and InUse
// lists every held connection with how long it has been held.
func ExamplePool_InUse() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:          func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		LeakThreshold: 20 * time.Millisecond,
	})
	defer p.Close(ctx)

	c, _ := p.Acquire(ctx) // and forgotten for a while
	for p.Stats().LeaksSuspected == 0 {
		time.Sleep(5 * time.Millisecond) // the pool looks four times per threshold
	}
	for _, h := range p.InUse() {
		fmt.Printf("conn %d: held over the threshold: %v, reported: %v\n", h.ID, h.HeldFor >= 20*time.Millisecond, h.Leaked)
	}
	c.Release() // logged as conn.leak_released, with how long it was held
	fmt.Println("held now:", len(p.InUse()), "leaks reported:", p.Stats().LeaksSuspected)
	// Output:
	// conn 1: held over the threshold: true, reported: true
	// held now: 0 leaks reported: 1
}

// AcquireFunc releases the connection when f returns nil or an ordinary
// error, and destroys it when f's error wraps ErrConnBroken (or
// Config.IsBroken says so), when f panics or calls runtime.Goexit.
func ExamplePool_AcquireFunc() {
	ctx := context.Background()
	var dialed atomic.Int64
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial: func(context.Context) (*fakeConn, error) { return &fakeConn{id: dialed.Add(1)}, nil },
		// Errors of the client library that mean the connection is unusable.
		IsBroken: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
	})
	defer p.Close(ctx)

	query := func(c *fakeConn) error {
		fmt.Println("query on conn", c.id)
		return nil
	}
	_ = p.AcquireFunc(ctx, query) // released

	err := p.AcquireFunc(ctx, func(c *fakeConn) error {
		fmt.Println("query on conn", c.id)
		return fmt.Errorf("reading reply: %w", tidepool.ErrConnBroken) // destroyed
	})
	fmt.Println(err)
	_ = p.AcquireFunc(ctx, query) // a new connection

	err = p.AcquireFunc(ctx, func(c *fakeConn) error { return io.ErrUnexpectedEOF }) // IsBroken: destroyed
	fmt.Println(err)
	_ = p.AcquireFunc(ctx, query)
	// Output:
	// query on conn 1
	// query on conn 1
	// reading reply: tidepool: connection broken
	// query on conn 2
	// unexpected EOF
	// query on conn 3
}

// Session set-up and clean-up with hooks. AfterConnect runs once on every new
// connection, in its dial (an error fails the dial); AfterRelease runs on
// every Release before the connection goes back (false destroys it).
func ExampleConfig_hooks() {
	type session struct {
		id     int64
		schema string
		inTx   bool
	}
	ctx := context.Background()
	var dialed atomic.Int64
	p, _ := tidepool.New(ctx, tidepool.Config[*session]{
		Dial: func(context.Context) (*session, error) { return &session{id: dialed.Add(1)}, nil },
		AfterConnect: func(ctx context.Context, s *session) error {
			s.schema = "app" // SET search_path, AUTH, SELECT 1, ...
			fmt.Println("set up session", s.id)
			return nil
		},
		AfterRelease: func(s *session) bool {
			if s.inTx {
				fmt.Println("session", s.id, "released inside a transaction: destroy it")
				return false
			}
			return true
		},
	})
	defer p.Close(ctx)

	c, _ := p.Acquire(ctx)
	fmt.Println("schema:", c.Value().schema)
	c.Release()

	c, _ = p.Acquire(ctx) // the same session again
	c.Value().inTx = true // a caller forgot to COMMIT
	c.Release()

	c, _ = p.Acquire(ctx)
	fmt.Println("got session", c.Value().id)
	c.Release()
	// Output:
	// set up session 1
	// schema: app
	// session 1 released inside a transaction: destroy it
	// set up session 2
	// got session 2
}

// After rotating credentials, Reset retires every connection dialed with the
// old ones — idle ones at once, held ones when they are released — and the
// pool dials new ones with the new credentials.
func ExamplePool_Reset() {
	type conn struct{ password string }
	ctx := context.Background()
	var password atomic.Value
	password.Store("old")
	p, _ := tidepool.New(ctx, tidepool.Config[*conn]{
		Dial:    func(context.Context) (*conn, error) { return &conn{password: password.Load().(string)}, nil },
		MinIdle: 2,
	})
	defer p.Close(ctx)

	held, _ := p.Acquire(ctx)
	password.Store("new")
	p.Reset()
	held.Release() // retired, not reused

	var hs []tidepool.Conn[*conn]
	for range 3 {
		c, _ := p.Acquire(ctx)
		fmt.Println(c.Value().password)
		hs = append(hs, c)
	}
	for _, c := range hs {
		c.Release()
	}
	fmt.Println("resets:", p.Stats().Resets)
	// Output:
	// new
	// new
	// new
	// resets: 1
}

// Hijack takes a connection out of the pool for good (a subscription, a long
// stream): its slot is free at once, and the pool never checks or closes it
// again. Closing it is the caller's job.
func ExampleConn_Hijack() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:    func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		Close:   func(c *fakeConn) error { c.closed.Add(1); return nil },
		MaxSize: 1,
	})
	c, _ := p.Acquire(ctx)
	sub := c.Hijack() // the handle is spent; sub is ours

	other, _ := p.Acquire(ctx) // the slot is free again: a new connection
	fmt.Println("a new connection:", other.Value() != sub)
	other.Release()

	p.Close(ctx)
	fmt.Println("hijacked:", p.Stats().Hijacked, "closed by the pool:", sub.closed.Load())
	sub.closed.Add(1) // we close it ourselves when done
	// Output:
	// a new connection: true
	// hijacked: 1 closed by the pool: 0
}
