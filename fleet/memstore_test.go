package fleet

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memStore is an in-memory coordinator with etcd's semantics for what the
// fleet uses — revisions, leases that expire (checked every 500 ms, like
// etcd's lessor), keys deleted with their lease, transactions, ordered
// watches — so that the protocol runs under testing/synctest. Each member
// talks to it through a memClient, which the test can cut off.
type memStore struct {
	mu        sync.Mutex
	rev       int64
	kvs       map[string]*memKV
	leases    map[int64]*memLease
	nextLease int64
	watchers  map[*memWatcher]struct{}
	expired   map[int64]time.Time // lease → when the store dropped it
	history   []kvEvent           // every event, for watches that start at an older revision
	stop      chan struct{}
	done      chan struct{}
	latency   time.Duration
}

type memKV struct {
	val                []byte
	create, mod, lease int64
}

type memLease struct {
	ttl    time.Duration
	expiry time.Time
}

type memWatcher struct {
	prefix string
	ch     chan []kvEvent
}

func newMemStore() *memStore {
	s := &memStore{
		kvs: map[string]*memKV{}, leases: map[int64]*memLease{}, watchers: map[*memWatcher]struct{}{},
		expired: map[int64]time.Time{}, stop: make(chan struct{}), done: make(chan struct{}),
		latency: time.Millisecond, nextLease: 0x1000,
	}
	go s.expireLoop()
	return s
}

func (s *memStore) close() {
	close(s.stop)
	<-s.done
}

func (s *memStore) expireLoop() {
	defer close(s.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		now := time.Now()
		for id, l := range s.leases {
			if !now.Before(l.expiry) {
				s.revokeLocked(id)
				s.expired[id] = now
			}
		}
		s.mu.Unlock()
	}
}

