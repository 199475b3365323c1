package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/admin"
)

type backendConn struct{ addr string }

// Mount the admin handler under a prefix of the service's operator mux, then
// resize the pool and read its stats over HTTP, as an operator's curl would.
func ExampleHandler() {
	p, err := tidepool.New(context.Background(), tidepool.Config[backendConn]{
		Name:    "orders-db",
		MaxSize: 8,
		Dial: func(context.Context) (backendConn, error) {
			return backendConn{addr: "127.0.0.1:5432"}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/debug/pool/", http.StripPrefix("/debug/pool", admin.Handler(p)))
	srv := httptest.NewServer(mux) // in a service: http.ListenAndServe("localhost:8080", mux)
	defer srv.Close()

	// curl -X POST -d '{"min":2,"max":32}' localhost:8080/debug/pool/resize
	resp, err := http.Post(srv.URL+"/debug/pool/resize", "application/json", strings.NewReader(`{"min":2,"max":32}`))
	if err != nil {
		panic(err)
	}
	var s tidepool.Stats
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	fmt.Println(resp.Status, s.Name, "min", s.MinIdle, "max", s.MaxSize)

	// A resize the pool refuses changes nothing and says why.
	resp, err = http.Post(srv.URL+"/debug/pool/resize", "application/json", strings.NewReader(`{"min":40}`))
	if err != nil {
		panic(err)
	}
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	fmt.Println(resp.Status, e.Error)

	// Output:
	// 200 OK orders-db min 2 max 32
	// 422 Unprocessable Entity tidepool: invalid resize: min = 40: must be in [0, max=32] (max not given: kept at its current 32)
}
