package registry_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/conn"
	"github.com/tidepool-go/tidepool/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// get finds id by walking r, as the pool's readers do.
func get(r *registry.Registry[int], id uint64) (c *conn.Conn[int], ok bool) {
	r.Range(func(x *conn.Conn[int]) bool {
		if x.ID() == id {
			c, ok = x, true
			return false
		}
		return true
	})
	return c, ok
}

func mk(id uint64) *conn.Conn[int] { return conn.New(id, int(id), time.Now(), time.Time{}, 0) }

func TestRegistryStoresGetsAndForgets(t *testing.T) {
	r := registry.New[int]()
	if r.Len() != 0 {
		t.Fatal("new registry not empty")
	}
	for id := uint64(1); id <= 5; id++ {
		r.Store(mk(id))
	}
	if r.Len() != 5 {
		t.Fatalf("Len = %d, want 5", r.Len())
	}
	if c, ok := get(r, 3); !ok || c.ID() != 3 || c.Value() != 3 {
		t.Fatalf("Get(3) = %v, %v", c, ok)
	}
	r.Delete(3)
	r.Delete(42) // unknown: no effect
	if _, ok := get(r, 3); ok || r.Len() != 4 {
		t.Fatalf("after Delete(3): found=%v Len=%d", ok, r.Len())
	}
	seen := map[uint64]bool{}
	r.Range(func(c *conn.Conn[int]) bool { seen[c.ID()] = true; return true })
	if len(seen) != 4 || seen[3] {
		t.Fatalf("Range saw %v, want 1, 2, 4, 5", seen)
	}
	n := 0
	r.Range(func(*conn.Conn[int]) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range went on after f returned false (%d calls)", n)
	}
}

// One writer (as the reconciler is) and many readers, under -race.
func TestRegistryReadersRunAlongsideTheWriter(t *testing.T) {
	r := registry.New[int]()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.Range(func(c *conn.Conn[int]) bool { _ = c.State(); return true })
				if n := r.Len(); n < 0 || n > 100 {
					t.Errorf("Len = %d", n)
					return
				}
			}
		})
	}
	for i := range 10000 {
		id := uint64(i%100 + 1)
		if _, ok := get(r, id); ok {
			r.Delete(id)
		} else {
			r.Store(mk(id))
		}
	}
	close(stop)
	wg.Wait()
}
