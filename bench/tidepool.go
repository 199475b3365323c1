package bench

import (
	"context"
	"time"

	"github.com/tidepool-go/tidepool"
)

// Tidepool adapts a *tidepool.Pool. Its handle is the tidepool.Conn value.
type Tidepool[R any] struct {
	P *tidepool.Pool[R]
}

// NewTidepool returns a tidepool of spec.Size connections, all dialed
// (MinIdle = MaxSize).
func NewTidepool[R any](ctx context.Context, spec Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
	return newTidepool(ctx, spec, nil)
}

// TidepoolWith returns a constructor like NewTidepool that lets tune change the
// config before New (S7 sets Check and MaxLifetime there).
func TidepoolWith[R any](tune func(*tidepool.Config[R])) func(context.Context, Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
	return func(ctx context.Context, spec Spec[R]) (Pool[R, tidepool.Conn[R]], error) {
		return newTidepool(ctx, spec, tune)
	}
}

func newTidepool[R any](ctx context.Context, spec Spec[R], tune func(*tidepool.Config[R])) (*Tidepool[R], error) {
	cfg := tidepool.Config[R]{
		Dial:    spec.Dial,
		MaxSize: spec.Size,
		MinIdle: spec.Size,
	}
	if spec.Close != nil {
		cfg.Close = func(v R) error { spec.Close(v); return nil }
	}
	if tune != nil {
		tune(&cfg)
	}
	p, err := tidepool.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Tidepool[R]{P: p}, nil
}

// Get calls Acquire.
func (t *Tidepool[R]) Get(ctx context.Context) (tidepool.Conn[R], error) { return t.P.Acquire(ctx) }

// Put calls Release.
func (t *Tidepool[R]) Put(h tidepool.Conn[R]) { h.Release() }

// Value calls the handle's Value.
func (t *Tidepool[R]) Value(h tidepool.Conn[R]) R { return h.Value() }

// Close closes the pool, waiting for it to finish.
func (t *Tidepool[R]) Close() { _ = t.P.Close(context.Background()) }

// Resize keeps MinIdle and sets MaxSize.
func (t *Tidepool[R]) Resize(max int) error {
	return t.P.Resize(min(t.P.Stats().MinIdle, max), max)
}

// Waiting returns Stats().Waiting.
func (t *Tidepool[R]) Waiting() int { return t.P.Stats().Waiting }

// S8Tidepool configures tidepool for S8 the way the clients' own pools are
// configured, so that S8 compares like with like:
//
//   - MaxSize = MinIdle = the connections (set by NewTidepool); pgxpool gets
//     MaxConns = MinConns, redigo MaxActive = MaxIdle, the same number.
//
//   - MaxLifetime 1 h and MaxIdleTime 30 min: pgxpool's defaults
//     (MaxConnLifetime, MaxConnIdleTime); neither fires within a run.
//
//   - Check = the client's ping (pgx Ping, Redis PING), run by the health
//     watcher every HealthInterval = 1 min (pgxpool's HealthCheckPeriod; its
//     background pass does not ping, so this costs tidepool, if anything).
//
//   - Check on acquire for connections idle > 1 s: pgxpool pings a connection
//     idle for more than 1 s when it hands it out (ShouldPing), and S8 gives
//     redigo's pool the same TestOnBorrow.
func S8Tidepool[T any](check func(context.Context, T) error) func(*tidepool.Config[T]) {
	return func(c *tidepool.Config[T]) {
		c.Check = check
		c.HealthInterval = time.Minute
		c.MaxLifetime = time.Hour
		c.MaxIdleTime = 30 * time.Minute
		c.CheckOnAcquire = true
		c.CheckOnAcquireIdle = time.Second
	}
}

// S8AcquireCheck says whether S8Tidepool turns on tidepool's check on acquire
// (idle > 1 s), the counterpart of pgxpool's ShouldPing; see S8Tidepool.
const S8AcquireCheck = true

// S8Configs describes how S8 configures each pool, for RESULTS.md.
func S8Configs() [][2]string {
	acq := "off"
	if S8AcquireCheck {
		acq = "on for connections idle > 1 s (CheckOnAcquire, CheckOnAcquireIdle = 1 s)"
	}
	return [][2]string{
		{"tidepool", "MaxSize = MinIdle = 8; MaxLifetime 1 h, MaxIdleTime 30 min; Check = the client's ping every HealthInterval = 1 min; check on acquire " + acq},
		{"pgxpool", "MaxConns = MinConns = 8; everything else pgxpool's default: MaxConnLifetime 1 h, MaxConnIdleTime 30 min, HealthCheckPeriod 1 min, ShouldPing: ping on acquire when idle > 1 s"},
		{"redigo", "redis.Pool{MaxActive: 8, MaxIdle: 8, Wait: true}, TestOnBorrow: PING when idle ≥ 1 s (as pgxpool), no IdleTimeout or MaxConnLifetime"},
	}
}
