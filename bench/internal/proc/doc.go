// Package proc holds what the bench module's server helpers (pgtest and
// redistest) share: finding a free port on 127.0.0.1, a locked buffer for a
// child process's output, and the rule for when a missing server binary skips
// a test and when it fails it. It keeps no state; its functions run in the
// caller's goroutine, and a Buffer is written by the goroutine that copies a
// child's output while others read it.
package proc
