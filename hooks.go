package tidepool

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/health"
)

// recHooks is the pool as the reconciler sees it. Its methods run on the
// reconcile loop, so anything they retire goes through RetireFromLoop.
type recHooks[T any] Pool[T]

func (h *recHooks[T]) Dial(ctx context.Context) (T, error) { return h.cfg.Dial(ctx) }
func (h *recHooks[T]) Close(v T) error                     { return h.cfg.Close(v) }
func (h *recHooks[T]) Waiting() int                        { return int(h.wl.n.Load()) }
func (h *recHooks[T]) FailWaiters(err error) int           { return h.wl.failAll(err) }
func (h *recHooks[T]) Idle() int                           { return int((*Pool[T])(h).idleCount()) }

func (h *recHooks[T]) Born(c *conn.Conn[T]) {
	p := (*Pool[T])(h)
	if p.hcfg.Needed(c.Deadline()) {
		p.watchers.Add(1)
		go func() {
			defer p.watchers.Done()
			health.Watch(p.ctx, c, &p.hcfg, (*healthHooks[T])(p))
		}()
	}
	p.putHeld(c, 1, true)
}

// healthHooks is the pool as a connection's watcher sees it.
type healthHooks[T any] Pool[T]

func (h *healthHooks[T]) Retire(c *conn.Conn[T], r conn.Reason, err error) {
	p := (*Pool[T])(h)
	// Count the tombstone before the CAS that makes it one, so that a dequeuer
	// that drops it never takes the count below zero.
	p.sh.Tombstones.Add(1)
	inQueue, ok := c.RetireChecked()
	if !inQueue {
		p.sh.Tombstones.Add(-1)
	}
	if !ok {
		return // Close got there first
	}
	p.sh.Live.Add(-1)
	p.rec.Retire(c, r, err)
}

// RetireIdle claims a place below the idle count with a CAS on the tombstone
// count, so that watchers racing each other never take the pool below MinIdle.
func (h *healthHooks[T]) RetireIdle(c *conn.Conn[T]) bool {
	p := (*Pool[T])(h)
	for {
		t := p.sh.Tombstones.Load()
		if int64(p.idle.Len())-t <= p.sh.Min.Load() {
			return false
		}
		if p.sh.Tombstones.CompareAndSwap(t, t+1) {
			break
		}
	}
	inQueue, ok := c.RetireChecked()
	if !inQueue {
		p.sh.Tombstones.Add(-1) // detached: not in the queue after all
	}
	if !ok {
		return true // Close got there first
	}
	p.sh.Live.Add(-1)
	p.rec.Retire(c, conn.ReasonIdle, nil)
	return true
}

func (h *healthHooks[T]) PutBack(c *conn.Conn[T], lease uint64) {
	(*Pool[T])(h).putHeld(c, lease, false)
}

func (h *healthHooks[T]) Checked(c *conn.Conn[T], err error, took time.Duration) {
	p := (*Pool[T])(h)
	p.healthChecks.Add(1)
	if err != nil {
		p.healthFailures.Add(1)
		p.log.Warn("conn.check_failed", zap.String("event", "conn.check_failed"),
			zap.Uint64("conn_id", c.ID()), zap.Duration("took", took), zap.Error(err))
	}
}
