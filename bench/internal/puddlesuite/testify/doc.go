// Package testify holds assert and require: the few testify assertions
// puddle's pool_test.go calls, with testify's names and meaning, so that the
// copied test file changes only its import paths and the bench module's
// go.mod gains nothing. Test-only helpers; no goroutine of their own.
package testify
