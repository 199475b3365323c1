// Package poll waits, in tests, for a condition on something that runs in real
// time: a real server, another process, the kernel's sockets. There is no
// event to wait on there and testing/synctest cannot fake their clocks, so the
// only way is to look again every few milliseconds. Code whose time is the
// pool's own uses synctest instead; this package is the one place the
// repository's tests sleep to wait. Part of tidepool's test support, not its
// API.
package poll

import (
	"testing"
	"time"
)

// Every is how long Until sleeps between two looks.
const Every = 5 * time.Millisecond

// Wait calls cond every few milliseconds until it reports true or within
// passes. It reports whether cond held, and how long it waited.
func Wait(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(Every)
	}
	return time.Since(start), true
}

// Until is Wait that fails tb, naming what it waited for, when within passes
// first. It returns how long the wait took.
func Until(tb testing.TB, what string, within time.Duration, cond func() bool) time.Duration {
	tb.Helper()
	took, ok := Wait(within, cond)
	if !ok {
		tb.Fatalf("timed out after %v waiting for %s", within, what)
	}
	return took
}
