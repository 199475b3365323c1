// Package require is the subset of github.com/stretchr/testify/require that
// pgx's pgxpool tests use: package assert's checks, ending the test with
// t.FailNow when one fails.
package require

import "github.com/tidepool-go/tidepool/examples/pgxpoolsuite/internal/testify/assert"

// TestingT is what the checks need of a *testing.T.
type TestingT interface {
	assert.TestingT
	FailNow()
}

func check(t TestingT, ok bool) {
	t.Helper()
	if !ok {
		t.FailNow()
	}
}

// Equal is assert.Equal, fatal.
func Equal(t TestingT, e, a any, m ...any) { t.Helper(); check(t, assert.Equal(t, e, a, m...)) }

// EqualValues is assert.EqualValues, fatal.
func EqualValues(t TestingT, e, a any, m ...any) {
	t.Helper()
	check(t, assert.EqualValues(t, e, a, m...))
}

// NoError is assert.NoError, fatal.
func NoError(t TestingT, err error, m ...any) { t.Helper(); check(t, assert.NoError(t, err, m...)) }

// Error is assert.Error, fatal.
func Error(t TestingT, err error, m ...any) { t.Helper(); check(t, assert.Error(t, err, m...)) }

// ErrorIs is assert.ErrorIs, fatal.
func ErrorIs(t TestingT, err, target error, m ...any) {
	t.Helper()
	check(t, assert.ErrorIs(t, err, target, m...))
}

// EqualError is assert.EqualError, fatal.
func EqualError(t TestingT, err error, want string, m ...any) {
	t.Helper()
	check(t, assert.EqualError(t, err, want, m...))
}

// Nil is assert.Nil, fatal.
func Nil(t TestingT, v any, m ...any) { t.Helper(); check(t, assert.Nil(t, v, m...)) }

// NotNil is assert.NotNil, fatal.
func NotNil(t TestingT, v any, m ...any) { t.Helper(); check(t, assert.NotNil(t, v, m...)) }

// Zero is assert.Zero, fatal.
func Zero(t TestingT, v any, m ...any) { t.Helper(); check(t, assert.Zero(t, v, m...)) }

// True is assert.True, fatal.
func True(t TestingT, v bool, m ...any) { t.Helper(); check(t, assert.True(t, v, m...)) }

// Same is assert.Same, fatal.
func Same(t TestingT, a, b any, m ...any) { t.Helper(); check(t, assert.Same(t, a, b, m...)) }

// NotSame is assert.NotSame, fatal.
func NotSame(t TestingT, a, b any, m ...any) { t.Helper(); check(t, assert.NotSame(t, a, b, m...)) }

// Panics is assert.Panics, fatal.
func Panics(t TestingT, f func(), m ...any) { t.Helper(); check(t, assert.Panics(t, f, m...)) }

// PanicsWithValue is assert.PanicsWithValue, fatal.
func PanicsWithValue(t TestingT, want any, f func(), m ...any) {
	t.Helper()
	check(t, assert.PanicsWithValue(t, want, f, m...))
}

// NotPanics is assert.NotPanics, fatal.
func NotPanics(t TestingT, f func(), m ...any) { t.Helper(); check(t, assert.NotPanics(t, f, m...)) }
