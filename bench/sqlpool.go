package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

// SQLPool adapts database/sql's connection pool through a tiny fake driver:
// Get is db.Conn(ctx), Put is conn.Close(). MaxOpenConns and MaxIdleConns are
// both spec.Size. Resize raises MaxOpenConns — but database/sql does not dial
// for requests already waiting when the limit rises (SetMaxOpenConns opens
// nothing), which S6 shows.
type SQLPool[R any] struct {
	DB *sql.DB
}

// NewSQLPool opens a *sql.DB over spec's connections and dials spec.Size of them.
func NewSQLPool[R any](ctx context.Context, spec Spec[R]) (Pool[R, *sql.Conn], error) {
	db := sql.OpenDB(&fakeConnector[R]{spec: spec})
	db.SetMaxOpenConns(spec.Size)
	db.SetMaxIdleConns(spec.Size)
	p := &SQLPool[R]{DB: db}
	if err := prefill(ctx, p, spec.Size); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Get calls db.Conn.
func (p *SQLPool[R]) Get(ctx context.Context) (*sql.Conn, error) { return p.DB.Conn(ctx) }

// Put closes the *sql.Conn, which returns the driver connection to the pool.
func (p *SQLPool[R]) Put(c *sql.Conn) { _ = c.Close() }

// Value digs the connection out of the driver connection with Conn.Raw.
func (p *SQLPool[R]) Value(c *sql.Conn) R {
	var v R
	_ = c.Raw(func(dc any) error {
		v = dc.(*fakeDriverConn[R]).v
		return nil
	})
	return v
}

// Close closes the DB.
func (p *SQLPool[R]) Close() { _ = p.DB.Close() }

// Resize sets MaxOpenConns (and MaxIdleConns) to max.
func (p *SQLPool[R]) Resize(max int) error {
	p.DB.SetMaxOpenConns(max)
	p.DB.SetMaxIdleConns(max)
	return nil
}

// Waiting returns db.Stats().WaitCount, which counts waits cumulatively.
func (p *SQLPool[R]) Waiting() int { return int(p.DB.Stats().WaitCount) }

// fakeConnector is a driver.Connector whose connections wrap spec's values.
type fakeConnector[R any] struct{ spec Spec[R] }

func (c *fakeConnector[R]) Connect(ctx context.Context) (driver.Conn, error) {
	v, err := c.spec.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return &fakeDriverConn[R]{v: v, close: c.spec.Close}, nil
}

func (c *fakeConnector[R]) Driver() driver.Driver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("bench: fake driver: use the connector")
}

// fakeDriverConn is a driver.Conn that runs no statements; it only carries v.
type fakeDriverConn[R any] struct {
	v     R
	close func(R)
}

var errNoStatements = errors.New("bench: fake driver runs no statements")

func (c *fakeDriverConn[R]) Prepare(string) (driver.Stmt, error) { return nil, errNoStatements }
func (c *fakeDriverConn[R]) Begin() (driver.Tx, error)           { return nil, errNoStatements }
func (c *fakeDriverConn[R]) Close() error {
	if c.close != nil {
		c.close(c.v)
	}
	return nil
}
