package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/demobackend"
	"github.com/tidepool-go/tidepool/internal/resp"
	"github.com/tidepool-go/tidepool/netconn"
)

// errReply marks a request that got an error reply: the connection is fine
// (release it), the request failed.
var errReply = errors.New("error reply")

// requestTimeout bounds one request's I/O.
const requestTimeout = time.Second

// target is what the scenario drives: how to dial, check and close one
// connection of type T, and one request on it.
type target[T any] struct {
	// desc names the backend in the summary.
	desc string
	// cfg has Dial, Close and Check set; the scenario fills in the rest.
	cfg tidepool.Config[T]
	// request makes one request on v for worker w, its seq-th. An error
	// wrapping errReply leaves v usable; any other error means v is broken.
	request func(v T, w int, seq uint64) error
	// backend is the embedded server, nil for external targets (the scenario
	// then skips the kill and outage phases).
	backend *demobackend.Server
}

// embeddedTarget starts the embedded backend with a little latency and
// jitter, and pools net.Conns to it.
func embeddedTarget() (target[net.Conn], error) {
	b, err := demobackend.Start(demobackend.Options{Latency: 2 * time.Millisecond, Jitter: 2 * time.Millisecond})
	if err != nil {
		return target[net.Conn]{}, err
	}
	t := lineTarget(b.Addr())
	t.desc = "embedded " + b.Addr()
	t.backend = b
	t.request = func(c net.Conn, w int, seq uint64) error {
		key := "k" + strconv.Itoa(w)
		req, want := "GET "+key, "" // VALUE or NIL
		if seq%2 == 1 {
			req, want = "SET "+key+" v"+strconv.FormatUint(seq, 10), "OK"
		}
		return lineRequest(c, req, want)
	}
	return t, nil
}

// lineTarget pools net.Conns to a line server and sends PING to it.
func lineTarget(addr string) target[net.Conn] {
	return target[net.Conn]{
		desc: "tcp " + addr,
		cfg:  netconn.Config(netconn.Options{Network: "tcp", Address: addr}),
		request: func(c net.Conn, _ int, _ uint64) error {
			return lineRequest(c, "PING", "")
		},
	}
}

// lineRequest sends req and wants a reply starting with want (any reply but
// an ERR line when want is "").
func lineRequest(c net.Conn, req, want string) error {
	if err := c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return err
	}
	reply, err := demobackend.RoundTrip(c, req)
	if err != nil {
		return err
	}
	if strings.HasPrefix(reply, "ERR") || !strings.HasPrefix(reply, want) {
		return fmt.Errorf("%w: %q answered %q", errReply, req, reply)
	}
	return nil
}

// redisTarget pools RESP connections, checked with PING, and sends SET and
// GET on them.
func redisTarget(addr string) target[*resp.Conn] {
	return target[*resp.Conn]{
		desc: "redis " + addr,
		cfg: tidepool.Config[*resp.Conn]{
			Dial:  func(ctx context.Context) (*resp.Conn, error) { return resp.Dial(ctx, "tcp", addr) },
			Close: func(c *resp.Conn) error { return c.Close() },
			Check: func(ctx context.Context, c *resp.Conn) error { return c.Ping(ctx) },
		},
		request: func(c *resp.Conn, w int, seq uint64) error {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			key := "tidepool-demo:" + strconv.Itoa(w)
			args := []string{"GET", key}
			if seq%2 == 1 {
				args = []string{"SET", key, strconv.FormatUint(seq, 10)}
			}
			r, err := c.Do(ctx, args...)
			if err != nil {
				return err
			}
			if err := r.Err(); err != nil {
				return fmt.Errorf("%w: %s: %w", errReply, args[0], err)
			}
			return nil
		},
	}
}
