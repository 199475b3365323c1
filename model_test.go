package tidepool_test

// Model-based random testing of the pool's core.
//
// A run drives one pool through a sequence of operations — acquires from several
// logical clients (with a context that is already cancelled, short-lived, long,
// or without a deadline), TryAcquire, Release, Destroy, Hijack, misuse of
// released handles, resizes (valid and invalid), Reset, DialIdle, a backend
// that refuses dials, failing health checks, user callbacks (Dial, Check,
// Close) that panic or hang ignoring their context, the passage of time,
// cancelled waiters, a full drain, and Close — while a model keeps what the
// pool must look like from outside: which client holds which connection,
// which acquires are still waiting, the current bounds, and which held
// connections may keep the pool above its max after a shrink.
//
// The backend counts what a server would see: a connection from the moment
// its dial starts until its Close has returned (hijacked ones until the model
// closes them itself). It flags any dial that starts with the pool's share at
// its max (invariant 1), and at every settled step its count must equal
// Stats.Slots.
//
// Everything runs inside a testing/synctest bubble: time is fake, and
// synctest.Wait settles the reconcile loop, dials, closes and watchers
// deterministically, so that after every step the checker can demand exact
// answers (docs/design.md invariants 1, 2, 4, 5, 6, 7 and 9) without sleeping
// or polling.
// When the run ends the bubble must be empty: a goroutine of the pool left behind
// after Close makes synctest.Test fail.
//
// The same run is driven by a seeded PRNG (TestModelRandomOperations) and by
// fuzz input bytes (FuzzPoolOperations).

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
)

var (
	modelSeedFlag  = flag.Uint64("model.seed", 1, "TestModelRandomOperations: first seed")
	modelSeedsFlag = flag.Int("model.seeds", 0, "TestModelRandomOperations: number of seeds (0: 400, or 100 with -short)")
	modelStepsFlag = flag.Int("model.steps", 0, "TestModelRandomOperations: operations per seed (0: 300, or 150 with -short)")
	modelTraceFlag = flag.Bool("model.trace", false, "model runs: log the last operations of every run, not only failing ones")
	modelHangFlag  = flag.Duration("model.hang", 30*time.Second, "model runs: real time after which a run that has not finished counts as hung")
)

// Timing of the pool under test. Time is fake (synctest), so these cost nothing.
const (
	modelHealthInterval = 20 * time.Millisecond
	modelBackoff        = 10 * time.Millisecond
	modelBackoffMax     = 80 * time.Millisecond
	modelTick           = 50 * time.Millisecond
	// modelBackoffWindow bounds how long after its last failed dial the pool may
	// still be backing off: the largest backoff is 1.5·DialBackoffMax (jitter).
	modelBackoffWindow = modelBackoffMax*3/2 + time.Millisecond
	// modelProbeEvery is the longest an Acquire waits for a probe during an
	// outage (500ms, the default, since DialBackoff is shorter).
	modelProbeEvery    = 500 * time.Millisecond
	modelDialTimeout   = 50 * time.Millisecond
	modelCloseDeadline = 100 * time.Millisecond
	modelSizeCeiling   = 8
	modelClients       = 4
	modelMaxPending    = 6
	modelMaxStale      = 6
)

// TestModelRandomOperations runs the model against many seeded random
// operation sequences. On failure it prints the seed, the command that reruns
// it, and the last operations.
func TestModelRandomOperations(t *testing.T) {
	seeds, steps := 400, 300
	if testing.Short() {
		seeds, steps = 100, 150
	}
	if *modelSeedsFlag > 0 {
		seeds = *modelSeedsFlag
	}
	if *modelStepsFlag > 0 {
		steps = *modelStepsFlag
	}
	for i := range seeds {
		seed := *modelSeedFlag + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			repro := fmt.Sprintf("seed %d, %d steps (rerun: go test -race -run 'TestModelRandomOperations' -model.seed=%d -model.seeds=1 -model.steps=%d -v .)",
				seed, steps, seed, steps)
			defer modelWatchdog(repro)()
			synctest.Test(t, func(t *testing.T) {
				src := &modelRandSource{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), left: steps}
				runModel(t, src, repro)
			})
		})
	}
}

// FuzzPoolOperations decodes the input into a pool configuration and a
// sequence of operations, and runs the model on it. Run it with
//
//	go test -run '^$' -fuzz FuzzPoolOperations -fuzztime 3m .
func FuzzPoolOperations(f *testing.F) {
	for _, s := range modelFuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2048 {
			data = data[:2048] // bound one execution
		}
		repro := fmt.Sprintf("fuzz input %q", data)
		defer modelWatchdog(repro)()
		synctest.Test(t, func(t *testing.T) {
			runModel(t, &modelByteSource{data: data}, repro)
		})
	})
}

// modelWatchdog crashes the test binary, with every goroutine's stack, if a run
// takes longer than -model.hang in real time. A run needs well under a second:
// its time is fake, so a run that takes long is one whose bubble never settles —
// some goroutine of the pool spins without blocking, which stops fake time. Call
// the returned func when the run ends.
func modelWatchdog(repro string) (stop func()) {
	t := time.AfterFunc(*modelHangFlag, func() {
		debug.SetTraceback("all")
		panic(fmt.Sprintf("model run hung for %v: a goroutine of the pool spins instead of blocking (look for a runnable goroutine in the bubble below)\n%s\nlast operations:\n  %s",
			*modelHangFlag, repro, strings.Join(modelTrace.last(), "\n  ")))
	})
	return func() { t.Stop() }
}

// modelTrace keeps the last operations of the run in progress, for the
// watchdog's report (one run at a time: the runs are sequential).
var modelTrace traceLog

type traceLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *traceLog) add(line string) {
	const keep = 60
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == keep {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:keep-1]
	}
	l.lines = append(l.lines, line)
}

func (l *traceLog) last() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *traceLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

// Operation codes; the fuzz input's op byte is taken modulo modelNumOps. The
// table weights the frequent ones by repeating them.
const (
	opAcquire byte = iota
	opAcquire2
	opAcquire3
	opTryAcquire
	opRelease
	opRelease2
	opDestroy
	opMisuse
	opResize
	opBackend
	opHealth
	opAdvance
	opAdvance2
	opCancel
	opQuiesce
	opClose
	opReset
	opHijack
	opDialIdle
	opFault
	opUnhang
	modelNumOps
)

// modelScript is a fuzz input: nine config bytes (see modelRun.config) and
// three more (zero: the defaults), then operations, each an op code followed
// by its argument bytes (see modelRun.do).
func modelScript(cfg [9]byte, ops ...byte) []byte { return append(append(cfg[:], 0, 0, 0), ops...) }

