package fleet

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"go.uber.org/zap"
)

// ErrInvalidOptions is wrapped by every error Join returns for bad Options; the
// message names the field and its value.
var ErrInvalidOptions = errors.New("fleet: invalid options")

// ErrConfigMismatch: the fleet already exists in etcd with another Budget or
// MinPerMember than this member's Options. Every member of a fleet must agree;
// to change the budget, start the fleet under a new Name.
var ErrConfigMismatch = errors.New("fleet: options disagree with the fleet's stored config")

// ErrLeft is returned by Leave when the member has already left.
var ErrLeft = errors.New("fleet: member already left")

// Defaults for Options fields left zero.
const (
	DefaultPrefix          = "/tidepool/fleet/"
	DefaultLeaseTTL        = 10 * time.Second
	DefaultSampleInterval  = 100 * time.Millisecond
	DefaultDemandWindow    = time.Second
	DefaultPublishInterval = 250 * time.Millisecond
	DefaultOpTimeout       = 2 * time.Second
)

// Options configures a fleet member. Name, Budget and Pool are required.
type Options struct {
	// Name identifies the fleet: every member with the same Name (and Prefix)
	// shares one Budget. Letters, digits, '.', '_' and '-'.
	Name string
	// Budget is the most connections all members together may have open at
	// the backend (dialing, open or closing, as their pools count them).
	// Every member must use the same value (ErrConfigMismatch otherwise).
	Budget int
	// MinPerMember is the floor of each member's grant (while the budget
	// allows: members get their floor in join order). Default 0; members
	// must agree on it like on Budget.
	MinPerMember int
	// Pool is the member's pool. Its Resize bounds are the member's: Join
	// sets them to (0, 0) — what it may hold without a valid lease — and
	// the grant is given to it through Lease.
	Pool Pool

	// Member is this member's id, unique in the fleet. Default
	// "<hostname>-<pid>-<random>". Letters, digits, '.', '_' and '-'.
	Member string
	// Prefix is the etcd key prefix under which fleets live. Default
	// DefaultPrefix.
	Prefix string

	// LeaseTTL is the etcd lease's time to live, whole seconds. A dead
	// member's share is redistributed within LeaseTTL + ~0.5 s (etcd checks
	// expiries every 500 ms). Default 10 s.
	LeaseTTL time.Duration
	// RenewInterval is the time between two lease renewals. Default
	// LeaseTTL/10.
	RenewInterval time.Duration
	// FenceMargin is subtracted from every local lease deadline on top of
	// BackendIdleTimeout: it covers the time the pool takes to close its
	// connections at the deadline and the drift between the member's and
	// etcd's clocks. Default LeaseTTL/10.
	FenceMargin time.Duration
	// BackendIdleTimeout is the longest the backend takes to close a
	// connection whose client has gone silent: its idle timeout plus its
	// precision (Redis `timeout N` closes within N+1 s; PostgreSQL's
	// idle_session_timeout, a proxy's idle timeout). A frozen member
	// (SIGSTOP, a paused VM) keeps its sockets open and cannot fence; its
	// share is reclaimed when its lease expires, which is safe only if the
	// backend has closed those sockets by then. Every local deadline is
	// therefore kept BackendIdleTimeout + FenceMargin before the lease can
	// expire. 0 means the backend closes nothing: then the frozen-member
	// case is not covered (see the README).
	BackendIdleTimeout time.Duration

	// SampleInterval is how often the member reads its pool's Stats to
	// estimate its demand. Default 100 ms.
	SampleInterval time.Duration
	// DemandWindow: the published demand is the peak of the samples of the
	// last DemandWindow, so it rises at once and falls only after a whole
	// window of lower load (this is what keeps grants from oscillating).
	// Default 1 s.
	DemandWindow time.Duration
	// PublishInterval is the shortest time between two demand updates
	// written to etcd. Default 250 ms.
	PublishInterval time.Duration
	// OpTimeout bounds one etcd request other than a renewal. Default 2 s.
	OpTimeout time.Duration

	// Logger receives the fleet's events (see the Event constants). Default:
	// no logging.
	Logger *zap.Logger
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func optErr(field string, value any, why string) error {
	return fmt.Errorf("%w: %s = %v: %s", ErrInvalidOptions, field, value, why)
}

// normalize fills defaults and validates.
func (o Options) normalize() (Options, error) {
	if !nameRE.MatchString(o.Name) {
		return o, optErr("Name", fmt.Sprintf("%q", o.Name), "must be 1-128 letters, digits, '.', '_' or '-'")
	}
	if o.Budget < 1 {
		return o, optErr("Budget", o.Budget, "must be at least 1")
	}
	if o.MinPerMember < 0 || o.MinPerMember > o.Budget {
		return o, optErr("MinPerMember", o.MinPerMember, fmt.Sprintf("must be in [0, Budget=%d]", o.Budget))
	}
	if o.Pool == nil {
		return o, optErr("Pool", "nil", "a pool is required")
	}
	if o.Member == "" {
		host, _ := os.Hostname()
		if !nameRE.MatchString(host) {
			host = "member"
		}
		o.Member = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(3))
	}
	if !nameRE.MatchString(o.Member) {
		return o, optErr("Member", fmt.Sprintf("%q", o.Member), "must be 1-128 letters, digits, '.', '_' or '-'")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.LeaseTTL < time.Second || o.LeaseTTL%time.Second != 0 {
		return o, optErr("LeaseTTL", o.LeaseTTL, "must be a whole number of seconds, at least 1s (etcd leases count seconds)")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RenewInterval", &o.RenewInterval, o.LeaseTTL / 10},
		{"FenceMargin", &o.FenceMargin, o.LeaseTTL / 10},
		{"BackendIdleTimeout", &o.BackendIdleTimeout, 0},
		{"SampleInterval", &o.SampleInterval, DefaultSampleInterval},
		{"DemandWindow", &o.DemandWindow, DefaultDemandWindow},
		{"PublishInterval", &o.PublishInterval, DefaultPublishInterval},
		{"OpTimeout", &o.OpTimeout, DefaultOpTimeout},
	} {
		if *d.v < 0 {
			return o, optErr(d.name, *d.v, "must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if w := o.fenceWindow(); w < 2*o.RenewInterval {
		return o, optErr("LeaseTTL", o.LeaseTTL, fmt.Sprintf(
			"LeaseTTL - BackendIdleTimeout(%v) - FenceMargin(%v) = %v must be at least 2×RenewInterval(%v), "+
				"so that one lost renewal does not fence the member", o.BackendIdleTimeout, o.FenceMargin, w, o.RenewInterval))
	}
	if o.DemandWindow < o.SampleInterval {
		return o, optErr("DemandWindow", o.DemandWindow, fmt.Sprintf("must not be below SampleInterval=%v", o.SampleInterval))
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// fenceWindow is how long after sending a successful renewal the member may
// keep using its grant: the lease can live LeaseTTL from that moment at the
// least; BackendIdleTimeout + FenceMargin are kept in reserve.
func (o Options) fenceWindow() time.Duration {
	return o.LeaseTTL - o.BackendIdleTimeout - o.FenceMargin
}
