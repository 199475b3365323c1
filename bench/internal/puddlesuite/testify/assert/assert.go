// Package assert is the subset of github.com/stretchr/testify/assert that
// puddle's pool_test.go uses, with the same names and meaning: each reports
// a failure with t.Errorf and returns whether the assertion held.
package assert

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"
)

// TestingT is the part of testing.TB the assertions use.
type TestingT interface {
	Errorf(format string, args ...any)
}

type helper interface{ Helper() }

func fail(t TestingT, failure string, msgAndArgs ...any) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	// A copy, so that vet does not take every assertion for a Print wrapper.
	parts := append([]any(nil), msgAndArgs...)
	msg := ""
	if len(parts) == 1 {
		msg = fmt.Sprint(parts[0])
	} else if len(parts) > 1 {
		if f, ok := parts[0].(string); ok {
			msg = fmt.Sprintf(f, parts[1:]...)
		} else {
			msg = fmt.Sprint(parts...)
		}
	}
	if msg != "" {
		failure += "\n\tmessage: " + msg
	}
	t.Errorf("%s\n\tat: %s", failure, callSite())
	return false
}

// callSite names the first caller outside this shim: the test's line.
func callSite() string {
	pcs := make([]uintptr, 16)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if !strings.Contains(f.File, "/puddlesuite/testify/") {
			return fmt.Sprintf("%s:%d", filepath.Base(f.File), f.Line)
		}
		if !more {
			return "?"
		}
	}
}

// ObjectsAreEqual is testify's equality: bytes.Equal for []byte, else
// reflect.DeepEqual.
func ObjectsAreEqual(expected, actual any) bool {
	if expected == nil || actual == nil {
		return expected == actual
	}
	exp, ok := expected.([]byte)
	if !ok {
		return reflect.DeepEqual(expected, actual)
	}
	act, ok := actual.([]byte)
	if !ok {
		return false
	}
	return bytes.Equal(exp, act)
}

// ObjectsAreEqualValues also accepts expected converted to actual's type.
func ObjectsAreEqualValues(expected, actual any) bool {
	if ObjectsAreEqual(expected, actual) {
		return true
	}
	if expected == nil || actual == nil {
		return false
	}
	ev, at := reflect.ValueOf(expected), reflect.TypeOf(actual)
	if !ev.Type().ConvertibleTo(at) {
		return false
	}
	return reflect.DeepEqual(ev.Convert(at).Interface(), actual)
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice, reflect.UnsafePointer:
		return rv.IsNil()
	}
	return false
}

// Nil asserts that v is nil (or a nil pointer, slice, map…).
func Nil(t TestingT, v any, msgAndArgs ...any) bool {
	if isNil(v) {
		return true
	}
	return fail(t, fmt.Sprintf("Expected nil, but got: %#v", v), msgAndArgs...)
}

// NotNil asserts that v is not nil.
func NotNil(t TestingT, v any, msgAndArgs ...any) bool {
	if !isNil(v) {
		return true
	}
	return fail(t, "Expected value not to be nil.", msgAndArgs...)
}

// Error asserts that err is not nil.
func Error(t TestingT, err error, msgAndArgs ...any) bool {
	if err != nil {
		return true
	}
	return fail(t, "An error is expected but got nil.", msgAndArgs...)
}

// NoError asserts that err is nil.
func NoError(t TestingT, err error, msgAndArgs ...any) bool {
	if err == nil {
		return true
	}
	return fail(t, fmt.Sprintf("Received unexpected error:\n\t%+v", err), msgAndArgs...)
}

// EqualError asserts that err is not nil and its text is errString.
func EqualError(t TestingT, err error, errString string, msgAndArgs ...any) bool {
	if err == nil {
		return fail(t, fmt.Sprintf("An error is expected but got nil.\n\texpected: %q", errString), msgAndArgs...)
	}
	if err.Error() != errString {
		return fail(t, fmt.Sprintf("Error message not equal:\n\texpected: %q\n\tactual  : %q", errString, err.Error()), msgAndArgs...)
	}
	return true
}

// ErrorIs asserts errors.Is(err, target).
func ErrorIs(t TestingT, err, target error, msgAndArgs ...any) bool {
	if errors.Is(err, target) {
		return true
	}
	return fail(t, fmt.Sprintf("Target error should be in err chain:\n\texpected: %v\n\tin chain: %v", target, err), msgAndArgs...)
}

// Equal asserts ObjectsAreEqual(expected, actual).
func Equal(t TestingT, expected, actual any, msgAndArgs ...any) bool {
	if ObjectsAreEqual(expected, actual) {
		return true
	}
	return fail(t, fmt.Sprintf("Not equal:\n\texpected: %#v\n\tactual  : %#v", expected, actual), msgAndArgs...)
}

// EqualValues asserts ObjectsAreEqualValues(expected, actual).
func EqualValues(t TestingT, expected, actual any, msgAndArgs ...any) bool {
	if ObjectsAreEqualValues(expected, actual) {
		return true
	}
	return fail(t, fmt.Sprintf("Not equal:\n\texpected: %#v\n\tactual  : %#v", expected, actual), msgAndArgs...)
}

