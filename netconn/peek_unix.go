//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package netconn

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// peek looks at c's socket with one non-blocking recvfrom(MSG_PEEK).
func peek(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return &joinErr{kind: ErrUnsupported, cause: err}
	}
	err = peekRaw(rc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A read deadline set by the last holder has passed; the runtime
		// refuses raw reads until it is moved. Clear it and look again.
		if derr := c.SetReadDeadline(time.Time{}); derr != nil {
			return derr
		}
		err = peekRaw(rc)
	}
	return err
}

// peeker holds one peek's buffer and results, and the callback bound to them
// once: recycled through peekers, so that a peek allocates nothing but what
// SyscallConn does.
type peeker struct {
	buf   [1]byte
	n     int
	errno error
	fn    func(fd uintptr) bool
}

var peekers = sync.Pool{New: func() any {
	p := new(peeker)
	p.fn = func(fd uintptr) bool {
		for {
			p.n, _, p.errno = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if p.errno != syscall.EINTR {
				break
			}
		}
		// Always true: the callback runs exactly once and RawConn.Read
		// returns at once. Returning false would park this goroutine
		// until the socket became readable, i.e. block until the peer
		// sends or closes.
		return true
	}
	return p
}}

func peekRaw(rc syscall.RawConn) error {
	p := peekers.Get().(*peeker)
	rerr := rc.Read(p.fn)
	n, errno := p.n, p.errno
	p.errno = nil
	peekers.Put(p)
	if rerr != nil {
		return rerr // closed locally (net.ErrClosed), deadline, ...
	}
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK:
		return nil
	case errno == syscall.ECONNRESET:
		return &joinErr{kind: ErrPeerReset, cause: errno}
	case errno != nil:
		return os.NewSyscallError("recvfrom", errno)
	case n == 0:
		return errPeerClosedEOF
	default:
		return ErrUnexpectedData
	}
}
