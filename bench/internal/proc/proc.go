package proc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

// FreePort asks the kernel for a free TCP port on 127.0.0.1 by binding port 0
// and closing the listener. Another process may take the port before the
// caller binds it, so callers retry with a new port when their bind fails.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Buffer collects a child process's output; the copier goroutine of os/exec
// writes it while the caller reads it. Safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far ("" for a nil Buffer).
func (l *Buffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Missing reports that a server binary a test or benchmark needs is not
// installed: a benchmark, or a test outside CI, is skipped with msg; a test
// under CI (the CI environment variable is set) fails, so that a CI script
// that forgot to install the server cannot pass by skipping.
//
// The testing package prints a skipped benchmark's message only under -v, so
// without -v Missing also writes it to stderr: a user who runs the S8
// benchmarks without a server learns why they printed nothing.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	_, isBench := tb.(*testing.B)
	if !isBench && os.Getenv("CI") != "" {
		tb.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	if isBench && !testing.Verbose() {
		fmt.Fprintf(os.Stderr, "--- SKIP: %s: %s\n", tb.Name(), msg)
	}
	tb.Skip(msg)
}
