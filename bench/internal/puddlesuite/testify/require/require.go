// Package require is the subset of github.com/stretchr/testify/require that
// puddle's pool_test.go uses: the assertions of package assert, each
// followed by t.FailNow when it does not hold.
package require

import (
	"time"

	"github.com/tidepool-go/tidepool/bench/internal/puddlesuite/testify/assert"
)

// TestingT is the part of testing.TB the assertions use.
type TestingT interface {
	Errorf(format string, args ...any)
	FailNow()
}

type helper interface{ Helper() }

func check(t TestingT, ok bool) {
	if h, isH := t.(helper); isH {
		h.Helper()
	}
	if !ok {
		t.FailNow()
	}
}

// NoError requires err == nil.
func NoError(t TestingT, err error, msgAndArgs ...any) {
	check(t, assert.NoError(t, err, msgAndArgs...))
}

// Nil requires v to be nil.
func Nil(t TestingT, v any, msgAndArgs ...any) { check(t, assert.Nil(t, v, msgAndArgs...)) }

// NotNil requires v not to be nil.
func NotNil(t TestingT, v any, msgAndArgs ...any) { check(t, assert.NotNil(t, v, msgAndArgs...)) }

// Error requires err != nil.
func Error(t TestingT, err error, msgAndArgs ...any) { check(t, assert.Error(t, err, msgAndArgs...)) }

// EqualError requires err's text to be errString.
func EqualError(t TestingT, err error, errString string, msgAndArgs ...any) {
	check(t, assert.EqualError(t, err, errString, msgAndArgs...))
}

// Equal requires assert.ObjectsAreEqual(expected, actual).
func Equal(t TestingT, expected, actual any, msgAndArgs ...any) {
	check(t, assert.Equal(t, expected, actual, msgAndArgs...))
}

// EqualValues requires assert.ObjectsAreEqualValues(expected, actual).
func EqualValues(t TestingT, expected, actual any, msgAndArgs ...any) {
	check(t, assert.EqualValues(t, expected, actual, msgAndArgs...))
}

// Less requires e1 < e2.
func Less(t TestingT, e1, e2 any, msgAndArgs ...any) { check(t, assert.Less(t, e1, e2, msgAndArgs...)) }

// WithinDuration requires expected and actual at most delta apart.
func WithinDuration(t TestingT, expected, actual time.Time, delta time.Duration, msgAndArgs ...any) {
	check(t, assert.WithinDuration(t, expected, actual, delta, msgAndArgs...))
}

// Assertions binds the require functions to one TestingT (require.New).
type Assertions struct{ t TestingT }

// New returns Assertions on t.
func New(t TestingT) *Assertions { return &Assertions{t: t} }

// NoError requires err == nil.
func (a *Assertions) NoError(err error, msgAndArgs ...any) { NoError(a.t, err, msgAndArgs...) }

// Equal requires assert.ObjectsAreEqual(expected, actual).
func (a *Assertions) Equal(expected, actual any, msgAndArgs ...any) {
	Equal(a.t, expected, actual, msgAndArgs...)
}

// NotNil requires v not to be nil.
func (a *Assertions) NotNil(v any, msgAndArgs ...any) { NotNil(a.t, v, msgAndArgs...) }

// Less requires e1 < e2.
func (a *Assertions) Less(e1, e2 any, msgAndArgs ...any) { Less(a.t, e1, e2, msgAndArgs...) }
