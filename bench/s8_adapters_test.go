package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"

	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

// The S8 adapters against real servers (started here, or the ones run.sh
// exported; skipped without the binaries, failed under CI). Connections are
// told apart by what the server calls them: the backend PID in PostgreSQL,
// CLIENT ID in Redis.

const s8TestConns = 4

func pgPools(t *testing.T) (string, []func(context.Context) (Pool[*pgx.Conn, any], error)) {
	dsn := pgtest.Shared(t)
	if err := PgSetup(t.Context(), dsn); err != nil {
		t.Fatal(err)
	}
	return dsn, []func(context.Context) (Pool[*pgx.Conn, any], error){
		func(ctx context.Context) (Pool[*pgx.Conn, any], error) {
			p, err := NewPgxpool(ctx, dsn, s8TestConns)
			if err != nil {
				return nil, err
			}
			return anyHandles(p), nil
		},
		func(ctx context.Context) (Pool[*pgx.Conn, any], error) {
			p, err := NewPgTidepool(ctx, dsn, s8TestConns)
			if err != nil {
				return nil, err
			}
			return anyHandles(p), nil
		},
	}
}

// anyHandles erases a pool's handle type, for tests that hold many handles.
func anyHandles[R, H any](p Pool[R, H]) Pool[R, any] { return erased[R, H]{p} }

var pgNames = []string{"pgxpool", "tidepool"}

func redisPools(t *testing.T) (string, []func(context.Context) (Pool[redis.Conn, any], error)) {
	addr := redistest.Shared(t)
	spec := RedisSpec(addr, s8TestConns)
	return addr, []func(context.Context) (Pool[redis.Conn, any], error){
		func(ctx context.Context) (Pool[redis.Conn, any], error) {
			p, err := NewRedigo(ctx, spec)
			if err != nil {
				return nil, err
			}
			return anyHandles(p), nil
		},
		func(ctx context.Context) (Pool[redis.Conn, any], error) {
			p, err := NewRedisTidepool(ctx, spec)
			if err != nil {
				return nil, err
			}
			return anyHandles(p), nil
		},
	}
}

var redisNames = []string{"redigo", "tidepool"}

func pgID(c *pgx.Conn) (int64, error) { return int64(c.PgConn().PID()), nil }

func redisID(c redis.Conn) (int64, error) { return redis.Int64(c.Do("CLIENT", "ID")) }

