package tidepool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/health"
	"github.com/tidepool-go/tidepool/internal/event"
	"github.com/tidepool-go/tidepool/internal/safe"
)

// Every user callback runs through here or through acquire.go's and
// handle.go's hook helpers, wrapped by package safe, and reports a panic or
// timeout with callbackPanicked or callbackTimedOut: one log event and one
// counter each, whichever callback it was.

// callbackPanicked logs and counts a callback that panicked. connID is 0 when
// no connection is involved (a dial).
func (p *Pool[T]) callbackPanicked(err error, connID uint64) {
	var ce *CallbackError
	if !errors.As(err, &ce) {
		return
	}
	p.n.callbackPanics.Add(1)
	fields := []zap.Field{zap.String("event", event.CallbackPanicked), zap.String("callback", ce.Callback),
		zap.String("panic", fmt.Sprint(ce.Panic)), zap.ByteString("stack", ce.Stack)}
	if connID != 0 {
		fields = append(fields, zap.Uint64("conn_id", connID))
	}
	p.log.Error(event.CallbackPanicked, fields...)
}

// callbackTimedOut logs and counts a callback that ran past its timeout.
func (p *Pool[T]) callbackTimedOut(name string, connID uint64, timeout time.Duration) {
	p.n.callbackTimeouts.Add(1)
	fields := []zap.Field{zap.String("event", event.CallbackTimedOut), zap.String("callback", name),
		zap.Duration("timeout", timeout)}
	if connID != 0 {
		fields = append(fields, zap.Uint64("conn_id", connID))
	}
	p.log.Warn(event.CallbackTimedOut, fields...)
}

// loopHooks is the pool as the reconcile loop sees it. Dial and Close run in
// goroutines of their own; the others run on the loop and must not block
// (they take the waiter list's mutex at most).
type loopHooks[T any] Pool[T]

func (h *loopHooks[T]) Dial(ctx context.Context) (T, error) {
	p := (*Pool[T])(h)
	v, err := safe.Value("dial", func() (T, error) { return p.cfg.Dial(ctx) })
	if err != nil {
		p.callbackPanicked(err, 0)
		return v, err
	}
	if p.cfg.AfterConnect != nil {
		if err := safe.Call("after_connect", func() error { return p.cfg.AfterConnect(ctx, v) }); err != nil {
			p.callbackPanicked(err, 0)
			if cerr := h.Close(v); cerr != nil {
				p.log.Warn(event.CloseFailed, zap.String("event", event.CloseFailed), zap.Error(cerr))
			}
			var zero T
			return zero, fmt.Errorf("after connect: %w", err)
		}
	}
	return v, nil
}

func (h *loopHooks[T]) Close(v T) error {
	p := (*Pool[T])(h)
	if p.cfg.BeforeClose != nil {
		if err := safe.Call("before_close", func() error { p.cfg.BeforeClose(v); return nil }); err != nil {
			p.callbackPanicked(err, 0)
		}
	}
	err := safe.Call("close", func() error { return p.cfg.Close(v) })
	p.callbackPanicked(err, 0)
	return err
}

func (h *loopHooks[T]) Born(c *conn.Conn[T]) {
	p := (*Pool[T])(h)
	if p.hcfg.Needed(c.Deadline()) {
		p.goroutines.Add(1)
		go func() {
			defer p.goroutines.Done()
			health.Watch(p.ctx, c, &p.hcfg, (*healthHooks[T])(p))
		}()
	}
	p.putHeld(c, 1)
}

func (h *loopHooks[T]) PutBack(c *conn.Conn[T], lease uint64) { (*Pool[T])(h).putHeld(c, lease) }
func (h *loopHooks[T]) Waiting() int                          { return int(h.wl.n.Load()) }
func (h *loopHooks[T]) FailWaiters(err error, n int) int      { return h.wl.fail(err, n) }
func (h *loopHooks[T]) DialContext() context.Context          { return h.wl.dialContext() }
func (h *loopHooks[T]) Now() int64                            { return h.clock.read() }
func (h *loopHooks[T]) DialTimedOut(timeout time.Duration) {
	(*Pool[T])(h).callbackTimedOut("dial", 0, timeout)
}

// healthHooks is the pool as a connection's watcher sees it.
type healthHooks[T any] Pool[T]

func (h *healthHooks[T]) Retire(c *conn.Conn[T], r conn.Reason, err error) {
	if inSet, ok := c.RetireChecked(); ok {
		h.rec.Retire(c, r, err, inSet)
	}
}

func (h *healthHooks[T]) IdleExpired(c *conn.Conn[T]) { h.rec.IdleExpired(c) }

func (h *healthHooks[T]) PutBack(c *conn.Conn[T], lease uint64) {
	(*Pool[T])(h).putHeld(c, lease)
}

func (h *healthHooks[T]) Checked(c *conn.Conn[T], err error, took time.Duration) {
	p := (*Pool[T])(h)
	p.n.healthChecks.Add(1)
	if err == nil {
		return
	}
	p.n.healthFailures.Add(1)
	var ce *CallbackError
	if errors.As(err, &ce) {
		if ce.TimedOut {
			p.callbackTimedOut("check", c.ID(), p.cfg.HealthTimeout)
		} else {
			p.callbackPanicked(err, c.ID())
		}
	}
	p.log.Warn(event.CheckFailed, zap.String("event", event.CheckFailed), zap.Uint64("conn_id", c.ID()),
		zap.String("on", "interval"), zap.Duration("took", took), zap.Error(err))
}
