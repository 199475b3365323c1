// Package assert is the small subset of github.com/stretchr/testify/assert
// that pgx's pgxpool tests use, written here so that the examples module
// needs no new dependency. Each function reports a failure with t.Errorf and
// returns whether the assertion held; equality follows testify's rules
// (ObjectsAreEqual: bytes.Equal for []byte, else reflect.DeepEqual;
// EqualValues also compares after converting one value to the other's type).
package assert

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
)

// TestingT is what the assertions need of a *testing.T.
type TestingT interface {
	Errorf(format string, args ...any)
	Helper()
}

func fail(t TestingT, what string, msgAndArgs []any) bool {
	t.Helper()
	if len(msgAndArgs) > 0 {
		msg := fmt.Sprint(msgAndArgs[0])
		if len(msgAndArgs) > 1 {
			msg = fmt.Sprintf(msg, msgAndArgs[1:]...)
		}
		what += "\n\tmessage: " + msg
	}
	t.Errorf("%s", what)
	return false
}

// ObjectsAreEqual reports whether expected and actual are equal as testify
// defines it.
func ObjectsAreEqual(expected, actual any) bool {
	if expected == nil || actual == nil {
		return expected == actual
	}
	eb, eok := expected.([]byte)
	ab, aok := actual.([]byte)
	if eok && aok {
		if eb == nil || ab == nil {
			return eb == nil && ab == nil
		}
		return bytes.Equal(eb, ab)
	}
	return reflect.DeepEqual(expected, actual)
}

