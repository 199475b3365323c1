//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package netconn

import "net"

// peek is not implemented here: this platform's package syscall has no
// portable non-blocking MSG_PEEK.
func peek(net.Conn) error { return ErrUnsupported }
