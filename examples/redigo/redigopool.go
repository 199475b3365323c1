package redigopool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/netconn"
)

// Options says how to reach the server, how to set up each connection's
// session, and when to PING. The zero value dials without authentication,
// database 0, no client name, no TLS.
type Options struct {
	// Username and Password authenticate each new connection (AUTH in
	// AfterConnect). Username may be empty (the default user). Ignored when
	// Credentials is set.
	Username, Password string
	// Credentials, when set, is asked for the username and password at every
	// dial, under the dial's context: read them from wherever they rotate
	// (a secret store, a mounted file). After a rotation, call the pool's
	// Reset so that connections dialed with the old ones retire. An error
	// fails the dial.
	Credentials func(ctx context.Context) (username, password string, err error)
	// DB is the database each connection SELECTs after connecting (0: none).
	DB int
	// ClientName is set with CLIENT SETNAME on each connection, so that
	// CLIENT LIST shows which service holds it ("": none).
	ClientName string
	// TLS, when set, makes the dial a TLS client handshake. The package
	// dials TLS itself (instead of redigo's DialUseTLS) so that the check's
	// peek looks at the *tls.Conn, which knows TLS records from data, rather
	// than at the raw socket, where a TLS 1.3 session ticket looks like a
	// stray reply. An empty ServerName is taken from the address's host.
	TLS *tls.Config
	// Dialer, when set, makes the TCP connection (keep-alive, local address).
	// Default: a zero net.Dialer (keep-alive 15 s). The pool's DialTimeout
	// bounds the dial and the session setup either way.
	Dialer *net.Dialer
	// ReadTimeout and WriteTimeout are redigo's per-command timeouts
	// (DialReadTimeout, DialWriteTimeout). Default: none, as in redigo.
	ReadTimeout, WriteTimeout time.Duration
	// PingIdle: a connection not seen working for this long (not released by
	// a holder, nor answering a PING) gets a PING on its next check, on top
	// of the peek. Default 1 s, pgxpool's choice; a negative value never
	// PINGs (the peek alone).
	PingIdle time.Duration
	// PingTimeout bounds one PING when the check's context has no sooner
	// deadline. Default 1 s.
	PingTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultPingIdle    = time.Second
	DefaultPingTimeout = time.Second
)

// ErrSessionState is wrapped by Reusable's error for a connection left in a
// session state the next holder must not inherit.
var ErrSessionState = errors.New("redigopool: connection left in a session state")

// errForeign: a hook got a connection this package did not dial.
var errForeign = errors.New("redigopool: not a connection dialed by redigopool")

// settings is Options with defaults filled in, shared by the hooks.
type settings struct {
	Options
	addr   string
	dialer *net.Dialer
}

// Config returns the tidepool.Config of a pool of redigo connections to addr
// (host:port), with every hook of the recipe set (see the package comment):
// Dial, AfterConnect, Check with CheckOnAcquire on every hand-out, AfterRelease,
// IsBroken, Close. Set the pool's sizes, intervals, Logger and Name on the
// result before passing it to tidepool.New.
//
// Costs per hand-out: the check's peek, one system call (about a microsecond)
// and a clock read, plus a PING round trip for a connection not seen working
// for PingIdle. Per release: AfterRelease reads the session state and the
// clock. Per command: a comparison of its name (no allocation).
func Config(addr string, o Options) tidepool.Config[redis.Conn] {
	s := &settings{Options: o, addr: addr, dialer: o.Dialer}
	if s.dialer == nil {
		s.dialer = new(net.Dialer)
	}
	if s.PingIdle == 0 {
		s.PingIdle = DefaultPingIdle
	}
	if s.PingTimeout <= 0 {
		s.PingTimeout = DefaultPingTimeout
	}
	return tidepool.Config[redis.Conn]{
		Dial:           s.dial,
		AfterConnect:   s.afterConnect,
		Check:          s.check,
		CheckOnAcquire: true,
		// 0: every hand-out. The peek costs a system call, so every
		// connection can afford it; the PING inside the check has its own
		// idle threshold (PingIdle). Without the socket, the only check
		// would be the PING, and this would be 1 s as in pgxpool.
		CheckOnAcquireIdle: 0,
		AfterRelease:       afterRelease,
		IsBroken:           IsBroken,
		Close:              func(v redis.Conn) error { return v.Close() },
	}
}

