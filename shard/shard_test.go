package shard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is a connection to a fake shard backend.
type fakeConn struct {
	shard  string
	id     int64
	closed atomic.Bool
}

// backend is one fake shard server: dials succeed at once, fail (down) or
// hang until their context ends (hang).
type backend struct {
	name  string
	down  atomic.Bool
	hang  atomic.Bool
	dials atomic.Int64
	mu    sync.Mutex
	conns []*fakeConn
}

var errRefused = errors.New("connect: connection refused")

func (b *backend) dial(ctx context.Context) (*fakeConn, error) {
	n := b.dials.Add(1)
	if b.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.down.Load() {
		return nil, errRefused
	}
	c := &fakeConn{shard: b.name, id: n}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	return c, nil
}

// allClosed reports whether every connection the backend made was closed.
func (b *backend) allClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		if !c.closed.Load() {
			return false
		}
	}
	return true
}

func (b *backend) config() tidepool.Config[*fakeConn] {
	return tidepool.Config[*fakeConn]{
		Dial:    b.dial,
		Close:   func(c *fakeConn) error { c.closed.Store(true); return nil },
		MaxSize: 4,
		// Short backoff: a test that takes a backend down and up again does
		// not wait long for the pool to dial again.
		DialBackoff: 10 * time.Millisecond, DialBackoffMax: 20 * time.Millisecond,
	}
}

// cluster is a set of fake backends, one per shard.
type cluster map[string]*backend

func newCluster(names ...string) cluster {
	c := cluster{}
	for _, n := range names {
		c[n] = &backend{name: n}
	}
	return c
}

func (c cluster) shards(names ...string) []shard.Shard[*fakeConn] {
	var s []shard.Shard[*fakeConn]
	for _, n := range names {
		s = append(s, shard.Shard[*fakeConn]{Name: n, Config: c[n].config()})
	}
	return s
}

func newPool(t *testing.T, cfg shard.Config[*fakeConn]) *shard.Pool[*fakeConn] {
	t.Helper()
	p, err := shard.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("shard.New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func acquire(t *testing.T, p *shard.Pool[*fakeConn], key string) shard.Conn[*fakeConn] {
	t.Helper()
	c, err := p.Acquire(context.Background(), key)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", key, err)
	}
	return c
}

// keysOn returns n keys that map to shard s in p.
func keysOn(p *shard.Pool[*fakeConn], s string, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := "key" + strconv.Itoa(i); p.ShardOf(k) == s {
			keys = append(keys, k)
		}
	}
	return keys
}

func shardStats(t *testing.T, p *shard.Pool[*fakeConn], name string) shard.ShardStats {
	t.Helper()
	for _, s := range p.Stats().Shards {
		if s.Shard == name {
			return s
		}
	}
	t.Fatalf("no shard %q in Stats", name)
	return shard.ShardStats{}
}

func TestAcquireRoutesEachKeyToItsShardsPool(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	cl := newCluster(names...)
	p := newPool(t, shard.Config[*fakeConn]{Name: "cache", Shards: cl.shards(names...)})
	if got := p.Shards(); strings.Join(got, ",") != "a,b,c,d" {
		t.Fatalf("Shards() = %v, want a,b,c,d", got)
	}
	served := map[string]int{}
	for i := range 400 {
		key := fmt.Sprintf("user:%d", i)
		c := acquire(t, p, key)
		want := shard.Locate(key, names)
		if c.Shard() != want || c.Value().shard != want || p.ShardOf(key) != want {
			t.Fatalf("key %q: Conn.Shard %q, backend %q, ShardOf %q; want %q", key, c.Shard(), c.Value().shard, p.ShardOf(key), want)
		}
		served[want]++
		c.Release()
	}
	for _, n := range names {
		if st := shardStats(t, p, n); st.Acquires != int64(served[n]) || st.Name != "cache" {
			t.Errorf("shard %s: Stats.Acquires %d, name %q; want %d, \"cache\"", n, st.Acquires, st.Name, served[n])
		}
	}
}

