//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package netconn

import (
	"errors"
	"net"
	"os"
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

func peekRaw(rc syscall.RawConn) error {
	var (
		buf   [1]byte
		n     int
		errno error
	)
	rerr := rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errno != syscall.EINTR {
				break
			}
		}
		// Always true: the callback runs exactly once and RawConn.Read
		// returns at once. Returning false would park this goroutine
		// until the socket became readable, i.e. block until the peer
		// sends or closes.
		return true
	})
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
