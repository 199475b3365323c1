package pgxconnpool_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidepool-go/tidepool"
	pgxconnpool "github.com/tidepool-go/tidepool/examples/pgx"
)

// The shortest use: a pool with tidepool's defaults; AcquireFunc releases the
// connection, or destroys it when the function's error is one IsBroken
// recognises.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxconnpool.New(ctx, dsn(), pgxconnpool.Options{ApplicationName: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	err = pool.AcquireFunc(ctx, func(c *pgx.Conn) error {
		var name string
		err := c.QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&name)
		fmt.Println(name)
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: example
}

// Config gives the tidepool.Config with every hook set; the pool's sizes,
// name and logger are the caller's. Statements listed in Prepare are ready on
// every connection, by name.
func ExampleConfig() {
	ctx := context.Background()
	cc, err := pgx.ParseConfig(dsn())
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := pgxconnpool.Config(cc, pgxconnpool.Options{
		ApplicationName: "billing",
		Prepare:         map[string]string{"add": "SELECT $1::int + $2::int"},
	})
	cfg.Name = "pg-billing"
	cfg.MaxSize = 16
	cfg.MinIdle = 2
	cfg.MaxLifetime = time.Hour
	cfg.MaxIdleTime = 10 * time.Minute
	pool, err := tidepool.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	err = pool.AcquireFunc(ctx, func(c *pgx.Conn) error {
		var sum int
		err := c.QueryRow(ctx, "add", 40, 2).Scan(&sum)
		fmt.Println(sum)
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: 42
}

// A transaction committed or rolled back leaves the connection reusable; one
// left open is refused on release (AfterRelease) and replaced, so the next
// holder never runs inside it.
func Example_transaction() {
	ctx := context.Background()
	pool, err := pgxconnpool.New(ctx, dsn(), pgxconnpool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := h.Value().Begin(ctx); err != nil { // and then forgets Commit
		fmt.Println(err)
	}
	fmt.Println(pgxconnpool.Reusable(h.Value()))
	h.Release() // refused: closed, not put back

	err = pool.AcquireFunc(ctx, func(c *pgx.Conn) error {
		fmt.Printf("next holder's status: %c\n", c.PgConn().TxStatus())
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// pgxconnpool: connection left in a session state: inside a transaction (status 'T')
	// next holder's status: I
}

// LISTEN holds its connection for as long as it listens: Hijack takes it out
// of the pool for good (the slot is freed at once), and closing it is the
// caller's job.
func Example_listen() {
	ctx := context.Background()
	pool, err := pgxconnpool.New(ctx, dsn(), pgxconnpool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	listener := h.Hijack()
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN tides"); err != nil {
		fmt.Println(err)
		return
	}

	err = pool.AcquireFunc(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SELECT pg_notify('tides', 'high at 6')")
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.Channel+":", n.Payload)
	fmt.Println("hijacked:", pool.Stats().Hijacked)
	// Output:
	// tides: high at 6
	// hijacked: 1
}

// IsBroken and pgconn.SafeToRetry answer two questions: is the connection
// gone, and may the work be retried on another one.
func ExampleIsBroken() {
	closed := fmt.Errorf("query: %w", pgconn.ErrConnClosed)
	fmt.Println(pgxconnpool.IsBroken(closed))
	fmt.Println(pgxconnpool.IsBroken(&pgconn.PgError{Severity: "ERROR", Code: "23505"})) // unique_violation
	fmt.Println(pgxconnpool.IsBroken(&pgconn.PgError{Severity: "FATAL", Code: "57P01"})) // admin_shutdown
	fmt.Println(pgxconnpool.IsBroken(errors.New("application error")))
	// Output:
	// true
	// false
	// true
	// false
}