// Config bytes for modelScript: max = 1+b[0]; b[1]=1 turns MinIdle on, b[2]
// is its value; b[3]=0 turns MaxIdle on, b[4] its value above MinIdle;
// b[5] = 0, 1, 2: no MaxLifetime, 300ms, 1s; b[6]=0: MaxIdleTime 150ms;
// b[7]=0: LeakThreshold 100ms; b[8]=0: AcquireTimeout 40ms; b[9]=1:
// DisableOutageMode; b[10] = 1, 2: CheckOnAcquire on every hand-out, or for
// connections idle 20ms; b[11] unused (always 0 from modelScript).
// Context kinds for opAcquire's second byte: 0 cancelled, 1 short (a third
// byte: its ms), 2 long, 3 no deadline.
var modelFuzzSeeds = [][]byte{
	// Shrink with every connection held: max 3 → Resize(1, 1); the releases
	// retire until the pool converges; drain check; close after releasing.
	modelScript([9]byte{2, 0, 0, 1, 0, 0, 1, 1, 1},
		opAcquire, 0, 2, opAcquire, 1, 2, opAcquire, 2, 2,
		opResize, 2, 2,
		opRelease, 0, opRelease, 0, opRelease, 0, opQuiesce, opClose, 2),
	// Backend down with nothing live: Acquire and TryAcquire fail at once
	// with ErrDial; back up, wait out the backoff, acquire again.
	modelScript([9]byte{3, 0, 0, 1, 0, 0, 1, 1, 1},
		opBackend, opAcquire, 0, 2, opAcquire, 1, 3, opTryAcquire, opAdvance, 4,
		opBackend, opAdvance, 4, opAcquire, 0, 2, opRelease, 0, opClose, 2),
	// Double Release, Destroy and Value on a released handle; invalid resizes
	// (max −1, max 9 > SizeCeiling, min −1, min 3 > max 2) change nothing.
	modelScript([9]byte{1, 0, 0, 1, 0, 0, 1, 1, 1},
		opAcquire, 0, 2, opRelease, 0, opMisuse, 0, 0, opMisuse, 0, 1, opMisuse, 0, 2,
		opResize, 0, 0, opResize, 10, 0, opResize, 3, 0, opResize, 3, 4, opClose, 0),
	// Waiters: fill a pool of 2, queue short, long and no-deadline waiters,
	// cancel one, release to wake the others; close with holders that never
	// release (forced), then late Release, misuse and ops on the closed pool.
	modelScript([9]byte{1, 1, 1, 1, 0, 0, 1, 1, 1},
		opAcquire, 0, 2, opAcquire, 1, 2, opAcquire, 2, 1, 20, opAcquire, 3, 2, opAcquire, 0, 3,
		opCancel, 1, opRelease, 0, opAdvance, 2, opRelease, 0, opClose, 1,
		opRelease, 0, opMisuse, 0, 0, opAcquire, 0, 2, opResize, 3, 1, opClose, 0),
	// Failing health checks, lifetimes and idle time with warm connections.
	modelScript([9]byte{4, 1, 2, 0, 2, 1, 0, 1, 1},
		opHealth, opAdvance, 3, opAdvance, 4, opAcquire, 0, 0, opHealth, opAdvance, 4,
		opAcquire, 1, 2, opDestroy, 0, opQuiesce, opClose, 0),
	// Close while holders release before its deadline (half Release, half
	// Destroy) and a waiter waits; then every op on the closed pool.
	modelScript([9]byte{2, 0, 0, 1, 0, 0, 1, 0, 0},
		opAcquire, 0, 2, opAcquire, 1, 2, opAcquire, 2, 3, opAcquire, 3, 3, opClose, 0,
		opAcquire, 1, 0, opTryAcquire, opResize, 3, 1, opMisuse, 0, 0, opClose, 0),
	// A waiter through a shrink and a grow: the shrink retires a released
	// connection instead of handing it over; the grow dials for the waiter.
	modelScript([9]byte{1, 0, 0, 1, 0, 0, 1, 1, 1},
		opAcquire, 0, 2, opAcquire, 1, 2, opAcquire, 2, 2,
		opResize, 2, 1, opRelease, 0, opResize, 5, 1, opAdvance, 0, opQuiesce, opClose, 2),
}

// modelSource yields the run's decisions.
type modelSource interface {
	// intn returns a number in [0, n).
	intn(n int) int
	// more reports whether another operation follows.
	more() bool
}

type modelRandSource struct {
	rng  *rand.Rand
	left int
}

func (s *modelRandSource) intn(n int) int { return s.rng.IntN(n) }
func (s *modelRandSource) more() bool     { s.left--; return s.left >= 0 }

// modelByteSource reads decisions from fuzz input, one byte each (zeros when it
// runs out).
type modelByteSource struct {
	data []byte
	pos  int
}

func (s *modelByteSource) intn(n int) int {
	if s.pos >= len(s.data) {
		return 0
	}
	b := s.data[s.pos]
	s.pos++
	return int(b) % n
}

func (s *modelByteSource) more() bool { return s.pos < len(s.data) }

// modelConn is a fake connection. Its counters are how the checker sees what
// the pool did to it.
type modelConn struct {
	serial int // 1-based dial order
	closes atomic.Int32
	// holder is the model's client number + 1 while the model holds it, 0
	// otherwise. Set after Acquire returns and cleared before Release, so the
	// pool must never close a connection while it is set (but Close's
	// deadline and an expired check may: see heldCloseOK).
	holder atomic.Int32
	// hijacked is set once the model hijacked it: the pool must never touch
	// it again.
	hijacked atomic.Bool
	// checking is set while a Check runs on it.
	checking atomic.Int32
}

// Fault modes of a callback.
const (
	faultNone  int32 = iota
	faultPanic       // the callback panics
	faultHang        // the callback ignores its context and blocks until opUnhang
	numFaults
)

var faultNames = [...]string{"none", "panic", "hang"}

// modelBackend dials modelConns, can refuse dials ("down"), can fail health
// checks, can make Dial, Check and Close panic or hang, counts what a server
// would see, and records every problem it sees from inside the pool's
// goroutines.
type modelBackend struct {
	down, checkFail atomic.Bool
	// heldCloseOK is set while the pool may legitimately close held
	// connections: Close's deadline passed with holders left.
	heldCloseOK atomic.Bool
	// dialFault, checkFault, closeFault are the fault modes of the three
	// callbacks.
	dialFault, checkFault, closeFault atomic.Int32

	// count is what the server sees: connections from dial start until their
	// Close returned (a failed dial leaves when it returns); hijacked ones
	// until the model closes them. allowed is the most the pool may have
	// when a dial starts; the model sets it around Resize.
	count, allowed atomic.Int64
	// hung counts callbacks blocked on the hang gate now.
	hungDials, hungChecks, hungCloses atomic.Int64

	mu       sync.Mutex
	gate     chan struct{} // hanging callbacks wait for it to close
	conns    []*modelConn
	problems []string
}

var (
	errModelDown  = errors.New("model backend: connection refused")
	errModelCheck = errors.New("model backend: ping failed")
)

func (b *modelBackend) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// hangGate returns the channel a hanging callback waits on now.
func (b *modelBackend) hangGate() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gate == nil {
		b.gate = make(chan struct{})
	}
	return b.gate
}

// unhang lets every hanging callback return; later ones hang on a new gate.
func (b *modelBackend) unhang() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gate != nil {
		close(b.gate)
		b.gate = nil
	}
}

func (b *modelBackend) dial(ctx context.Context) (*modelConn, error) {
	if n, max := b.count.Add(1), b.allowed.Load(); max > 0 && n > max {
		b.problem("invariant 1: a dial started with %d connections at the backend, max %d", n, max)
	}
	switch b.dialFault.Load() {
	case faultPanic:
		b.count.Add(-1)
		panic("model dial: boom")
	case faultHang:
		b.hungDials.Add(1)
		<-b.hangGate() // ignores ctx
		b.hungDials.Add(-1)
	}
	if b.down.Load() {
		b.count.Add(-1)
		return nil, errModelDown
	}
	if err := ctx.Err(); err != nil {
		b.count.Add(-1)
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &modelConn{serial: len(b.conns) + 1}
	b.conns = append(b.conns, c)
	return c, nil
}

func (b *modelBackend) close(c *modelConn) error {
	if c == nil {
		b.problem("Close called with a nil connection (a failed dial's value?)")
		return nil
	}
	if c.hijacked.Load() {
		b.problem("conn #%d closed by the pool after it was hijacked", c.serial)
	}
	if n := c.closes.Add(1); n > 1 {
		b.problem("conn #%d closed %d times", c.serial, n)
	}
	if h := c.holder.Load(); h != 0 && !b.heldCloseOK.Load() {
		b.problem("conn #%d closed while client %d holds it", c.serial, h-1)
	}
	switch b.closeFault.Load() {
	case faultPanic:
		b.count.Add(-1) // closed at the server, then the callback panics
		panic("model close: boom")
	case faultHang:
		b.hungCloses.Add(1)
		<-b.hangGate()
		b.hungCloses.Add(-1)
	}
	b.count.Add(-1)
	return nil
}

func (b *modelBackend) check(ctx context.Context, c *modelConn) error {
	c.checking.Add(1)
	defer c.checking.Add(-1)
	if h := c.holder.Load(); h != 0 {
		b.problem("conn #%d health-checked while client %d holds it", c.serial, h-1)
	}
	if c.hijacked.Load() {
		b.problem("conn #%d health-checked after it was hijacked", c.serial)
	}
	if c.closes.Load() != 0 {
		b.problem("conn #%d health-checked after it was closed", c.serial)
	}
	switch b.checkFault.Load() {
	case faultPanic:
		panic("model check: boom")
	case faultHang:
		b.hungChecks.Add(1)
		<-b.hangGate() // ignores ctx
		b.hungChecks.Add(-1)
	}
	if b.checkFail.Load() {
		return errModelCheck
	}
	return nil
}

func (b *modelBackend) hung() int64 {
	return b.hungDials.Load() + b.hungChecks.Load() + b.hungCloses.Load()
}

func (b *modelBackend) snapshot() (conns []*modelConn, problems []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.conns), slices.Clone(b.problems)
}

