package testserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Timeouts of the Redis helpers.
const (
	redisReady = 10 * time.Second // a new redis-server answers PING
	redisStop  = 5 * time.Second  // SIGTERM to exit, before SIGKILL
)

// EnvRedisServer names the redis-server binary to use instead of PATH's.
const EnvRedisServer = "TIDEPOOL_REDIS_SERVER"

// FindRedis returns the path of redis-server: $TIDEPOOL_REDIS_SERVER if set,
// else redis-server on PATH. The error wraps ErrNotInstalled.
func FindRedis() (string, error) {
	if p := os.Getenv(EnvRedisServer); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("%w: redis-server not at $%s=%s", ErrNotInstalled, EnvRedisServer, p)
		}
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("%w: redis-server not in $%s or PATH; on Debian: apt-get install redis-server", ErrNotInstalled, EnvRedisServer)
	}
	return p, nil
}

// Redis is one redis-server on 127.0.0.1, or the slot for one while it is
// stopped: its port and directory outlive Stop, so Start brings the same
// server back at the same address (a restart, as clients see it). Its
// methods are for one goroutine at a time (the test's).
type Redis struct {
	bin  string
	dir  string
	port int
	args []string
	tls  *tls.Config // client config trusting the server's certificate; nil: plain TCP
	log  *Buffer
	proc *process
}

// LaunchRedis starts redis-server on a free port of 127.0.0.1 with
// persistence off, plus args (e.g. "--maxclients", "3"), and returns once it
// answers PING. Close it with Close.
func LaunchRedis(args ...string) (*Redis, error) { return launchRedis(false, args) }

// LaunchRedisTLS is LaunchRedis with TLS only: the server listens for TLS on
// its port (no plain TCP port) with a self-signed certificate for 127.0.0.1;
// TLS returns a client configuration that trusts it. Clients need no
// certificate of their own.
func LaunchRedisTLS(args ...string) (*Redis, error) { return launchRedis(true, args) }

func launchRedis(useTLS bool, args []string) (*Redis, error) {
	bin, err := FindRedis()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testserver-redis-")
	if err != nil {
		return nil, err
	}
	r := &Redis{bin: bin, dir: dir, args: args, log: new(Buffer)}
	if useTLS {
		if r.tls, err = writeCert(dir); err != nil {
			r.Close()
			return nil, err
		}
	}
	var lastErr error
	for range 3 { // the free port may be taken before redis binds it
		if r.port, err = freePort(); err != nil {
			r.Close()
			return nil, err
		}
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
	}
	r.Close()
	return nil, fmt.Errorf("testserver: starting redis-server: %v\n%s", lastErr, r.log.String())
}

// RedisFor starts a redis-server for tb (LaunchRedis) and closes it at tb's
// Cleanup, printing its output if tb failed. Without redis-server it skips
// tb, or fails it under CI (Missing).
func RedisFor(tb testing.TB, args ...string) *Redis {
	tb.Helper()
	return redisFor(tb, false, args)
}

// RedisTLSFor is RedisFor with LaunchRedisTLS.
func RedisTLSFor(tb testing.TB, args ...string) *Redis {
	tb.Helper()
	return redisFor(tb, true, args)
}

func redisFor(tb testing.TB, useTLS bool, args []string) *Redis {
	tb.Helper()
	if _, err := FindRedis(); err != nil {
		Missing(tb, err.Error())
	}
	r, err := launchRedis(useTLS, args)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		r.Close()
		if tb.Failed() {
			tb.Logf("redis-server output:\n%s", r.Log())
		}
	})
	return r
}

// Addr returns the server's host:port; it does not change across Stop and Start.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// TLS returns a client TLS configuration that trusts the server (a fresh
// copy), or nil for a plain-TCP server.
func (r *Redis) TLS() *tls.Config {
	if r.tls == nil {
		return nil
	}
	return r.tls.Clone()
}

// Log returns what redis-server has printed so far.
func (r *Redis) Log() string { return r.log.String() }

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it
// to exit: clients see their connections closed. The port and directory
// stay for Start. Stopping a stopped server does nothing.
func (r *Redis) Stop() { r.proc.stop(syscall.SIGTERM, redisStop) }

// Start starts a stopped server again on the same port and returns once it
// answers PING. The port may be held for a moment by another process; Start
// retries until redisReady passes.
func (r *Redis) Start() error {
	if r.proc.running() {
		return errors.New("testserver: Start on a running redis-server")
	}
	deadline := time.Now().Add(redisReady)
	for {
		err := r.start()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testserver: restarting redis-server on port %d: %v\n%s", r.port, err, r.log.String())
		}
		time.Sleep(50 * time.Millisecond) // the port is someone else's for now: nothing to wait on
	}
}

// Restart stops the server and starts it again on the same port.
func (r *Redis) Restart() error {
	r.Stop()
	return r.Start()
}

// Freeze stops the server process with SIGSTOP: its sockets stay open and
// it answers nothing, as a hung or partitioned server would (the kernel
// still completes new TCP handshakes into the listen backlog). Thaw resumes it.
func (r *Redis) Freeze() error {
	if !r.proc.running() {
		return errors.New("testserver: Freeze on a stopped redis-server")
	}
	return r.proc.cmd.Process.Signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT).
func (r *Redis) Thaw() error {
	if !r.proc.running() {
		return errors.New("testserver: Thaw on a stopped redis-server")
	}
	return r.proc.cmd.Process.Signal(syscall.SIGCONT)
}

// Close stops the server (thawing it first if frozen) and removes its directory.
func (r *Redis) Close() {
	if r.proc.running() {
		_ = r.Thaw()
	}
	r.Stop()
	_ = os.RemoveAll(r.dir)
}

func (r *Redis) start() error {
	port := strconv.Itoa(r.port)
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", r.dir, "--logfile", ""}
	if r.tls != nil {
		cert, key := filepath.Join(r.dir, "cert.pem"), filepath.Join(r.dir, "key.pem")
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", cert, "--tls-key-file", key,
			"--tls-ca-cert-file", cert, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	p, err := spawn(exec.Command(r.bin, append(args, r.args...)...), r.log, nil)
	if err != nil {
		return err
	}
	r.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), redisReady)
	defer cancel()
	for {
		_, err := r.Do("PING")
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited before answering PING (%v)", p.cmd.ProcessState)
		case <-ctx.Done():
			r.Stop()
			return fmt.Errorf("redis-server did not answer PING within %v: %w", redisReady, err)
		case <-time.After(10 * time.Millisecond): // poll: the server gives no readiness signal
		}
	}
}

// Do runs one command on a fresh admin connection (the default user, not a
// pooled connection) and returns redigo's reply.
func (r *Redis) Do(cmd string, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := []redis.DialOption{redis.DialReadTimeout(5 * time.Second), redis.DialWriteTimeout(5 * time.Second)}
	if r.tls != nil {
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(r.tls))
	}
	c, err := redis.DialContext(ctx, "tcp", r.Addr(), opts...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}
