package tidepool

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"go.uber.org/zap"
)

// Config configures a Pool. Only Dial is required; every other field has a
// default, listed with it. Durations of 0 mean "the default" unless said otherwise.
//
// Every callback (Dial, Close, Check and the hooks) is panic-safe: a panic is
// recovered where the pool called it, logged (event callback.panicked, with its
// stack), counted (Stats.CallbackPanics), and treated as the callback failing.
type Config[T any] struct {
	// Dial makes a new connection. Required. It runs in a goroutine of the
	// pool's own, under a context that carries the values of the Acquire it
	// was started for (trace spans, tenant credentials), or of DialIdle's ctx,
	// or, for the pool's own dials (MinIdle warm-up and refills, TryAcquire's
	// background dial), of New's ctx; it is cancelled only by the pool: at DialTimeout or Close, never by that Acquire, so a
	// cancelled Acquire never kills a dial the next waiter will use. A dial
	// still running at DialTimeout counts as failed; if it returns a
	// connection later, the pool closes it at once.
	Dial func(ctx context.Context) (T, error)
	// Close closes a connection. Default: Close() if T implements io.Closer,
	// otherwise nothing. Called exactly once per connection the pool dialed,
	// in a goroutine of its own; the connection's slot stays taken until it
	// returns.
	Close func(v T) error
	// Check tests a connection (a ping, or netconn.Alive's peek). Optional;
	// without it the pool runs no health checks, but still enforces
	// MaxLifetime and MaxIdleTime. It runs on idle connections every
	// HealthInterval, and on hand-outs when CheckOnAcquire is set, then under
	// the Acquire's context: a client that closes its connection when a
	// context is cancelled should keep only the deadline (if the Acquire's
	// context ends during a failed check, the pool puts the connection back
	// rather than retire it).
	Check func(ctx context.Context, v T) error

	// AfterConnect runs on every new connection right after Dial, in the dial's
	// goroutine and under its context (session setup, authentication, a
	// SELECT 1). An error fails the dial: the connection is closed and the
	// error counts as the dial's.
	AfterConnect func(ctx context.Context, v T) error
	// BeforeAcquire runs on the acquiring goroutine before every hand-out,
	// under the Acquire's context. Returning false vetoes the connection: it
	// is retired (reason vetoed) and the Acquire moves on to another one —
	// except that a refusal once the Acquire's context has ended puts the
	// connection back unharmed (the Acquire fails with ctx's error), and a
	// waiting Acquire fails with ErrVetoed once three connections dialed for
	// it in a row were refused.
	BeforeAcquire func(ctx context.Context, v T) bool
	// AfterRelease runs on the releasing goroutine before a released
	// connection goes back (reset session state). Returning false destroys
	// it instead (reason vetoed). Keep it short: Release returns after it.
	AfterRelease func(v T) bool
	// BeforeClose runs right before Close, in the close goroutine.
	BeforeClose func(v T)
	// IsBroken tells AcquireFunc which errors of its function mean the
	// connection is broken (destroyed, not released), besides errors that
	// wrap ErrConnBroken. Optional.
	IsBroken func(err error) bool
	// HookTimeout bounds BeforeAcquire and AfterRelease: one that returns
	// after it counts as failed (the connection is retired) and is logged as
	// callback.timed_out. Default 5s.
	HookTimeout time.Duration

	// MaxSize is the most connections the pool holds: dialing, idle, in use
	// and closing. Default 8.
	MaxSize int
	// MinIdle idle connections are kept warm: dialed at New and refilled after
	// losses and acquisitions (within MaxSize). Default 0.
	MinIdle int
	// MaxIdle idle connections at most: a release that would exceed it closes the
	// connection instead. Default MaxSize (it follows Resize); values below MinIdle
	// act as MinIdle. Setting it costs one shared atomic add per acquire and
	// per release (the idle set counts its members then).
	MaxIdle int
	// SizeCeiling is the largest max Resize and Lease accept. Default
	// MaxSizeLimit: memory grows with live connections, not with the bound.
	SizeCeiling int
	// MaxWaiters bounds the Acquires that wait at once: beyond it Acquire
	// fails at once with ErrTooManyWaiters (counted in Stats.RejectedAcquires,
	// logged once per burst). 0: no bound.
	MaxWaiters int

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
	// HealthTimeout bounds one Check: a check still running then counts as
	// failed and its connection is retired (and closed, which often unblocks
	// the check). Default 5s.
	HealthTimeout time.Duration
	// CheckOnAcquire runs Check on an idle connection before handing it out,
	// on the acquiring goroutine and under the Acquire's context. A connection
	// that fails is retired (reason health) and the Acquire moves on to
	// another one; the caller never sees it. Requires Check.
	CheckOnAcquire bool
	// CheckOnAcquireIdle limits CheckOnAcquire to connections idle at least
	// this long (0: every hand-out). After a check on acquire fails, every
	// connection released before that failure is checked on its next
	// hand-out however briefly it was idle: one dead connection usually means
	// the backend restarted under all of them.
	CheckOnAcquireIdle time.Duration

	// DialTimeout bounds one dial (with AfterConnect). Default 10s.
	DialTimeout time.Duration
	// DialBackoff is the first delay after a failed dial; it doubles with each
	// further failure up to DialBackoffMax, with ±50% jitter. Defaults 100ms, 5s.
	DialBackoff, DialBackoffMax time.Duration
	// DisableOutageMode turns the outage mode off. With it on (the default),
	// while dials fail the pool sends one probe dial at a time, Acquires wait
	// for the next probe when their deadline allows and fail at once with the
	// dial error otherwise, and a probe goes out at least every 500ms while
	// Acquires wait. With it off, every waiting Acquire gets a dial of its own
	// (within MaxSize) and fails only with that dial's error or its context,
	// as with pgxpool; MinIdle refills still back off.
	DisableOutageMode bool
	// AcquireTimeout bounds Acquire when its context has no deadline. 0: wait for
	// the context.
	AcquireTimeout time.Duration
	// ReconcileInterval is the period of the reconciler's maintenance pass, which
	// tops MinIdle up after acquisitions. Default 1s.
	ReconcileInterval time.Duration
	// WarmInBackground makes New return at once instead of waiting for MinIdle
	// connections: they are dialed in the background (event pool.warmed when
	// they are there; Stats.Dialing and Stats.Idle show the progress), and a
	// backend that is down at start no longer fails New.
	WarmInBackground bool

	// LeakThreshold: a connection held longer is reported once as a suspected
	// leak (log and Stats), and again when it is finally released. 0: off, and
	// then leak tracking costs nothing on Acquire.
	LeakThreshold time.Duration
	// TrackAcquireSite records the acquiring goroutine's stack with each
	// hand-out, for leak reports and the admin listing. Costly (a stack capture
	// per Acquire); for debugging.
	TrackAcquireSite bool

	// Logger receives one entry per lifecycle event (see the README's log
	// schema). Default: no logging. SlogLogger adapts a *slog.Logger.
	Logger *zap.Logger
	// Name identifies the pool in logs and metrics. Default "tidepool".
	Name string
}

// MaxSizeLimit is the largest MaxSize (and SizeCeiling) a pool accepts:
// pgxpool users write MaxInt32 to mean "no bound", and so may tidepool users.
const MaxSizeLimit = math.MaxInt32

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
		c.SizeCeiling = MaxSizeLimit
	}
	if c.SizeCeiling < c.MaxSize || c.SizeCeiling > MaxSizeLimit {
		return c, configErr("SizeCeiling", c.SizeCeiling, fmt.Sprintf("must be in [MaxSize=%d, %d]", c.MaxSize, MaxSizeLimit))
	}
	if c.MaxWaiters < 0 {
		return c, configErr("MaxWaiters", c.MaxWaiters, "must not be negative (0: no bound)")
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
		{"CheckOnAcquireIdle", &c.CheckOnAcquireIdle, 0},
		{"HookTimeout", &c.HookTimeout, 5 * time.Second},
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
	if c.CheckOnAcquire && c.Check == nil {
		return c, configErr("CheckOnAcquire", true, "needs a Check function")
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
