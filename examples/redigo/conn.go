package redigopool

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// redigoConn is what redigo's own connection implements: the plain calls,
// the ones with a timeout, and the ones with a context.
type redigoConn interface {
	redis.ConnWithTimeout
	redis.ConnWithContext
}

// state is the session state a holder can leave on a connection, as bits.
type state uint8

const (
	inMulti    state = 1 << iota // MULTI sent, no EXEC or DISCARD yet
	watching                     // WATCH sent, no EXEC, DISCARD or UNWATCH yet
	subscribed                   // SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE sent
	monitoring                   // MONITOR sent
	changed                      // a session setting changed: SELECT, AUTH, HELLO, RESET, CLIENT REPLY/TRACKING
)

// conn is the redis.Conn the pool holds: redigo's connection, the socket
// under it, and the session state its holder leaves behind.
type conn struct {
	inner redigoConn // redigo's connection: every call goes through to it
	nc    net.Conn   // the socket redigo reads and writes (a *tls.Conn with TLS); Check peeks at it

	// st and pending are written by the goroutine holding the connection and
	// read by AfterRelease on that goroutine; the pool's hand-over orders
	// them before the next holder's writes.
	st      state
	pending int // commands sent with Send whose replies nobody read

	// proven is when the connection was last seen working (dialed, released
	// by a holder, or answered a PING), as time since epoch. The holder
	// writes it in AfterRelease, a check writes and reads it from the
	// watcher or acquiring goroutine.
	proven atomic.Int64
}

// epoch is the base of conn.proven: durations since it are monotonic.
var epoch = time.Now()

func (c *conn) markProven() { c.proven.Store(int64(time.Since(epoch))) }

// unproven returns how long ago the connection was last seen working.
func (c *conn) unproven() time.Duration { return time.Since(epoch) - time.Duration(c.proven.Load()) }

// Close closes the connection.
func (c *conn) Close() error { return c.inner.Close() }

// Err returns a non-nil value when the connection is not usable.
func (c *conn) Err() error { return c.inner.Err() }

// Do sends a command and returns its reply (redis.Conn).
func (c *conn) Do(cmd string, args ...any) (any, error) {
	c.track(cmd, args)
	c.pending = 0 // Do reads the replies of every command sent before it
	return c.inner.Do(cmd, args...)
}

// DoWithTimeout is Do with a read timeout of its own (redis.ConnWithTimeout).
func (c *conn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	c.track(cmd, args)
	c.pending = 0
	return c.inner.DoWithTimeout(timeout, cmd, args...)
}

// DoContext is Do under ctx (redis.ConnWithContext). Like redigo's, it
// closes the connection if ctx ends before the reply comes.
func (c *conn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	c.track(cmd, args)
	c.pending = 0
	return c.inner.DoContext(ctx, cmd, args...)
}

// Send writes a command to the output buffer (redis.Conn).
func (c *conn) Send(cmd string, args ...any) error {
	c.track(cmd, args)
	c.pending++
	return c.inner.Send(cmd, args...)
}

// Flush writes the output buffer to the server (redis.Conn).
func (c *conn) Flush() error { return c.inner.Flush() }

// Receive reads one reply (redis.Conn).
func (c *conn) Receive() (any, error) {
	c.received()
	return c.inner.Receive()
}

// ReceiveWithTimeout is Receive with a timeout of its own.
func (c *conn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	c.received()
	return c.inner.ReceiveWithTimeout(timeout)
}

// ReceiveContext is Receive under ctx; it closes the connection if ctx ends first.
func (c *conn) ReceiveContext(ctx context.Context) (any, error) {
	c.received()
	return c.inner.ReceiveContext(ctx)
}

func (c *conn) received() {
	if c.pending > 0 {
		c.pending--
	}
}

// track notes what cmd does to the session. It compares the name with no
// allocation (case-insensitively, after a switch on its length).
func (c *conn) track(cmd string, args []any) {
	eq := strings.EqualFold
	switch len(cmd) {
	case 4:
		switch {
		case eq(cmd, "EXEC"):
			c.st &^= inMulti | watching
		case eq(cmd, "AUTH"):
			c.st |= changed
		}
	case 5:
		switch {
		case eq(cmd, "MULTI"):
			c.st |= inMulti
		case eq(cmd, "WATCH"):
			c.st |= watching
		case eq(cmd, "HELLO"), eq(cmd, "RESET"):
			c.st |= changed
		}
	case 6:
		switch {
		case eq(cmd, "SELECT"):
			c.st |= changed
		case eq(cmd, "CLIENT") && len(args) > 0:
			if sub := argString(args[0]); eq(sub, "REPLY") || eq(sub, "TRACKING") {
				c.st |= changed
			}
		}
	case 7:
		switch {
		case eq(cmd, "DISCARD"):
			c.st &^= inMulti | watching
		case eq(cmd, "UNWATCH"):
			c.st &^= watching
		case eq(cmd, "MONITOR"):
			c.st |= monitoring
		}
	case 9, 10:
		if eq(cmd, "SUBSCRIBE") || eq(cmd, "PSUBSCRIBE") || eq(cmd, "SSUBSCRIBE") {
			c.st |= subscribed
		}
	}
}

// argString returns a command argument given as a string or []byte, or "".
func argString(a any) string {
	switch v := a.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