// ObjectsAreEqualValues is ObjectsAreEqual, or equality after converting
// one value to the other's type.
func ObjectsAreEqualValues(expected, actual any) bool {
	if ObjectsAreEqual(expected, actual) {
		return true
	}
	ev, av := reflect.ValueOf(expected), reflect.ValueOf(actual)
	if !ev.IsValid() || !av.IsValid() {
		return false
	}
	numeric := func(k reflect.Kind) bool {
		return k >= reflect.Int && k <= reflect.Float64
	}
	if numeric(ev.Kind()) != numeric(av.Kind()) {
		return false // no int-to-string conversions
	}
	if ev.Type().ConvertibleTo(av.Type()) && reflect.DeepEqual(ev.Convert(av.Type()).Interface(), actual) {
		return true
	}
	return av.Type().ConvertibleTo(ev.Type()) && reflect.DeepEqual(av.Convert(ev.Type()).Interface(), expected)
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

// Equal asserts ObjectsAreEqual(expected, actual).
func Equal(t TestingT, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if !ObjectsAreEqual(expected, actual) {
		return fail(t, fmt.Sprintf("not equal:\n\texpected: %#v\n\tactual:   %#v", expected, actual), msgAndArgs)
	}
	return true
}

// Equalf is Equal with a format.
func Equalf(t TestingT, expected, actual any, msg string, args ...any) bool {
	t.Helper()
	return Equal(t, expected, actual, append([]any{msg}, args...)...)
}

// EqualValues asserts ObjectsAreEqualValues(expected, actual).
func EqualValues(t TestingT, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if !ObjectsAreEqualValues(expected, actual) {
		return fail(t, fmt.Sprintf("not equal:\n\texpected: %#v (%T)\n\tactual:   %#v (%T)", expected, expected, actual, actual), msgAndArgs)
	}
	return true
}

// NotEqual asserts !ObjectsAreEqual(expected, actual).
func NotEqual(t TestingT, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if ObjectsAreEqual(expected, actual) {
		return fail(t, fmt.Sprintf("should not be: %#v", actual), msgAndArgs)
	}
	return true
}

// NoError asserts err == nil.
func NoError(t TestingT, err error, msgAndArgs ...any) bool {
	t.Helper()
	if err != nil {
		return fail(t, fmt.Sprintf("unexpected error: %v", err), msgAndArgs)
	}
	return true
}

// Error asserts err != nil.
func Error(t TestingT, err error, msgAndArgs ...any) bool {
	t.Helper()
	if err == nil {
		return fail(t, "an error is expected but got nil", msgAndArgs)
	}
	return true
}

// Errorf is Error with a format.
func Errorf(t TestingT, err error, msg string, args ...any) bool {
	t.Helper()
	return Error(t, err, append([]any{msg}, args...)...)
}

// ErrorIs asserts errors.Is(err, target).
func ErrorIs(t TestingT, err, target error, msgAndArgs ...any) bool {
	t.Helper()
	if !errors.Is(err, target) {
		return fail(t, fmt.Sprintf("error chain does not contain the target:\n\terror:  %v\n\ttarget: %v", err, target), msgAndArgs)
	}
	return true
}

// EqualError asserts err != nil and err.Error() == want.
func EqualError(t TestingT, err error, want string, msgAndArgs ...any) bool {
	t.Helper()
	if err == nil {
		return fail(t, fmt.Sprintf("an error %q is expected but got nil", want), msgAndArgs)
	}
	if err.Error() != want {
		return fail(t, fmt.Sprintf("error message not equal:\n\texpected: %q\n\tactual:   %q", want, err.Error()), msgAndArgs)
	}
	return true
}

// Nil asserts that v is nil (a nil interface, or a nil pointer, map, slice,
// channel or func).
func Nil(t TestingT, v any, msgAndArgs ...any) bool {
	t.Helper()
	if !isNil(v) {
		return fail(t, fmt.Sprintf("expected nil, got: %#v", v), msgAndArgs)
	}
	return true
}

// NotNil asserts !Nil.
func NotNil(t TestingT, v any, msgAndArgs ...any) bool {
	t.Helper()
	if isNil(v) {
		return fail(t, "expected a value, got nil", msgAndArgs)
	}
	return true
}

// Zero asserts that v is its type's zero value (nil counts).
func Zero(t TestingT, v any, msgAndArgs ...any) bool {
	t.Helper()
	if v != nil && !ObjectsAreEqual(v, reflect.Zero(reflect.TypeOf(v)).Interface()) {
		return fail(t, fmt.Sprintf("should be zero, but was %#v", v), msgAndArgs)
	}
	return true
}

// True asserts v.
func True(t TestingT, v bool, msgAndArgs ...any) bool {
	t.Helper()
	if !v {
		return fail(t, "should be true", msgAndArgs)
	}
	return true
}

// Len asserts that v (array, slice, map, string, channel) has n elements.
func Len(t TestingT, v any, n int, msgAndArgs ...any) bool {
	t.Helper()
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map, reflect.String, reflect.Chan:
		if rv.Len() != n {
			return fail(t, fmt.Sprintf("should have %d item(s), but has %d: %#v", n, rv.Len(), v), msgAndArgs)
		}
		return true
	}
	return fail(t, fmt.Sprintf("could not take the length of %#v", v), msgAndArgs)
}

// NotContains asserts that the map, slice, array or string list does not
// contain elem (for a map: as a key).
func NotContains(t TestingT, list, elem any, msgAndArgs ...any) bool {
	t.Helper()
	lv := reflect.ValueOf(list)
	found := false
	switch lv.Kind() {
	case reflect.Map:
		for _, k := range lv.MapKeys() {
			found = found || ObjectsAreEqual(k.Interface(), elem)
		}
	case reflect.Slice, reflect.Array:
		for i := range lv.Len() {
			found = found || ObjectsAreEqual(lv.Index(i).Interface(), elem)
		}
	case reflect.String:
		found = bytes.Contains([]byte(lv.String()), []byte(fmt.Sprint(elem)))
	default:
		return fail(t, fmt.Sprintf("cannot search in %#v", list), msgAndArgs)
	}
	if found {
		return fail(t, fmt.Sprintf("%#v should not contain %#v", list, elem), msgAndArgs)
	}
	return true
}

