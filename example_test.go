package tidepool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tidepool-go/tidepool"
)

// A pool of TCP connections to a local echo server: acquire, use, and
// release — or destroy a connection that failed, so that it is not reused.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() // echo until the client hangs up
		}
	}()

	ctx := context.Background()
	p, err := tidepool.New(ctx, tidepool.Config[net.Conn]{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		MaxSize: 4,
		Name:    "echo",
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	echo := func(msg string) (string, net.Addr) {
		c, err := p.Acquire(ctx)
		if err != nil {
			panic(err)
		}
		buf := make([]byte, len(msg))
		if _, err := c.Value().Write([]byte(msg)); err != nil {
			c.Destroy() // broken: close it instead of returning it
			return "", nil
		}
		if _, err := io.ReadFull(c.Value(), buf); err != nil {
			c.Destroy()
			return "", nil
		}
		addr := c.Value().LocalAddr()
		c.Release() // healthy: back to the pool for the next Acquire
		return string(buf), addr
	}
	first, a1 := echo("hello")
	second, a2 := echo("world")
	fmt.Println(first, second)
	fmt.Println("same connection both times:", a1.String() == a2.String())
	// Output:
	// hello world
	// same connection both times: true
}

// Resizing a running pool: growing serves waiters at once; shrinking closes
// idle connections now and held ones as they are released.
func ExamplePool_Resize() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:    func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		MaxSize: 2, MinIdle: 2,
	})
	defer p.Close(ctx)

	if err := p.Resize(4, 16); err != nil {
		panic(err)
	}
	fmt.Println(p.Stats().MaxSize)
	err := p.Resize(5, 2) // min above max
	fmt.Println(errors.Is(err, tidepool.ErrInvalidResize))
	// Output:
	// 16
	// true
}

// The three wait policies: wait for the context, a bounded wait, fail fast.
func ExamplePool_TryAcquire() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:           func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		MaxSize:        1,
		AcquireTimeout: 10 * time.Millisecond, // bounds Acquire when ctx has no deadline
	})
	defer p.Close(ctx)

	held, _ := p.Acquire(ctx)
	_, err := p.TryAcquire(ctx) // fail fast
	fmt.Println(errors.Is(err, tidepool.ErrExhausted))
	_, err = p.Acquire(ctx) // bounded by AcquireTimeout
	fmt.Println(errors.Is(err, tidepool.ErrAcquireTimeout))
	held.Release()
	// Output:
	// true
	// true
}

// Stats is a snapshot in an operator's words.
func ExamplePool_Stats() {
	ctx := context.Background()
	p, _ := tidepool.New(ctx, tidepool.Config[*fakeConn]{
		Dial:    func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil },
		MaxSize: 8, MinIdle: 2,
	})
	c, _ := p.Acquire(ctx)
	s := p.Stats()
	fmt.Printf("total=%d idle=%d in_use=%d max=%d\n", s.Total, s.Idle, s.InUse, s.MaxSize)
	c.Release()
	p.Close(ctx)
	// Output: total=2 idle=1 in_use=1 max=8
}
