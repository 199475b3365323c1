package fleet_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/fleet"
)

// A replica of a service joins the fleet "orders-db": all replicas together
// keep at most 180 connections open to the database (max_connections 200,
// minus room for admin sessions). The backend closes connections idle for
// 10 s (e.g. PostgreSQL idle_session_timeout = 10s), which covers a replica
// frozen by SIGSTOP; with its 1 s precision that is BackendIdleTimeout 11 s.
func ExampleJoin() {
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	var d net.Dialer
	p, fp, err := fleet.NewPool(ctx, tidepool.Config[net.Conn]{
		Dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", "db:5432") },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	m, err := fleet.Join(ctx, cli, fleet.Options{
		Name: "orders-db", Budget: 180, MinPerMember: 2, Pool: fp,
		LeaseTTL: 30 * time.Second, BackendIdleTimeout: 11 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = m.Leave(lctx) // hands the share to the others at once
	}()

	// Use p as any pool: its max follows the member's grant.
	c, err := p.Acquire(ctx)
	if err == nil {
		c.Release()
	}
	s := m.Stats()
	fmt.Printf("grant %d of %d (fair share %d, demand %d, %d members)\n", s.Grant, s.Budget, s.Target, s.Demand, s.Members)
}

// The fleet view for operators, and its metrics.
func ExampleHandler() {
	var m *fleet.Member // from fleet.Join
	mux := http.NewServeMux()
	mux.Handle("/debug/fleet", fleet.Handler(m)) // ?format=text for a table
	prometheus.MustRegister(fleet.NewCollector(m))
}

// Share is the split every member computes: max-min fair over demand, with
// a floor per member, the spare evened out.
func ExampleShare() {
	fmt.Println(fleet.Share(20, 1, []int{14, 4, 3}))
	fmt.Println(fleet.Share(20, 1, []int{2, 2, 2}))
	// Output:
	// [13 4 3]
	// [7 7 6]
}
