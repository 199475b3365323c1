package pgtest_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
)

// Start a throwaway server, use it, stop it. In a test, pgtest.ForTest (or
// Shared) does the same and skips when PostgreSQL is not installed.
func ExampleStart() {
	ctx := context.Background()
	s, err := pgtest.Start(ctx)
	if err != nil {
		fmt.Println(err) // wraps pgtest.ErrNotInstalled without the binaries
		return
	}
	defer s.Stop()
	c, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)
	var one int
	_ = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	fmt.Println(one)
}
