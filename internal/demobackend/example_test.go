package demobackend_test

import (
	"fmt"
	"net"

	"github.com/tidepool-go/tidepool/internal/demobackend"
)

func ExampleStart() {
	s, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, req := range []string{"PING", "SET greeting hello", "GET greeting"} {
		reply, err := demobackend.RoundTrip(c, req)
		if err != nil {
			panic(err)
		}
		fmt.Println(reply)
	}
	fmt.Println("killed:", s.KillAll())
	// Output:
	// PONG
	// OK
	// VALUE hello
	// killed: 1
}