func TestNewRejectsBadConfigsWithAnErrorNamingTheField(t *testing.T) {
	cl := newCluster("a", "b")
	bad := cl["a"].config()
	bad.MinIdle = 9 // above MaxSize 4
	for _, tc := range []struct {
		name   string
		shards []shard.Shard[*fakeConn]
		want   string
		is     error
	}{
		{"no shards", nil, "Shards is empty", tidepool.ErrInvalidConfig},
		{"empty name", []shard.Shard[*fakeConn]{{Config: cl["a"].config()}}, "Shards[0].Name is empty", tidepool.ErrInvalidConfig},
		{"duplicate", append(cl.shards("a", "b"), cl.shards("a")...), `Shards[2].Name = "a"`, shard.ErrDuplicateShard},
		{"bad shard config", []shard.Shard[*fakeConn]{{Name: "a", Config: cl["a"].config()}, {Name: "b", Config: bad}},
			`shard "b" of pool "p": tidepool: invalid config: MinIdle = 9`, tidepool.ErrInvalidConfig},
	} {
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: tc.shards})
		if err == nil {
			p.Close(context.Background())
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %q, want one wrapping %v that contains %q", tc.name, err, tc.is, tc.want)
		}
	}
}

// A shard that cannot warm up fails New, which closes the shards that did.
func TestNewClosesTheStartedShardsWhenOneFails(t *testing.T) {
	cl := newCluster("a", "b", "c")
	cl["b"].down.Store(true)
	shards := cl.shards("a", "b", "c")
	for i := range shards {
		shards[i].Config.MinIdle = 2
	}
	_, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: shards})
	var se *shard.Error
	if !errors.As(err, &se) || se.Shard != "b" || !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errRefused) {
		t.Fatalf("New = %v, want an *Error naming shard b that wraps ErrDial and the refusal", err)
	}
	for _, n := range []string{"a", "c"} {
		if cl[n].dials.Load() == 0 || !cl[n].allClosed() {
			t.Errorf("shard %s: %d dials, all closed %v; want its warm connections closed", n, cl[n].dials.Load(), cl[n].allClosed())
		}
	}
}

func TestAcquireErrorNamesTheShardAndWrapsTheCause(t *testing.T) {
	cl := newCluster("up", "down")
	cl["down"].down.Store(true)
	p := newPool(t, shard.Config[*fakeConn]{Name: "cache", Shards: cl.shards("up", "down")})
	key := keysOn(p, "down", 1)[0]
	_, err := p.Acquire(context.Background(), key)
	var se *shard.Error
	if !errors.As(err, &se) || se.Shard != "down" || se.Pool != "cache" {
		t.Fatalf("Acquire = %v, want an *Error naming shard down of pool cache", err)
	}
	if !errors.Is(err, tidepool.ErrDial) || !errors.Is(err, errRefused) {
		t.Errorf("Acquire error %v does not wrap ErrDial and the dial's error", err)
	}
	if want := `shard "down" of pool "cache": tidepool: dial failed`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	acquire(t, p, keysOn(p, "up", 1)[0]).Release()
}

// A shard whose dials hang holds up only its own keys: in fake time, the
// other shards' Acquires take no time at all, while the hung shard's fail
// exactly at their deadline with an error naming it.
func TestHungShardDelaysOnlyItsOwnKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"0", "1", "2", "3"}
		cl := newCluster(names...)
		cl["2"].hang.Store(true)
		shards := cl.shards(names...)
		for i := range shards {
			shards[i].Config.DialTimeout = time.Hour
		}
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "cache", Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())

		// Four Acquires stuck on shard 2, each with its dial hanging.
		stuckKeys := keysOn(p, "2", 6)
		stuckCtx, cancelStuck := context.WithCancel(context.Background())
		stuck := make(chan error, 4)
		for _, k := range stuckKeys[:4] {
			go func() {
				_, err := p.Acquire(stuckCtx, k)
				stuck <- err
			}()
		}
		synctest.Wait()
		if st := shardStats(t, p, "2"); st.Waiting != 4 || st.Dialing != 4 {
			t.Fatalf("shard 2: %d waiting, %d dialing; want 4 and 4", st.Waiting, st.Dialing)
		}
		start := time.Now()
		for _, n := range []string{"0", "1", "3"} {
			for _, k := range keysOn(p, n, 20) {
				c := acquire(t, p, k)
				c.Release()
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("60 Acquires on the healthy shards took %v of fake time, want 0", d)
		}
		select {
		case err := <-stuck:
			t.Fatalf("a stuck Acquire returned while the healthy shards were served: %v", err)
		default:
		}

		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err = p.Acquire(ctx, stuckKeys[4])
		took := time.Since(start)
		var se *shard.Error
		if !errors.As(err, &se) || se.Shard != "2" || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Acquire on the hung shard = %v, want an *Error naming shard 2 wrapping DeadlineExceeded", err)
		}
		if took != 250*time.Millisecond {
			t.Errorf("Acquire on the hung shard failed after %v, want exactly its 250ms deadline", took)
		}
		cancelStuck()
		for range 4 {
			if err := <-stuck; !errors.As(err, &se) || se.Shard != "2" || !errors.Is(err, context.Canceled) {
				t.Errorf("stuck Acquire = %v, want an *Error naming shard 2 wrapping Canceled", err)
			}
		}
	})
}

