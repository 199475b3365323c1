// Package event names every lifecycle event a pool logs. Each event is one zap
// entry whose message equals its "event" field; the README's log schema lists
// them with their fields, and the root package's schema test fails when an
// event here is missing from the README or logged without being listed here.
package event

// The events, in the README's order.
const (
	PoolStarted      = "pool.started"
	PoolWarmed       = "pool.warmed"
	ConnDialed       = "conn.dialed"
	DialFailed       = "conn.dial_failed"
	Recovered        = "pool.recovered"
	ConnRetired      = "conn.retired"
	CheckFailed      = "conn.check_failed"
	CloseFailed      = "conn.close_failed"
	CallbackPanicked = "callback.panicked"
	CallbackTimedOut = "callback.timed_out"
	ConnHijacked     = "conn.hijacked"
	ResizeRequested  = "resize.requested"
	ResizeAdopted    = "resize.adopted"
	ResizeReached    = "resize.reached"
	ResizeForced     = "resize.forced"
	LeaseExpired     = "lease.expired"
	PoolReset        = "pool.reset"
	AcquireWaited    = "acquire.waited"
	AcquireRejected  = "acquire.rejected"
	LeakSuspected    = "conn.leak_suspected"
	LeakReleased     = "conn.leak_released"
	CloseStarted     = "pool.close_started"
	CloseForced      = "pool.close_forced"
	CloseStuck       = "pool.close_stuck"
	PoolClosed       = "pool.closed"
)

// All lists every event, for the schema test.
var All = []string{
	PoolStarted, PoolWarmed, ConnDialed, DialFailed, Recovered, ConnRetired, CheckFailed, CloseFailed,
	CallbackPanicked, CallbackTimedOut, ConnHijacked, ResizeRequested, ResizeAdopted, ResizeReached, ResizeForced,
	LeaseExpired, PoolReset, AcquireWaited, AcquireRejected, LeakSuspected, LeakReleased,
	CloseStarted, CloseForced, CloseStuck, PoolClosed,
}
