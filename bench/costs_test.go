package bench

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
)

// The Cost benchmarks price the building blocks a pool's hot path is made of,
// one by one, on one goroutine, so that a missed S1/S2 goal can be traced to
// the piece that costs the time. They use only public packages: tidepool's own
// idle structure and connection state are internal and have their benchmarks
// in the library. run.sh does not run them; run them with
//
//	go test -run '^$' -bench '^BenchmarkCost' -benchmem .

func BenchmarkCostXsyncCounterInc(b *testing.B) {
	c := xsync.NewCounter()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCostAtomicAdd(b *testing.B) {
	var c atomic.Int64
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkCostMPMCEnqueueDequeue(b *testing.B) {
	q := xsync.NewMPMCQueueOf[*int](1024 + 48)
	v := new(int)
	for b.Loop() {
		q.TryEnqueue(v)
		q.TryDequeue()
	}
}

func BenchmarkCostMutexLockUnlockTwice(b *testing.B) {
	var mu sync.Mutex
	n := 0
	for b.Loop() {
		mu.Lock()
		n++
		mu.Unlock()
		mu.Lock()
		n++
		mu.Unlock()
	}
	_ = n
}

func BenchmarkCostTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now()
	}
}

func BenchmarkCostTaggedStackPushPop(b *testing.B) {
	s := newTaggedStack(1024)
	for b.Loop() {
		s.push(7)
		s.pop()
	}
}

// taggedStack is the idle structure proposed in the report for S1/S2: a
// Treiber stack of slot indices whose head carries a version tag against ABA,
// so that a push or a pop is one CAS, and whose length is a plain field of the
// head word (no second atomic).
type taggedStack struct {
	head atomic.Uint64 // tag(24) | len(20) | top index+1 (20)
	next []atomic.Uint32
}

func newTaggedStack(n int) *taggedStack { return &taggedStack{next: make([]atomic.Uint32, n)} }

const (
	tsIdxBits = 20
	tsLenBits = 20
	tsMask    = 1<<tsIdxBits - 1
)

func tsPack(tag, n, top uint64) uint64 { return tag<<(tsIdxBits+tsLenBits) | n<<tsIdxBits | top }

func (s *taggedStack) push(i uint32) {
	for {
		h := s.head.Load()
		tag, n, top := h>>(tsIdxBits+tsLenBits), h>>tsIdxBits&tsMask, h&tsMask
		s.next[i].Store(uint32(top))
		if s.head.CompareAndSwap(h, tsPack(tag+1, n+1, uint64(i)+1)) {
			return
		}
	}
}

func (s *taggedStack) pop() (uint32, bool) {
	for {
		h := s.head.Load()
		tag, n, top := h>>(tsIdxBits+tsLenBits), h>>tsIdxBits&tsMask, h&tsMask
		if top == 0 {
			return 0, false
		}
		nx := uint64(s.next[top-1].Load())
		if s.head.CompareAndSwap(h, tsPack(tag+1, n-1, nx)) {
			return uint32(top - 1), true
		}
	}
}

func TestTaggedStackIsLIFOAndCountsItsLength(t *testing.T) {
	s := newTaggedStack(8)
	for i := range uint32(5) {
		s.push(i)
	}
	if n := s.head.Load() >> tsIdxBits & tsMask; n != 5 {
		t.Fatalf("len = %d, want 5", n)
	}
	for want := uint32(5); want > 0; want-- {
		if got, ok := s.pop(); !ok || got != want-1 {
			t.Fatalf("pop = %d, %v; want %d", got, ok, want-1)
		}
	}
	if _, ok := s.pop(); ok {
		t.Fatal("pop on an empty stack succeeded")
	}
}

func TestTaggedStackLosesNothingUnderConcurrency(t *testing.T) {
	const n, rounds = 64, 2000
	s := newTaggedStack(n)
	for i := range uint32(n) {
		s.push(i)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range rounds {
				if i, ok := s.pop(); ok {
					s.push(i)
				}
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for {
		i, ok := s.pop()
		if !ok {
			break
		}
		if seen[i] {
			t.Fatalf("slot %d popped twice", i)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d slots left after the churn", len(seen), n)
	}
}