func TestResizeChangesOnlyItsShard(t *testing.T) {
	cl := newCluster("a", "b")
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b")})
	if err := p.Resize("b", 1, 9); err != nil {
		t.Fatal(err)
	}
	if a, b := shardStats(t, p, "a"), shardStats(t, p, "b"); a.MaxSize != 4 || a.Resizes != 0 || b.MaxSize != 9 || b.MinIdle != 1 || b.Resizes != 1 {
		t.Errorf("after Resize(b, 1, 9): a max %d resizes %d, b min %d max %d resizes %d; want a untouched at 4, b at 1/9",
			a.MaxSize, a.Resizes, b.MinIdle, b.MaxSize, b.Resizes)
	}
	var se *shard.Error
	err := p.Resize("b", 5, 2)
	if !errors.As(err, &se) || se.Shard != "b" || !errors.Is(err, tidepool.ErrInvalidResize) {
		t.Errorf("Resize(b, 5, 2) = %v, want an *Error naming b wrapping ErrInvalidResize", err)
	}
	err = p.Resize("zz", 1, 2)
	if !errors.As(err, &se) || se.Shard != "zz" || !errors.Is(err, shard.ErrUnknownShard) {
		t.Errorf("Resize(zz) = %v, want an *Error naming zz wrapping ErrUnknownShard", err)
	}
	if _, err := p.InUse("zz"); !errors.Is(err, shard.ErrUnknownShard) {
		t.Errorf("InUse(zz) = %v, want ErrUnknownShard", err)
	}
	c := acquire(t, p, keysOn(p, "a", 1)[0])
	defer c.Release()
	if held, err := p.InUse("a"); err != nil || len(held) != 1 || held[0].ID != c.ID() {
		t.Errorf("InUse(a) = %v, %v; want the one held connection %d", held, err, c.ID())
	}
}

func TestAddShardMovesKeysOnlyToTheNewShard(t *testing.T) {
	cl := newCluster("a", "b", "c", "d")
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b", "c")})
	before := map[string]string{}
	for i := range 3000 {
		k := "key" + strconv.Itoa(i)
		before[k] = p.ShardOf(k)
	}
	if err := p.AddShard(context.Background(), cl.shards("d")[0]); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for k, was := range before {
		now := p.ShardOf(k)
		if now == was {
			continue
		}
		moved++
		if now != "d" {
			t.Fatalf("key %q moved from %s to %s, not to the new shard d", k, was, now)
		}
	}
	if moved < 3000/4*8/10 || moved > 3000/4*12/10 {
		t.Errorf("%d of 3000 keys moved, want about 750 (1/4)", moved)
	}
	c := acquire(t, p, keysOn(p, "d", 1)[0])
	if c.Shard() != "d" || c.Value().shard != "d" {
		t.Errorf("a key of d was served by %s (backend %s)", c.Shard(), c.Value().shard)
	}
	c.Release()
	if st := p.Stats(); st.Added != 1 || len(st.Shards) != 4 {
		t.Errorf("Stats: added %d, %d shards; want 1 and 4", st.Added, len(st.Shards))
	}
}

func TestAddShardRefusesTakenNamesAndPoolsThatFailToStart(t *testing.T) {
	cl := newCluster("a", "b")
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a")})
	var se *shard.Error
	if err := p.AddShard(context.Background(), cl.shards("a")[0]); !errors.As(err, &se) || !errors.Is(err, shard.ErrDuplicateShard) {
		t.Errorf("AddShard(a) again = %v, want ErrDuplicateShard", err)
	}
	if err := p.AddShard(context.Background(), shard.Shard[*fakeConn]{Config: cl["b"].config()}); !errors.Is(err, tidepool.ErrInvalidConfig) {
		t.Errorf("AddShard without a name = %v, want ErrInvalidConfig", err)
	}
	cl["b"].down.Store(true)
	s := cl.shards("b")[0]
	s.Config.MinIdle = 1
	if err := p.AddShard(context.Background(), s); !errors.As(err, &se) || se.Shard != "b" || !errors.Is(err, tidepool.ErrDial) {
		t.Errorf("AddShard of a down shard = %v, want an *Error naming b wrapping ErrDial", err)
	}
	if got := p.Shards(); len(got) != 1 {
		t.Errorf("Shards() = %v after failed adds, want [a]", got)
	}
}

