package pgxpoolsuite

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidepool-go/tidepool"
)

// pgxpool's defaults.
const (
	defaultMaxConns          = int32(4)
	defaultMaxConnLifetime   = time.Hour
	defaultMaxConnIdleTime   = 30 * time.Minute
	defaultHealthCheckPeriod = time.Minute
	// dialTimeout bounds one dial with its hooks: pgxpool's bound on a
	// background dial (its createIdleResources).
	dialTimeout = time.Minute
	// closeTimeout bounds closing one connection, as pgxpool's destructor.
	closeTimeout = 15 * time.Second
	// connectTimeout is pgxpool's ConnectTimeout when the config has none.
	connectTimeout = 2 * time.Minute
	// pingIdle is pgxpool's default ShouldPing: idle more than a second.
	pingIdle = time.Second
	// abandonedPing bounds a ping whose Acquire gave up, as pgxpool does.
	abandonedPing = time.Minute
)

// ShouldPingParams are the parameters passed to Config.ShouldPing.
type ShouldPingParams struct {
	Conn         *pgx.Conn
	IdleDuration time.Duration
}

// Config is pgxpool.Config: create it with ParseConfig, then change it.
type Config struct {
	ConnConfig *pgx.ConnConfig

	BeforeConnect func(context.Context, *pgx.ConnConfig) error
	AfterConnect  func(context.Context, *pgx.Conn) error
	// Deprecated: Use PrepareConn instead (as in pgxpool).
	BeforeAcquire func(context.Context, *pgx.Conn) bool
	PrepareConn   func(context.Context, *pgx.Conn) (bool, error)
	AfterRelease  func(*pgx.Conn) bool
	BeforeClose   func(*pgx.Conn)
	ShouldPing    func(context.Context, ShouldPingParams) bool

	MaxConnLifetime       time.Duration
	MaxConnLifetimeJitter time.Duration
	MaxConnIdleTime       time.Duration
	PingTimeout           time.Duration
	MaxConns              int32
	MinConns              int32
	MinIdleConns          int32
	HealthCheckPeriod     time.Duration

	createdByParseConfig bool
}

// Copy returns a deep copy of c (its ConnConfig is copied too).
func (c *Config) Copy() *Config {
	n := *c
	n.ConnConfig = c.ConnConfig.Copy()
	return &n
}

// ConnString returns the connection string ParseConfig parsed.
func (c *Config) ConnString() string { return c.ConnConfig.ConnString() }

