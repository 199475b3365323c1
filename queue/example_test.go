package queue_test

import (
	"fmt"
	"time"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/queue"
)

// The life of a connection in the idle set, as the pool drives it: the
// reconcile loop registers it and places it, holders take and release it, a
// watcher retires it where it lies, and the loop sweeps the tombstone out and
// frees its index.
func ExampleIdle() {
	idle := queue.New[string](false)

	// The loop: a dialed connection is born held (lease 1); register it, then
	// release it into the set.
	c := conn.New(1, "db-1", time.Now(), time.Time{}, 0)
	idle.Register(c)
	idle.Release(c, 1)

	// Any goroutine: take it, use it, give it back.
	got, lease, ok := idle.Take()
	fmt.Println(got.Value(), ok, got.State())
	idle.Release(got, lease)

	// A watcher retires it where it lies: it stays in the set as a tombstone
	// that Take skips.
	c.ClaimIdle()
	_, _, ok = idle.Take()
	fmt.Println("taken after retirement:", ok)

	// The loop closes it and frees its index, after a Sweep if it was still
	// in the stack.
	c.MarkClosed()
	idle.Sweep(func(c *conn.Conn[string]) bool { return c.State() == conn.Idle || c.State() == conn.Checking })
	fmt.Println("unregistered:", idle.Unregister(c), "left:", idle.Len())
	// Output:
	// db-1 true in_use
	// taken after retirement: false
	// unregistered: true left: 0
}