// modelHandle is a handle the model holds (or held: see modelRun.stale).
type modelHandle struct {
	h      tidepool.Conn[*modelConn]
	v      *modelConn
	client int
	// exempt: held at the moment of a shrink, so it may keep the pool above
	// its max until it is released (invariant 1).
	exempt bool
	// forced: Close's deadline closed it under its holder; a late Release or
	// Destroy is then a no-op.
	forced bool
}

type modelCtxKind int

const (
	ctxCancelled  modelCtxKind = iota // already cancelled
	ctxShort                          // a few ms
	ctxLong                           // 5 s
	ctxNoDeadline                     // cancellable, no deadline (Config.AcquireTimeout applies)
	numCtxKinds
)

var ctxKindNames = [...]string{"cancelled", "short", "long", "no-deadline"}

type modelResult struct {
	h   tidepool.Conn[*modelConn]
	err error
}

// modelPending is an Acquire running in its own goroutine.
type modelPending struct {
	n            int
	client       int
	kind         modelCtxKind
	ctx          context.Context
	cancel       context.CancelFunc
	start        time.Time
	downAtStart  bool
	flipsAtStart int
	// checks failed (or panicked or hung) when it started, and the number
	// of times they started failing then
	checkBadAtStart   bool
	checkFlipsAtStart int
	res               chan modelResult
}

// checksFailedDuring reports whether checks failed at some point while w ran.
func (w *modelPending) checksFailedDuring(r *modelRun) bool {
	return w.checkBadAtStart || r.checkFlips != w.checkFlipsAtStart
}

// modelRun is one pool under test and the model of it.
type modelRun struct {
	t     *testing.T
	src   modelSource
	repro string
	b     *modelBackend
	p     *tidepool.Pool[*modelConn]
	logs  *observer.ObservedLogs
	cfg   tidepool.Config[*modelConn]

	// Model state.
	min, max     int
	closing      bool // Close was called
	closed       bool // Close returned
	held         []*modelHandle
	stale        []*modelHandle // released or destroyed handles, newest last
	pending      []*modelPending
	ids          map[uint64]*modelConn // pool conn id → value
	connIDs      map[*modelConn]uint64
	nPending     int
	dialsAtClose int
	acquired     int64 // successful Acquire and TryAcquire calls

	// Backend history, for what the pool may answer.
	downFlips  int       // transitions to dials failing
	checkFlips int       // transitions to checks failing
	lastUpAt   time.Time // when the backend last came back up
	// roomAt is when the pool last may have gained room for a probe: a
	// Resize, an unhang, a Reset (it cancels dials), a fault change.
	roomAt    time.Time
	dialErrs  int64     // Stats.DialErrors last seen
	dialErrAt time.Time // when dialErrs last grew (at or after the failure)

	// resetDoomed are the connections alive at a Reset: never handed out
	// again, closed as soon as nobody holds them.
	resetDoomed []*modelConn
	hijacked    int // connections hijacked (and closed by the model)

	trace   []string
	step    int
	failing bool
}

func runModel(t *testing.T, src modelSource, repro string) {
	modelTrace.reset()
	r := &modelRun{t: t, src: src, repro: repro, b: new(modelBackend),
		ids: map[uint64]*modelConn{}, connIDs: map[*modelConn]uint64{}}
	r.cfg = r.config()
	p, err := tidepool.New(context.Background(), r.cfg)
	if err != nil {
		t.Fatalf("%s: New(%s): %v", repro, r.describeConfig(), err)
	}
	r.p = p
	r.note("New(%s)", r.describeConfig())
	r.settle()
	for src.more() {
		r.step++
		r.do(byte(src.intn(int(modelNumOps))))
		r.settle()
	}
	if !r.closed {
		r.opClose(src.intn(3))
		r.settle()
	}
	r.heal()
	r.settle()
	// A few operations on the closed pool.
	for _, op := range []byte{opAcquire, opTryAcquire, opRelease, opMisuse, opResize, opAdvance, opReset, opDialIdle, opClose} {
		r.step++
		r.do(op)
		r.settle()
	}
	if *modelTraceFlag {
		t.Logf("%s\nconfig: %s\nlast operations:\n  %s", repro, r.describeConfig(), strings.Join(r.trace, "\n  "))
	}
}

func (r *modelRun) config() tidepool.Config[*modelConn] {
	cfg := tidepool.Config[*modelConn]{
		Dial: r.b.dial, Close: r.b.close, Check: r.b.check,
		SizeCeiling:       modelSizeCeiling,
		HealthInterval:    modelHealthInterval,
		HealthTimeout:     5 * time.Millisecond,
		DialBackoff:       modelBackoff,
		DialBackoffMax:    modelBackoffMax,
		ReconcileInterval: modelTick,
		Name:              "model",
	}
	// Nine decisions, each always drawn, so that a fuzz input's config is
	// its first nine bytes.
	cfg.MaxSize = 1 + r.src.intn(6)
	minOn, min := r.src.intn(2) == 1, r.src.intn(cfg.MaxSize+1)
	if minOn {
		cfg.MinIdle = min
	}
	maxIdleOn, maxIdle := r.src.intn(3) == 0, r.src.intn(cfg.MaxSize-cfg.MinIdle+1)
	if maxIdleOn {
		cfg.MaxIdle = cfg.MinIdle + maxIdle
	}
	switch r.src.intn(3) {
	case 1:
		cfg.MaxLifetime = 300 * time.Millisecond
	case 2:
		cfg.MaxLifetime = time.Second
	}
	if r.src.intn(3) == 0 {
		cfg.MaxIdleTime = 150 * time.Millisecond
	}
	if r.src.intn(4) == 0 {
		cfg.LeakThreshold = 100 * time.Millisecond
	}
	if r.src.intn(3) == 0 {
		cfg.AcquireTimeout = 40 * time.Millisecond
	}
	cfg.DisableOutageMode = r.src.intn(4) == 1
	switch r.src.intn(4) {
	case 1:
		cfg.CheckOnAcquire = true
	case 2:
		cfg.CheckOnAcquire, cfg.CheckOnAcquireIdle = true, 20*time.Millisecond
	}
	r.src.intn(2) // reserved
	cfg.DialTimeout = modelDialTimeout
	core, logs := observer.New(zapcore.InfoLevel)
	cfg.Logger = zap.New(core)
	r.logs = logs
	r.min, r.max = cfg.MinIdle, cfg.MaxSize
	r.b.allowed.Store(int64(cfg.MaxSize))
	return cfg
}

func (r *modelRun) describeConfig() string {
	c := r.cfg
	return fmt.Sprintf("MaxSize=%d MinIdle=%d MaxIdle=%d MaxLifetime=%v MaxIdleTime=%v LeakThreshold=%v AcquireTimeout=%v "+
		"DisableOutageMode=%v CheckOnAcquire=%v(idle %v)",
		c.MaxSize, c.MinIdle, c.MaxIdle, c.MaxLifetime, c.MaxIdleTime, c.LeakThreshold, c.AcquireTimeout,
		c.DisableOutageMode, c.CheckOnAcquire, c.CheckOnAcquireIdle)
}

func (r *modelRun) note(format string, args ...any) {
	const keep = 60
	if len(r.trace) == keep {
		copy(r.trace, r.trace[1:])
		r.trace = r.trace[:keep-1]
	}
	line := fmt.Sprintf("%3d %s", r.step, fmt.Sprintf(format, args...))
	r.trace = append(r.trace, line)
	modelTrace.add(line)
}

// fatalf reports a violated expectation with the reproduction hint and the
// last operations, closes the pool so that the bubble can end, and stops.
func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf("step %d: %s\n%s\nconfig: %s\nstats: %+v\nlast operations:\n  %s",
		r.step, fmt.Sprintf(format, args...), r.repro, r.describeConfig(), r.p.Stats(),
		strings.Join(r.trace, "\n  "))
	if !r.failing {
		r.failing = true
		r.heal()
		for _, w := range r.pending {
			w.cancel()
		}
		if !r.closed {
			r.b.heldCloseOK.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.p.Close(ctx)
			cancel()
		}
	}
	r.t.Fatal(msg)
}

