package netconn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/netconn"
)

// Pool TCP connections to a line-echo server. The pool checks idle
// connections with netconn.Alive every HealthInterval, so connections the
// server closed are replaced before anyone acquires them.
func ExampleConfig() {
	// A tiny echo server on 127.0.0.1, for the example.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	cfg := netconn.Config(netconn.Options{Network: "tcp", Address: ln.Addr().String()})
	cfg.MaxSize = 4
	cfg.HealthInterval = 10 * time.Second
	ctx := context.Background()
	pool, err := tidepool.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(ctx)

	h, err := pool.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := h.Value()
	c.SetDeadline(time.Now().Add(5 * time.Second)) // per use; Alive clears a lapsed one
	fmt.Fprintf(c, "hello\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		h.Destroy() // broken: do not return it to the pool
		fmt.Println(err)
		return
	}
	h.Release()
	fmt.Print(line)
	// Output: hello
}

// Alive on its own: ask whether the peer of an idle connection hung up,
// without blocking and without reading anything.
func ExampleAlive() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	server := <-accepted

	fmt.Println("before:", netconn.Alive(context.Background(), c))
	server.Close()
	for netconn.Alive(context.Background(), c) == nil { // the FIN takes a moment
		time.Sleep(time.Millisecond)
	}
	fmt.Println("after:", netconn.Alive(context.Background(), c))
	// Output:
	// before: <nil>
	// after: netconn: peer closed the connection: EOF
}
