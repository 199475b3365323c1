package resp_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/resp"
)

// Pool Redis connections. Dial sends PING, so that a server that accepts the
// TCP connection only to refuse the client ("-ERR max number of clients
// reached", "-NOAUTH") fails the dial instead of the first command; Check is
// PING too.
func Example_pool() {
	const addr = "127.0.0.1:6379"
	cfg := tidepool.Config[*resp.Conn]{
		Dial: func(ctx context.Context) (*resp.Conn, error) {
			c, err := resp.Dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			if err := c.Ping(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		Close:          (*resp.Conn).Close,
		Check:          func(ctx context.Context, c *resp.Conn) error { return c.Ping(ctx) },
		MaxSize:        16,
		HealthInterval: 10 * time.Second,
	}
	ctx := context.Background()
	pool, err := tidepool.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err) // wraps tidepool.ErrDial while Redis is down
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := h.Value().Do(cctx, "INCR", "visits")
	if err != nil {
		h.Destroy() // I/O or protocol error: the connection is unusable
		fmt.Println(err)
		return
	}
	h.Release()
	if err := r.Err(); err != nil {
		fmt.Println(err) // a Redis error reply; the connection is fine
		return
	}
	fmt.Println("visits:", r.Int)
}
