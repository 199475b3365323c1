package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// errLeaseLost: the coordinator no longer knows the member's lease.
var errLeaseLost = errors.New("fleet: lease lost (expired or revoked at the coordinator)")

// store is what a member needs of its coordinator. etcdStore is the real one;
// the tests have an in-memory one with the same semantics so that the
// protocol runs under testing/synctest. Every method honours ctx.
type store interface {
	// grant creates a lease; ttl is what the coordinator granted.
	grant(ctx context.Context, ttl time.Duration) (lease int64, granted time.Duration, err error)
	// keepAlive renews lease; errLeaseLost if it is gone.
	keepAlive(ctx context.Context, lease int64) (ttl time.Duration, err error)
	// revoke deletes lease and every key attached to it.
	revoke(ctx context.Context, lease int64) error
	// ensureConfig stores val at key unless the key exists; it returns the
	// value stored at key afterwards.
	ensureConfig(ctx context.Context, key string, val []byte) ([]byte, error)
	// register creates memberKey=memberVal and claimKey="0", both attached
	// to lease, if memberKey does not exist; ok is false if it does.
	register(ctx context.Context, lease int64, memberKey string, memberVal []byte, claimKey string) (ok bool, err error)
	// put writes key=val attached to lease; errLeaseLost if it is gone.
	put(ctx context.Context, lease int64, key string, val []byte) error
	// lowerClaim sets claimKey to n if it is still attached to lease
	// (errLeaseLost otherwise). Lowering needs no budget check.
	lowerClaim(ctx context.Context, lease int64, claimKey string, n int) error
	// raiseClaim raises claimKey (attached to lease) towards want, as far as
	// budget minus the sum of every claim under claimsPrefix allows, in one
	// transaction that fails if any claim changed since it was read. It
	// returns the claim afterwards (unchanged if there was no room).
	raiseClaim(ctx context.Context, lease int64, claimsPrefix, claimKey string, budget, want int) (int, error)
	// snapshot reads every key under prefix and the revision it was read at.
	snapshot(ctx context.Context, prefix string) ([]kv, int64, error)
	// watch streams the changes under prefix after revision rev, in order.
	// The channel closes when ctx ends or the watch breaks (compaction, …):
	// then take a new snapshot.
	watch(ctx context.Context, prefix string, rev int64) <-chan []kvEvent
}

// kv is one key as read.
type kv struct {
	key       string
	val       []byte
	createRev int64
	modRev    int64
}

// kvEvent is one change: a put (kv holds the new value) or a delete.
type kvEvent struct {
	kv
	deleted bool
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
