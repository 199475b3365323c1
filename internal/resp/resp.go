package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// Reply kinds, the first byte of a RESP2 reply.
const (
	KindSimple = '+' // simple string
	KindError  = '-' // error
	KindInt    = ':' // integer
	KindBulk   = '$' // bulk string (Nil when length is -1)
	KindArray  = '*' // array (Nil when length is -1)
)

// maxBulk caps a single bulk string or array length, so a corrupt or hostile
// peer cannot make the client allocate without bound.
const maxBulk = 512 << 20

// maxDepth caps array nesting.
const maxDepth = 32

// ErrProtocol reports a reply that is not valid RESP2. A Conn that returned
// it is desynchronised and must be closed (destroyed, when pooled).
var ErrProtocol = errors.New("resp: protocol error")

// ErrUnexpectedReply reports a well-formed reply that is not the one a
// command expects (for example PING not answered with +PONG).
var ErrUnexpectedReply = errors.New("resp: unexpected reply")

// Error is a Redis error reply ('-'), as returned by Reply.Err.
type Error struct {
	// Msg is the error line without the leading '-', e.g.
	// "ERR max number of clients reached".
	Msg string
}

// Error implements error.
func (e *Error) Error() string { return "redis: " + e.Msg }

// Reply is one parsed RESP2 reply.
type Reply struct {
	// Kind is the reply type byte: '+', '-', ':', '$' or '*'.
	Kind byte
	// Str holds simple strings, error messages and bulk strings.
	Str string
	// Int holds integer replies.
	Int int64
	// Array holds the elements of an array reply.
	Array []Reply
	// Nil is true for the null bulk string ($-1) and null array (*-1).
	Nil bool
}

// Err returns a *Error for an error reply ('-') and nil otherwise.
func (r Reply) Err() error {
	if r.Kind == KindError {
		return &Error{Msg: r.Str}
	}
	return nil
}

// Conn is one RESP2 connection. It is not safe for concurrent use.
type Conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// Dial connects to a Redis server at addr over network ("tcp" or "unix"),
// honouring ctx for the connect. It does not send any command.
func Dial(ctx context.Context, network, addr string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return NewConn(nc), nil
}

// NewConn wraps an established net.Conn. The Conn takes ownership of nc.
func NewConn(nc net.Conn) *Conn {
	return &Conn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}
}

// NetConn returns the underlying net.Conn, e.g. for netconn.Alive.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Do sends one command and reads its reply. A Redis error reply is returned
// as a Reply with Kind '-' and a nil error (use Reply.Err); the returned
// error is non-nil only for I/O, deadline and protocol failures, after which
// the Conn must not be reused.
//
// The ctx deadline, if any, is applied with SetDeadline for the whole
// round trip; cancellation without a deadline also interrupts the I/O.
func (c *Conn) Do(ctx context.Context, args ...string) (Reply, error) {
	if len(args) == 0 {
		return Reply{}, errors.New("resp: Do needs a command")
	}
	if err := ctx.Err(); err != nil {
		return Reply{}, err
	}
	dl, _ := ctx.Deadline()
	if err := c.nc.SetDeadline(dl); err != nil {
		return Reply{}, err
	}
	if ctx.Done() != nil {
		// Interrupt blocked I/O on cancellation by moving the deadline
		// into the past. If the callback already started, wait for it
		// so it cannot clobber the deadline of a later Do.
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = c.nc.SetDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
			}
		}()
	}
	r, err := c.roundTrip(args)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Reply{}, fmt.Errorf("resp: %w: %w", ctxErr, err)
		}
		if !dl.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
			// The socket deadline is the ctx deadline; the socket may
			// notice it a moment before the context does.
			return Reply{}, fmt.Errorf("resp: %w: %w", context.DeadlineExceeded, err)
		}
		return Reply{}, err
	}
	return r, nil
}

func (c *Conn) roundTrip(args []string) (Reply, error) {
	c.bw.WriteByte('*')
	c.bw.WriteString(strconv.Itoa(len(args)))
	c.bw.WriteString("\r\n")
	for _, a := range args {
		c.bw.WriteByte('$')
		c.bw.WriteString(strconv.Itoa(len(a)))
		c.bw.WriteString("\r\n")
		c.bw.WriteString(a)
		c.bw.WriteString("\r\n")
	}
	if err := c.bw.Flush(); err != nil {
		return Reply{}, err
	}
	return c.readReply(0)
}

// Ping sends PING and expects +PONG. A Redis error reply (for example
// "-ERR max number of clients reached", or -LOADING) is returned as *Error.
func (c *Conn) Ping(ctx context.Context) error {
	r, err := c.Do(ctx, "PING")
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	if r.Kind != KindSimple || r.Str != "PONG" {
		return fmt.Errorf("%w: PING answered %q %q", ErrUnexpectedReply, r.Kind, r.Str)
	}
	return nil
}

func (c *Conn) readLine() (string, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("%w: line too long", ErrProtocol)
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("%w: line not terminated by CRLF", ErrProtocol)
	}
	return string(line[:len(line)-2]), nil
}

func (c *Conn) readReply(depth int) (Reply, error) {
	if depth > maxDepth {
		return Reply{}, fmt.Errorf("%w: arrays nested too deep", ErrProtocol)
	}
	line, err := c.readLine()
	if err != nil {
		return Reply{}, err
	}
	if len(line) == 0 {
		return Reply{}, fmt.Errorf("%w: empty line", ErrProtocol)
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case KindSimple, KindError:
		return Reply{Kind: kind, Str: rest}, nil
	case KindInt:
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: bad integer %q", ErrProtocol, rest)
		}
		return Reply{Kind: kind, Int: n}, nil
	case KindBulk:
		n, err := parseLen(rest)
		if err != nil {
			return Reply{}, err
		}
		if n < 0 {
			return Reply{Kind: kind, Nil: true}, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Reply{}, fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
		}
		return Reply{Kind: kind, Str: string(buf[:n])}, nil
	case KindArray:
		n, err := parseLen(rest)
		if err != nil {
			return Reply{}, err
		}
		if n < 0 {
			return Reply{Kind: kind, Nil: true}, nil
		}
		arr := make([]Reply, 0, min(n, 1024))
		for range n {
			el, err := c.readReply(depth + 1)
			if err != nil {
				return Reply{}, err
			}
			arr = append(arr, el)
		}
		return Reply{Kind: kind, Array: arr}, nil
	default:
		return Reply{}, fmt.Errorf("%w: unknown reply type %q", ErrProtocol, kind)
	}
}

func parseLen(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > maxBulk {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, s)
	}
	return n, nil
}
