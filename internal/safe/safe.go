// Package safe calls user callbacks so that a panic becomes an error.
//
// Every callback a pool runs (Dial, Check, Close and the hooks) goes through
// Call or its siblings, on whatever goroutine the pool runs it. A panic there
// is recovered where the pool called it, and comes back as a *CallbackError
// that carries the panic value and the stack of the panicking goroutine, so it
// can be logged on the callback's own event and counted. Nothing here blocks
// or logs; the cost without a panic is one deferred call.
package safe

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// CallbackError is the error a pool reports for a user callback that panicked
// or ran past its timeout.
type CallbackError struct {
	// Callback names the callback: "dial", "check", "close", "after_connect",
	// "before_acquire", "after_release", "before_close".
	Callback string
	// Panic is the value the callback panicked with; nil if it timed out.
	Panic any
	// Stack is the panicking goroutine's stack; nil if it timed out.
	Stack []byte
	// TimedOut is set when the callback was still running at its timeout.
	TimedOut bool
}

// ErrTimedOut is wrapped by a CallbackError whose callback timed out.
var ErrTimedOut = errors.New("callback timed out")

// Error names the callback and what went wrong.
func (e *CallbackError) Error() string {
	if e.TimedOut {
		return fmt.Sprintf("tidepool: %s callback timed out", e.Callback)
	}
	return fmt.Sprintf("tidepool: %s callback panicked: %v", e.Callback, e.Panic)
}

// Unwrap returns ErrTimedOut for a timed-out callback, and the panic value
// when it is an error.
func (e *CallbackError) Unwrap() error {
	if e.TimedOut {
		return ErrTimedOut
	}
	if err, ok := e.Panic.(error); ok {
		return err
	}
	return nil
}

// IsPanic reports whether err is (or wraps) a CallbackError for a panic.
func IsPanic(err error) bool {
	var ce *CallbackError
	return errors.As(err, &ce) && !ce.TimedOut
}

// TimedOut returns the error for callback name that ran past its timeout.
func TimedOut(name string) error { return &CallbackError{Callback: name, TimedOut: true} }

func recovered(name string, r any) *CallbackError {
	return &CallbackError{Callback: name, Panic: r, Stack: debug.Stack()}
}

// Call runs f and returns its error, or a *CallbackError if it panicked.
func Call(name string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(name, r)
		}
	}()
	return f()
}

// Value runs f and returns its results, or the zero V and a *CallbackError if
// it panicked.
func Value[V any](name string, f func() (V, error)) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero V
			v, err = zero, recovered(name, r)
		}
	}()
	return f()
}

// Bool runs f and returns its result, or false and a *CallbackError if it
// panicked.
func Bool(name string, f func() bool) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, recovered(name, r)
		}
	}()
	return f(), nil
}
