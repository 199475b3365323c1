package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	took := Until(t, "three looks", time.Minute, func() bool { return n.Add(1) == 3 })
	if n.Load() != 3 || took < 2*Every {
		t.Errorf("looked %d times in %v, want 3 looks and two pauses", n.Load(), took)
	}
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestUntilFailsTheTestAfterWithin(t *testing.T) {
	tb := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != tb {
				t.Fatalf("recovered %v, want the fake's Fatalf", r)
			}
		}()
		Until(tb, "never", 20*time.Millisecond, func() bool { return false })
	}()
	if tb.failed == "" {
		t.Error("Until did not fail the test when the condition never held")
	}
}
