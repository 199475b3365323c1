// Package registry knows every live connection of a pool, idle or in use: a
// concurrent map (xsync MapOf) from connection id to connection.
//
// # Who touches it
//
// Only the reconciler writes it: Store when a dial succeeds, Delete when a
// retired connection is handed to its closer. Stats, leak detection, the admin
// listing and Close read it from any goroutine with Range, Len and Get. Which
// connections are in use is not stored here: it is each connection's atomic
// state, read when needed.
//
// # Why it is off the hot path
//
// A MapOf write costs about 90 ns and one allocation (measured: Store+Delete is
// 3.6× an idle-queue push+pop), so writing here on every Acquire and Release
// would more than double the cost of the pool's fast path and make it allocate.
// Writes happen only at birth and retirement; Acquire and Release touch only the
// idle queue and the connection's state word.
//
// # Implementation
//
// This package is part of tidepool's implementation: the root package
// (github.com/tidepool-go/tidepool) is the API. It is importable because the
// design keeps each part in a top-level package of its own, but it makes no
// compatibility promise: its names change whenever the pool's inside does.
package registry