// settle lets every goroutine of the bubble run until it blocks, collects the
// acquires that finished, and checks the invariants.
func (r *modelRun) settle() {
	r.t.Helper()
	synctest.Wait()
	// Dials the loop decided before a shrink have all started now: from here
	// on, a dial must fit the max in force.
	r.b.allowed.Store(int64(r.max))
	r.harvest()
	r.check()
}

func (r *modelRun) do(op byte) {
	switch op {
	case opAcquire, opAcquire2, opAcquire3:
		r.opAcquire(r.src.intn(modelClients), modelCtxKind(r.src.intn(int(numCtxKinds))))
	case opTryAcquire:
		r.opTryAcquire()
	case opRelease, opRelease2:
		r.opRelease(r.src.intn(8), false)
	case opDestroy:
		r.opRelease(r.src.intn(8), true)
	case opMisuse:
		r.opMisuse(r.src.intn(8), r.src.intn(3))
	case opResize:
		max := r.src.intn(modelSizeCeiling+3) - 1 // [-1, ceiling+1]
		min := r.src.intn(max+3) - 1              // [-1, max+1]
		r.opResize(min, max)
	case opBackend:
		r.setDown(!r.b.down.Load())
	case opHealth:
		was := r.checksBad()
		r.b.checkFail.Store(!r.b.checkFail.Load())
		r.checksBadChanged(was)
		r.note("health checks failing=%v", r.b.checkFail.Load())
	case opAdvance, opAdvance2:
		r.opAdvance([]time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond,
			100 * time.Millisecond, 500 * time.Millisecond}[r.src.intn(5)])
	case opCancel:
		r.opCancel(r.src.intn(8))
	case opQuiesce:
		r.opQuiesce()
	case opClose:
		// Rare under the PRNG: the rest of a run after Close is short work.
		if _, ok := r.src.(*modelRandSource); ok && r.src.intn(8) != 0 && !r.closed {
			r.opAdvance(time.Millisecond)
			return
		}
		r.opClose(r.src.intn(3))
	case opReset:
		r.opReset()
	case opHijack:
		r.opHijack(r.src.intn(8))
	case opDialIdle:
		r.opDialIdle()
	case opFault:
		r.opFault(r.src.intn(3), int32(r.src.intn(int(numFaults))))
		r.roomAt = time.Now()
	case opUnhang:
		r.note("unhang")
		r.b.unhang()
		r.roomAt = time.Now()
	}
}

// opReset resets the pool: every connection alive now is retired, idle ones
// at once, held ones on release; none of them is handed out again.
func (r *modelRun) opReset() {
	conns, _ := r.b.snapshot()
	r.p.Reset()
	r.note("Reset")
	r.roomAt = time.Now()
	if r.closing {
		return
	}
	for _, c := range conns {
		if c.closes.Load() == 0 && !c.hijacked.Load() {
			r.resetDoomed = append(r.resetDoomed, c)
		}
	}
}

// opHijack takes the i-th held connection out of the pool; the model closes
// it itself (the server stops seeing it).
func (r *modelRun) opHijack(i int) {
	if len(r.held) == 0 {
		return
	}
	hh := r.held[i%len(r.held)]
	r.held = slices.DeleteFunc(r.held, func(o *modelHandle) bool { return o == hh })
	// From the moment of the Hijack the connection is the caller's, not the
	// pool's: the backend's count is the pool's share, so it leaves it now
	// (the pool may dial its replacement at once).
	ours := !hh.forced && hh.v.closes.Load() == 0
	if ours {
		hh.v.hijacked.Store(true)
		r.b.count.Add(-1)
		r.hijacked++
	}
	var v *modelConn
	func() {
		defer func() {
			if e := recover(); e != nil {
				r.fatalf("Hijack of a held handle panicked: %v", e)
			}
		}()
		v = hh.h.Hijack()
	}()
	r.note("client %d: Hijack conn #%d (forced=%v)", hh.client, hh.v.serial, hh.forced)
	if v != hh.v {
		r.fatalf("Hijack returned conn #%d, want #%d", v.serial, hh.v.serial)
	}
	hh.v.holder.Store(0)
	r.stale = append(r.stale, hh)
	if len(r.stale) > modelMaxStale {
		r.stale = r.stale[1:]
	}
}

// opDialIdle dials one connection into the idle set.
func (r *modelRun) opDialIdle() {
	before := r.p.Stats()
	start, downAtStart, flips := time.Now(), r.dialsFail(), r.downFlips
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := r.p.DialIdle(ctx)
	cancel()
	r.note("DialIdle with slots=%d max=%d = %v", before.Slots, before.MaxSize, err)
	switch {
	case r.closing:
		if !errors.Is(err, tidepool.ErrClosed) {
			r.fatalf("DialIdle after Close: %v, want ErrClosed", err)
		}
	case err == nil:
		if before.Slots >= before.MaxSize {
			r.fatalf("DialIdle dialed with %d slots taken of %d", before.Slots, before.MaxSize)
		}
	case errors.Is(err, tidepool.ErrExhausted):
		if before.Slots < before.MaxSize {
			r.fatalf("DialIdle: ErrExhausted with %d slots taken of %d", before.Slots, before.MaxSize)
		}
	case errors.Is(err, tidepool.ErrDial):
		if !r.dialErrAllowed(start, downAtStart, flips) {
			r.fatalf("DialIdle: %v with dials working", err)
		}
	default:
		r.fatalf("DialIdle: unexpected error %v", err)
	}
}

// opFault sets the fault mode of Dial (0), Check (1) or Close (2).
func (r *modelRun) opFault(which int, mode int32) {
	if which == 1 && mode == faultHang && r.cfg.CheckOnAcquire {
		mode = faultPanic // a check on acquire that ignores its context holds up its caller
	}
	r.note("%s callback fault=%s", [...]string{"dial", "check", "close"}[which], faultNames[mode])
	switch which {
	case 0:
		was := r.dialsFail()
		r.b.dialFault.Store(mode)
		r.dialsFailChanged(was)
	case 1:
		was := r.checksBad()
		r.b.checkFault.Store(mode)
		r.checksBadChanged(was)
	default:
		r.b.closeFault.Store(mode)
	}
}

// heal turns every fault off and lets hanging callbacks return.
func (r *modelRun) heal() {
	was := r.dialsFail()
	r.b.dialFault.Store(faultNone)
	r.b.checkFault.Store(faultNone)
	r.b.closeFault.Store(faultNone)
	r.b.unhang()
	r.dialsFailChanged(was)
}

func (r *modelRun) setDown(down bool) {
	if r.b.down.Load() == down {
		return
	}
	was := r.dialsFail()
	r.b.down.Store(down)
	r.dialsFailChanged(was)
	r.note("backend down=%v", down)
}

// checksBad reports whether checks fail, panic or hang now.
func (r *modelRun) checksBad() bool {
	return r.b.checkFail.Load() || r.b.checkFault.Load() != faultNone
}

func (r *modelRun) checksBadChanged(was bool) {
	if !was && r.checksBad() {
		r.checkFlips++
	}
}

// dialsFail reports whether dials fail now: the backend is down, or Dial
// panics or hangs.
func (r *modelRun) dialsFail() bool {
	return r.b.down.Load() || r.b.dialFault.Load() != faultNone
}

// dialsFailChanged records a change of dialsFail from was.
func (r *modelRun) dialsFailChanged(was bool) {
	switch now := r.dialsFail(); {
	case now && !was:
		r.downFlips++
	case was && !now:
		r.lastUpAt = time.Now()
	}
}

func (r *modelRun) acquireCtx(kind modelCtxKind) (context.Context, context.CancelFunc) {
	switch kind {
	case ctxCancelled:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	case ctxShort:
		return context.WithTimeout(context.Background(), time.Duration(1+r.src.intn(30))*time.Millisecond)
	case ctxLong:
		return context.WithTimeout(context.Background(), 5*time.Second)
	default:
		return context.WithCancel(context.Background())
	}
}

