package bench

import (
	"os"
	"testing"

	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

// TestMain stops the servers the S8 tests and benchmarks started (one of each
// per test binary, on first use; see pgtest.Shared).
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	redistest.StopShared()
	os.Exit(code)
}
