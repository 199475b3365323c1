package tidepool

import (
	"errors"

	"github.com/tidepool-go/tidepool/internal/safe"
	"github.com/tidepool-go/tidepool/reconciler"
)

// Errors returned by the pool, for errors.Is. Run-time conditions are errors;
// misuse of a handle (a second Release, Value after Release) panics instead,
// with a message that names the mistake.
var (
	// ErrClosed: the pool is closed or closing. Acquires fail with it at once,
	// waiting ones are woken with it, and a second Close returns it.
	ErrClosed = reconciler.ErrClosed
	// ErrExhausted: TryAcquire found nothing idle, or DialIdle found the pool
	// at its max.
	ErrExhausted = reconciler.ErrExhausted
	// ErrDial is wrapped, together with the dial's own error, by the error of
	// an Acquire that failed because dials fail: the dial made for it failed,
	// or the backend is down and the next probe comes after its deadline.
	ErrDial = reconciler.ErrDial
	// ErrAcquireTimeout: Config.AcquireTimeout passed before a connection came
	// (only when the Acquire's context has no deadline of its own).
	ErrAcquireTimeout = errors.New("tidepool: acquire timed out")
	// ErrInvalidResize is wrapped by every error Resize, ResizeWait and Lease
	// return for bad bounds; nothing changes then.
	ErrInvalidResize = errors.New("tidepool: invalid resize")
	// ErrInvalidConfig is wrapped by every error New returns for a bad Config;
	// the message names the field and its value.
	ErrInvalidConfig = errors.New("tidepool: invalid config")
	// ErrTooManyWaiters: Config.MaxWaiters Acquires were waiting already, so
	// this one failed at once instead of joining them (load shedding).
	ErrTooManyWaiters = errors.New("tidepool: too many waiters")
	// ErrVetoed: Config.BeforeAcquire refused three connections in a row
	// that were just dialed for this waiting Acquire, so it failed instead
	// of dialing again (a hook that refuses every connection would
	// otherwise dial without end). A refused connection that had been used
	// before only makes the Acquire move on to another.
	ErrVetoed = errors.New("tidepool: acquire: BeforeAcquire refused a new connection")
	// ErrConnBroken tells AcquireFunc that the connection is broken: a
	// function whose error wraps it has its connection destroyed, not released.
	ErrConnBroken = errors.New("tidepool: connection broken")
)

// CallbackError is the error a pool reports for a user callback (Dial, Check,
// Close or a hook) that panicked or ran past its timeout. Callback names it
// ("dial", "check", "close", "after_connect", "before_acquire",
// "after_release", "before_close", "is_broken"); Panic and Stack say where it panicked.
// errors.As finds it inside the errors Acquire and New return and in the
// "error" field of the callback's log event.
type CallbackError = safe.CallbackError
