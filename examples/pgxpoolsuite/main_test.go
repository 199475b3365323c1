package pgxpoolsuite_test

import (
	"context"
	"os"
	"testing"

	"github.com/tidepool-go/tidepool/examples/internal/testserver"
)

// TestMain starts one PostgreSQL server for the whole suite and hands it to
// pgx's tests the way pgx's CI does, through PGX_TEST_DATABASE; it stops it
// at the end and checks (testserver.Main) that no goroutine is left.
func TestMain(m *testing.M) {
	os.Exit(testserver.Main(m, func() (func(), error) {
		s, err := testserver.LaunchPostgres(context.Background())
		if err != nil {
			return nil, err
		}
		if err := os.Setenv("PGX_TEST_DATABASE", s.DSN()); err != nil {
			s.Close()
			return nil, err
		}
		return s.Close, nil
	}))
}
