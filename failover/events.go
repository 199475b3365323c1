package failover

// Log events of a failover pool. Each is one zap entry whose message equals
// its "event" field; every entry carries "pool" (Config.Name). The two sides'
// pools log their usual events through the same logger with a "side" field
// ("primary" or "secondary").
const (
	// EventStarted: New built both pools. Fields: serving.
	EventStarted = "failover.started"
	// EventSwitched: new Acquires go to the secondary first now. Fields:
	// from, to, reason (threshold, forced, primary_down_at_start), the
	// window's counts dial_errors, timeouts, exhausted, and window,
	// threshold, error (the failure that tipped it, when there is one).
	EventSwitched = "failover.switched"
	// EventRestored: new Acquires go to the primary first again. Fields:
	// from, to, reason (probe, forced), on_secondary_for, probes (how many
	// probes it took, this one included).
	EventRestored = "failover.restored"
	// EventProbeFailed: a probe of the primary got no answer; the secondary
	// keeps serving. Fields: error, took, probes (so far in this outage).
	EventProbeFailed = "failover.probe_failed"
	// EventClosed: Close closed both pools. Fields: took, forced.
	EventClosed = "failover.closed"
)

// Reasons, the "reason" field of EventSwitched and EventRestored.
const (
	// ReasonThreshold: Config.Threshold failures of the primary within
	// Config.Window.
	ReasonThreshold = "threshold"
	// ReasonForced: SwitchTo (an operator, through the admin handler).
	ReasonForced = "forced"
	// ReasonDownAtStart: the primary could not warm up in New.
	ReasonDownAtStart = "primary_down_at_start"
	// ReasonProbe: a probe of the primary got a connection that passed the
	// check.
	ReasonProbe = "probe"
)
