package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidepool-go/tidepool"
)

// S8 against PostgreSQL: *pgx.Conn connections pooled by tidepool and by
// pgxpool, the pool pgx ships. Both dial from the same parsed DSN, so both hold
// the same kind of connection with the same statement cache.

// PgSpec returns the Spec of size *pgx.Conn connections to dsn.
func PgSpec(dsn string, size int) (Spec[*pgx.Conn], error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return Spec[*pgx.Conn]{}, err
	}
	return Spec[*pgx.Conn]{
		Size: size,
		Dial: func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg) },
		Close: func(c *pgx.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Close(ctx)
		},
	}, nil
}

// NewPgTidepool returns a tidepool of size pgx connections to dsn, all dialed,
// configured by S8Tidepool with a Ping as its check.
func NewPgTidepool(ctx context.Context, dsn string, size int) (Pool[*pgx.Conn, tidepool.Conn[*pgx.Conn]], error) {
	spec, err := PgSpec(dsn, size)
	if err != nil {
		return nil, err
	}
	return TidepoolWith(S8Tidepool(func(ctx context.Context, c *pgx.Conn) error { return c.Ping(ctx) }))(ctx, spec)
}

// Pgxpool adapts a *pgxpool.Pool. Its handle is the *pgxpool.Conn; Value is
// the *pgx.Conn inside.
type Pgxpool struct {
	P *pgxpool.Pool
}

// NewPgxpool returns a pgxpool of size connections to dsn (MaxConns = MinConns
// = size, every other setting pgxpool's default), all dialed before it returns.
func NewPgxpool(ctx context.Context, dsn string, size int) (Pool[*pgx.Conn, *pgxpool.Conn], error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = int32(size), int32(size)
	pp, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Pgxpool{P: pp}
	if err := prefill(ctx, p, size); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Get calls Acquire.
func (p *Pgxpool) Get(ctx context.Context) (*pgxpool.Conn, error) { return p.P.Acquire(ctx) }

// Put calls Release.
func (p *Pgxpool) Put(c *pgxpool.Conn) { c.Release() }

// Value returns the *pgx.Conn.
func (p *Pgxpool) Value(c *pgxpool.Conn) *pgx.Conn { return c.Conn() }

// Close closes the pool.
func (p *Pgxpool) Close() { p.P.Close() }

// PgRows is the number of rows of S8's table.
const PgRows = 64

// PgSetup creates S8's table, bench_rows(id, name, n), with PgRows rows, unless
// it exists. It is idempotent, so every round of run.sh can call it against
// the same server.
func PgSetup(ctx context.Context, dsn string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_rows (id int PRIMARY KEY, name text NOT NULL, n bigint NOT NULL)`)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, `INSERT INTO bench_rows SELECT i, 'row ' || i, 0 FROM generate_series(1, $1::int) i ON CONFLICT (id) DO NOTHING`, PgRows)
	return err
}

// PgRow is one row of S8's table.
type PgRow struct {
	ID   int32
	Name string
	N    int64
}

// PgSelect is S8's read: one small row by primary key (id in 1..PgRows), with
// pgx's default statement cache (prepared once per connection).
func PgSelect(ctx context.Context, c *pgx.Conn, id int32) (PgRow, error) {
	var r PgRow
	err := c.QueryRow(ctx, `SELECT id, name, n FROM bench_rows WHERE id = $1`, id).Scan(&r.ID, &r.Name, &r.N)
	return r, err
}

// PgTx is S8's short transaction: BEGIN; UPDATE the row's counter; SELECT it;
// COMMIT. It returns the counter after the update.
func PgTx(ctx context.Context, c *pgx.Conn, id int32) (int64, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	if _, err := tx.Exec(ctx, `UPDATE bench_rows SET n = n + 1 WHERE id = $1`, id); err != nil {
		return 0, err
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT n FROM bench_rows WHERE id = $1`, id).Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// PgOp returns S8's Postgres op by name ("select" or "tx") as a function of
// the connection and the goroutine's index; each goroutine uses its own row.
func PgOp(name string) (func(ctx context.Context, c *pgx.Conn, g int) error, error) {
	switch name {
	case "select":
		return func(ctx context.Context, c *pgx.Conn, g int) error {
			id := int32(g%PgRows + 1)
			r, err := PgSelect(ctx, c, id)
			if err == nil && r.ID != id {
				err = fmt.Errorf("select of row %d returned row %d", id, r.ID)
			}
			return err
		}, nil
	case "tx":
		return func(ctx context.Context, c *pgx.Conn, g int) error {
			_, err := PgTx(ctx, c, int32(g%PgRows+1))
			return err
		}, nil
	}
	return nil, fmt.Errorf("bench: no Postgres op %q", name)
}
