package netconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"

	"github.com/tidepool-go/tidepool"
)

// Errors returned by Alive, for errors.Is.
var (
	// ErrPeerClosed: the peer closed the connection (TCP FIN, a closed unix
	// socket, or a TLS close_notify). The error also wraps io.EOF.
	ErrPeerClosed = errors.New("netconn: peer closed the connection")
	// ErrPeerReset: the peer reset the connection (TCP RST). The error also
	// wraps syscall.ECONNRESET.
	ErrPeerReset = errors.New("netconn: peer reset the connection")
	// ErrUnexpectedData: an idle connection has unread data waiting. The peer
	// is alive, but whatever it sent belongs to no request the pool knows of:
	// the protocol is out of step, and the connection must not be reused.
	ErrUnexpectedData = errors.New("netconn: unexpected data on an idle connection")
	// ErrUnsupported: Alive cannot look at this connection (it does not
	// implement syscall.Conn, or the platform has no non-blocking peek).
	ErrUnsupported = errors.New("netconn: liveness check not supported for this connection")
)

// Options says where and how Config dials.
type Options struct {
	// Network is "tcp" (the default, also "tcp4", "tcp6") or "unix".
	Network string
	// Address is the host:port, or the socket path for "unix".
	Address string
	// TLS, when set, makes Dial run a TLS client handshake (within the dial's
	// context) after connecting. If TLS.ServerName is empty it is taken from
	// Address's host, as crypto/tls.Dialer does.
	TLS *tls.Config
	// Dialer, when set, is used for the connect (timeouts, keep-alive, local
	// address, Control). Default: a zero net.Dialer; the pool's DialTimeout
	// bounds each dial either way.
	Dialer *net.Dialer
}

// Config returns a tidepool.Config for net.Conn connections described by o:
// Dial connects (and handshakes, with TLS) under the pool's dial context,
// Close closes, Check is Alive, and CheckOnAcquire is on: every idle
// connection is peeked at before it is handed out (one system call, about a
// microsecond), so that a connection the server closed while it sat idle (a
// restart, an idle timeout) is retired instead of handed out. Set
// CheckOnAcquireIdle to peek only at connections idle that long. Set the
// pool's sizes and intervals on the result before passing it to tidepool.New.
func Config(o Options) tidepool.Config[net.Conn] {
	network := o.Network
	if network == "" {
		network = "tcp"
	}
	d := o.Dialer
	if d == nil {
		d = new(net.Dialer)
	}
	dial := d.DialContext
	if o.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: o.TLS}
		dial = td.DialContext
	}
	addr := o.Address
	return tidepool.Config[net.Conn]{
		Dial: func(ctx context.Context) (net.Conn, error) {
			return dial(ctx, network, addr)
		},
		Close:          func(c net.Conn) error { return c.Close() },
		Check:          Alive,
		CheckOnAcquire: true,
	}
}

// Alive reports whether an idle connection is still usable, without blocking
// and without consuming data: it peeks at the socket with one non-blocking
// recvfrom(MSG_PEEK|MSG_DONTWAIT). It returns
//   - nil when nothing is waiting (the peer has sent nothing, FIN included);
//   - an error wrapping ErrPeerClosed and io.EOF when the peer closed;
//   - an error wrapping ErrPeerReset and syscall.ECONNRESET when it reset;
//   - an error wrapping ErrUnexpectedData when data is waiting;
//   - ctx's error if ctx has ended, ErrUnsupported for connections without
//     a file descriptor (net.Pipe, wrappers that hide it), and any other
//     socket error as is (it wraps the syscall.Errno).
//
// It can only see what has reached this host's socket: a peer that vanished
// without a FIN or RST (power loss, a dropped route, a NAT that forgot the
// flow) looks alive until TCP keep-alive or a real request notices. A peer
// that sent data and then closed is reported as ErrUnexpectedData, not
// ErrPeerClosed: the data comes first in the stream.
//
// If the connection's read deadline has passed, Alive clears it (sets no
// deadline) so that it can look; pooled connections should set their own
// deadlines for each use anyway.
//
// TLS (*tls.Conn): the bytes on the socket are encrypted records, so a peek
// cannot tell application data from a close_notify alert or from the
// post-handshake messages every TLS 1.3 server sends unasked (session
// tickets). With nothing on the socket, Alive behaves as for plain TCP (FIN
// and RST are seen). With records waiting, it reads them through the
// tls.Conn under a read deadline of a few milliseconds: session tickets and
// key updates are absorbed as tls.Conn would absorb them and the connection
// is alive; a close_notify gives ErrPeerClosed; application data gives
// ErrUnexpectedData — and that byte is consumed, which is harmless because
// the connection must be discarded. Alive cannot see plaintext or records
// that tls.Conn has already buffered inside itself with nothing new on the
// socket, nor a FIN queued behind an incomplete record. It never starts a
// handshake: a tls.Conn whose handshake has not completed is only peeked at.
//
// Alive must not run while another goroutine reads from c; in a tidepool
// pool it runs on idle connections only, which guarantees that.
func Alive(ctx context.Context, c net.Conn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return aliveTLS(ctx, tc)
	}
	return peek(c)
}

// aliveTLS is Alive for *tls.Conn: peek at the socket underneath, and drain
// pending records through TLS when there are some.
func aliveTLS(ctx context.Context, tc *tls.Conn) error {
	err := peek(tc.NetConn())
	if !errors.Is(err, ErrUnexpectedData) || !tc.ConnectionState().HandshakeComplete {
		return err
	}
	return drainTLS(ctx, tc)
}

// joinErr is an error that matches two sentinels: one of ours and the
// underlying cause (io.EOF, an errno).
type joinErr struct {
	kind, cause error
}

func (e *joinErr) Error() string   { return e.kind.Error() + ": " + e.cause.Error() }
func (e *joinErr) Unwrap() []error { return []error{e.kind, e.cause} }

var errPeerClosedEOF = &joinErr{kind: ErrPeerClosed, cause: io.EOF}