// New returns a pool of redigo connections to addr configured by Config and
// tidepool's defaults (at most 8 connections, none kept warm). See
// tidepool.New for ctx and the errors.
func New(ctx context.Context, addr string, o Options) (*tidepool.Pool[redis.Conn], error) {
	return tidepool.New(ctx, Config(addr, o))
}

// dial connects with redis.DialContext and a dial function that keeps the
// socket it hands to redigo.
func (s *settings) dial(ctx context.Context) (redis.Conn, error) {
	var nc net.Conn
	dialFn := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var err error
		if s.TLS != nil {
			nc, err = (&tls.Dialer{NetDialer: s.dialer, Config: s.TLS}).DialContext(ctx, network, addr)
		} else {
			nc, err = s.dialer.DialContext(ctx, network, addr)
		}
		return nc, err
	}
	rc, err := redis.DialContext(ctx, "tcp", s.addr, redis.DialContextFunc(dialFn),
		redis.DialReadTimeout(s.ReadTimeout), redis.DialWriteTimeout(s.WriteTimeout))
	if err != nil {
		return nil, err
	}
	inner, ok := rc.(redigoConn)
	if !ok || nc == nil {
		_ = rc.Close()
		return nil, fmt.Errorf("redigopool: redigo's connection (%T) lacks DoWithTimeout or DoContext", rc)
	}
	c := &conn{inner: inner, nc: nc}
	c.markProven()
	return c, nil
}

// afterConnect sets up the session: AUTH, SELECT and CLIENT SETNAME, sent
// together and read together (one round trip), under the dial's context.
// redigo's DoContext closes the connection if ctx ends first; the dial has
// failed then anyway.
func (s *settings) afterConnect(ctx context.Context, v redis.Conn) error {
	c, ok := v.(*conn)
	if !ok {
		return errForeign
	}
	user, pass := s.Username, s.Password
	if s.Credentials != nil {
		var err error
		if user, pass, err = s.Credentials(ctx); err != nil {
			return fmt.Errorf("redigopool: credentials: %w", err)
		}
	}
	var sent []string
	send := func(what, cmd string, args ...any) error {
		sent = append(sent, what)
		return c.inner.Send(cmd, args...)
	}
	var err error
	if pass != "" {
		if user != "" {
			err = send("AUTH", "AUTH", user, pass)
		} else {
			err = send("AUTH", "AUTH", pass)
		}
	}
	if err == nil && s.DB != 0 {
		err = send("SELECT", "SELECT", s.DB)
	}
	if err == nil && s.ClientName != "" {
		err = send("CLIENT SETNAME", "CLIENT", "SETNAME", s.ClientName)
	}
	if err != nil || len(sent) == 0 {
		return err
	}
	replies, err := redis.Values(c.inner.DoContext(ctx, ""))
	if err != nil {
		return fmt.Errorf("redigopool: session setup: %w", err)
	}
	for i, r := range replies {
		if re, ok := r.(redis.Error); ok {
			return fmt.Errorf("redigopool: session setup: %s: %w", sent[i], re)
		}
	}
	return nil
}

// check is the pool's Check: the connection's own error, then the peek, then
// a PING if the connection has not been seen working for PingIdle.
//
// What it honours of ctx: an ended ctx stops it before any I/O, and the PING
// reads under ctx's deadline (or PingTimeout, the sooner). It does not
// interrupt a PING in flight when ctx is cancelled: redigo can do that only
// by running the command in a goroutine and closing the connection
// (DoContext), which would turn a cancelled Acquire into a lost healthy
// connection. A cancelled Acquire waits one round trip at most instead.
func (s *settings) check(ctx context.Context, v redis.Conn) error {
	c, ok := v.(*conn)
	if !ok {
		return errForeign
	}
	if err := c.inner.Err(); err != nil {
		return err
	}
	if err := netconn.Alive(ctx, c.nc); err != nil {
		return err
	}
	if s.PingIdle < 0 || c.unproven() < s.PingIdle {
		return nil
	}
	if err := ping(ctx, c.inner, s.PingTimeout); err != nil {
		return err
	}
	c.markProven()
	return nil
}

