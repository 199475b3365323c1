package bench

import (
	"context"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

// S8: real clients against real servers, 32 goroutines on 8 connections. The
// client's own pool runs first (it is the baseline), then tidepool holding the
// same kind of connection. Each op is timed whole (Get, the client's work,
// Put), and so are its Get and its Put: four clock reads, about 0.1 µs on an
// op of tens of µs. The servers come from $TIDEPOOL_BENCH_PG_DSN and
// $TIDEPOOL_BENCH_REDIS_ADDR (run.sh starts them once for the whole run), or
// are started here; without the binaries the benchmark skips, saying what is
// missing.
const (
	s8Goroutines = 32
	s8Conns      = 8
)

func BenchmarkS8Postgres(b *testing.B) {
	dsn := pgtest.Shared(b)
	if err := PgSetup(context.Background(), dsn); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"select", "tx"} {
		op, err := PgOp(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("op="+name, func(b *testing.B) {
			s8Sub(b, "pgxpool", func(ctx context.Context) (Pool[*pgx.Conn, *pgxpool.Conn], error) {
				return NewPgxpool(ctx, dsn, s8Conns)
			}, op)
			s8Sub(b, "tidepool", func(ctx context.Context) (Pool[*pgx.Conn, tidepool.Conn[*pgx.Conn]], error) {
				return NewPgTidepool(ctx, dsn, s8Conns)
			}, op)
		})
	}
}

func BenchmarkS8Redis(b *testing.B) {
	addr := redistest.Shared(b)
	keys, err := RedisPrepare(context.Background(), addr, s8Goroutines)
	if err != nil {
		b.Fatal(err)
	}
	spec := RedisSpec(addr, s8Conns)
	for _, name := range []string{"get", "set"} {
		op, err := RedisOp(name, keys)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("op="+name, func(b *testing.B) {
			s8Sub(b, "redigo", func(ctx context.Context) (Pool[redis.Conn, redis.Conn], error) {
				return NewRedigo(ctx, spec)
			}, op)
			s8Sub(b, "tidepool", func(ctx context.Context) (Pool[redis.Conn, tidepool.Conn[redis.Conn]], error) {
				return NewRedisTidepool(ctx, spec)
			}, op)
		})
	}
}

// s8Sub runs s8 against a pool made by mk, as sub-benchmark pool=name. The
// pool is made once and kept across the b.N runs the testing package makes of
// the leaf (as a service keeps its pool), and closed after the last.
func s8Sub[R, H any](b *testing.B, name string, mk func(context.Context) (Pool[R, H], error), op func(context.Context, R, int) error) {
	var p Pool[R, H]
	defer func() {
		if p != nil {
			p.Close()
		}
	}()
	b.Run("pool="+name, func(b *testing.B) {
		if p == nil {
			var err error
			if p, err = mk(context.Background()); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
		}
		s8(b, p, op)
	})
}

func s8[R, H any](b *testing.B, p Pool[R, H], op func(context.Context, R, int) error) {
	ctx := context.Background()
	if err := warm(ctx, p, s8Conns, op); err != nil {
		b.Fatal(err)
	}
	res := Drive(b, s8Goroutines, 1, func(w *Worker) bool {
		t0 := Now()
		h, err := p.Get(ctx)
		t1 := Now()
		if err != nil {
			b.Error(err)
			return false
		}
		err = op(ctx, p.Value(h), w.G)
		t2 := Now()
		p.Put(h)
		t3 := Now()
		w.Record(t3 - t0)
		w.Sums[0] += t1 - t0
		w.Sums[1] += t3 - t2
		if err != nil {
			b.Error(err)
			return false
		}
		return true
	})
	n := float64(len(res.Samples))
	var sum int64
	for _, v := range res.Samples {
		sum += v
	}
	q := Percentiles(res.Samples, 0.50, 0.99)
	b.ReportMetric(float64(res.OK)/res.Elapsed.Seconds(), "ops/s")
	b.ReportMetric(q[0], "p50-ns")
	b.ReportMetric(q[1], "p99-ns")
	b.ReportMetric(float64(res.Sums[0])/n, "get-ns")
	b.ReportMetric(float64(res.Sums[1])/n, "put-ns")
	b.ReportMetric(float64(sum-res.Sums[0]-res.Sums[1])/n, "hold-ns")
}

// warm runs op once on each of the pool's n connections, all held at once so
// that each is a different one, before the timer starts: a new connection's
// first op pays for things the steady state does not (pgx prepares its
// statements, a new PostgreSQL backend fills its caches), and every b.N run
// starts with new connections.
func warm[R, H any](ctx context.Context, p Pool[R, H], n int, op func(context.Context, R, int) error) error {
	held := make([]H, 0, n)
	defer func() {
		for _, h := range held {
			p.Put(h)
		}
	}()
	for i := range n {
		h, err := p.Get(ctx)
		if err != nil {
			return err
		}
		held = append(held, h)
		if err := op(ctx, p.Value(h), i); err != nil {
			return err
		}
	}
	return nil
}