// ParseConfig is pgxpool.ParseConfig: pgx.ParseConfig plus the pool_*
// settings, which it removes from the runtime parameters.
func ParseConfig(connString string) (*Config, error) {
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	c := &Config{
		ConnConfig:           cc,
		createdByParseConfig: true,
		MaxConns:             max(defaultMaxConns, int32(runtime.NumCPU())),
		MaxConnLifetime:      defaultMaxConnLifetime,
		MaxConnIdleTime:      defaultMaxConnIdleTime,
		HealthCheckPeriod:    defaultHealthCheckPeriod,
	}
	params := cc.RuntimeParams
	take := func(name string, parse func(string) error) error {
		s, ok := params[name]
		if !ok {
			return nil
		}
		delete(params, name)
		if err := parse(s); err != nil {
			return pgconn.NewParseConfigError(connString, "cannot parse "+name, err)
		}
		return nil
	}
	count := func(dst *int32, least int64) func(string) error {
		return func(s string) error {
			n, err := strconv.ParseInt(s, 10, 32)
			if err == nil && n < least {
				err = errors.New("too small")
			}
			*dst = int32(n)
			return err
		}
	}
	duration := func(dst *time.Duration) func(string) error {
		return func(s string) (err error) { *dst, err = time.ParseDuration(s); return err }
	}
	for _, p := range []struct {
		name  string
		parse func(string) error
	}{
		{"pool_max_conns", count(&c.MaxConns, 1)},
		{"pool_min_conns", count(&c.MinConns, 0)},
		{"pool_min_idle_conns", count(&c.MinIdleConns, 0)},
		{"pool_max_conn_lifetime", duration(&c.MaxConnLifetime)},
		{"pool_max_conn_idle_time", duration(&c.MaxConnIdleTime)},
		{"pool_health_check_period", duration(&c.HealthCheckPeriod)},
		{"pool_max_conn_lifetime_jitter", duration(&c.MaxConnLifetimeJitter)},
		{"pool_ping_timeout", duration(&c.PingTimeout)},
	} {
		if err := take(p.name, p.parse); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Pool is pgxpool.Pool over a tidepool.Pool[*pgx.Conn].
type Pool struct {
	tp        *tidepool.Pool[*pgx.Conn]
	config    *Config
	maxConns  int
	closeOnce sync.Once
	// acquireTracer and releaseTracer are ConnConfig.Tracer if it traces
	// Acquire or Release (pgxpool's tracer interfaces).
	acquireTracer AcquireTracer
	releaseTracer ReleaseTracer
}

// New is ParseConfig then NewWithConfig.
func New(ctx context.Context, connString string) (*Pool, error) {
	c, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, c)
}

// NewWithConfig creates the tidepool pool config describes (see the package
// comment for the mapping). Connections for MinConns and MinIdleConns are
// dialed in the background, with ctx's values but not its cancellation; dial
// errors are not returned (an Acquire shows them), as with pgxpool. It panics
// if config was not made by ParseConfig.
func NewWithConfig(ctx context.Context, config *Config) (*Pool, error) {
	if !config.createdByParseConfig {
		panic("config must be created by ParseConfig")
	}
	jitter := config.MaxConnLifetimeJitter
	lifetime := config.MaxConnLifetime
	if lifetime > 0 {
		lifetime += jitter
		if jitter <= 0 {
			jitter = 1 // tidepool's 0 means MaxLifetime/10; pgxpool's means none
		}
	} else {
		jitter = 0
	}
	tc := tidepool.Config[*pgx.Conn]{
		Dial: func(ctx context.Context) (*pgx.Conn, error) {
			cc := config.ConnConfig.Copy()
			if cc.ConnectTimeout <= 0 {
				cc.ConnectTimeout = connectTimeout
			}
			if config.BeforeConnect != nil {
				if err := config.BeforeConnect(ctx, cc); err != nil {
					return nil, err
				}
			}
			return pgx.ConnectConfig(ctx, cc)
		},
		AfterConnect:      config.AfterConnect,
		BeforeAcquire:     config.BeforeAcquire,
		BeforeClose:       config.BeforeClose,
		Close:             closeConn,
		AfterRelease:      afterRelease(config.AfterRelease),
		MaxSize:           int(config.MaxConns),
		MinIdle:           int(max(config.MinConns, config.MinIdleConns)),
		MaxLifetime:       lifetime,
		MaxLifetimeJitter: jitter,
		MaxIdleTime:       config.MaxConnIdleTime,
		HealthInterval:    config.HealthCheckPeriod,
		DialTimeout:       dialTimeout,
		DisableOutageMode: true,
		WarmInBackground:  true,
		Name:              "pgxpoolsuite",
	}
	if config.PrepareConn != nil {
		tc.BeforeAcquire = nil // PrepareConn takes precedence, as in pgxpool
	}
	ping := func(ctx context.Context, c *pgx.Conn) error {
		ctx, cancel := pingContext(ctx, config.PingTimeout)
		defer cancel()
		return c.Ping(ctx)
	}
	tc.Check = ping
	if config.ShouldPing == nil {
		tc.CheckOnAcquire, tc.CheckOnAcquireIdle = true, pingIdle
	}
	tp, err := tidepool.New(context.WithoutCancel(ctx), tc)
	if err != nil {
		return nil, err
	}
	p := &Pool{tp: tp, config: config, maxConns: int(config.MaxConns)}
	p.acquireTracer, _ = config.ConnConfig.Tracer.(AcquireTracer)
	p.releaseTracer, _ = config.ConnConfig.Tracer.(ReleaseTracer)
	return p, nil
}

// pingContext is pgxpool's ping context: ctx's values and deadline, not its
// cancellation (pgx closes a connection whose query is interrupted), and
// PingTimeout when set.
func pingContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cancels := []context.CancelFunc{cancel}
	if dl, ok := ctx.Deadline(); ok {
		var c context.CancelFunc
		pctx, c = context.WithDeadline(pctx, dl)
		cancels = append(cancels, c)
	}
	if timeout > 0 {
		var c context.CancelFunc
		pctx, c = context.WithTimeout(pctx, timeout)
		cancels = append(cancels, c)
	}
	return pctx, func() {
		for _, c := range cancels {
			c()
		}
	}
}

// afterRelease is pgxpool's Release test then the user's AfterRelease: a
// closed or busy connection, or one inside a transaction, is destroyed.
func afterRelease(user func(*pgx.Conn) bool) func(*pgx.Conn) bool {
	return func(c *pgx.Conn) bool {
		if c.IsClosed() || c.PgConn().IsBusy() || c.PgConn().TxStatus() != 'I' {
			return false
		}
		return user == nil || user(c)
	}
}

// closeConn is pgxpool's destructor: Close under 15s, then wait (within
// them) for pgx's cleanup of the socket.
func closeConn(c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := c.Close(ctx)
	select {
	case <-c.PgConn().CleanupDone():
	case <-ctx.Done():
	}
	return err
}

// Close closes the pool and waits until every connection is closed (held
// ones when they are released), as pgxpool's Close. Calling it again does
// nothing.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { _ = p.tp.Close(context.Background()) })
}

