package puddlesuite

import (
	"context"
	"errors"
	"time"

	"github.com/tidepool-go/tidepool"
)

// ErrClosedPool is puddle's name for tidepool.ErrClosed: the pool is closed
// or closed while the Acquire waited.
var ErrClosedPool = errors.New("closed pool")

// ErrNotAvailable is puddle's name for tidepool.ErrExhausted: TryAcquire found
// nothing idle, or CreateResource found the pool full.
var ErrNotAvailable = errors.New("resource not available")

// Constructor is puddle's name for Config.Dial.
type Constructor[T any] func(ctx context.Context) (res T, err error)

// Destructor is puddle's name for Config.Close (puddle's returns nothing).
type Destructor[T any] func(res T)

// Config is puddle's configuration: the three fields puddle has.
type Config[T any] struct {
	Constructor Constructor[T]
	Destructor  Destructor[T]
	MaxSize     int32
}

// Pool is a puddle-shaped view of a tidepool.Pool. The tidepool pool holds
// *Resource[T] values, so each connection keeps one Resource for its whole
// life, as puddle's does: a Resource is the connection, and its current
// tidepool handle is stored in it at each hand-out.
type Pool[T any] struct {
	tp *tidepool.Pool[*Resource[T]]
}

// Resource is puddle's handle: the connection's value plus the tidepool
// handle of its current holder. conn is written by the goroutine that
// acquired it and read by that holder only (the pool's hand-off orders them).
type Resource[T any] struct {
	value T
	conn  tidepool.Conn[*Resource[T]]

	// Set by Hijack: tidepool's handle is spent after Hijack, puddle's keeps
	// answering Value, CreationTime, LastUsedNanotime and IdleDuration.
	hijacked  bool
	createdAt time.Time
	lastUsed  time.Time
}

// constructorError carries the constructor's own error through tidepool's
// ErrDial wrapping, so that Acquire can return it bare as puddle does.
type constructorError struct{ err error }

func (e *constructorError) Error() string { return e.err.Error() }
func (e *constructorError) Unwrap() error { return e.err }

// NewPool creates a pool. puddle rejects MaxSize < 1; tidepool reads
// MaxSize 0 as "the default, 8", so the adapter checks it first.
//
// Outage mode is turned off: puddle runs one constructor per Acquire that
// needs one and hands that Acquire its error, which is tidepool's
// DisableOutageMode.
func NewPool[T any](config *Config[T]) (*Pool[T], error) {
	if config.MaxSize < 1 {
		return nil, errors.New("MaxSize must be >= 1")
	}
	construct, destruct := config.Constructor, config.Destructor
	tp, err := tidepool.New(context.Background(), tidepool.Config[*Resource[T]]{
		Dial: func(ctx context.Context) (*Resource[T], error) {
			v, err := construct(ctx)
			if err != nil {
				return nil, &constructorError{err}
			}
			return &Resource[T]{value: v}, nil
		},
		Close: func(r *Resource[T]) error {
			destruct(r.value)
			return nil
		},
		MaxSize:           int(config.MaxSize),
		DisableOutageMode: true,
	})
	if err != nil {
		return nil, err
	}
	return &Pool[T]{tp: tp}, nil
}

// mapErr turns tidepool's errors into puddle's: its sentinels, the bare
// context error, and the constructor's bare error.
func mapErr(ctx context.Context, err error) error {
	var ce *constructorError
	switch {
	case errors.Is(err, tidepool.ErrClosed):
		return ErrClosedPool
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ctx.Err()
	case errors.As(err, &ce):
		return ce.err
	case errors.Is(err, tidepool.ErrExhausted):
		return ErrNotAvailable
	}
	return err
}

func (p *Pool[T]) handOut(c tidepool.Conn[*Resource[T]]) *Resource[T] {
	r := c.Value()
	r.conn = c
	return r
}

// Close closes the pool and waits, as puddle does, for every held resource
// to be released: tidepool's Close under a context that never ends. A second
// Close does nothing (tidepool returns ErrClosed, which puddle has no way to
// report).
func (p *Pool[T]) Close() {
	_ = p.tp.Close(context.Background())
}

// Acquire is tidepool's Acquire with puddle's errors.
func (p *Pool[T]) Acquire(ctx context.Context) (*Resource[T], error) {
	c, err := p.tp.Acquire(ctx)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return p.handOut(c), nil
}

// TryAcquire is tidepool's TryAcquire with puddle's errors.
func (p *Pool[T]) TryAcquire(ctx context.Context) (*Resource[T], error) {
	c, err := p.tp.TryAcquire(ctx)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return p.handOut(c), nil
}

// AcquireAllIdle is tidepool's AcquireAllIdle; nil when there is none, as
// puddle returns.
func (p *Pool[T]) AcquireAllIdle() []*Resource[T] {
	conns := p.tp.AcquireAllIdle(context.Background())
	if len(conns) == 0 {
		return nil
	}
	res := make([]*Resource[T], len(conns))
	for i, c := range conns {
		res[i] = p.handOut(c)
	}
	return res
}

// CreateResource is tidepool's DialIdle with puddle's errors.
func (p *Pool[T]) CreateResource(ctx context.Context) error {
	if err := p.tp.DialIdle(ctx); err != nil {
		return mapErr(ctx, err)
	}
	return nil
}

// Reset is tidepool's Reset.
func (p *Pool[T]) Reset() { p.tp.Reset() }

