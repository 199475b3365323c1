package queue

import _ "unsafe" // for go:linkname

// procPin pins the calling goroutine to its P (no preemption, no migration)
// and returns the P's id; procUnpin undoes it. They are the runtime functions
// sync.Pool uses for its per-P caches, exported to packages by the runtime
// for exactly this use (see runtime/proc.go and go.dev/issue/67401). Between
// the two a goroutine must only do a few atomic operations: it must not block,
// allocate much or call out.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()