// ping sends PING and reads the reply under ctx's deadline or limit, the
// sooner. An error reply (BUSY, LOADING, MASTERDOWN) passes: the server
// answered, so the connection works, and the server's condition would not be
// cured by dropping it.
func ping(ctx context.Context, c redis.ConnWithTimeout, limit time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := limit
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	r, err := c.DoWithTimeout(timeout, "PING")
	var re redis.Error
	switch {
	case errors.As(err, &re):
		return nil
	case err != nil:
		return err
	case r != "PONG":
		return fmt.Errorf("redigopool: PING answered %v", r)
	}
	return nil
}

// afterRelease is the pool's AfterRelease: it keeps a connection only if
// Reusable says so, and notes that its holder saw it working.
func afterRelease(v redis.Conn) bool {
	if Reusable(v) != nil {
		return false
	}
	if c, ok := v.(*conn); ok {
		c.markProven()
	}
	return true
}

// Reusable returns nil if a connection may go back to the pool, or why not:
// its own error (redigo closed it after a network error, a timeout, a
// cancelled DoContext or a protocol error), or an error wrapping
// ErrSessionState when its holder left it inside MULTI, with WATCHes, with
// replies unread (Send without Receive), subscribed, monitoring, or with a
// session setting changed (SELECT, AUTH, HELLO, RESET, CLIENT REPLY,
// CLIENT TRACKING). Of a connection this package did not dial it checks only
// the error. It reads fields, no I/O.
//
// The pool's AfterRelease refuses such a connection: it is closed and
// replaced by a fresh dial. redigo's own pool cleans up instead (DISCARD,
// UNWATCH, UNSUBSCRIBE, then a round trip to read what is left), which keeps
// the connection at the cost of a round trip on every release that needs
// it; a holder that leaves a transaction open has a bug, and a redial makes
// it visible in Stats (Closed.Vetoed) without slowing every release.
func Reusable(v redis.Conn) error {
	if err := v.Err(); err != nil {
		return fmt.Errorf("redigopool: connection broken: %w", err)
	}
	c, ok := v.(*conn)
	if !ok {
		return nil
	}
	var why []string
	for _, f := range []struct {
		bit  state
		what string
	}{
		{inMulti, "inside MULTI"},
		{watching, "with WATCHed keys"},
		{subscribed, "subscribed (Hijack pub/sub connections)"},
		{monitoring, "in MONITOR"},
		{changed, "with a session setting changed (SELECT, AUTH, HELLO, RESET or CLIENT REPLY/TRACKING)"},
	} {
		if c.st&f.bit != 0 {
			why = append(why, f.what)
		}
	}
	if c.pending > 0 {
		why = append(why, fmt.Sprintf("with %d replies unread", c.pending))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrSessionState, strings.Join(why, ", "))
}

// IsBroken is the pool's IsBroken: it reports whether an error of an
// AcquireFunc function means its connection must be destroyed rather than
// released:
//   - network errors, timeouts included (redigo closes a connection whose
//     read or write failed or timed out): net.Error, io.EOF,
//     io.ErrUnexpectedEOF, net.ErrClosed;
//   - READONLY and MASTERDOWN replies: the connection works, but the server
//     behind it is no longer a primary that can serve it (a failover); a
//     fresh dial may reach the new one.
//
// Other error replies (WRONGTYPE, NOSCRIPT, …), redis.ErrNil, conversion
// errors and context errors are not claimed. IsBroken sees only the error,
// and a context error may come from f's own code as well as from a DoContext
// that closed the connection; such a connection, or one broken by a protocol
// error, is caught on release by AfterRelease, which asks the connection
// itself (Reusable).
func IsBroken(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		return strings.HasPrefix(string(re), "READONLY") || strings.HasPrefix(string(re), "MASTERDOWN")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// context.DeadlineExceeded is a net.Error too, but it may come from
		// f's own code as well as from DoContext: the connection knows.
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}
