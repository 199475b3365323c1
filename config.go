package tidepool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
)

// Config configures a Pool. Only Dial is required; every other field has a
// default, listed with it. Durations of 0 mean "the default" unless said otherwise.
type Config[T any] struct {
	// Dial makes a new connection. Required. It runs in a goroutine of the pool's
	// own, under a context that the pool cancels at DialTimeout or Close — never
	// under the context of the Acquire that caused it — and must return when that
	// context ends.
	Dial func(ctx context.Context) (T, error)
	// Close closes a connection. Default: Close() if T implements io.Closer,
	// otherwise nothing. Called exactly once per dialed connection, in its own
	// goroutine.
	Close func(v T) error
	// Check tests an idle connection (a ping). Optional; without it the pool runs
	// no health checks, but still enforces MaxLifetime and MaxIdleTime.
	Check func(ctx context.Context, v T) error

	// MaxSize is the most connections the pool holds, idle and in use. Default 8.
	MaxSize int
	// MinIdle idle connections are kept warm: dialed at New and refilled after
	// losses and acquisitions (within MaxSize). Default 0.
	MinIdle int
	// MaxIdle idle connections at most: a release that would exceed it closes the
	// connection instead. Default MaxSize (it follows Resize); values below MinIdle
	// act as MinIdle.
	MaxIdle int
	// SizeCeiling is the largest MaxSize that Resize accepts; it sizes the idle
	// queue. Default max(1024, 4·MaxSize).
	SizeCeiling int

	// MaxLifetime retires a connection that old (on release if it is in use).
	// 0: no limit.
	MaxLifetime time.Duration
	// MaxLifetimeJitter shortens each connection's lifetime by a random amount in
	// [0, MaxLifetimeJitter), so connections dialed together do not expire
	// together. Default MaxLifetime/10; must not exceed MaxLifetime.
	MaxLifetimeJitter time.Duration
	// MaxIdleTime retires a connection idle that long, down to MinIdle. Measured
	// by its watcher within a quarter of MaxIdleTime. 0: no limit.
	MaxIdleTime time.Duration
	// HealthInterval is the time between two checks of an idle connection
	// (jittered ±10%). Default 30s; used only when Check is set.
	HealthInterval time.Duration
	// HealthTimeout bounds one Check. Default 5s.
	HealthTimeout time.Duration

	// DialTimeout bounds one dial. Default 10s.
	DialTimeout time.Duration
	// DialBackoff is the first delay after a failed dial; it doubles with each
	// further failure up to DialBackoffMax, with ±50% jitter. Defaults 100ms, 5s.
	DialBackoff, DialBackoffMax time.Duration
	// AcquireTimeout bounds Acquire when its context has no deadline. 0: wait for
	// the context.
	AcquireTimeout time.Duration
	// ReconcileInterval is the period of the reconciler's maintenance pass, which
	// tops MinIdle up after acquisitions. Default 1s.
	ReconcileInterval time.Duration

	// LeakThreshold: a connection held longer is reported once as a suspected
	// leak (log and Stats), and again when it is finally released. 0: off, and
	// then leak tracking costs nothing on Acquire.
	LeakThreshold time.Duration
	// TrackAcquireSite records the acquiring goroutine's stack with each
	// hand-out, for leak reports and the admin listing. Costly (a stack capture
	// per Acquire); for debugging.
	TrackAcquireSite bool

	// Logger receives one entry per lifecycle event (see the README's log
	// schema). Default: no logging.
	Logger *zap.Logger
	// Name identifies the pool in logs and metrics. Default "tidepool".
	Name string
}

// Hard limits on sizes, to catch nonsense early.
const (
	// MaxSizeLimit is the largest SizeCeiling (and so MaxSize) a pool accepts.
	MaxSizeLimit = 1 << 20
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("tidepool: invalid config")

func configErr(field string, value any, why string) error {
	return fmt.Errorf("%w: %s = %v: %s", ErrInvalidConfig, field, value, why)
}

// normalize fills defaults and validates.
func (c Config[T]) normalize() (Config[T], error) {
	if c.Dial == nil {
		return c, configErr("Dial", "nil", "a Dial function is required")
	}
	if c.MaxSize == 0 {
		c.MaxSize = 8
	}
	if c.MaxSize < 1 || c.MaxSize > MaxSizeLimit {
		return c, configErr("MaxSize", c.MaxSize, fmt.Sprintf("must be in [1, %d]", MaxSizeLimit))
	}
	if c.MinIdle < 0 || c.MinIdle > c.MaxSize {
		return c, configErr("MinIdle", c.MinIdle, fmt.Sprintf("must be in [0, MaxSize=%d]", c.MaxSize))
	}
	if c.MaxIdle < 0 || c.MaxIdle > c.MaxSize {
		return c, configErr("MaxIdle", c.MaxIdle, fmt.Sprintf("must be in [0, MaxSize=%d] (0: MaxSize)", c.MaxSize))
	}
	if c.MaxIdle != 0 && c.MaxIdle < c.MinIdle {
		return c, configErr("MaxIdle", c.MaxIdle, fmt.Sprintf("must not be below MinIdle=%d", c.MinIdle))
	}
	if c.SizeCeiling == 0 {
		c.SizeCeiling = max(1024, 4*c.MaxSize)
		c.SizeCeiling = min(c.SizeCeiling, MaxSizeLimit)
	}
	if c.SizeCeiling < c.MaxSize || c.SizeCeiling > MaxSizeLimit {
		return c, configErr("SizeCeiling", c.SizeCeiling, fmt.Sprintf("must be in [MaxSize=%d, %d]", c.MaxSize, MaxSizeLimit))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MaxLifetime", &c.MaxLifetime, 0},
		{"MaxLifetimeJitter", &c.MaxLifetimeJitter, c.MaxLifetime / 10},
		{"MaxIdleTime", &c.MaxIdleTime, 0},
		{"HealthInterval", &c.HealthInterval, 30 * time.Second},
		{"HealthTimeout", &c.HealthTimeout, 5 * time.Second},
		{"DialTimeout", &c.DialTimeout, 10 * time.Second},
		{"DialBackoff", &c.DialBackoff, 100 * time.Millisecond},
		{"DialBackoffMax", &c.DialBackoffMax, 5 * time.Second},
		{"AcquireTimeout", &c.AcquireTimeout, 0},
		{"ReconcileInterval", &c.ReconcileInterval, time.Second},
		{"LeakThreshold", &c.LeakThreshold, 0},
	} {
		if *d.v < 0 {
			return c, configErr(d.name, *d.v, "must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxLifetimeJitter > c.MaxLifetime {
		return c, configErr("MaxLifetimeJitter", c.MaxLifetimeJitter, fmt.Sprintf("must not exceed MaxLifetime=%v", c.MaxLifetime))
	}
	if c.DialBackoffMax < c.DialBackoff {
		return c, configErr("DialBackoffMax", c.DialBackoffMax, fmt.Sprintf("must not be below DialBackoff=%v", c.DialBackoff))
	}
	if c.Close == nil {
		c.Close = func(v T) error {
			if cl, ok := any(v).(io.Closer); ok {
				return cl.Close()
			}
			return nil
		}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Name == "" {
		c.Name = "tidepool"
	}
	return c, nil
}