// opAcquire starts an Acquire in its own goroutine (or, with a cancelled
// context, runs it here: it must not block).
func (r *modelRun) opAcquire(client int, kind modelCtxKind) {
	if r.closed {
		ctx, cancel := r.acquireCtx(min(kind, ctxLong))
		h, err := r.p.Acquire(ctx)
		cancel()
		r.note("client %d: Acquire(%s ctx) on closed pool = %v", client, ctxKindNames[kind], err)
		if !errors.Is(err, tidepool.ErrClosed) {
			if err == nil {
				r.fatalf("Acquire after Close handed out conn %d, want ErrClosed", h.ID())
			}
			r.fatalf("Acquire after Close: %v, want ErrClosed", err)
		}
		return
	}
	if kind == ctxCancelled {
		// A context that is done already: its error at once, and no
		// connection taken (as database/sql does).
		before := r.p.Stats()
		ctx, cancel := r.acquireCtx(kind)
		h, err := r.p.Acquire(ctx)
		cancel()
		r.note("client %d: Acquire(cancelled ctx) with %d idle = %v", client, before.Idle, err)
		if err == nil {
			r.took(h, client, "Acquire(cancelled ctx)")
			r.fatalf("Acquire with a cancelled context handed out a connection")
		}
		if !errors.Is(err, context.Canceled) {
			r.fatalf("Acquire with a cancelled context: %v, want context.Canceled", err)
		}
		if after := r.p.Stats(); after.Acquires != before.Acquires {
			r.fatalf("Acquire with a cancelled context counted a hand-out")
		}
		return
	}
	if len(r.pending) >= modelMaxPending {
		r.opCancel(0)
		synctest.Wait()
		r.harvest()
	}
	ctx, cancel := r.acquireCtx(kind)
	r.nPending++
	w := &modelPending{n: r.nPending, client: client, kind: kind, ctx: ctx, cancel: cancel,
		start: time.Now(), downAtStart: r.dialsFail(), flipsAtStart: r.downFlips,
		checkBadAtStart: r.checksBad(), checkFlipsAtStart: r.checkFlips,
		res: make(chan modelResult, 1)}
	r.pending = append(r.pending, w)
	r.note("client %d: Acquire#%d(%s ctx) started", client, w.n, ctxKindNames[kind])
	p := r.p
	go func() {
		h, err := p.Acquire(ctx)
		w.res <- modelResult{h, err}
	}()
}