// RemoveShard routes the shard's keys elsewhere at once, lets the connection
// still held finish, and returns when its holder releases it.
func TestRemoveShardLetsHeldConnsFinishAndRoutesNewAcquiresElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := newCluster("a", "b", "c")
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b", "c")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		keys := keysOn(p, "b", 3)
		held := acquire(t, p, keys[0])
		idle := acquire(t, p, keys[1])
		idle.Release()

		removed := make(chan error, 1)
		go func() { removed <- p.RemoveShard(context.Background(), "b") }()
		synctest.Wait()
		select {
		case err := <-removed:
			t.Fatalf("RemoveShard returned %v while a connection was held", err)
		default:
		}
		if st := shardStats(t, p, "b"); !st.Draining || st.InUse != 1 {
			t.Errorf("shard b while removed: draining %v, in use %d; want true, 1", st.Draining, st.InUse)
		}
		if got := p.Shards(); strings.Join(got, ",") != "a,c" {
			t.Errorf("Shards() during the removal = %v, want [a c]", got)
		}
		c := acquire(t, p, keys[2])
		if c.Shard() == "b" || c.Value().shard == "b" {
			t.Errorf("a new Acquire for a key of b went to %s", c.Shard())
		}
		c.Release()

		if held.Value().closed.Load() {
			t.Fatal("the held connection was closed under its holder")
		}
		held.Release()
		if err := <-removed; err != nil {
			t.Errorf("RemoveShard = %v, want nil", err)
		}
		if !cl["b"].allClosed() {
			t.Error("a connection of the removed shard is still open")
		}
		if st := p.Stats(); st.Removed != 1 || len(st.Shards) != 2 {
			t.Errorf("Stats: removed %d, %d shards; want 1, 2", st.Removed, len(st.Shards))
		}
	})
}

// An Acquire waiting on a shard when it is removed is routed to the key's new
// shard instead of failing.
func TestAcquireWaitingOnARemovedShardIsRerouted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := newCluster("a", "b", "c")
		shards := cl.shards("a", "b", "c")
		shards[1].Config.MaxSize = 1
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		keys := keysOn(p, "b", 2)
		held := acquire(t, p, keys[0])

		got := make(chan shard.Conn[*fakeConn], 1)
		go func() {
			c, err := p.Acquire(context.Background(), keys[1])
			if err != nil {
				t.Errorf("waiting Acquire = %v, want it rerouted and served", err)
			}
			got <- c
		}()
		synctest.Wait()
		if st := shardStats(t, p, "b"); st.Waiting != 1 {
			t.Fatalf("shard b: %d waiting, want 1", st.Waiting)
		}
		removed := make(chan error, 1)
		go func() { removed <- p.RemoveShard(context.Background(), "b") }()
		c := <-got
		if c.Shard() == "b" || c.Shard() != p.ShardOf(keys[1]) {
			t.Errorf("rerouted Acquire served by %q, want the key's new shard %q", c.Shard(), p.ShardOf(keys[1]))
		}
		c.Release()
		held.Release()
		if err := <-removed; err != nil {
			t.Errorf("RemoveShard = %v", err)
		}
		if st := p.Stats(); st.Rerouted != 1 {
			t.Errorf("Stats.Rerouted = %d, want 1", st.Rerouted)
		}
	})
}

// When RemoveShard's ctx ends before the holder releases, the held
// connection is closed under it; the later Release is a no-op.
func TestRemoveShardClosesHeldConnsWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := newCluster("a", "b")
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		held := acquire(t, p, keysOn(p, "b", 1)[0])
		v := held.Value()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err = p.RemoveShard(ctx, "b")
		var se *shard.Error
		if !errors.As(err, &se) || se.Shard != "b" || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RemoveShard = %v, want an *Error naming b wrapping DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("RemoveShard returned after %v, want its 2s deadline", d)
		}
		if !v.closed.Load() {
			t.Error("the held connection is still open after the forced removal")
		}
		held.Release() // a no-op now
	})
}

