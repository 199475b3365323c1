package netconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// tlsDrainWindow bounds how long Alive reads pending TLS records. The records
// are already on this host, so processing them takes microseconds; the window
// only matters when an incomplete record is waiting, and then Alive reports
// the connection alive and looks again at the next check.
const tlsDrainWindow = 5 * time.Millisecond

// drainTLS reads records waiting on tc through TLS, under a short read
// deadline, and says what they were.
func drainTLS(ctx context.Context, tc *tls.Conn) error {
	dl := time.Now().Add(tlsDrainWindow)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	if err := tc.SetReadDeadline(dl); err != nil {
		return err
	}
	var buf [1]byte
	n, err := tc.Read(buf[:])
	if derr := tc.SetReadDeadline(time.Time{}); derr != nil && err == nil && n == 0 {
		return derr
	}
	switch {
	case n > 0:
		return ErrUnexpectedData
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Only handshake messages (or part of a record) were waiting.
		return nil
	case errors.Is(err, io.EOF):
		return errPeerClosedEOF
	case errors.Is(err, syscall.ECONNRESET):
		return &joinErr{kind: ErrPeerReset, cause: syscall.ECONNRESET}
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
}
