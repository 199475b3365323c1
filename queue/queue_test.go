package queue_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQueueIsFIFOWithExactLen(t *testing.T) {
	q := queue.New[int](8)
	if q.Cap() != 8 || q.Len() != 0 {
		t.Fatalf("new queue Cap=%d Len=%d", q.Cap(), q.Len())
	}
	for i := range 5 {
		if !q.Push(i) {
			t.Fatalf("Push %d failed", i)
		}
		if q.Len() != i+1 {
			t.Fatalf("Len after %d pushes = %d", i+1, q.Len())
		}
	}
	for i := range 5 {
		v, ok := q.Pop()
		if !ok || v != i {
			t.Fatalf("Pop = (%d, %v), want (%d, true)", v, ok, i)
		}
		if q.Len() != 4-i {
			t.Fatalf("Len = %d, want %d", q.Len(), 4-i)
		}
	}
	if _, ok := q.Pop(); ok {
		t.Fatal("Pop of an empty queue succeeded")
	}
	if q.Len() != 0 {
		t.Fatalf("Len of empty queue after failed Pop = %d", q.Len())
	}
}

func TestQueueRefusesPushWhenFull(t *testing.T) {
	q := queue.New[int](3)
	for i := range 3 {
		if !q.Push(i) {
			t.Fatalf("Push %d into room failed", i)
		}
	}
	if q.Push(99) {
		t.Fatal("Push into a full queue succeeded")
	}
	if q.Len() != 3 {
		t.Fatalf("Len = %d after refused push, want 3", q.Len())
	}
	// Wrap around the ring a few times: order and length stay right.
	for i := 3; i < 50; i++ {
		v, _ := q.Pop()
		if v != i-3 {
			t.Fatalf("Pop = %d, want %d", v, i-3)
		}
		if !q.Push(i) {
			t.Fatalf("Push %d after a Pop failed", i)
		}
	}
}

func TestNewRejectsZeroCapacity(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(0) did not panic")
		}
	}()
	queue.New[int](0)
}

// Run with -race: every pushed item comes out exactly once, in each
// producer's order, whatever the interleaving; no Pop spins once the queue is
// empty; and Len is exact again once everything stops.
func TestConcurrentPushPopKeepsEveryItemOnce(t *testing.T) {
	for round := range 8 {
		if !pushPopRound(t, round) {
			return
		}
	}
}

func pushPopRound(t *testing.T, round int) bool {
	const producers, consumers, per = 4, 4, 4000
	const total = producers * per
	q := queue.New[int](64)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range per {
				for !q.Push(p*per + i) {
				}
			}
		})
	}
	seen := make([][]int, consumers)
	var got atomic.Int64
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Go(func() {
			last := make([]int, producers)
			for i := range last {
				last[i] = -1
			}
			for got.Load() < total {
				v, ok := q.Pop()
				if !ok {
					continue
				}
				if v < 0 { // a filler pushed to unstick a spinning Pop
					return
				}
				if p, i := v/per, v%per; i <= last[p] {
					t.Errorf("items of producer %d out of order: %d after %d", p, i, last[p])
				} else {
					last[p] = i
				}
				seen[c] = append(seen[c], v)
				got.Add(1)
			}
		})
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { cwg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("round %d: %d of %d items taken, and a Pop still spins on an empty queue (Len=%d)",
			round, got.Load(), total, q.Len())
		for range consumers { // unstick the spinning Pops so that no goroutine leaks
			q.Push(-1)
		}
		<-done
		return false
	}
	count := make([]int, total)
	for _, s := range seen {
		for _, v := range s {
			count[v]++
		}
	}
	for v, n := range count {
		if n != 1 {
			t.Errorf("round %d: item %d came out %d times", round, v, n)
			return false
		}
	}
	// Quiescent: Len must be exact again.
	for i := range 3 {
		q.Push(i)
	}
	if n := q.Len(); n != 3 {
		t.Errorf("round %d: Len = %d after a concurrent run and 3 pushes, want 3", round, n)
		return false
	}
	for range 3 {
		q.Pop()
	}
	if _, ok := q.Pop(); ok || q.Len() != 0 {
		t.Errorf("round %d: queue not empty after popping everything (Len=%d)", round, q.Len())
		return false
	}
	return true
}

func TestConcurrentLenNeverExceedsCapOrGoesNegative(t *testing.T) {
	q := queue.New[int](16)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for i := range 20000 {
				if i%2 == 0 {
					q.Push(i)
				} else {
					q.Pop()
				}
			}
		})
	}
	var bad error
	var mwg sync.WaitGroup
	mwg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if n := q.Len(); n < 0 || n > q.Cap() {
				bad = errLen(n)
				return
			}
		}
	})
	wg.Wait()
	close(done)
	mwg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	n := 0
	for {
		if _, ok := q.Pop(); !ok {
			break
		}
		n++
	}
	if n > q.Cap() {
		t.Fatalf("drained %d items from a queue of capacity %d", n, q.Cap())
	}
}

type errLen int

func (e errLen) Error() string { return "Len out of range" }
