// Package failover is a pool of two pools: a primary that serves while it is
// healthy and a warm secondary (MinIdle connections kept ready) that takes
// over while it is not.
//
//	p, err := failover.New(ctx, failover.Config[*resp.Conn]{
//		Name:      "sessions",
//		Primary:   redisConfig("10.0.0.1:6379"),
//		Secondary: redisConfig("10.0.0.2:6379"),
//		Threshold: 5, Window: 10 * time.Second, HoldTime: 5 * time.Second,
//		Logger:    logger,
//	})
//	c, err := p.Acquire(ctx) // c.Side() says which one served
//	defer c.Release()
//
// # The state machine
//
// One word says which side new Acquires try first (Serving). While it is the
// primary, every Acquire that the primary cannot serve — a dial error, no
// connection within AttemptTimeout with room in the pool (dials or the backend
// hang) or with every connection held (exhausted) — is served by the
// secondary instead, and counts as a failure. Threshold failures within
// Window switch Serving to the secondary: one failover.switched entry with the
// window's counts, Stats.Switches, the tidepool_failover_switches_total
// metric. HoldTime later the pool probes the primary — one Acquire and the
// Probe check — and again every ProbeInterval until a probe answers; then
// Serving is the primary again: one failover.restored entry, Stats.Restores.
// An operator can force either side (SwitchTo, or the admin handler); a
// forced secondary stays until it is forced back.
//
// # What it guarantees
//
// No Acquire is lost while one side works: each is served by the side it
// tries first or, failing that, by the other, and fails only when both
// failed (an error wrapping ErrBothDown and both causes) or its ctx ended.
// The switch is one atomic store: Acquires that started before it finish on
// the side they tried.
//
// # What it does not do
//
// It moves connections, not data. Writes that went to the secondary stay
// there, the primary does not see them when it comes back, and nothing is
// replicated or reconciled: keeping the two backends consistent (or accepting
// that they are not) is the application's concern. At a switch it resets the
// primary (Pool.Reset): its idle connections close at once, and the ones held
// by Acquires that were served before the switch close when they are
// released, so the primary serves again only with fresh connections. It does
// not judge requests: an error on a connection it
// handed out is the application's to handle (Destroy it, retry); only Acquire
// failures count towards a switch.
//
// # Goroutines
//
// One goroutine of its own, the monitor, started by New and stopped by Close:
// it sleeps while the primary serves, and runs the probes (one at a time)
// while the secondary does. Each side's pool runs its own goroutines, which
// Close stops. Acquire runs on the caller's goroutine; when the side it tries
// first has an idle connection it makes one atomic load besides that pool's
// own fast path, takes no lock and allocates nothing. Failures, switches,
// probes and Stats take the pool's mutex; Acquires that succeed never do.
package failover
