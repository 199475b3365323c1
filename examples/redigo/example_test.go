package redigopool_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool"
	redigopool "github.com/tidepool-go/tidepool/examples/redigo"
)

// The shortest use: a pool with tidepool's defaults, one connection acquired,
// used and released.
func ExampleNew() {
	ctx := context.Background()
	pool, err := redigopool.New(ctx, redisAddr(), redigopool.Options{ClientName: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := h.Value()
	_, err = c.Do("SET", "greeting", "hello")
	if err == nil {
		var s string
		s, err = redis.String(c.Do("GET", "greeting"))
		fmt.Println(s)
	}
	if redigopool.IsBroken(err) {
		h.Destroy()
	} else {
		h.Release() // AfterRelease still refuses it if it is broken in a way err does not show
	}
	// Output: hello
}

// Config gives the tidepool.Config with every hook set; the pool's sizes,
// name and logger are the caller's. AcquireFunc releases the connection, or
// destroys it when the function's error is one IsBroken recognises.
func ExampleConfig() {
	ctx := context.Background()
	cfg := redigopool.Config(redisAddr(), redigopool.Options{
		DB:           2,
		ClientName:   "billing",
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
	})
	cfg.Name = "redis-billing"
	cfg.MaxSize = 16
	cfg.MinIdle = 2
	cfg.MaxLifetime = time.Hour
	pool, err := tidepool.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	err = pool.AcquireFunc(ctx, func(c redis.Conn) error {
		if _, err := c.Do("DEL", "invoices"); err != nil {
			return err
		}
		n, err := redis.Int(c.Do("INCRBY", "invoices", 3))
		fmt.Println("invoices:", n)
		return err
	})
	fmt.Println("err:", err)
	// Output:
	// invoices: 3
	// err: <nil>
}

// A transaction done right (MULTI … EXEC in one pipeline) leaves the
// connection reusable; one left open is refused on release and replaced.
func Example_transaction() {
	ctx := context.Background()
	pool, err := redigopool.New(ctx, redisAddr(), redigopool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	err = pool.AcquireFunc(ctx, func(c redis.Conn) error {
		_ = c.Send("MULTI")
		_ = c.Send("SET", "a", 1)
		_ = c.Send("INCR", "a")
		r, err := redis.Values(c.Do("EXEC"))
		fmt.Println(r[1], err)
		return err
	})
	if err != nil {
		fmt.Println(err)
	}

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = h.Value().Do("MULTI") // and then forgets EXEC
	fmt.Println(redigopool.Reusable(h.Value()))
	h.Release() // refused: closed, not put back

	// The next holder is not inside somebody else's transaction: its PING
	// answers PONG, not QUEUED.
	err = pool.AcquireFunc(ctx, func(c redis.Conn) error {
		pong, err := redis.String(c.Do("PING"))
		fmt.Println(pong)
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2 <nil>
	// redigopool: connection left in a session state: inside MULTI
	// PONG
}

// Pub/sub holds its connection for as long as it listens, in a state no
// other holder can use: Hijack takes it out of the pool for good (its slot is
// freed at once), and closing it is the caller's job.
func Example_pubSub() {
	ctx := context.Background()
	pool, err := redigopool.New(ctx, redisAddr(), redigopool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	psc := redis.PubSubConn{Conn: h.Hijack()}
	defer psc.Close()
	if err := psc.Subscribe("news"); err != nil {
		fmt.Println(err)
		return
	}
	publish := func() error {
		return pool.AcquireFunc(ctx, func(c redis.Conn) error {
			_, err := c.Do("PUBLISH", "news", "high tide at 6")
			return err
		})
	}
	for {
		switch m := psc.ReceiveWithTimeout(5 * time.Second).(type) {
		case redis.Subscription:
			if err := publish(); err != nil { // subscribed: now publish
				fmt.Println(err)
				return
			}
		case redis.Message:
			fmt.Printf("%s: %s\n", m.Channel, m.Data)
			fmt.Println("hijacked:", pool.Stats().Hijacked)
			return
		case error:
			fmt.Println(m)
			return
		}
	}
	// Output:
	// news: high tide at 6
	// hijacked: 1
}

// Credential rotation: Options.Credentials is asked at every dial, so after
// the secret changes, Reset retires every connection dialed with the old one
// (idle ones at once, held ones on release) and new dials use the new one.
func Example_credentialRotation() {
	// The operator created both users; the old one still works meanwhile.
	redisAdmin("ACL", "SETUSER", "app-2025", "on", ">first secret", "~*", "+@all")
	redisAdmin("ACL", "SETUSER", "app-2026", "on", ">second secret", "~*", "+@all")

	var secret atomic.Pointer[[2]string] // username, password
	secret.Store(&[2]string{"app-2025", "first secret"})
	ctx := context.Background()
	pool, err := redigopool.New(ctx, redisAddr(), redigopool.Options{
		Credentials: func(context.Context) (string, string, error) {
			s := secret.Load()
			return s[0], s[1], nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)
	whoami := func() {
		err := pool.AcquireFunc(ctx, func(c redis.Conn) error {
			who, err := redis.String(c.Do("ACL", "WHOAMI"))
			fmt.Println(who)
			return err
		})
		if err != nil {
			fmt.Println(err)
		}
	}
	whoami()

	secret.Store(&[2]string{"app-2026", "second secret"})
	pool.Reset()
	whoami()
	fmt.Println("resets:", pool.Stats().Resets)
	// Output:
	// app-2025
	// app-2026
	// resets: 1
}

// IsBroken tells AcquireFunc which errors cost the connection.
func ExampleIsBroken() {
	fmt.Println(redigopool.IsBroken(redis.Error("WRONGTYPE Operation against a key holding the wrong kind of value")))
	fmt.Println(redigopool.IsBroken(redis.ErrNil))
	fmt.Println(redigopool.IsBroken(redis.Error("READONLY You can't write against a read only replica.")))
	fmt.Println(redigopool.IsBroken(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}))
	fmt.Println(redigopool.IsBroken(fmt.Errorf("get: %w", io.EOF)))
	// Output:
	// false
	// false
	// true
	// true
	// true
}
