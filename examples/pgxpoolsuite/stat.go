package pgxpoolsuite

import (
	"time"

	"github.com/tidepool-go/tidepool"
)

// Stat is pgxpool.Stat read from a tidepool.Stats snapshot (the package
// comment gives the mapping).
type Stat struct{ s tidepool.Stats }

// AcquireCount is Stats.Acquires.
func (s *Stat) AcquireCount() int64 { return s.s.Acquires }

// AcquireDuration is Stats.WaitDuration (tidepool times only waits).
func (s *Stat) AcquireDuration() time.Duration { return s.s.WaitDuration }

// AcquiredConns is Stats.InUse.
func (s *Stat) AcquiredConns() int32 { return int32(s.s.InUse) }

// CanceledAcquireCount is Stats.CanceledAcquires.
func (s *Stat) CanceledAcquireCount() int64 { return s.s.CanceledAcquires }

// ConstructingConns is Stats.Dialing.
func (s *Stat) ConstructingConns() int32 { return int32(s.s.Dialing) }

// EmptyAcquireCount is Stats.WaitedAcquires.
func (s *Stat) EmptyAcquireCount() int64 { return s.s.WaitedAcquires }

// IdleConns is Stats.Idle + Stats.Checking.
func (s *Stat) IdleConns() int32 { return int32(s.s.Idle + s.s.Checking) }

// MaxConns is Stats.MaxSize.
func (s *Stat) MaxConns() int32 { return int32(s.s.MaxSize) }

// TotalConns is Stats.Total + Stats.Dialing (puddle counts resources under
// construction).
func (s *Stat) TotalConns() int32 { return int32(s.s.Total + s.s.Dialing) }

// NewConnsCount is Stats.Dials + Stats.DialErrors: dial attempts.
func (s *Stat) NewConnsCount() int64 { return s.s.Dials + s.s.DialErrors }

// MaxLifetimeDestroyCount is Stats.Closed.Lifetime.
func (s *Stat) MaxLifetimeDestroyCount() int64 { return s.s.Closed.Lifetime }

// MaxIdleDestroyCount is Stats.Closed.Idle.
func (s *Stat) MaxIdleDestroyCount() int64 { return s.s.Closed.Idle }

// EmptyAcquireWaitTime is Stats.WaitDuration.
func (s *Stat) EmptyAcquireWaitTime() time.Duration { return s.s.WaitDuration }