// harvest collects the acquires that have finished and checks their results.
func (r *modelRun) harvest() {
	r.t.Helper()
	keep := r.pending[:0]
	for _, w := range r.pending {
		select {
		case res := <-w.res:
			r.finished(w, res)
			w.cancel()
		default:
			keep = append(keep, w)
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
}

func (r *modelRun) finished(w *modelPending, res modelResult) {
	r.t.Helper()
	err := res.err
	r.note("client %d: Acquire#%d(%s ctx) returned after %v: %v", w.client, w.n, ctxKindNames[w.kind], time.Since(w.start), err)
	switch {
	case err == nil:
		r.took(res.h, w.client, fmt.Sprintf("Acquire#%d", w.n))
	case errors.Is(err, tidepool.ErrClosed):
		if !r.closing {
			r.fatalf("Acquire#%d: ErrClosed from an open pool", w.n)
		}
	case errors.Is(err, tidepool.ErrAcquireTimeout):
		if r.cfg.AcquireTimeout == 0 || w.kind != ctxNoDeadline {
			r.fatalf("Acquire#%d (%s ctx, AcquireTimeout %v): unexpected %v", w.n, ctxKindNames[w.kind], r.cfg.AcquireTimeout, err)
		}
		if d := time.Since(w.start); d < r.cfg.AcquireTimeout {
			r.fatalf("Acquire#%d: %v after only %v", w.n, err, d)
		}
	case errors.Is(err, tidepool.ErrDial):
		var ce *tidepool.CallbackError
		if !errors.Is(err, errModelDown) && !errors.As(err, &ce) {
			r.fatalf("Acquire#%d: %v wraps neither the dial's own error nor a panicked or timed-out dial", w.n, err)
		}
		if !r.dialErrAllowed(w.start, w.downAtStart, w.flipsAtStart) {
			r.fatalf("Acquire#%d: %v, but the backend was up since %v before it started", w.n, err, w.start.Sub(r.lastUpAt))
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		if w.ctx.Err() == nil || !errors.Is(err, w.ctx.Err()) {
			r.fatalf("Acquire#%d: %v, but its context is %v", w.n, err, w.ctx.Err())
		}
	case errors.Is(err, tidepool.ErrTooManyWaiters):
		r.fatalf("Acquire#%d: %v without MaxWaiters", w.n, err)
	case strings.Contains(err.Error(), "a new connection failed its check"):
		if !r.cfg.CheckOnAcquire || (!r.b.checkFail.Load() && r.b.checkFault.Load() == faultNone && !w.checksFailedDuring(r)) {
			r.fatalf("Acquire#%d: %v, but checks do not fail", w.n, err)
		}
	default:
		r.fatalf("Acquire#%d: unexpected error %v", w.n, err)
	}
}

// dialErrAllowed reports whether an Acquire started at start may fail with
// ErrDial: the backend was down at some point while it ran, or came back up so
// recently that the pool may still be backing off.
func (r *modelRun) dialErrAllowed(start time.Time, downAtStart bool, flipsAtStart int) bool {
	return downAtStart || r.downFlips != flipsAtStart || r.dialsFail() ||
		(!r.lastUpAt.IsZero() && start.Sub(r.lastUpAt) <= modelBackoffWindow)
}

// took records a successful acquisition and checks invariant 2 for it.
func (r *modelRun) took(h tidepool.Conn[*modelConn], client int, what string) {
	r.t.Helper()
	var v *modelConn
	func() {
		defer func() {
			if e := recover(); e != nil {
				r.fatalf("%s: Value() on a fresh handle panicked: %v", what, e)
			}
		}()
		v = h.Value()
	}()
	if v == nil {
		r.fatalf("%s: handed out a nil value", what)
	}
	conns, _ := r.b.snapshot()
	if v.serial < 1 || v.serial > len(conns) || conns[v.serial-1] != v {
		r.fatalf("%s: handed out a value the backend never dialed", what)
	}
	if n := v.closes.Load(); n != 0 {
		r.fatalf("%s: handed out conn #%d (id %d) which was closed %d times", what, v.serial, h.ID(), n)
	}
	if slices.Contains(r.resetDoomed, v) {
		r.fatalf("%s: handed out conn #%d (id %d), which a Reset retired", what, v.serial, h.ID())
	}
	for _, o := range r.held {
		if o.v == v {
			r.fatalf("%s: handed conn #%d (id %d) to client %d while client %d holds it", what, v.serial, h.ID(), client, o.client)
		}
	}
	id := h.ID()
	if o, ok := r.ids[id]; ok && o != v {
		r.fatalf("%s: id %d names conn #%d and conn #%d", what, id, o.serial, v.serial)
	}
	if o, ok := r.connIDs[v]; ok && o != id {
		r.fatalf("%s: conn #%d has id %d and id %d", what, v.serial, o, id)
	}
	r.ids[id], r.connIDs[v] = v, id
	v.holder.Store(int32(client + 1))
	r.acquired++
	r.held = append(r.held, &modelHandle{h: h, v: v, client: client})
	r.note("client %d holds conn #%d (id %d)", client, v.serial, id)
}

func (r *modelRun) opTryAcquire() {
	if r.cfg.CheckOnAcquire && r.b.checkFault.Load() == faultHang {
		return // a check on acquire that ignores its context holds up its caller
	}
	before := r.p.Stats()
	h, err := r.p.TryAcquire(context.Background())
	r.note("TryAcquire with idle=%d slots=%d max=%d = %v", before.Idle, before.Slots, before.MaxSize, err)
	switch {
	case r.closing:
		if !errors.Is(err, tidepool.ErrClosed) {
			r.fatalf("TryAcquire after Close: %v, want ErrClosed", err)
		}
	case err == nil:
		if before.Idle == 0 {
			r.fatalf("TryAcquire handed out a connection with nothing idle: it must never wait for a dial")
		}
		r.took(h, 0, "TryAcquire")
	case errors.Is(err, tidepool.ErrExhausted):
		// Only when nothing idle was fit to hand out: none idle, or the
		// idle ones failed their check on acquire.
		checksFail := r.cfg.CheckOnAcquire && (r.b.checkFail.Load() || r.b.checkFault.Load() != faultNone)
		if before.Idle > 0 && !checksFail {
			r.fatalf("TryAcquire: ErrExhausted although %d connections were idle", before.Idle)
		}
	case strings.Contains(err.Error(), "a new connection failed its check"):
		if !r.cfg.CheckOnAcquire || !r.checksBad() {
			r.fatalf("TryAcquire: %v, but checks do not fail", err)
		}
	default:
		r.fatalf("TryAcquire: unexpected error %v", err)
	}
}

// opRelease releases (or destroys) the i-th held handle, modulo their number.
func (r *modelRun) opRelease(i int, destroy bool) {
	if len(r.held) == 0 {
		return
	}
	hh := r.held[i%len(r.held)]
	r.held = slices.DeleteFunc(r.held, func(o *modelHandle) bool { return o == hh })
	verb := "Release"
	if destroy {
		verb = "Destroy"
	}
	r.note("client %d: %s conn #%d (forced=%v)", hh.client, verb, hh.v.serial, hh.forced)
	hh.v.holder.Store(0)
	func() {
		defer func() {
			if e := recover(); e != nil {
				r.fatalf("%s of a held handle (forced=%v) panicked: %v", verb, hh.forced, e)
			}
		}()
		if destroy {
			hh.h.Destroy()
		} else {
			hh.h.Release()
		}
	}()
	r.stale = append(r.stale, hh)
	if len(r.stale) > modelMaxStale {
		r.stale = r.stale[1:]
	}
}

// opMisuse uses a released handle: Release, Destroy or Value. Each must panic
// with a message that names the mistake — except a Release or Destroy of a
// handle whose connection Close's deadline closed under its holder, which is a
// no-op.
func (r *modelRun) opMisuse(i, verb int) {
	if len(r.stale) == 0 {
		return
	}
	hh := r.stale[i%len(r.stale)]
	name := [...]string{"Release", "Destroy", "Value"}[verb]
	var got any
	func() {
		defer func() { got = recover() }()
		switch verb {
		case 0:
			hh.h.Release()
		case 1:
			hh.h.Destroy()
		default:
			_ = hh.h.Value()
		}
	}()
	r.note("misuse: %s on released handle of conn #%d (forced=%v, pool closed=%v): panic=%v", name, hh.v.serial, hh.forced, r.closed, got)
	if hh.forced {
		return // closed under its holder: a no-op (Value gives the closed value), or the misuse panic once reused
	}
	if got == nil {
		r.fatalf("%s on a released handle (conn #%d, pool closed=%v) did not panic", name, hh.v.serial, r.closed)
	}
	msg := fmt.Sprint(got)
	if want := name + " called on a Conn that was already released"; !strings.Contains(msg, want) {
		r.fatalf("%s on a released handle panicked with %q, want it to say %q", name, msg, want)
	}
}

func (r *modelRun) opResize(min, max int) {
	valid := max >= 0 && max <= modelSizeCeiling && min >= 0 && min <= max
	before := r.p.Stats()
	if valid && !r.closing {
		// While the loop adopts the bounds, a dial may start under either.
		r.b.allowed.Store(int64(maxInt(r.max, max)))
	}
	err := r.p.Resize(min, max)
	if err == nil {
		r.roomAt = time.Now()
	}
	r.note("Resize(%d, %d) = %v", min, max, err)
	switch {
	case !valid:
		if !errors.Is(err, tidepool.ErrInvalidResize) {
			r.fatalf("Resize(%d, %d) with invalid bounds: %v, want ErrInvalidResize", min, max, err)
		}
		synctest.Wait()
		after := r.p.Stats()
		if after.MaxSize != before.MaxSize || after.MinIdle != before.MinIdle || after.Resizes != before.Resizes ||
			after.Total != before.Total || after.InUse != before.InUse {
			r.fatalf("invalid Resize(%d, %d) changed the pool: before %+v, after %+v", min, max, before, after)
		}
	case r.closed:
		if !errors.Is(err, tidepool.ErrClosed) {
			r.fatalf("Resize(%d, %d) after Close: %v, want ErrClosed", min, max, err)
		}
	case err != nil:
		r.fatalf("Resize(%d, %d): %v", min, max, err)
	default:
		// Resize returns once the loop adopted the bounds: Stats must show them.
		if st := r.p.Stats(); st.MaxSize != max || st.MinIdle != min || st.Resizes != before.Resizes+1 {
			r.fatalf("Resize(%d, %d) returned but Stats shows max %d min %d resizes %d (before %d)",
				min, max, st.MaxSize, st.MinIdle, st.Resizes, before.Resizes)
		}
		if max < r.max {
			for _, hh := range r.held {
				hh.exempt = true
			}
		}
		r.min, r.max = min, max
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func (r *modelRun) opAdvance(d time.Duration) {
	r.note("advance %v", d)
	time.Sleep(d)
	synctest.Wait()
	r.harvest()
	if r.closed || r.dialsFail() || r.b.hung() > 0 || d < 2*modelTick || time.Since(r.dialErrAt) <= modelBackoffWindow+d {
		return
	}
	// After at least one maintenance pass with the backend up and no backoff,
	// MinIdle connections are warm (or the pool is full).
	st := r.p.Stats()
	if r.observeDialErrors(st) {
		return
	}
	if st.Idle+st.Checking < st.MinIdle && st.Slots < st.MaxSize {
		r.fatalf("after %v with the backend up: %d idle, below MinIdle %d, with room (slots %d < max %d)",
			d, st.Idle+st.Checking, st.MinIdle, st.Slots, st.MaxSize)
	}
}

// opCancel cancels the i-th waiting Acquire; it must return context.Canceled at
// once, and lose nothing.
func (r *modelRun) opCancel(i int) {
	if len(r.pending) == 0 {
		return
	}
	w := r.pending[i%len(r.pending)]
	r.note("cancel Acquire#%d", w.n)
	w.cancel()
	synctest.Wait()
	select {
	case res := <-w.res:
		r.pending = slices.DeleteFunc(r.pending, func(o *modelPending) bool { return o == w })
		if res.err == nil || !errors.Is(res.err, context.Canceled) {
			r.finished(w, res) // record it first, so that the failure message shows it
			r.fatalf("cancelled Acquire#%d returned %v, want context.Canceled", w.n, res.err)
		}
		r.finished(w, res)
	default:
		r.fatalf("cancelled Acquire#%d is still blocked", w.n)
	}
}

// opQuiesce cancels every waiter and releases everything, waits out any dial
// backoff, and then demands MaxSize connections at once: a cancelled or
// timed-out Acquire, a shrink or a Destroy must not have lost a slot.
func (r *modelRun) opQuiesce() {
	if r.closed {
		return
	}
	r.note("quiesce")
	r.heal()
	r.b.checkFail.Store(false)
	for _, w := range r.pending {
		w.cancel()
	}
	synctest.Wait()
	r.harvest()
	if len(r.pending) != 0 {
		r.fatalf("%d cancelled Acquires still blocked", len(r.pending))
	}
	for len(r.held) > 0 {
		r.opRelease(0, false)
	}
	r.setDown(false)
	time.Sleep(modelBackoffWindow + modelTick)
	r.settle()
	for i := range r.max {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h, err := r.p.Acquire(ctx)
		cancel()
		if err != nil {
			r.fatalf("after everything was released, acquire %d of max %d failed: %v", i+1, r.max, err)
		}
		r.took(h, modelClients, "quiesce")
	}
	r.settle()
	if st := r.p.Stats(); st.Slots != r.max {
		r.fatalf("with all %d connections held, Slots = %d", r.max, st.Slots)
	}
	h, err := r.p.TryAcquire(context.Background())
	if !errors.Is(err, tidepool.ErrExhausted) {
		if err == nil {
			r.took(h, modelClients, "TryAcquire at max")
		}
		r.fatalf("TryAcquire with all %d connections held: %v, want ErrExhausted", r.max, err)
	}
	for len(r.held) > 0 {
		r.opRelease(0, false)
	}
}

// opClose closes the pool: variant 0 has the holders release while Close waits,
// 1 has them never release (Close's deadline closes their connections), 2
// releases everything first.
func (r *modelRun) opClose(variant int) {
	if r.closed {
		ctx, cancel := context.WithTimeout(context.Background(), modelCloseDeadline)
		err := r.p.Close(ctx)
		cancel()
		r.note("second Close = %v", err)
		if !errors.Is(err, tidepool.ErrClosed) {
			r.fatalf("second Close: %v, want ErrClosed", err)
		}
		return
	}
	r.note("Close (variant %d, %d held, %d waiting)", variant, len(r.held), len(r.pending))
	if variant == 2 {
		// Released connections may go to waiters: settle and release again
		// until nothing is held (each round serves a waiter or ends).
		for len(r.held) > 0 {
			for len(r.held) > 0 {
				r.opRelease(0, false)
			}
			synctest.Wait()
			r.harvest()
		}
	}
	held := slices.Clone(r.held)
	if variant == 0 && len(held) > 0 {
		go func() {
			time.Sleep(modelCloseDeadline / 2)
			for i, hh := range held {
				hh.v.holder.Store(0)
				if i%2 == 0 {
					hh.h.Release()
				} else {
					hh.h.Destroy()
				}
			}
		}()
	}
	if variant == 1 && len(held) > 0 {
		r.b.heldCloseOK.Store(true)
	}
	r.closing = true
	ctx, cancel := context.WithTimeout(context.Background(), modelCloseDeadline)
	start := time.Now()
	err := r.p.Close(ctx)
	took := time.Since(start)
	cancel()
	r.closed = true
	hung := r.b.hung()
	r.note("Close = %v (took %v, %d callbacks hanging)", err, took, hung)
	// Invariant 9: Close returns by its deadline (plus a short grace for the
	// closes it forces), whatever callbacks do.
	if took > modelCloseDeadline+100*time.Millisecond+time.Millisecond {
		r.fatalf("Close took %v, its deadline was %v", took, modelCloseDeadline)
	}
	if hung > 0 {
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still running") {
			r.fatalf("Close with %d callbacks hanging: %v, want an error naming what is still running", hung, err)
		}
	}
	// The hanging callbacks return now; their results are closed.
	r.heal()
	synctest.Wait()
	switch {
	case variant == 1 && len(held) > 0:
		if !errors.Is(err, context.DeadlineExceeded) {
			r.fatalf("Close with %d holders that never release: %v, want an error wrapping context.DeadlineExceeded", len(held), err)
		}
		for _, hh := range r.held {
			hh.forced = true
		}
	case err != nil && hung == 0:
		r.fatalf("Close with every holder releasing before its deadline: %v", err)
	default:
		r.stale = append(r.stale, r.held...)
		if len(r.stale) > modelMaxStale {
			r.stale = r.stale[len(r.stale)-modelMaxStale:]
		}
		r.held = nil
	}
	r.harvest()
	if len(r.pending) != 0 {
		r.fatalf("%d Acquires still blocked after Close returned", len(r.pending))
	}
	conns, _ := r.b.snapshot()
	r.dialsAtClose = len(conns)
	// The log tells the same story: each connection dialed and then retired
	// or hijacked once; a dial that returned after its timeout is retired
	// (late_dial) without ever having been a pool connection.
	dialed, retired, late := map[uint64]int{}, map[uint64]int{}, 0
	for _, e := range r.logs.All() {
		f := e.ContextMap()
		id, ok := f["conn_id"].(uint64)
		switch e.Message {
		case "conn.dialed":
			dialed[id]++
		case "conn.retired", "conn.hijacked":
			if f["reason"] == "late_dial" {
				late++
				continue
			}
			retired[id]++
		default:
			continue
		}
		if !ok {
			r.fatalf("log entry %q without a conn_id: %v", e.Message, f)
		}
	}
	for id, n := range dialed {
		if n != 1 || retired[id] != 1 {
			r.fatalf("conn id %d: logged dialed %d times and retired or hijacked %d times, want once each", id, n, retired[id])
		}
	}
	if len(retired) != len(dialed) {
		r.fatalf("%d connections logged as retired or hijacked but %d as dialed", len(retired), len(dialed))
	}
	st := r.p.Stats()
	if st.Dials != int64(len(dialed)) || st.Closed.Total()-st.Closed.LateDial+st.Hijacked != int64(len(retired)) ||
		st.Closed.LateDial != int64(late) {
		r.fatalf("Stats counts %d dials, %d closes (%d late) and %d hijacked; the log %d dials, %d retired or hijacked, %d late",
			st.Dials, st.Closed.Total(), st.Closed.LateDial, st.Hijacked, len(dialed), len(retired), late)
	}
	if n := r.logs.FilterMessage("pool.closed").Len(); n != 1 {
		r.fatalf("%d pool.closed log entries, want 1", n)
	}
}

// observeDialErrors notes when Stats.DialErrors grew (at or after the failed
// dial), and reports whether it just did.
func (r *modelRun) observeDialErrors(st tidepool.Stats) bool {
	if st.DialErrors == r.dialErrs {
		return false
	}
	r.dialErrs, r.dialErrAt = st.DialErrors, time.Now()
	return true
}

// check verifies the invariants that can be seen from outside, on a settled
// pool.
func (r *modelRun) check() {
	r.t.Helper()
	conns, problems := r.b.snapshot()
	if len(problems) > 0 {
		r.fatalf("the backend saw: %s", strings.Join(problems, "; "))
	}
	live := 0
	for _, c := range conns {
		switch n := c.closes.Load(); {
		case n == 0 && !c.hijacked.Load():
			live++
		case n > 1:
			r.fatalf("conn #%d closed %d times", c.serial, n)
		}
	}
	for _, hh := range r.held {
		if hh.v.closes.Load() != 0 && !hh.forced {
			r.fatalf("conn #%d held by client %d was closed under it", hh.v.serial, hh.client)
		}
	}
	for _, c := range r.resetDoomed {
		// Under check at the Reset: retired when the check ends (at
		// HealthTimeout at the latest).
		if c.closes.Load() == 0 && c.holder.Load() == 0 && !c.hijacked.Load() && c.checking.Load() == 0 {
			r.fatalf("conn #%d was alive at a Reset, nobody holds it, and it is not closed", c.serial)
		}
	}
	st := r.p.Stats()
	if st.Acquires != r.acquired || st.WaitedAcquires > st.Acquires {
		r.fatalf("Stats.Acquires %d (waited %d) on a settled pool; the model saw %d successful acquisitions",
			st.Acquires, st.WaitedAcquires, r.acquired)
	}
	// Invariant 1, as the server sees it: every connection it sees is one
	// slot of the pool's, from dial start to close return.
	if n := r.b.count.Load(); int64(st.Slots) != n {
		r.fatalf("Stats.Slots %d, but the backend sees %d connections (dialing %d, total %d, closing %d)",
			st.Slots, n, st.Dialing, st.Total, st.Closing)
	}
	if st.Hijacked != int64(r.hijacked) {
		r.fatalf("Stats.Hijacked %d, model hijacked %d", st.Hijacked, r.hijacked)
	}
	if r.closed {
		if live != 0 {
			r.fatalf("after Close, %d dialed connections are not closed", live)
		}
		if len(conns) != r.dialsAtClose {
			r.fatalf("%d connections dialed after Close returned", len(conns)-r.dialsAtClose)
		}
		if st.Total != 0 || st.Idle != 0 || st.InUse != 0 || st.Waiting != 0 || st.Dialing != 0 || st.Slots != 0 {
			r.fatalf("closed pool reports live connections or waiters: %+v", st)
		}
		return
	}
	r.observeDialErrors(st)
	exempt := 0
	for _, hh := range r.held {
		if hh.exempt {
			exempt++
		}
	}
	// A connection under a check cannot be retired for a shrink until the
	// check ends (at HealthTimeout at the latest): it may keep the pool above
	// its max meanwhile, as held ones do.
	checking := 0
	for _, c := range conns {
		if c.closes.Load() == 0 && c.checking.Load() > 0 {
			checking++
		}
	}
	switch {
	case st.MaxSize != r.max || st.MinIdle != r.min:
		r.fatalf("Stats bounds [%d, %d], model [%d, %d]", st.MinIdle, st.MaxSize, r.min, r.max)
	case int64(st.Dialing) != r.b.hungDials.Load():
		r.fatalf("%d dials in flight on a settled pool, %d of them hanging (other dials are instant)", st.Dialing, r.b.hungDials.Load())
	case int64(st.Closing) != r.b.hungCloses.Load():
		r.fatalf("%d closes in flight on a settled pool, %d of them hanging", st.Closing, r.b.hungCloses.Load())
	case st.Total != live:
		r.fatalf("Stats.Total %d, but %d dialed connections are neither closed nor hijacked", st.Total, live)
	case live > r.max+exempt+checking:
		r.fatalf("invariant 1: %d live connections, max %d, only %d held since a shrink and %d under a check",
			live, r.max, exempt, checking)
	case st.PendingShrink > exempt+checking:
		r.fatalf("PendingShrink %d but only %d connections were held at a shrink and %d are under a check",
			st.PendingShrink, exempt, checking)
	case st.InUse != len(r.held):
		r.fatalf("Stats.InUse %d, model holds %d", st.InUse, len(r.held))
	case len(r.p.InUse()) != len(r.held):
		r.fatalf("InUse() lists %d connections, model holds %d", len(r.p.InUse()), len(r.held))
	case st.Idle < 0 || st.Idle+st.Checking != st.Total-st.InUse:
		r.fatalf("Stats.Idle %d + Checking %d with total %d and in use %d", st.Idle, st.Checking, st.Total, st.InUse)
	case st.Waiting != len(r.pending):
		r.fatalf("Stats.Waiting %d, model has %d blocked Acquires", st.Waiting, len(r.pending))
	}
	if len(r.pending) == 0 {
		return
	}
	// Invariant 5: nobody waits while a connection idles, nor while the pool
	// has room and could dial.
	if st.Idle > 0 {
		r.fatalf("invariant 5 (lost wake-up): %d Acquires wait while %d connections are idle", len(r.pending), st.Idle)
	}
	backingOff := r.dialErrs > 0 && time.Since(r.dialErrAt) <= modelBackoffWindow+modelProbeEvery
	if st.Slots < st.MaxSize && !r.dialsFail() && !backingOff && r.b.hung() == 0 {
		r.fatalf("invariant 5: %d Acquires wait with room (slots %d < max %d), dials working and no backoff",
			len(r.pending), st.Slots, st.MaxSize)
	}
	// Invariant 7: with dials failing and nothing live, an Acquire waits at
	// most for the next probe (every 500ms while Acquires wait) and its dial
	// — if a slot is free for the probe: closes that hang keep theirs.
	if r.dialsFail() && st.Total == 0 && st.Slots < st.MaxSize {
		for _, w := range r.pending {
			since := w.start
			if r.roomAt.After(since) {
				since = r.roomAt // the pool may have had no room for a probe before
			}
			if waited := time.Since(since); waited > modelProbeEvery+modelDialTimeout+modelBackoffWindow {
				r.fatalf("invariant 7: Acquire#%d has waited %v with dials failing and nothing live", w.n, waited)
			}
		}
	}
}

// Core bugs found by the model, each pinned by a small test of its own.

// TestDoubleReleaseAfterClosePanics: releasing a handle twice panics, also
// after Close. (Found by the model: a second Release of a handle whose
// connection was retired on its first Release or Destroy — Destroy, lifetime,
// shrink, release during Close — passed silently once the pool was closed,
// because only the lease and state were compared, not whether Close's deadline
// took the connection from its holder.)
func TestDoubleReleaseAfterClosePanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := new(modelBackend)
		p, err := tidepool.New(context.Background(), tidepool.Config[*modelConn]{Dial: b.dial, Close: b.close, MaxSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		h, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h.Destroy()
		if err := p.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for _, verb := range []string{"Release", "Destroy"} {
			func() {
				defer func() {
					e := recover()
					if e == nil {
						t.Errorf("%s of a destroyed handle after Close did not panic", verb)
						return
					}
					if want := verb + " called on a Conn that was already released"; !strings.Contains(fmt.Sprint(e), want) {
						t.Errorf("%s panicked with %q, want it to say %q", verb, e, want)
					}
				}()
				if verb == "Release" {
					h.Release()
				} else {
					h.Destroy()
				}
			}()
		}
	})
}

// TestTryAcquireFindsIdleConnBehindRetiredOnes: TryAcquire takes an idle
// connection when there is one. (Found by the model: takeIdle gave up after 8
// unusable connections while the reconciler sweeps tombstones — connections
// retired while queued — only at 16, so idle connections could sit behind 8 to
// 15 of them; TryAcquire then returned ErrExhausted, and Acquire with a done
// context failed, with connections idle.) Here MinIdle warm connections reach
// their lifetime while idle: each is retired in the queue and its replacement
// queued behind it.
func TestTryAcquireFindsIdleConnBehindRetiredOnes(t *testing.T) {
	// setup returns a pool whose n idle connections each sit behind the
	// tombstone of the one it replaced.
	const n = 12
	setup := func(t *testing.T) *tidepool.Pool[*modelConn] {
		b := new(modelBackend)
		p, err := tidepool.New(context.Background(), tidepool.Config[*modelConn]{
			Dial: b.dial, Close: b.close, MaxSize: n, MinIdle: n,
			MaxLifetime: 100 * time.Millisecond, MaxLifetimeJitter: 10 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := p.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		time.Sleep(150 * time.Millisecond) // the first n expired; their replacements have not
		synctest.Wait()
		if st := p.Stats(); st.Idle != n || st.Closed.Lifetime != n {
			t.Fatalf("setup: want %d idle after %d lifetime retirements, got %+v", n, n, st)
		}
		return p
	}
	t.Run("TryAcquire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := setup(t)
			h, err := p.TryAcquire(context.Background())
			if err != nil {
				t.Fatalf("TryAcquire with %d idle connections: %v", n, err)
			}
			h.Release()
		})
	})
	t.Run("Acquire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := setup(t)
			h, err := p.Acquire(context.Background())
			if err != nil {
				t.Fatalf("Acquire with %d idle connections: %v", n, err)
			}
			h.Release()
		})
	})
}

