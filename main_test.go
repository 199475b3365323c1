package tidepool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every pool a
// test creates must leave nothing behind once it is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