func TestRemoveShardRefusesUnknownAndLastShards(t *testing.T) {
	cl := newCluster("a", "b")
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b")})
	if err := p.RemoveShard(context.Background(), "zz"); !errors.Is(err, shard.ErrUnknownShard) {
		t.Errorf("RemoveShard(zz) = %v, want ErrUnknownShard", err)
	}
	if err := p.RemoveShard(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveShard(context.Background(), "b"); !errors.Is(err, shard.ErrLastShard) {
		t.Errorf("RemoveShard of the last shard = %v, want ErrLastShard", err)
	}
	// A removed name can be added again.
	if err := p.AddShard(context.Background(), cl.shards("a")[0]); err != nil {
		t.Errorf("AddShard(a) after its removal: %v", err)
	}
}

// Close closes every shard and ends a removal in progress at its deadline;
// afterwards every call fails with ErrClosed, and no goroutine is left.
func TestCloseClosesEveryShardAndEndsRemovalsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := newCluster("a", "b", "c")
		shards := cl.shards("a", "b", "c")
		for i := range shards {
			shards[i].Config.MinIdle = 1
		}
		p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "p", Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		held := acquire(t, p, keysOn(p, "c", 1)[0])
		removed := make(chan error, 1)
		go func() { removed <- p.RemoveShard(context.Background(), "c") }() // would wait forever
		synctest.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close = %v, want nil (the serving shards had nothing held)", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Close took %v, want the 1s it gave the removal", d)
		}
		if err := <-removed; !errors.Is(err, context.Canceled) {
			t.Errorf("the interrupted RemoveShard = %v, want it to report its cancelled wait", err)
		}
		held.Release()
		for n, b := range cl {
			if !b.allClosed() {
				t.Errorf("shard %s has open connections after Close", n)
			}
		}
		for what, err := range map[string]error{
			"Acquire":     func() error { _, err := p.Acquire(context.Background(), "k"); return err }(),
			"Close":       p.Close(context.Background()),
			"AddShard":    p.AddShard(context.Background(), cl.shards("a")[0]),
			"RemoveShard": p.RemoveShard(context.Background(), "a"),
			"Resize":      p.Resize("a", 0, 1),
		} {
			if !errors.Is(err, tidepool.ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", what, err)
			}
		}
		if p.ShardOf("k") != "" || len(p.Shards()) != 0 {
			t.Errorf("after Close: ShardOf %q, Shards %v; want none", p.ShardOf("k"), p.Shards())
		}
	})
}

