package pgxconnpool_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool/examples/internal/testserver"
)

// shared is the PostgreSQL server of the whole test binary (initdb takes a
// second or two, so the tests and Examples share one; each test uses its own
// pools and tables).
var shared *testserver.Postgres

func TestMain(m *testing.M) {
	os.Exit(testserver.Main(m, func() (func(), error) {
		s, err := testserver.LaunchPostgres(context.Background())
		if err != nil {
			return nil, err
		}
		shared = s
		return s.Close, nil
	}))
}

// dsn returns the shared server's connection string for the Examples.
func dsn() string { return shared.DSN() }

// serverFor returns the shared server's connection string for a test, or
// skips it (fails it under CI) when PostgreSQL is not installed.
func serverFor(t testing.TB) string {
	t.Helper()
	if shared == nil {
		_, err := testserver.FindPostgres()
		testserver.Missing(t, "no PostgreSQL server for this test: "+err.Error())
	}
	return shared.DSN()
}

// admin opens a connection of the test's own (an operator's, not a pooled
// one), closed at cleanup.
func admin(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), serverFor(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
