package demobackend

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrProtocol is wrapped by RoundTrip's errors when the reply is malformed.
var ErrProtocol = errors.New("demobackend: protocol error")

// maxReply bounds one reply line.
const maxReply = 4096

// RoundTrip is the client side of the protocol: it writes request (without its
// newline) on c and returns the reply line (without its newline). It keeps no
// state between calls, so any net.Conn speaking a line protocol with one reply
// per request works. Deadlines are the caller's: set them on c.
func RoundTrip(c net.Conn, request string) (string, error) {
	if strings.ContainsAny(request, "\r\n") {
		return "", fmt.Errorf("%w: request %q holds a newline", ErrProtocol, request)
	}
	if _, err := c.Write([]byte(request + "\n")); err != nil {
		return "", err
	}
	var buf [maxReply]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			if i != n-1 {
				return "", fmt.Errorf("%w: %d unexpected bytes after the reply", ErrProtocol, n-1-i)
			}
			return strings.TrimRight(string(buf[:i]), "\r"), nil
		}
		if err != nil {
			return "", err
		}
		if n == len(buf) {
			return "", fmt.Errorf("%w: reply longer than %d bytes", ErrProtocol, maxReply)
		}
	}
}
