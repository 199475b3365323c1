package pgxpoolsuite

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidepool-go/tidepool"
)

// Conn is pgxpool.Conn: a tidepool handle, spent by Release or Hijack.
type Conn struct {
	h    tidepool.Conn[*pgx.Conn]
	p    *Pool
	done bool
}

// Release gives the connection back (tidepool's Release, whose AfterRelease
// destroys a closed or busy connection, or one inside a transaction). Calling
// it again does nothing, as with pgxpool.
func (c *Conn) Release() {
	if c.done {
		return
	}
	c.done = true
	if t := c.p.releaseTracer; t != nil {
		t.TraceRelease(c.p, TraceReleaseData{Conn: c.h.Value()})
	}
	c.h.Release()
}

// Hijack takes the connection out of the pool for good (tidepool's Hijack).
// It panics on a released or hijacked Conn, with pgxpool's message.
func (c *Conn) Hijack() *pgx.Conn {
	if c.done {
		panic("cannot hijack already released or hijacked connection")
	}
	c.done = true
	return c.h.Hijack()
}

// Conn returns the *pgx.Conn.
func (c *Conn) Conn() *pgx.Conn { return c.h.Value() }

// Exec runs sql.
func (c *Conn) Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error) {
	return c.Conn().Exec(ctx, sql, arguments...)
}

// Query runs sql.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.Conn().Query(ctx, sql, args...)
}

// QueryRow runs sql.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.Conn().QueryRow(ctx, sql, args...)
}

// SendBatch sends b.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return c.Conn().SendBatch(ctx, b)
}

// CopyFrom runs a COPY.
func (c *Conn) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	return c.Conn().CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// Begin starts a transaction.
func (c *Conn) Begin(ctx context.Context) (pgx.Tx, error) { return c.Conn().Begin(ctx) }

// BeginTx starts a transaction with txOptions.
func (c *Conn) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	return c.Conn().BeginTx(ctx, txOptions)
}

// Ping pings the server.
func (c *Conn) Ping(ctx context.Context) error { return c.Conn().Ping(ctx) }