func TestS8AdaptersRunEveryOpAgainstTheRealServers(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		dsn, mks := pgPools(t)
		for i, mk := range mks {
			t.Run(pgNames[i], func(t *testing.T) {
				ctx := t.Context()
				p, err := mk(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				h, err := p.Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				r, err := PgSelect(ctx, p.Value(h), 7)
				p.Put(h)
				if err != nil || r.ID != 7 || r.Name != "row 7" {
					t.Fatalf("PgSelect(7) = %+v, %v; want row 7", r, err)
				}
				// 8 goroutines × 25 transactions on row 40+i: the counter
				// grows by exactly 200, so each ran once and committed.
				const g, n = 8, 25
				id := int32(40 + i)
				before := counter(t, dsn, id)
				var wg sync.WaitGroup
				for range g {
					wg.Go(func() {
						for range n {
							h, err := p.Get(ctx)
							if err != nil {
								t.Error(err)
								return
							}
							_, err = PgTx(ctx, p.Value(h), id)
							p.Put(h)
							if err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if after := counter(t, dsn, id); after-before != g*n {
					t.Fatalf("the counter of row %d went from %d to %d; want +%d", id, before, after, g*n)
				}
				op, err := PgOp("select")
				if err != nil {
					t.Fatal(err)
				}
				h, _ = p.Get(ctx)
				err = op(ctx, p.Value(h), 3)
				p.Put(h)
				if err != nil {
					t.Fatalf("the S8 select op: %v", err)
				}
			})
		}
	})
	t.Run("redis", func(t *testing.T) {
		addr, mks := redisPools(t)
		keys, err := RedisPrepare(t.Context(), addr, 4)
		if err != nil {
			t.Fatal(err)
		}
		for i, mk := range mks {
			t.Run(redisNames[i], func(t *testing.T) {
				ctx := t.Context()
				p, err := mk(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				for _, name := range []string{"set", "get"} {
					op, err := RedisOp(name, keys)
					if err != nil {
						t.Fatal(err)
					}
					h, err := p.Get(ctx)
					if err != nil {
						t.Fatal(err)
					}
					err = op(ctx, p.Value(h), 3)
					p.Put(h)
					if err != nil {
						t.Fatalf("the S8 %s op: %v", name, err)
					}
				}
			})
		}
	})
	if _, err := PgOp("delete"); err == nil {
		t.Error("PgOp accepted an unknown op")
	}
	if _, err := RedisOp("del", nil); err == nil {
		t.Error("RedisOp accepted an unknown op")
	}
}

func counter(t *testing.T, dsn string, id int32) int64 {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	r, err := PgSelect(t.Context(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	return r.N
}

// oneHolderAtATime runs 16 goroutines through p and fails t if two of them
// hold the connection with the same server-side id at once; then checks that
// every connection can still be acquired.
func oneHolderAtATime[R any](t *testing.T, p Pool[R, any], id func(R) (int64, error)) {
	var mu sync.Mutex
	holders := map[int64]*atomic.Int32{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 30 {
				h, err := p.Get(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				n, err := id(p.Value(h))
				if err != nil {
					t.Error(err)
					p.Put(h)
					return
				}
				mu.Lock()
				c, ok := holders[n]
				if !ok {
					c = new(atomic.Int32)
					holders[n] = c
				}
				mu.Unlock()
				if k := c.Add(1); k != 1 {
					t.Errorf("server connection %d has %d holders at once", n, k)
				}
				time.Sleep(50 * time.Microsecond) // hold it a while, real time: the servers are real
				c.Add(-1)
				p.Put(h)
			}
		})
	}
	wg.Wait()
	if len(holders) > s8TestConns {
		t.Errorf("%d distinct server connections were handed out by a pool of %d", len(holders), s8TestConns)
	}
	if n := acquirable(p, s8TestConns, 5*time.Second); n != s8TestConns {
		t.Fatalf("only %d of %d connections acquirable afterwards", n, s8TestConns)
	}
}

// noLossToCancelledGets runs 16 goroutines, the odd ones with 20 µs deadlines,
// then checks that every connection can still be acquired.
func noLossToCancelledGets[R any](t *testing.T, p Pool[R, any]) {
	var wg sync.WaitGroup
	var expired atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			for range 50 {
				ctx, cancel := t.Context(), context.CancelFunc(func() {})
				if g%2 == 1 {
					ctx, cancel = context.WithTimeout(ctx, 20*time.Microsecond)
				}
				h, err := p.Get(ctx)
				cancel()
				if err != nil {
					if g%2 == 0 {
						t.Errorf("Get without a deadline failed: %v", err)
					}
					expired.Add(1)
					continue
				}
				time.Sleep(20 * time.Microsecond)
				p.Put(h)
			}
		})
	}
	wg.Wait()
	if expired.Load() == 0 {
		t.Log("no Get expired in this run: the churn did not exercise cancellation")
	}
	if n := acquirable(p, s8TestConns, 5*time.Second); n != s8TestConns {
		t.Fatalf("only %d of %d connections acquirable after %d cancelled Gets", n, s8TestConns, expired.Load())
	}
}

func TestS8AdaptersHandEachConnectionToOneHolderAndLoseNoneToCancelledGets(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		_, mks := pgPools(t)
		for i, mk := range mks {
			t.Run(pgNames[i], func(t *testing.T) {
				p, err := mk(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				oneHolderAtATime(t, p, pgID)
				noLossToCancelledGets(t, p)
			})
		}
	})
	t.Run("redis", func(t *testing.T) {
		_, mks := redisPools(t)
		for i, mk := range mks {
			t.Run(redisNames[i], func(t *testing.T) {
				p, err := mk(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				oneHolderAtATime(t, p, redisID)
				noLossToCancelledGets(t, p)
			})
		}
	})
}
