package tidepool

import (
	"time"

	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/internal/event"
)

// scanLeaks reports connections held longer than Config.LeakThreshold. It runs
// in its own goroutine while the pool is open, waking four times per threshold,
// and reads only the registry and each connection's atomics.
func (p *Pool[T]) scanLeaks() {
	defer p.goroutines.Done()
	every := max(p.cfg.LeakThreshold/4, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.reg.Range(func(c *conn.Conn[T]) bool {
				lease, s := c.Load()
				if s != conn.InUse {
					return true
				}
				since := c.HeldSince(lease)
				if since == 0 {
					return true
				}
				held := now.Sub(time.Unix(0, since))
				if held >= p.cfg.LeakThreshold && c.MarkLeaked(lease) {
					p.n.leaks.Add(1)
					fields := []zap.Field{zap.String("event", event.LeakSuspected),
						zap.Uint64("conn_id", c.ID()), zap.Duration("held", held),
						zap.Duration("threshold", p.cfg.LeakThreshold)}
					if site := c.Site(); site != "" {
						fields = append(fields, zap.String("acquired_at", site))
					}
					p.log.Warn(event.LeakSuspected, fields...)
				}
				return true
			})
		}
	}
}

func (p *Pool[T]) logLeakReleased(c *conn.Conn[T], lease uint64) {
	held := time.Duration(0)
	if since := c.HeldSince(lease); since != 0 {
		held = time.Since(time.Unix(0, since))
	}
	p.log.Warn(event.LeakReleased, zap.String("event", event.LeakReleased),
		zap.Uint64("conn_id", c.ID()), zap.Duration("held", held))
}