// ElementsMatch asserts that two slices hold the same elements, in any
// order, with the same multiplicities.
func ElementsMatch(t TestingT, a, b any, msgAndArgs ...any) bool {
	t.Helper()
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	if av.Len() != bv.Len() {
		return fail(t, fmt.Sprintf("element counts differ: %#v vs %#v", a, b), msgAndArgs)
	}
	used := make([]bool, bv.Len())
outer:
	for i := range av.Len() {
		for j := range bv.Len() {
			if !used[j] && ObjectsAreEqual(av.Index(i).Interface(), bv.Index(j).Interface()) {
				used[j] = true
				continue outer
			}
		}
		return fail(t, fmt.Sprintf("elements differ: %#v vs %#v", a, b), msgAndArgs)
	}
	return true
}

// GreaterOrEqual asserts a >= b for two values of the same integer, float
// or string type (time.Duration included).
func GreaterOrEqual(t TestingT, a, b any, msgAndArgs ...any) bool {
	t.Helper()
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	if av.Type() != bv.Type() {
		return fail(t, fmt.Sprintf("cannot compare %T with %T", a, b), msgAndArgs)
	}
	var ok bool
	switch av.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		ok = av.Int() >= bv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		ok = av.Uint() >= bv.Uint()
	case reflect.Float32, reflect.Float64:
		ok = av.Float() >= bv.Float()
	case reflect.String:
		ok = av.String() >= bv.String()
	default:
		return fail(t, fmt.Sprintf("cannot order %T", a), msgAndArgs)
	}
	if !ok {
		return fail(t, fmt.Sprintf("%v is not greater than or equal to %v", a, b), msgAndArgs)
	}
	return true
}

func samePointers(a, b any) (same, ok bool) {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	if av.Kind() != reflect.Pointer || bv.Kind() != reflect.Pointer {
		return false, false
	}
	return av.Type() == bv.Type() && av.Pointer() == bv.Pointer(), true
}

// Same asserts that a and b are pointers of one type to the same object.
func Same(t TestingT, a, b any, msgAndArgs ...any) bool {
	t.Helper()
	if same, ok := samePointers(a, b); !ok || !same {
		return fail(t, fmt.Sprintf("not same:\n\texpected: %p %#v\n\tactual:   %p %#v", a, a, b, b), msgAndArgs)
	}
	return true
}

// NotSame asserts that a and b are pointers to different objects.
func NotSame(t TestingT, a, b any, msgAndArgs ...any) bool {
	t.Helper()
	if same, ok := samePointers(a, b); !ok || same {
		return fail(t, fmt.Sprintf("expected different pointers, got %p and %p", a, b), msgAndArgs)
	}
	return true
}

func didPanic(f func()) (panicked bool, value any) {
	panicked = true
	defer func() {
		if panicked {
			value = recover()
		}
	}()
	f()
	panicked = false
	return
}

// Panics asserts that f panics.
func Panics(t TestingT, f func(), msgAndArgs ...any) bool {
	t.Helper()
	if p, _ := didPanic(f); !p {
		return fail(t, "func should panic", msgAndArgs)
	}
	return true
}

// PanicsWithValue asserts that f panics with want.
func PanicsWithValue(t TestingT, want any, f func(), msgAndArgs ...any) bool {
	t.Helper()
	p, v := didPanic(f)
	if !p {
		return fail(t, "func should panic", msgAndArgs)
	}
	if v != want {
		return fail(t, fmt.Sprintf("func panicked with %#v, want %#v", v, want), msgAndArgs)
	}
	return true
}

// NotPanics asserts that f does not panic.
func NotPanics(t TestingT, f func(), msgAndArgs ...any) bool {
	t.Helper()
	if p, v := didPanic(f); p {
		return fail(t, fmt.Sprintf("func should not panic, but panicked with %#v", v), msgAndArgs)
	}
	return true
}
