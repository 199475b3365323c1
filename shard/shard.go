package shard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
)

// Errors of the shard set, for errors.Is. Errors about one shard come wrapped
// in an *Error that names it.
var (
	// ErrUnknownShard: no serving shard has that name.
	ErrUnknownShard = errors.New("shard: no such shard")
	// ErrDuplicateShard: AddShard (or New) was given a name that a shard has
	// already, or that is being added or removed right now.
	ErrDuplicateShard = errors.New("shard: shard name taken")
	// ErrLastShard: RemoveShard of the only shard; a Pool always has one.
	ErrLastShard = errors.New("shard: cannot remove the last shard")
)

// Error is an error about one shard: an Acquire that failed on it, a Resize
// it refused, a pool that would not start or close. It names the shard and
// wraps the cause, so errors.Is(err, tidepool.ErrAcquireTimeout),
// errors.Is(err, context.DeadlineExceeded), errors.Is(err, tidepool.ErrDial)
// and so on work through it, and errors.As gives the shard's name.
type Error struct {
	// Pool is the sharded pool's Config.Name; Shard the shard's name.
	Pool, Shard string
	// Err is the cause.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("shard %q of pool %q: %v", e.Shard, e.Pool, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Shard describes one shard: its name, which is its identity for routing, and
// its pool's configuration.
type Shard[T any] struct {
	// Name identifies the shard: keys map to names (see Locate), in logs it is
	// the "shard" field, in metrics the shard label. Required, unique.
	Name string
	// Config is the shard's pool: its own Dial (address), sizes, health
	// checks and timeouts. Name defaults to the sharded pool's Config.Name,
	// Logger to its Logger; either way the logger gets a "shard" field.
	Config tidepool.Config[T]
}

// Config configures a sharded Pool.
type Config[T any] struct {
	// Name identifies the sharded pool in its own log entries ("pool"), in
	// errors, and as the default pool name of its shards. Default "shards".
	Name string
	// Shards are the shards to start with; at least one.
	Shards []Shard[T]
	// Logger receives the pool's events (see the Event constants) and, with a
	// "shard" field, those of every shard's pool whose Config has no Logger
	// of its own. Default: no logging.
	Logger *zap.Logger
}

// Pool routes keys to shards, one tidepool.Pool per shard. Create it with
// New; it is safe for concurrent use. See the package comment for what it
// guarantees about routing and isolation.
type Pool[T any] struct {
	// Immutable after New.
	name string
	base *zap.Logger // Config.Logger, for the shards' pools
	log  *zap.Logger // base with the "pool" field

	// table is the routing table, replaced whole (copy on write) under mu by
	// AddShard, RemoveShard and Close. Acquire reads it with one atomic load
	// and writes nothing shared: the only memory two shards' Acquires share
	// is this pointer and the table it points to, both read-only.
	table atomic.Pointer[table[T]]

	// mu serializes changes to the shard set; never taken by Acquire.
	mu sync.Mutex
	// Guarded by mu.
	closed   bool
	pending  map[string]bool      // names AddShard is starting a pool for
	draining map[string]*drain[T] // shards RemoveShard is closing

	// Counters, written off the acquire path.
	added, removed, rerouted atomic.Int64
}

// member is one serving shard. Immutable.
type member[T any] struct {
	name string
	pool *tidepool.Pool[T]
}

// table is an immutable routing table: parallel slices, in the order the
// shards were added.
type table[T any] struct {
	seeds   []uint64 // hashString(name)
	names   []string
	members []*member[T]
}

func (t *table[T]) index(name string) int {
	for i, n := range t.names {
		if n == name {
			return i
		}
	}
	return -1
}

// with returns a copy of t with m appended.
func (t *table[T]) with(m *member[T]) *table[T] {
	n := &table[T]{
		seeds:   append(append(make([]uint64, 0, len(t.seeds)+1), t.seeds...), hashString(m.name)),
		names:   append(append(make([]string, 0, len(t.names)+1), t.names...), m.name),
		members: append(append(make([]*member[T], 0, len(t.members)+1), t.members...), m),
	}
	return n
}

// without returns a copy of t without its i-th shard.
func (t *table[T]) without(i int) *table[T] {
	n := &table[T]{}
	for j := range t.members {
		if j != i {
			n.seeds = append(n.seeds, t.seeds[j])
			n.names = append(n.names, t.names[j])
			n.members = append(n.members, t.members[j])
		}
	}
	return n
}

// drain is a shard being removed: its pool is closing.
type drain[T any] struct {
	m     *member[T]
	abort context.CancelFunc // ends the close's wait for holders
	done  chan struct{}      // closed once the pool's Close has returned
}

// New starts a pool for every shard in cfg.Shards — concurrently, each
// warming its MinIdle connections within ctx — and returns the sharded pool.
// If any shard fails to start, New closes the others and returns an *Error
// naming it. A cfg without shards, or with an empty or repeated shard name,
// returns an error wrapping tidepool.ErrInvalidConfig.
func New[T any](ctx context.Context, cfg Config[T]) (*Pool[T], error) {
	if cfg.Name == "" {
		cfg.Name = "shards"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if len(cfg.Shards) == 0 {
		return nil, fmt.Errorf("%w: shard pool %q: Shards is empty: at least one shard is required", tidepool.ErrInvalidConfig, cfg.Name)
	}
	seen := make(map[string]bool, len(cfg.Shards))
	for i, s := range cfg.Shards {
		if s.Name == "" {
			return nil, fmt.Errorf("%w: shard pool %q: Shards[%d].Name is empty: every shard needs a name", tidepool.ErrInvalidConfig, cfg.Name, i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%w: shard pool %q: Shards[%d].Name = %q: %w", tidepool.ErrInvalidConfig, cfg.Name, i, s.Name, ErrDuplicateShard)
		}
		seen[s.Name] = true
	}
	p := &Pool[T]{
		name:     cfg.Name,
		base:     cfg.Logger,
		log:      cfg.Logger.With(zap.String("pool", cfg.Name)),
		pending:  map[string]bool{},
		draining: map[string]*drain[T]{},
	}
	pools := make([]*tidepool.Pool[T], len(cfg.Shards))
	errs := make([]error, len(cfg.Shards))
	var wg sync.WaitGroup
	for i, s := range cfg.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl, err := tidepool.New(ctx, p.shardConfig(s))
			if err != nil {
				errs[i] = &Error{Pool: p.name, Shard: s.Name, Err: err}
				return
			}
			pools[i] = pl
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, pl := range pools {
			if pl != nil {
				_ = pl.Close(context.Background())
			}
		}
		return nil, err
	}
	t := &table[T]{}
	names := make([]string, len(cfg.Shards))
	for i, s := range cfg.Shards {
		t = t.with(&member[T]{name: s.Name, pool: pools[i]})
		names[i] = s.Name
	}
	p.table.Store(t)
	p.log.Info(EventStarted, zap.String("event", EventStarted), zap.Strings("shards", names))
	return p, nil
}

// shardConfig fills in a shard's pool name and logger.
func (p *Pool[T]) shardConfig(s Shard[T]) tidepool.Config[T] {
	c := s.Config
	if c.Name == "" {
		c.Name = p.name
	}
	if c.Logger == nil {
		c.Logger = p.base
	}
	c.Logger = c.Logger.With(zap.String("shard", s.Name))
	return c
}

// Conn is a connection of one shard, returned by Acquire: a tidepool.Conn
// (Value, Release, Destroy, ID, CreatedAt, with their guarantees; Release
// returns it to its own shard's pool) that also knows its shard. A small
// value: copying it is fine and allocates nothing.
type Conn[T any] struct {
	tidepool.Conn[T]
	shard string
}

// Shard returns the name of the shard the connection belongs to.
func (c Conn[T]) Shard() string { return c.shard }

// Acquire returns a connection of the shard that key maps to (see Locate),
// with that shard's pool's Acquire and all its guarantees: waiting within
// ctx, fairness, prompt failure while the shard's backend is down.
//
// It shares nothing with other shards on the way: it hashes the key, reads
// the routing table with one atomic load, scores the shards (O(shards), no
// allocation) and calls the shard's pool, so a slow or dead shard holds up
// only the Acquires for its own keys. With an idle connection there, Acquire
// takes no lock and allocates nothing.
//
// Errors name the shard: an *Error wrapping the pool's error
// (tidepool.ErrDial, tidepool.ErrAcquireTimeout, ctx's error, ...). An
// Acquire that meets a shard being removed is routed again, to the key's new
// shard, and counted in Stats.Rerouted. After Close it returns an error
// wrapping tidepool.ErrClosed. A nil ctx panics.
func (p *Pool[T]) Acquire(ctx context.Context, key string) (Conn[T], error) {
	if ctx == nil {
		panic("shard: Acquire called with a nil context; pass context.Background() or a context with a deadline")
	}
	kh := hashString(key)
	t := p.table.Load()
	for {
		i := pick(t.seeds, t.names, kh)
		if i < 0 {
			return Conn[T]{}, p.closedErr()
		}
		m := t.members[i]
		h, err := m.pool.Acquire(ctx)
		if err == nil {
			return Conn[T]{Conn: h, shard: m.name}, nil
		}
		if errors.Is(err, tidepool.ErrClosed) {
			// The shard was removed (or the whole pool closed) after we read
			// the table: the table has changed since, so route again.
			if nt := p.table.Load(); nt != t {
				t = nt
				p.rerouted.Add(1)
				continue
			}
		}
		return Conn[T]{}, &Error{Pool: p.name, Shard: m.name, Err: err}
	}
}

func (p *Pool[T]) closedErr() error {
	return fmt.Errorf("shard pool %q: %w", p.name, tidepool.ErrClosed)
}

// ShardOf returns the name of the shard key maps to now; "" after Close.
// O(shards), no allocation.
func (p *Pool[T]) ShardOf(key string) string {
	t := p.table.Load()
	if i := pick(t.seeds, t.names, hashString(key)); i >= 0 {
		return t.names[i]
	}
	return ""
}

// Shards returns the names of the serving shards, in the order they were
// added (shards being removed are not listed).
func (p *Pool[T]) Shards() []string {
	return append([]string(nil), p.table.Load().names...)
}

// lookup returns the serving shard called name, or an *Error wrapping
// ErrUnknownShard (or ErrClosed after Close).
func (p *Pool[T]) lookup(name string) (*member[T], error) {
	t := p.table.Load()
	if i := t.index(name); i >= 0 {
		return t.members[i], nil
	}
	if len(t.members) == 0 {
		return nil, p.closedErr()
	}
	return nil, &Error{Pool: p.name, Shard: name, Err: ErrUnknownShard}
}

// Resize sets one shard's bounds with its pool's Resize: it returns once that
// shard's reconcile loop has adopted them, and the other shards do not notice.
// Errors are *Error values naming the shard, wrapping ErrUnknownShard,
// tidepool.ErrInvalidResize (bad bounds: nothing changes) or
// tidepool.ErrClosed.
func (p *Pool[T]) Resize(shard string, min, max int) error {
	m, err := p.lookup(shard)
	if err != nil {
		return err
	}
	if err := m.pool.Resize(min, max); err != nil {
		return &Error{Pool: p.name, Shard: shard, Err: err}
	}
	return nil
}

// InUse lists the connections held right now on one shard (see
// tidepool.Pool.InUse); O(that shard's connections).
func (p *Pool[T]) InUse(shard string) ([]tidepool.HeldConn, error) {
	m, err := p.lookup(shard)
	if err != nil {
		return nil, err
	}
	return m.pool.InUse(), nil
}

// AddShard starts a pool for s (warming its MinIdle connections within ctx)
// and, once it is ready, adds it to the routing table: from then on the keys
// that map to it — about 1/n of them with n shards after the add, and no
// others — go to it. Acquires already waiting on their old shard stay there.
//
// An empty name returns an error wrapping tidepool.ErrInvalidConfig; a name in
// use (serving, being added or being removed) an *Error wrapping
// ErrDuplicateShard; a pool that fails to start an *Error wrapping its error,
// and nothing changes. After Close: an error wrapping tidepool.ErrClosed.
func (p *Pool[T]) AddShard(ctx context.Context, s Shard[T]) error {
	if s.Name == "" {
		return fmt.Errorf("%w: shard pool %q: AddShard: Name is empty: every shard needs a name", tidepool.ErrInvalidConfig, p.name)
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return p.closedErr()
	case p.table.Load().index(s.Name) >= 0 || p.pending[s.Name] || p.draining[s.Name] != nil:
		p.mu.Unlock()
		return &Error{Pool: p.name, Shard: s.Name, Err: ErrDuplicateShard}
	}
	p.pending[s.Name] = true
	p.mu.Unlock()

	start := time.Now()
	pl, err := tidepool.New(ctx, p.shardConfig(s))

	p.mu.Lock()
	delete(p.pending, s.Name)
	if err != nil {
		p.mu.Unlock()
		return &Error{Pool: p.name, Shard: s.Name, Err: err}
	}
	if p.closed {
		p.mu.Unlock()
		_ = pl.Close(ctx)
		return p.closedErr()
	}
	t := p.table.Load().with(&member[T]{name: s.Name, pool: pl})
	p.table.Store(t)
	p.mu.Unlock()

	p.added.Add(1)
	st := pl.Stats()
	p.log.Info(EventAdded, zap.String("event", EventAdded), zap.String("shard", s.Name),
		zap.Int("shards", len(t.names)), zap.Int("min_idle", st.MinIdle), zap.Int("max_size", st.MaxSize),
		zap.Duration("took", time.Since(start)))
	return nil
}

// RemoveShard takes a shard out of the routing table — from then on its keys
// go to their new shards (each to the shard that scored second for it; no
// other key moves) — and closes its pool gracefully: idle connections close at
// once, held ones as their holders release them, and Acquires waiting on it
// are routed again. It returns when the pool has closed: when the last holder
// released, or when ctx ends, at which point the connections still held are
// closed under their holders and the error (an *Error) says how many.
// An Acquire that raced the removal may still have got one of the shard's
// connections; it is one of the held connections the removal waits for.
//
// Errors: an *Error wrapping ErrUnknownShard or ErrLastShard (nothing
// changes), or wrapping tidepool.ErrClosed after Close. Close while a removal
// waits makes it stop waiting at Close's deadline at the latest.
func (p *Pool[T]) RemoveShard(ctx context.Context, name string) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.closedErr()
	}
	t := p.table.Load()
	i := t.index(name)
	if i < 0 {
		p.mu.Unlock()
		return &Error{Pool: p.name, Shard: name, Err: ErrUnknownShard}
	}
	if len(t.members) == 1 {
		p.mu.Unlock()
		return &Error{Pool: p.name, Shard: name, Err: ErrLastShard}
	}
	m := t.members[i]
	dctx, abort := context.WithCancel(ctx)
	defer abort()
	d := &drain[T]{m: m, abort: abort, done: make(chan struct{})}
	p.draining[name] = d
	nt := t.without(i)
	p.table.Store(nt)
	p.mu.Unlock()

	start := time.Now()
	p.log.Info(EventRemoveStarted, zap.String("event", EventRemoveStarted), zap.String("shard", name),
		zap.Int("shards", len(nt.names)), zap.Int("in_use", m.pool.Stats().InUse))
	err := m.pool.Close(dctx)

	p.mu.Lock()
	delete(p.draining, name)
	p.mu.Unlock()
	close(d.done)
	p.removed.Add(1)
	p.log.Info(EventRemoved, zap.String("event", EventRemoved), zap.String("shard", name),
		zap.Duration("took", time.Since(start)), zap.Bool("forced", err != nil))
	if err != nil {
		return &Error{Pool: p.name, Shard: name, Err: err}
	}
	return nil
}