// Acquire returns a connection: tidepool's Acquire (with its check on
// acquire and BeforeAcquire), then a custom ShouldPing's ping and
// PrepareConn, as pgxpool runs them, up to MaxConns+1 attempts.
func (p *Pool) Acquire(ctx context.Context) (c *Conn, err error) {
	if p.acquireTracer != nil {
		ctx = p.acquireTracer.TraceAcquireStart(ctx, p, TraceAcquireStartData{})
		defer func() {
			var conn *pgx.Conn
			if c != nil {
				conn = c.Conn()
			}
			p.acquireTracer.TraceAcquireEnd(ctx, p, TraceAcquireEndData{Conn: conn, Err: err})
		}()
	}
	return p.acquire(ctx)
}

func (p *Pool) acquire(ctx context.Context) (*Conn, error) {
	for range p.maxConns + 1 {
		h, err := p.tp.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		c := h.Value()
		if sp := p.config.ShouldPing; sp != nil && sp(ctx, ShouldPingParams{Conn: c, IdleDuration: h.IdleDuration()}) {
			ok, err := p.pingAcquired(ctx, h)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		if prep := p.config.PrepareConn; prep != nil {
			ok, err := prep(ctx, c)
			switch {
			case ok && err == nil:
			case ok:
				h.Release()
				return nil, err
			case err != nil:
				h.Destroy()
				return nil, err
			default:
				h.Destroy()
				continue
			}
		}
		return &Conn{h: h, p: p}, nil
	}
	return nil, errors.New("pgxpool: too many failed attempts acquiring connection; likely bug in PrepareConn, BeforeAcquire, or ShouldPing hook")
}

// pingAcquired pings h's connection for a custom ShouldPing as pgxpool does:
// false (h destroyed) if the ping fails; ctx's error if ctx ends first, the
// ping then finishing in the background (at most a minute more) and h
// released or destroyed by its result.
func (p *Pool) pingAcquired(ctx context.Context, h tidepool.Conn[*pgx.Conn]) (bool, error) {
	pctx, cancel := pingContext(ctx, p.config.PingTimeout)
	done := make(chan error, 1)
	go func() { done <- h.Value().Ping(pctx) }()
	select {
	case err := <-done:
		cancel()
		if err != nil {
			h.Destroy()
			return false, nil
		}
		return true, nil
	case <-ctx.Done():
		go func() {
			t := time.AfterFunc(abandonedPing, cancel)
			defer t.Stop()
			defer cancel()
			if err := <-done; err != nil {
				h.Destroy()
			} else {
				h.Release()
			}
		}()
		return false, ctx.Err()
	}
}

// AcquireFunc acquires a connection, calls f with it and releases it.
func (p *Pool) AcquireFunc(ctx context.Context, f func(*Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c)
}

// AcquireAllIdle is tidepool's AcquireAllIdle (it runs BeforeAcquire), then
// PrepareConn on each: one it refuses, or that errs, is destroyed.
func (p *Pool) AcquireAllIdle(ctx context.Context) []*Conn {
	hs := p.tp.AcquireAllIdle(ctx)
	conns := make([]*Conn, 0, len(hs))
	for _, h := range hs {
		if prep := p.config.PrepareConn; prep != nil {
			if ok, err := prep(ctx, h.Value()); !ok || err != nil {
				h.Destroy()
				continue
			}
		}
		conns = append(conns, &Conn{h: h, p: p})
	}
	return conns
}

// Reset is tidepool's Reset: every connection is replaced.
func (p *Pool) Reset() { p.tp.Reset() }

// Config returns a copy of the pool's config.
func (p *Pool) Config() *Config { return p.config.Copy() }

// Stat returns a snapshot (tidepool's Stats, in pgxpool's words).
func (p *Pool) Stat() *Stat { return &Stat{s: p.tp.Stats()} }

// Exec runs sql on a connection acquired for it.
func (p *Pool) Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, sql, arguments...)
}

// Query runs sql on a connection acquired for it, released when the rows
// are closed.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRows{err: err}, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return errRows{err: err}, err
	}
	return &poolRows{r: rows, c: c}, nil
}

// QueryRow runs sql on a connection acquired for it, released by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRow{err: err}
	}
	return &poolRow{r: c.QueryRow(ctx, sql, args...), c: c}
}

// SendBatch sends b on a connection acquired for it, released when the
// results are closed (or, if b begins a transaction, when it ends).
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := p.Acquire(ctx)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	br := c.SendBatch(ctx, b)
	if tx := br.Tx(); tx != nil {
		return &poolBatchResults{br: br, tx: &Tx{t: tx, c: c}}
	}
	return &poolBatchResults{br: br, c: c}
}

// Begin is BeginTx with default options.
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) { return p.BeginTx(ctx, pgx.TxOptions{}) }

// BeginTx starts a transaction on a connection acquired for it, released
// when it commits or rolls back.
func (p *Pool) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.BeginTx(ctx, txOptions)
	if err != nil {
		c.Release()
		return nil, err
	}
	return &Tx{t: t, c: c}, nil
}

// CopyFrom runs a COPY on a connection acquired for it.
func (p *Pool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	return c.Conn().CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// Ping pings a connection acquired for it.
func (p *Pool) Ping(ctx context.Context) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return c.Ping(ctx)
}
