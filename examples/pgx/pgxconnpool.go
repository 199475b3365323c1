package pgxconnpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidepool-go/tidepool"
)

// Options says how to set up each connection's session and when to ping.
// The zero value sets nothing up and uses the defaults below.
type Options struct {
	// ApplicationName is set on every new connection (pg_stat_activity shows
	// it). "": left as the connection string says.
	ApplicationName string
	// Prepare lists statements prepared on every new connection, by name:
	// run them as conn.Query(ctx, name, args...). A statement the server
	// refuses fails the dial, with its name in the error.
	Prepare map[string]string
	// PingIdle: a connection idle at least this long is pinged before it is
	// handed out (tidepool's CheckOnAcquireIdle). Default 1 s, pgxpool's
	// ShouldPing; a negative value pings on every hand-out.
	PingIdle time.Duration
	// PingTimeout bounds one ping when the check's context has no sooner
	// deadline. Default 5 s.
	PingTimeout time.Duration
	// CloseTimeout bounds closing one connection: sending Terminate, and
	// waiting for pgx's cleanup of the socket. Default 15 s, the bound pgx
	// itself gives that cleanup.
	CloseTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultPingIdle     = time.Second
	DefaultPingTimeout  = 5 * time.Second
	DefaultCloseTimeout = 15 * time.Second
)

// ErrSessionState is wrapped by Reusable's error for a connection left busy
// or inside a transaction.
var ErrSessionState = errors.New("pgxconnpool: connection left in a session state")

// settings is Options with defaults filled in, shared by the hooks.
type settings struct {
	Options
	prepare [][2]string // name, SQL, sorted by name
	cc      *pgx.ConnConfig
}

// Config returns the tidepool.Config of a pool of *pgx.Conn dialed from cc
// (made by pgx.ParseConfig; it is copied at each dial), with every hook of
// the recipe set (see the package comment). Set the pool's sizes, intervals,
// Logger and Name on the result before passing it to tidepool.New.
//
// Costs: per hand-out of a connection idle at least PingIdle, one round trip
// (the ping); per release, AfterRelease reads three fields; per dial, one
// round trip for ApplicationName and one per prepared statement.
func Config(cc *pgx.ConnConfig, o Options) tidepool.Config[*pgx.Conn] {
	s := &settings{Options: o, cc: cc}
	idle := s.PingIdle
	switch {
	case idle == 0:
		idle = DefaultPingIdle
	case idle < 0:
		idle = 0 // tidepool: every hand-out
	}
	if s.PingTimeout <= 0 {
		s.PingTimeout = DefaultPingTimeout
	}
	if s.CloseTimeout <= 0 {
		s.CloseTimeout = DefaultCloseTimeout
	}
	for name, sql := range o.Prepare {
		s.prepare = append(s.prepare, [2]string{name, sql})
	}
	slices.SortFunc(s.prepare, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return tidepool.Config[*pgx.Conn]{
		Dial:               func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, s.cc) },
		AfterConnect:       s.afterConnect,
		Check:              s.check,
		CheckOnAcquire:     true,
		CheckOnAcquireIdle: idle,
		AfterRelease:       func(c *pgx.Conn) bool { return Reusable(c) == nil },
		IsBroken:           IsBroken,
		Close:              s.close,
	}
}

// New parses connString (pgx.ParseConfig) and returns a pool configured by
// Config and tidepool's defaults (at most 8 connections, none kept warm).
// A connection string pgx cannot parse returns its error.
func New(ctx context.Context, connString string, o Options) (*tidepool.Pool[*pgx.Conn], error) {
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return tidepool.New(ctx, Config(cc, o))
}

// afterConnect sets up the session under the dial's context.
func (s *settings) afterConnect(ctx context.Context, c *pgx.Conn) error {
	if s.ApplicationName != "" {
		// The simple protocol sends the value inlined and quoted by pgx:
		// one round trip, no statement to prepare.
		_, err := c.Exec(ctx, "SELECT set_config('application_name', $1, false)",
			pgx.QueryExecModeSimpleProtocol, s.ApplicationName)
		if err != nil {
			return fmt.Errorf("pgxconnpool: setting application_name: %w", err)
		}
	}
	for _, p := range s.prepare {
		if _, err := c.Prepare(ctx, p[0], p[1]); err != nil {
			return fmt.Errorf("pgxconnpool: preparing %q: %w", p[0], err)
		}
	}
	return nil
}