// True asserts that v is true.
func True(t TestingT, v bool, msgAndArgs ...any) bool {
	if v {
		return true
	}
	return fail(t, "Should be true", msgAndArgs...)
}

// WithinDuration asserts that expected and actual are at most delta apart.
func WithinDuration(t TestingT, expected, actual time.Time, delta time.Duration, msgAndArgs ...any) bool {
	dt := expected.Sub(actual)
	if dt >= -delta && dt <= delta {
		return true
	}
	return fail(t, fmt.Sprintf("Max difference between %v and %v allowed is %v, but difference was %v", expected, actual, delta, dt), msgAndArgs...)
}

// Len asserts that obj (a slice, map, string, array or channel) has length n.
func Len(t TestingT, obj any, n int, msgAndArgs ...any) bool {
	v := reflect.ValueOf(obj)
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array, reflect.Chan:
		if v.Len() == n {
			return true
		}
		return fail(t, fmt.Sprintf("%#v should have %d item(s), but has %d", obj, n, v.Len()), msgAndArgs...)
	}
	return fail(t, fmt.Sprintf("could not apply builtin len() to %#v", obj), msgAndArgs...)
}

// ElementsMatch asserts that two lists hold the same elements, in any order
// (ObjectsAreEqual between elements, duplicates counted).
func ElementsMatch(t TestingT, listA, listB any, msgAndArgs ...any) bool {
	a, b := reflect.ValueOf(listA), reflect.ValueOf(listB)
	if isNil(listA) && isNil(listB) {
		return true
	}
	if a.Kind() != reflect.Slice && a.Kind() != reflect.Array || b.Kind() != reflect.Slice && b.Kind() != reflect.Array {
		return fail(t, "ElementsMatch needs two lists", msgAndArgs...)
	}
	used := make([]bool, b.Len())
	for i := 0; i < a.Len(); i++ {
		found := false
		for j := 0; j < b.Len(); j++ {
			if !used[j] && ObjectsAreEqual(a.Index(i).Interface(), b.Index(j).Interface()) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return fail(t, fmt.Sprintf("element %#v of the first list is not in the second", a.Index(i).Interface()), msgAndArgs...)
		}
	}
	for j, u := range used {
		if !u {
			return fail(t, fmt.Sprintf("element %#v of the second list is not in the first", b.Index(j).Interface()), msgAndArgs...)
		}
	}
	return true
}

// compare orders two values of the same integer or float kind: -1, 0, 1,
// and false when they are not comparable.
func compare(x, y any) (int, bool) {
	vx, vy := reflect.ValueOf(x), reflect.ValueOf(y)
	if vx.Type() != vy.Type() {
		return 0, false
	}
	switch {
	case vx.CanInt():
		return cmp3(vx.Int() < vy.Int(), vx.Int() > vy.Int()), true
	case vx.CanUint():
		return cmp3(vx.Uint() < vy.Uint(), vx.Uint() > vy.Uint()), true
	case vx.CanFloat():
		return cmp3(vx.Float() < vy.Float(), vx.Float() > vy.Float()), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

// Greater asserts e1 > e2 (same numeric type).
func Greater(t TestingT, e1, e2 any, msgAndArgs ...any) bool {
	if c, ok := compare(e1, e2); ok && c > 0 {
		return true
	}
	return fail(t, fmt.Sprintf("\"%v\" is not greater than \"%v\"", e1, e2), msgAndArgs...)
}

// Less asserts e1 < e2 (same numeric type).
func Less(t TestingT, e1, e2 any, msgAndArgs ...any) bool {
	if c, ok := compare(e1, e2); ok && c < 0 {
		return true
	}
	return fail(t, fmt.Sprintf("\"%v\" is not less than \"%v\"", e1, e2), msgAndArgs...)
}

// Positive asserts e > 0.
func Positive(t TestingT, e any, msgAndArgs ...any) bool {
	zero := reflect.Zero(reflect.TypeOf(e)).Interface()
	if c, ok := compare(e, zero); ok && c > 0 {
		return true
	}
	return fail(t, fmt.Sprintf("\"%v\" is not positive", e), msgAndArgs...)
}

func didPanic(f func()) (panicked bool, value any) {
	panicked = true
	defer func() { value = recover() }()
	f()
	panicked = false
	return
}

// Panics asserts that f panics.
func Panics(t TestingT, f func(), msgAndArgs ...any) bool {
	if p, _ := didPanic(f); p {
		return true
	}
	return fail(t, "func should panic", msgAndArgs...)
}

// PanicsWithValue asserts that f panics with exactly want.
func PanicsWithValue(t TestingT, want any, f func(), msgAndArgs ...any) bool {
	p, got := didPanic(f)
	if !p {
		return fail(t, "func should panic", msgAndArgs...)
	}
	if got != want {
		return fail(t, fmt.Sprintf("func should panic with value:\t%#v\n\tPanic value:\t%#v", want, got), msgAndArgs...)
	}
	return true
}

// Failf reports a failure.
func Failf(t TestingT, failure, msg string, args ...any) bool {
	return fail(t, failure, append([]any{msg}, args...)...)
}
