package failover

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
)

// Config configures a failover Pool. Only Primary.Dial and Secondary.Dial are
// required; every other field has a default, listed with it. Durations of 0
// mean "the default".
type Config[T any] struct {
	// Name identifies the pool in its log entries ("pool"), errors, metrics,
	// and is the default Name of both sides' pools. Default "failover".
	Name string
	// Primary is the pool that serves while it is healthy. If its
	// DialBackoffMax is 0 it defaults to ProbeInterval (at least its
	// DialBackoff), so that after an outage the pool's own dial backoff does
	// not keep probes failing much longer than the backend was down.
	Primary tidepool.Config[T]
	// Secondary is the warm spare. If its MinIdle is 0 it defaults to 1: a
	// spare with no connection is not warm.
	Secondary tidepool.Config[T]
	// Logger receives the pool's events (see the Event constants) and, with
	// a "side" field, those of a side whose Config has no Logger of its own.
	// Default: no logging.
	Logger *zap.Logger

	// Threshold primary failures (dial errors, timeouts, exhaustion; see
	// FailureCounts) within Window switch new Acquires to the secondary.
	// Defaults 5 and 10s.
	Threshold int
	Window    time.Duration
	// AttemptTimeout bounds how long an Acquire waits for the side it tries
	// first before it counts a timeout and goes to the other side; it never
	// takes more than half of what is left of the caller's deadline, so the
	// other side always gets the rest. Default 1s.
	AttemptTimeout time.Duration
	// HoldTime is how long new Acquires stay on the secondary after a switch
	// before the first probe of the primary. (A switch resets the primary, so
	// the connections the outage killed are gone when it serves again.)
	// Default 5s.
	HoldTime time.Duration
	// ProbeInterval is the time between two probes while the primary does
	// not answer. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (an Acquire on the primary and Probe).
	// Default 1s.
	ProbeTimeout time.Duration
	// Probe checks the connection a probe acquired; the primary is restored
	// when it returns nil. It must honour ctx. Default: Primary.Check, or, if
	// that is nil too, none (a successful Acquire is the answer). A panic in
	// Probe counts as a failed probe.
	Probe func(ctx context.Context, v T) error
}

func configErr(name, field string, value any, why string) error {
	return fmt.Errorf("%w: failover pool %q: %s = %v: %s", tidepool.ErrInvalidConfig, name, field, value, why)
}

// normalize fills in defaults and checks the failover fields; the two sides'
// pool configs are checked by tidepool.New.
func (c Config[T]) normalize() (Config[T], error) {
	if c.Name == "" {
		c.Name = "failover"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Threshold < 0 {
		return c, configErr(c.Name, "Threshold", c.Threshold, "must not be negative")
	}
	if c.Threshold == 0 {
		c.Threshold = 5
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Window", &c.Window, 10 * time.Second},
		{"AttemptTimeout", &c.AttemptTimeout, time.Second},
		{"HoldTime", &c.HoldTime, 5 * time.Second},
		{"ProbeInterval", &c.ProbeInterval, time.Second},
		{"ProbeTimeout", &c.ProbeTimeout, time.Second},
	} {
		if *d.v < 0 {
			return c, configErr(c.Name, d.name, *d.v, "must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Probe == nil {
		c.Probe = c.Primary.Check
	}
	side := func(pc tidepool.Config[T], s Side) tidepool.Config[T] {
		if pc.Name == "" {
			pc.Name = c.Name
		}
		if pc.Logger == nil {
			pc.Logger = c.Logger
		}
		pc.Logger = pc.Logger.With(zap.String("side", s.String()))
		return pc
	}
	c.Primary = side(c.Primary, Primary)
	c.Secondary = side(c.Secondary, Secondary)
	if c.Primary.DialBackoffMax == 0 {
		base := c.Primary.DialBackoff
		if base == 0 {
			base = 100 * time.Millisecond // tidepool's default DialBackoff
		}
		c.Primary.DialBackoffMax = max(c.ProbeInterval, base)
	}
	if c.Secondary.MinIdle == 0 {
		c.Secondary.MinIdle = 1
	}
	return c, nil
}