// check is the pool's Check: a closed connection fails at once, otherwise
// conn.Ping under PingContext(ctx, PingTimeout).
func (s *settings) check(ctx context.Context, c *pgx.Conn) error {
	if c.IsClosed() {
		return pgconn.ErrConnClosed
	}
	pctx, cancel, err := PingContext(ctx, s.PingTimeout)
	if err != nil {
		return err
	}
	defer cancel()
	return c.Ping(pctx)
}

// PingContext returns the context a check's ping runs under: ctx's values
// and deadline (or limit from now, the sooner), but not its cancellation.
// pgx closes a connection whose query is interrupted, so a cancelled Acquire
// would cost a healthy connection; a cancelled Acquire waits for the ping in
// flight instead (one round trip, bounded by the deadline). pgxpool makes the
// same choice (it lets the ping finish in the background). If ctx has ended
// already, PingContext returns its error and no context: no ping is sent.
func PingContext(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	pctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	return pctx, cancel, nil
}

// close is the pool's Close: Terminate and close under CloseTimeout, then
// wait (within it) for pgx's cleanup of the socket, which runs in a
// goroutine of pgx's own when pgx closed the connection after an error.
func (s *settings) close(c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.CloseTimeout)
	defer cancel()
	err := c.Close(ctx)
	select {
	case <-c.PgConn().CleanupDone():
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("pgxconnpool: pgx's cleanup of the socket still running after %v", s.CloseTimeout)
		}
	}
	return err
}

// Reusable returns nil if a connection may go back to the pool, or why not:
// it is closed, busy (a query's rows were not closed), or inside a
// transaction (TxStatus 'T', or 'E' for a failed one); the last two wrap
// ErrSessionState. It reads fields, no I/O. The pool's AfterRelease refuses
// such a connection (it is closed and replaced), as pgxpool's Release does:
// a transaction left open holds its locks and its snapshot, and the next
// holder would run inside it.
func Reusable(c *pgx.Conn) error {
	switch {
	case c.IsClosed():
		return fmt.Errorf("pgxconnpool: connection closed: %w", pgconn.ErrConnClosed)
	case c.PgConn().IsBusy():
		return fmt.Errorf("%w: busy (a query's rows not closed?)", ErrSessionState)
	}
	switch st := c.PgConn().TxStatus(); st {
	case 'I':
		return nil
	case 'E':
		return fmt.Errorf("%w: inside a failed transaction", ErrSessionState)
	default:
		return fmt.Errorf("%w: inside a transaction (status %q)", ErrSessionState, st)
	}
}

// IsBroken is the pool's IsBroken: it reports whether an error of an
// AcquireFunc function means its connection must be destroyed rather than
// released:
//   - pgconn.ErrConnClosed: pgx closed it already;
//   - a *pgconn.PgError of severity FATAL or PANIC, of class 08 (connection
//     exception), or 57P01-57P03 (the server shutting down or terminating
//     the backend): the session is over;
//   - a timeout or cancellation after the query was sent (pgconn.Timeout
//     and not pgconn.SafeToRetry): pgx closes the connection then;
//   - network errors (net.Error, io.EOF, io.ErrUnexpectedEOF).
//
// Other server errors (a constraint violation, a syntax error, a
// serialization failure) leave the connection fine, and so does a context
// that had ended before the query was sent (pgconn.Timeout and
// pgconn.SafeToRetry both true). pgconn.SafeToRetry answers another question,
// whether the work may be retried elsewhere: nothing reached the server.
// IsBroken sees only the error; AfterRelease asks the connection itself, so
// one broken in a way the error does not show is caught on release.
func IsBroken(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Severity == "FATAL", pe.Severity == "PANIC",
			strings.HasPrefix(pe.Code, "08"),
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03":
			return true
		}
		return false
	}
	if pgconn.Timeout(err) {
		return !pgconn.SafeToRetry(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // not from pgx's I/O (that one is a pgconn timeout): the connection knows
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
