package redigopool_test

import (
	"os"
	"testing"

	"github.com/tidepool-go/tidepool/examples/internal/testserver"
)

// shared is the redis-server the Examples talk to, started by TestMain. The
// tests start servers of their own (testserver.RedisFor), since several
// restart, freeze or reconfigure theirs.
var shared *testserver.Redis

func TestMain(m *testing.M) {
	os.Exit(testserver.Main(m, func() (func(), error) {
		s, err := testserver.LaunchRedis()
		if err != nil {
			return nil, err
		}
		shared = s
		return s.Close, nil
	}))
}

// redisAddr returns the address of the Examples' server.
func redisAddr() string { return shared.Addr() }

// redisAdmin runs one command on the Examples' server as its operator would
// (a connection of its own, not a pooled one), and panics on failure.
func redisAdmin(cmd string, args ...any) {
	if _, err := shared.Do(cmd, args...); err != nil {
		panic(err)
	}
}