// Close closes every shard's pool, concurrently, each with ctx (see
// tidepool.Pool.Close: holders are waited for until ctx ends, then their
// connections are closed under them). New Acquires fail with an error
// wrapping tidepool.ErrClosed at once. Removals in progress stop waiting when
// ctx ends. When Close returns, every shard's pool has closed and left no
// goroutine behind — except the pool of an AddShard still warming, which that
// AddShard closes itself before it returns. The error joins the shards'
// *Errors; a second Close returns an error wrapping tidepool.ErrClosed.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.closedErr()
	}
	p.closed = true
	t := p.table.Load()
	p.table.Store(&table[T]{})
	drains := make([]*drain[T], 0, len(p.draining))
	for _, d := range p.draining {
		drains = append(drains, d)
	}
	p.mu.Unlock()

	start := time.Now()
	for _, d := range drains {
		stop := context.AfterFunc(ctx, d.abort)
		defer stop()
	}
	errs := make([]error, len(t.members))
	var wg sync.WaitGroup
	for i, m := range t.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.pool.Close(ctx); err != nil {
				errs[i] = &Error{Pool: p.name, Shard: m.name, Err: err}
			}
		}()
	}
	wg.Wait()
	for _, d := range drains {
		<-d.done
	}
	err := errors.Join(errs...)
	p.log.Info(EventClosed, zap.String("event", EventClosed), zap.Duration("took", time.Since(start)),
		zap.Bool("forced", err != nil))
	return err
}