// Every entry is an event whose message is its "event" field; the shards'
// pools' entries carry "shard", the sharded pool's own carry "pool".
func TestLogsNameTheShard(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cl := newCluster("a", "b", "c")
	shards := cl.shards("a", "b")
	for i := range shards {
		shards[i].Config.MinIdle = 1
	}
	p, err := shard.New(context.Background(), shard.Config[*fakeConn]{Name: "cache", Shards: shards, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddShard(context.Background(), cl.shards("c")[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveShard(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		shard.EventStarted:       {"pool", "shards"},
		shard.EventAdded:         {"pool", "shard", "shards", "min_idle", "max_size", "took"},
		shard.EventRemoveStarted: {"pool", "shard", "shards", "in_use"},
		shard.EventRemoved:       {"pool", "shard", "took", "forced"},
		shard.EventClosed:        {"pool", "took", "forced"},
	}
	seen := map[string]int{}
	dialedBy := map[string]int{}
	for _, e := range logs.All() {
		f := e.ContextMap()
		if f["event"] != e.Message {
			t.Errorf("entry %q has event %v", e.Message, f["event"])
		}
		seen[e.Message]++
		if fields, ok := want[e.Message]; ok {
			for _, k := range fields {
				if _, ok := f[k]; !ok {
					t.Errorf("%s entry lacks %q: %v", e.Message, k, f)
				}
			}
			continue
		}
		// Everything else comes from a shard's pool.
		if f["pool"] != "cache" || f["shard"] == nil {
			t.Errorf("shard pool entry %s without pool=cache and a shard: %v", e.Message, f)
		}
		if e.Message == "conn.dialed" {
			dialedBy[f["shard"].(string)]++
		}
	}
	for ev := range want {
		if seen[ev] != 1 {
			t.Errorf("%d %s entries, want 1", seen[ev], ev)
		}
	}
	if dialedBy["a"] != 1 || dialedBy["b"] != 1 || dialedBy["c"] != 0 {
		t.Errorf("conn.dialed by shard %v, want a:1 b:1 (MinIdle 1) and c:0", dialedBy)
	}
	if n := logs.FilterMessage("pool.closed").Len(); n != 3 {
		t.Errorf("%d pool.closed entries, want 3 (one per shard)", n)
	}
}

func TestStatsJSONHasOneObjectPerShard(t *testing.T) {
	cl := newCluster("a", "b")
	p := newPool(t, shard.Config[*fakeConn]{Name: "cache", Shards: cl.shards("a", "b")})
	acquire(t, p, keysOn(p, "b", 1)[0]).Release()
	b, err := json.Marshal(p.Stats())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name   string `json:"name"`
		Shards []struct {
			Shard    string `json:"shard"`
			Draining bool   `json:"draining"`
			Name     string `json:"name"`
			Acquires int64  `json:"acquires"`
			MaxSize  int    `json:"max_size"`
		} `json:"shards"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "cache" || len(got.Shards) != 2 || got.Shards[0].Shard != "a" || got.Shards[1].Shard != "b" ||
		got.Shards[1].Acquires != 1 || got.Shards[0].Acquires != 0 || got.Shards[0].MaxSize != 4 || got.Shards[0].Name != "cache" {
		t.Errorf("Stats JSON = %s", b)
	}
}

// With an idle connection on its shard, Acquire and Release allocate nothing.
func TestAcquireAllocatesNothingWithAnIdleConnection(t *testing.T) {
	names := []string{"0", "1", "2", "3", "4", "5", "6", "7"}
	cl := newCluster(names...)
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards(names...)})
	key := "user:42"
	acquire(t, p, key).Release()
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		c, err := p.Acquire(ctx, key)
		if err != nil {
			panic(err)
		}
		c.Release()
	}); n != 0 {
		t.Errorf("Acquire+Release allocates %v times, want 0", n)
	}
}

// Under concurrent load, shards come and go; every Acquire is served (the
// ones that meet a removed shard are rerouted) by the shard its key maps to
// at that moment or, for a racing removal, by the removed one.
func TestConcurrentAcquiresSurviveShardsComingAndGoing(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	cl := newCluster(all...)
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a", "b", "c")})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := "key" + strconv.Itoa(r.IntN(10000))
				c, err := p.Acquire(context.Background(), key)
				if err != nil {
					t.Errorf("Acquire(%q) = %v", key, err)
					return
				}
				if c.Value().shard != c.Shard() {
					t.Errorf("Conn.Shard %q but its backend is %q", c.Shard(), c.Value().shard)
				}
				served.Add(1)
				c.Release()
			}
		}()
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		// Add a shard that is not there, then remove one that is.
		cur := p.Shards()
		var absent []string
		for _, n := range all {
			if !contains(cur, n) {
				absent = append(absent, n)
			}
		}
		if err := p.AddShard(ctx, cl.shards(absent[r.IntN(len(absent))])[0]); err != nil {
			t.Fatal(err)
		}
		cur = p.Shards()
		if err := p.RemoveShard(ctx, cur[r.IntN(len(cur))]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	st := p.Stats()
	t.Logf("%d Acquires served, %d rerouted, %d shards added, %d removed", served.Load(), st.Rerouted, st.Added, st.Removed)
	if served.Load() == 0 || st.Added < 20 || st.Removed < 20 {
		t.Errorf("served %d, added %d, removed %d; want load and at least 20 of each", served.Load(), st.Added, st.Removed)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestAcquireWithANilContextPanicsWithAClearMessage(t *testing.T) {
	cl := newCluster("a")
	p := newPool(t, shard.Config[*fakeConn]{Name: "p", Shards: cl.shards("a")})
	defer func() {
		if r, _ := recover().(string); !strings.Contains(r, "shard: Acquire called with a nil context") {
			t.Errorf("panic %q, want one naming the nil context", r)
		}
	}()
	//lint:ignore SA1012 the nil context is the point
	_, _ = p.Acquire(nil, "k")
	t.Error("Acquire(nil) did not panic")
}