func (s *memStore) revokeLocked(id int64) {
	delete(s.leases, id)
	var keys []string
	for k, v := range s.kvs {
		if v.lease == id {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	sort.Strings(keys)
	s.rev++
	batch := make([]kvEvent, 0, len(keys))
	for _, k := range keys {
		delete(s.kvs, k)
		batch = append(batch, kvEvent{kv: kv{key: k, modRev: s.rev}, deleted: true})
	}
	s.notifyLocked(batch)
}

func (s *memStore) putLocked(key string, val []byte, lease int64) kvEvent {
	s.rev++
	v, ok := s.kvs[key]
	if !ok {
		v = &memKV{create: s.rev}
		s.kvs[key] = v
	}
	v.val, v.mod, v.lease = append([]byte(nil), val...), s.rev, lease
	return kvEvent{kv: kv{key: key, val: v.val, createRev: v.create, modRev: v.mod}}
}

func (s *memStore) notifyLocked(batch []kvEvent) {
	s.history = append(s.history, batch...)
	for w := range s.watchers {
		var mine []kvEvent
		for _, e := range batch {
			if strings.HasPrefix(e.key, w.prefix) {
				mine = append(mine, e)
			}
		}
		if len(mine) == 0 {
			continue
		}
		select {
		case w.ch <- mine:
		default: // a watcher that fell far behind is cut, like a broken stream
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

// sumClaims sums the claims under prefix.
func (s *memStore) sumClaims(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := 0
	for k, v := range s.kvs {
		if strings.HasPrefix(k, prefix) {
			n, _ := strconv.Atoi(string(v.val))
			sum += n
		}
	}
	return sum
}

// claimOf returns the claim stored for id under prefix (-1: none).
func (s *memStore) claimOf(prefix, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kvs[prefix+id]
	if !ok {
		return -1
	}
	n, _ := strconv.Atoi(string(v.val))
	return n
}

// memClient is one member's connection to a memStore.
type memClient struct {
	s   *memStore
	cut atomic.Bool
	mu  sync.Mutex
	ws  []*memWatcher
}

// sever cuts the client off: calls block until their ctx ends, watches break.
func (c *memClient) sever() {
	c.cut.Store(true)
	c.s.mu.Lock()
	c.mu.Lock()
	for _, w := range c.ws {
		if _, ok := c.s.watchers[w]; ok {
			delete(c.s.watchers, w)
			close(w.ch)
		}
	}
	c.ws = nil
	c.mu.Unlock()
	c.s.mu.Unlock()
}

func (c *memClient) heal() { c.cut.Store(false) }

// call waits out the latency (or, when cut, the ctx) and then locks the store.
func (c *memClient) call(ctx context.Context) error {
	if c.cut.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(c.s.latency):
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.cut.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	c.s.mu.Lock()
	return nil
}

func (c *memClient) grant(ctx context.Context, ttl time.Duration) (int64, time.Duration, error) {
	if err := c.call(ctx); err != nil {
		return 0, 0, err
	}
	defer c.s.mu.Unlock()
	c.s.nextLease++
	c.s.leases[c.s.nextLease] = &memLease{ttl: ttl, expiry: time.Now().Add(ttl)}
	return c.s.nextLease, ttl, nil
}

func (c *memClient) keepAlive(ctx context.Context, lease int64) (time.Duration, error) {
	if err := c.call(ctx); err != nil {
		return 0, err
	}
	defer c.s.mu.Unlock()
	l, ok := c.s.leases[lease]
	if !ok {
		return 0, errLeaseLost
	}
	l.expiry = time.Now().Add(l.ttl)
	return l.ttl, nil
}

func (c *memClient) revoke(ctx context.Context, lease int64) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	defer c.s.mu.Unlock()
	if _, ok := c.s.leases[lease]; !ok {
		return errLeaseLost
	}
	c.s.revokeLocked(lease)
	return nil
}

func (c *memClient) ensureConfig(ctx context.Context, key string, val []byte) ([]byte, error) {
	if err := c.call(ctx); err != nil {
		return nil, err
	}
	defer c.s.mu.Unlock()
	if v, ok := c.s.kvs[key]; ok {
		return v.val, nil
	}
	c.s.notifyLocked([]kvEvent{c.s.putLocked(key, val, 0)})
	return val, nil
}

func (c *memClient) register(ctx context.Context, lease int64, memberKey string, memberVal []byte, claimKey string) (bool, error) {
	if err := c.call(ctx); err != nil {
		return false, err
	}
	defer c.s.mu.Unlock()
	if _, ok := c.s.leases[lease]; !ok {
		return false, errLeaseLost
	}
	if _, ok := c.s.kvs[memberKey]; ok {
		return false, nil
	}
	// One transaction: one revision for both puts, like etcd.
	c.s.rev++
	rev := c.s.rev
	c.s.kvs[memberKey] = &memKV{val: memberVal, create: rev, mod: rev, lease: lease}
	c.s.kvs[claimKey] = &memKV{val: []byte("0"), create: rev, mod: rev, lease: lease}
	c.s.notifyLocked([]kvEvent{
		{kv: kv{key: memberKey, val: memberVal, createRev: rev, modRev: rev}},
		{kv: kv{key: claimKey, val: []byte("0"), createRev: rev, modRev: rev}},
	})
	return true, nil
}

func (c *memClient) put(ctx context.Context, lease int64, key string, val []byte) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	defer c.s.mu.Unlock()
	if _, ok := c.s.leases[lease]; !ok {
		return errLeaseLost
	}
	c.s.notifyLocked([]kvEvent{c.s.putLocked(key, val, lease)})
	return nil
}

func (c *memClient) lowerClaim(ctx context.Context, lease int64, claimKey string, n int) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	defer c.s.mu.Unlock()
	v, ok := c.s.kvs[claimKey]
	if !ok || v.lease != lease {
		return errLeaseLost
	}
	c.s.notifyLocked([]kvEvent{c.s.putLocked(claimKey, []byte(strconv.Itoa(n)), lease)})
	return nil
}

func (c *memClient) raiseClaim(ctx context.Context, lease int64, claimsPrefix, claimKey string, budget, want int) (int, error) {
	if err := c.call(ctx); err != nil {
		return 0, err
	}
	defer c.s.mu.Unlock()
	sum, mine := 0, -1
	for k, v := range c.s.kvs {
		if !strings.HasPrefix(k, claimsPrefix) {
			continue
		}
		n, err := strconv.Atoi(string(v.val))
		if err != nil {
			return 0, fmt.Errorf("claim %s = %q", k, v.val)
		}
		sum += n
		if k == claimKey {
			if v.lease != lease {
				return 0, errLeaseLost
			}
			mine = n
		}
	}
	if mine < 0 {
		return 0, errLeaseLost
	}
	next := min(want, mine+budget-sum)
	if next <= mine {
		return mine, nil
	}
	c.s.notifyLocked([]kvEvent{c.s.putLocked(claimKey, []byte(strconv.Itoa(next)), lease)})
	return next, nil
}

func (c *memClient) snapshot(ctx context.Context, prefix string) ([]kv, int64, error) {
	if err := c.call(ctx); err != nil {
		return nil, 0, err
	}
	defer c.s.mu.Unlock()
	var out []kv
	for k, v := range c.s.kvs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, kv{key: k, val: v.val, createRev: v.create, modRev: v.mod})
		}
	}
	return out, c.s.rev, nil
}

// watch replays the events after rev, then streams new ones, like etcd.
func (c *memClient) watch(ctx context.Context, prefix string, rev int64) <-chan []kvEvent {
	w := &memWatcher{prefix: prefix, ch: make(chan []kvEvent, 4096)}
	c.s.mu.Lock()
	if c.cut.Load() {
		close(w.ch) // a broken stream: the member retries later
		c.s.mu.Unlock()
		return w.ch
	}
	var replay []kvEvent
	for _, e := range c.s.history {
		if e.modRev > rev && strings.HasPrefix(e.key, prefix) {
			replay = append(replay, e)
		}
	}
	if len(replay) > 0 {
		w.ch <- replay
	}
	c.s.watchers[w] = struct{}{}
	c.mu.Lock()
	c.ws = append(c.ws, w)
	c.mu.Unlock()
	c.s.mu.Unlock()
	go func() {
		<-ctx.Done()
		c.s.mu.Lock()
		if _, ok := c.s.watchers[w]; ok {
			delete(c.s.watchers, w)
			close(w.ch)
		}
		c.s.mu.Unlock()
	}()
	return w.ch
}