// TestWatcherDoesNotSpinWhileConnHeldPastLifetime: a connection held past its
// lifetime is retired on release; meanwhile its watcher sleeps. (Found by the
// model, as a hung run: health.watcher.step returned from its past-deadline
// branch before moving nextCheck forward, so once a check fell due next()
// returned 0 and the watcher looped without sleeping — a core busy for as long
// as the connection stayed held.) Measured as the process's CPU time while
// nothing but the watcher could run; real time, since inside a synctest bubble
// the spin stops fake time and the test would hang instead of failing.
func TestWatcherDoesNotSpinWhileConnHeldPastLifetime(t *testing.T) {
	if _, ok := modelProcessCPU(); !ok {
		t.Skip("needs /proc/self/stat")
	}
	b := new(modelBackend)
	p, err := tidepool.New(context.Background(), tidepool.Config[*modelConn]{
		Dial: b.dial, Close: b.close, MaxSize: 1,
		Check:          func(context.Context, *modelConn) error { return nil },
		HealthInterval: 10 * time.Millisecond,
		MaxLifetime:    30 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := mustAcquireModel(t, p)
	// Real time is the point here: hold the connection past its lifetime and
	// past a due check, then measure CPU over a further hold.
	time.Sleep(100 * time.Millisecond)
	before, _ := modelProcessCPU()
	time.Sleep(500 * time.Millisecond)
	after, _ := modelProcessCPU()
	h.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("CPU used while held: %v", after-before)
	if used := after - before; used > 50*time.Millisecond {
		t.Errorf("the process used %v of CPU in 500ms while one connection was held past its lifetime: its watcher spins", used)
	}
}

func mustAcquireModel(t *testing.T, p *tidepool.Pool[*modelConn]) tidepool.Conn[*modelConn] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h
}

// modelProcessCPU returns the process's user+system CPU time from
// /proc/self/stat (Linux), at the kernel's clock-tick resolution (USER_HZ,
// 100 on every Linux platform Go supports).
func modelProcessCPU() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}
