package metrics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/metrics"
)

type backendConn struct{ addr string }

func newPool(name string) *tidepool.Pool[backendConn] {
	p, err := tidepool.New(context.Background(), tidepool.Config[backendConn]{
		Name:    name,
		MaxSize: 8,
		Dial: func(context.Context) (backendConn, error) {
			return backendConn{addr: "127.0.0.1:5432"}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	return p
}

// Register the pool's collector and serve it on /metrics.
func ExampleNewCollector() {
	p := newPool("orders-db")
	defer p.Close(context.Background())

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(p))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // in a service: http.ListenAndServe("localhost:8080", mux)
	defer srv.Close()

	h, _ := p.Acquire(context.Background())
	defer h.Release()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "tidepool_connections") {
			fmt.Println(line)
		}
	}
	// Output:
	// tidepool_connections{pool="orders-db",state="checking"} 0
	// tidepool_connections{pool="orders-db",state="idle"} 0
	// tidepool_connections{pool="orders-db",state="in_use"} 1
	// tidepool_connections_max{pool="orders-db"} 8
	// tidepool_connections_max_idle{pool="orders-db"} 8
	// tidepool_connections_min_idle{pool="orders-db"} 0
	// tidepool_connections_size_ceiling{pool="orders-db"} 2.147483647e+09
}

// Publish the pool's Stats under /debug/vars (net/http's DefaultServeMux
// serves it once expvar is imported). expvar names are process-wide and
// permanent, so this example has no Output check: a second run in the same
// process (go test -count=2) would find the name taken.
func ExamplePublishExpvar() {
	p := newPool("users-db")
	defer p.Close(context.Background())

	if err := metrics.PublishExpvar("pool_users_db", p); err != nil {
		// Publishing a taken name is an error wrapping
		// metrics.ErrNameTaken, not a panic.
		log.Print(err)
		return
	}
	var s tidepool.Stats
	_ = json.Unmarshal([]byte(expvar.Get("pool_users_db").String()), &s)
	fmt.Println(s.Name, s.MaxSize) // users-db 8

	// A service then serves it with the rest of /debug/vars:
	//	go http.ListenAndServe("localhost:8080", nil)
	//	curl -s localhost:8080/debug/vars | jq .pool_users_db
}
