package redistest_test

import (
	"context"
	"fmt"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

// Start a throwaway redis-server, use it, stop it. In a test,
// redistest.ForTest (or Shared) does the same and skips when redis-server is
// not installed.
func ExampleStart() {
	s, err := redistest.Start(context.Background())
	if err != nil {
		fmt.Println(err) // wraps redistest.ErrNotInstalled without the binary
		return
	}
	defer s.Stop()
	c, err := redis.Dial("tcp", s.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	pong, _ := redis.String(c.Do("PING"))
	fmt.Println(pong)
}
