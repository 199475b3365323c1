package bench

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/tidepool-go/tidepool"
)

// S8 against Redis: redigo connections pooled by tidepool and by redigo's own
// redis.Pool, both dialed by the same function.

// RedisSpec returns the Spec of size redigo connections to addr.
func RedisSpec(addr string, size int) Spec[redis.Conn] {
	return Spec[redis.Conn]{
		Size: size,
		Dial: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr, redis.DialConnectTimeout(5*time.Second))
		},
		Close: func(c redis.Conn) { _ = c.Close() },
	}
}

// redisPing is the check both Redis pools run: PING.
func redisPing(c redis.Conn) error {
	_, err := c.Do("PING")
	return err
}

// NewRedisTidepool returns a tidepool of spec.Size redigo connections, all
// dialed, configured by S8Tidepool with a PING as its check.
func NewRedisTidepool(ctx context.Context, spec Spec[redis.Conn]) (Pool[redis.Conn, tidepool.Conn[redis.Conn]], error) {
	return TidepoolWith(S8Tidepool(func(_ context.Context, c redis.Conn) error { return redisPing(c) }))(ctx, spec)
}

// Redigo adapts a *redis.Pool. Its handle is the pool's connection wrapper,
// which is also the connection the op uses: closing it returns it to the pool.
type Redigo struct {
	P *redis.Pool
}

// RedigoIdleCheck is the idle time after which the redigo pool PINGs a
// connection before handing it out (TestOnBorrow), the same rule pgxpool
// applies by default (ShouldPing: idle > 1 s).
const RedigoIdleCheck = time.Second

// NewRedigo returns a redigo pool of spec.Size connections (MaxActive =
// MaxIdle = spec.Size, Wait: true, TestOnBorrow PINGs connections idle longer
// than RedigoIdleCheck), all dialed before it returns.
func NewRedigo(ctx context.Context, spec Spec[redis.Conn]) (Pool[redis.Conn, redis.Conn], error) {
	p := &Redigo{P: &redis.Pool{
		DialContext: spec.Dial,
		MaxIdle:     spec.Size,
		MaxActive:   spec.Size,
		Wait:        true,
		TestOnBorrow: func(c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < RedigoIdleCheck {
				return nil
			}
			return redisPing(c)
		},
	}}
	if err := prefill(ctx, p, spec.Size); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Get calls GetContext.
func (p *Redigo) Get(ctx context.Context) (redis.Conn, error) { return p.P.GetContext(ctx) }

// Put closes the wrapper, which returns the connection to the pool.
func (p *Redigo) Put(c redis.Conn) { _ = c.Close() }

// Value returns c: the wrapper is the connection the op uses.
func (p *Redigo) Value(c redis.Conn) redis.Conn { return c }

// Close closes the pool.
func (p *Redigo) Close() { _ = p.P.Close() }

// RedisValue is what S8's SET stores: 32 bytes.
var RedisValue = []byte("0123456789abcdef0123456789abcdef")

// RedisKey returns the key goroutine g reads and writes in S8.
func RedisKey(g int) string { return fmt.Sprintf("bench:%d", g) }

// RedisOp returns S8's Redis op by name ("get" or "set") as a function of the
// connection and the goroutine's index. keys holds each goroutine's key
// (RedisKey), formatted once so that the op allocates only what redigo does.
// "get" expects the key to hold RedisValue (RedisPrepare sets it).
func RedisOp(name string, keys []string) (func(ctx context.Context, c redis.Conn, g int) error, error) {
	switch name {
	case "set":
		return func(_ context.Context, c redis.Conn, g int) error {
			ok, err := redis.String(c.Do("SET", keys[g], RedisValue))
			if err == nil && ok != "OK" {
				err = fmt.Errorf("SET replied %q", ok)
			}
			return err
		}, nil
	case "get":
		return func(_ context.Context, c redis.Conn, g int) error {
			v, err := redis.Bytes(c.Do("GET", keys[g]))
			if err == nil && !bytes.Equal(v, RedisValue) {
				err = fmt.Errorf("GET %s returned %q", keys[g], v)
			}
			return err
		}, nil
	}
	return nil, fmt.Errorf("bench: no Redis op %q", name)
}

// RedisPrepare sets the keys of goroutines 0..g-1 to RedisValue and returns
// them.
func RedisPrepare(ctx context.Context, addr string, g int) ([]string, error) {
	c, err := redis.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	keys := make([]string, g)
	for i := range keys {
		keys[i] = RedisKey(i)
		if _, err := c.Do("SET", keys[i], RedisValue); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
