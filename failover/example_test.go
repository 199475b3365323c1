package failover_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
)

// backendConn stands for a connection to one server.
type backendConn struct{ addr string }

func dialer(addr string) tidepool.Config[backendConn] {
	return tidepool.Config[backendConn]{
		MaxSize: 8,
		Dial:    func(context.Context) (backendConn, error) { return backendConn{addr: addr}, nil },
	}
}

// Serve from the primary, fall over to the warm secondary when it fails, and
// let an operator force a side.
func ExampleNew() {
	ctx := context.Background()
	p, err := failover.New(ctx, failover.Config[backendConn]{
		Name:      "sessions",
		Primary:   dialer("10.0.0.1:6379"),
		Secondary: dialer("10.0.1.1:6379"), // MinIdle defaults to 1: kept warm
		Threshold: 5, Window: 10 * time.Second,
		HoldTime: 5 * time.Second, ProbeInterval: time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	c, err := p.Acquire(ctx)
	if err != nil {
		panic(err) // both sides failed (failover.ErrBothDown), or ctx ended
	}
	fmt.Println("served by the", c.Side(), "at", c.Value().addr)
	c.Release()

	// Maintenance on the primary: keep new Acquires on the secondary until
	// an operator switches back (what POST /switch of admin.FailoverHandler does).
	if err := p.SwitchTo(failover.Secondary); err != nil {
		panic(err)
	}
	c, _ = p.Acquire(ctx)
	fmt.Println("served by the", c.Side(), "at", c.Value().addr)
	c.Release()
	st := p.Stats()
	fmt.Println("serving:", st.Serving, "pinned:", st.Pinned, "switches:", st.Switches)
	// Output:
	// served by the primary at 10.0.0.1:6379
	// served by the secondary at 10.0.1.1:6379
	// serving: secondary pinned: true switches: 1
}