// Stat is puddle's statistics, read from tidepool.Stats.
type Stat struct {
	constructingResources int32
	acquiredResources     int32
	idleResources         int32
	maxResources          int32
	acquireCount          int64
	acquireDuration       time.Duration
	emptyAcquireCount     int64
	emptyAcquireWaitTime  time.Duration
	canceledAcquireCount  int64
}

// Stat returns a snapshot. Constructing is tidepool's Dialing; empty
// acquires are its waited acquires. tidepool times only acquires that
// waited (its hot path reads no clock), so AcquireDuration equals
// EmptyAcquireWaitTime.
func (p *Pool[T]) Stat() *Stat {
	s := p.tp.Stats()
	return &Stat{
		constructingResources: int32(s.Dialing),
		acquiredResources:     int32(s.InUse),
		idleResources:         int32(s.Idle + s.Checking),
		maxResources:          int32(s.MaxSize),
		acquireCount:          s.Acquires,
		acquireDuration:       s.WaitDuration,
		emptyAcquireCount:     s.WaitedAcquires,
		emptyAcquireWaitTime:  s.WaitDuration,
		canceledAcquireCount:  s.CanceledAcquires,
	}
}

// TotalResources is ConstructingResources + AcquiredResources + IdleResources.
func (s *Stat) TotalResources() int32 {
	return s.constructingResources + s.acquiredResources + s.idleResources
}

// ConstructingResources is tidepool's Stats.Dialing.
func (s *Stat) ConstructingResources() int32 { return s.constructingResources }

// AcquiredResources is tidepool's Stats.InUse.
func (s *Stat) AcquiredResources() int32 { return s.acquiredResources }

// IdleResources is tidepool's Stats.Idle (+ Checking, 0 without a Check).
func (s *Stat) IdleResources() int32 { return s.idleResources }

// MaxResources is tidepool's Stats.MaxSize.
func (s *Stat) MaxResources() int32 { return s.maxResources }

// AcquireCount is tidepool's Stats.Acquires.
func (s *Stat) AcquireCount() int64 { return s.acquireCount }

// AcquireDuration is tidepool's Stats.WaitDuration (waited acquires only).
func (s *Stat) AcquireDuration() time.Duration { return s.acquireDuration }

// EmptyAcquireCount is tidepool's Stats.WaitedAcquires.
func (s *Stat) EmptyAcquireCount() int64 { return s.emptyAcquireCount }

// EmptyAcquireWaitTime is tidepool's Stats.WaitDuration.
func (s *Stat) EmptyAcquireWaitTime() time.Duration { return s.emptyAcquireWaitTime }

// CanceledAcquireCount is tidepool's Stats.CanceledAcquires.
func (s *Stat) CanceledAcquireCount() int64 { return s.canceledAcquireCount }

// asPuddlePanic runs f and turns a tidepool misuse panic into puddle's panic
// message: tidepool detects the misuse (its handle carries a lease), the
// adapter only renames it.
func asPuddlePanic(msg string, f func()) {
	defer func() {
		if recover() != nil {
			panic(msg)
		}
	}()
	f()
}

const (
	msgRelease = "tried to release resource that is not acquired"
	msgDestroy = "tried to destroy resource that is not acquired"
	msgHijack  = "tried to hijack resource that is not acquired"
	msgAccess  = "tried to access resource that is not acquired or hijacked"
)

// Value returns the resource value.
func (r *Resource[T]) Value() T {
	if r.hijacked {
		return r.value
	}
	asPuddlePanic(msgAccess, func() { r.conn.Value() })
	return r.value
}

// Release is tidepool's Release.
func (r *Resource[T]) Release() { asPuddlePanic(msgRelease, r.conn.Release) }

// ReleaseUnused is tidepool's Release too: tidepool stamps every release,
// it has no release that keeps the last-used time.
func (r *Resource[T]) ReleaseUnused() { asPuddlePanic(msgRelease, r.conn.Release) }

// Destroy is tidepool's Destroy.
func (r *Resource[T]) Destroy() { asPuddlePanic(msgDestroy, r.conn.Destroy) }

// Hijack is tidepool's Hijack; the adapter keeps the times tidepool's spent
// handle no longer answers.
func (r *Resource[T]) Hijack() {
	asPuddlePanic(msgHijack, func() {
		created, last := r.conn.CreatedAt(), r.conn.LastUsed()
		r.conn.Hijack()
		r.createdAt, r.lastUsed, r.hijacked = created, last, true
	})
}

// CreationTime is tidepool's CreatedAt.
func (r *Resource[T]) CreationTime() time.Time {
	if r.hijacked {
		return r.createdAt
	}
	var t time.Time
	asPuddlePanic(msgAccess, func() { t = r.conn.CreatedAt() })
	return t
}

// LastUsedNanotime is tidepool's LastUsed in Unix nanoseconds (puddle's is
// a monotonic reading; both only compare with each other). Resolution 5 ms.
func (r *Resource[T]) LastUsedNanotime() int64 {
	if r.hijacked {
		return r.lastUsed.UnixNano()
	}
	var t time.Time
	asPuddlePanic(msgAccess, func() { t = r.conn.LastUsed() })
	return t.UnixNano()
}

// IdleDuration is tidepool's IdleDuration (resolution 5 ms).
func (r *Resource[T]) IdleDuration() time.Duration {
	if r.hijacked {
		return time.Since(r.lastUsed)
	}
	var d time.Duration
	asPuddlePanic(msgAccess, func() { d = r.conn.IdleDuration() })
	return d
}
