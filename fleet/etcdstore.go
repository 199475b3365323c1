package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdStore is the store on an etcd v3 cluster. Safety rests on two etcd
// guarantees: a transaction's compares and puts are applied atomically at one
// revision, and a put attached to a lease that no longer exists fails.
type etcdStore struct {
	cli *clientv3.Client
}

func leaseErr(err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: %v", errLeaseLost, err)
	}
	return err
}

func (s etcdStore) grant(ctx context.Context, ttl time.Duration) (int64, time.Duration, error) {
	r, err := s.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return 0, 0, err
	}
	return int64(r.ID), time.Duration(r.TTL) * time.Second, nil
}

func (s etcdStore) keepAlive(ctx context.Context, lease int64) (time.Duration, error) {
	r, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return 0, leaseErr(err)
	}
	return time.Duration(r.TTL) * time.Second, nil
}

func (s etcdStore) revoke(ctx context.Context, lease int64) error {
	_, err := s.cli.Revoke(ctx, clientv3.LeaseID(lease))
	return leaseErr(err)
}

func (s etcdStore) ensureConfig(ctx context.Context, key string, val []byte) ([]byte, error) {
	r, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, err
	}
	if r.Succeeded {
		return val, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("fleet: config key %s vanished while read", key)
	}
	return kvs[0].Value, nil
}

func (s etcdStore) register(ctx context.Context, lease int64, memberKey string, memberVal []byte, claimKey string) (bool, error) {
	id := clientv3.LeaseID(lease)
	r, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(memberKey), "=", 0)).
		Then(clientv3.OpPut(memberKey, string(memberVal), clientv3.WithLease(id)),
			clientv3.OpPut(claimKey, "0", clientv3.WithLease(id))).
		Commit()
	if err != nil {
		return false, leaseErr(err)
	}
	return r.Succeeded, nil
}

func (s etcdStore) put(ctx context.Context, lease int64, key string, val []byte) error {
	_, err := s.cli.Put(ctx, key, string(val), clientv3.WithLease(clientv3.LeaseID(lease)))
	return leaseErr(err)
}

func (s etcdStore) lowerClaim(ctx context.Context, lease int64, claimKey string, n int) error {
	id := clientv3.LeaseID(lease)
	r, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(claimKey), "=", id)).
		Then(clientv3.OpPut(claimKey, strconv.Itoa(n), clientv3.WithLease(id))).
		Commit()
	if err != nil {
		return leaseErr(err)
	}
	if !r.Succeeded {
		return fmt.Errorf("%w: claim %s is no longer attached to lease %x", errLeaseLost, claimKey, lease)
	}
	return nil
}

// raiseClaim reads every claim, then raises its own in a transaction that
// compares the mod revision of the whole claims range with the read's
// revision: if any claim was created or changed since, nothing is written and
// it reads again (a few times). Claims deleted since (an expired lease) only
// free capacity, so the sum the transaction commits to is at most what was
// read: never above budget.
func (s etcdStore) raiseClaim(ctx context.Context, lease int64, claimsPrefix, claimKey string, budget, want int) (int, error) {
	id := clientv3.LeaseID(lease)
	mine := 0
	for range 4 {
		g, err := s.cli.Get(ctx, claimsPrefix, clientv3.WithPrefix())
		if err != nil {
			return 0, err
		}
		sum, found := 0, false
		for _, kv := range g.Kvs {
			n, err := strconv.Atoi(string(kv.Value))
			if err != nil || n < 0 {
				return 0, fmt.Errorf("fleet: claim %s holds %q, not a count", kv.Key, kv.Value)
			}
			sum += n
			if string(kv.Key) == claimKey {
				if kv.Lease != lease {
					return 0, fmt.Errorf("%w: claim %s is attached to lease %x, not %x", errLeaseLost, claimKey, kv.Lease, lease)
				}
				mine, found = n, true
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: claim %s is gone", errLeaseLost, claimKey)
		}
		next := min(want, mine+budget-sum)
		if next <= mine {
			return mine, nil
		}
		r, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(claimsPrefix), "<", g.Header.Revision+1).WithPrefix(),
				clientv3.Compare(clientv3.LeaseValue(claimKey), "=", id)).
			Then(clientv3.OpPut(claimKey, strconv.Itoa(next), clientv3.WithLease(id))).
			Commit()
		if err != nil {
			return 0, leaseErr(err)
		}
		if r.Succeeded {
			return next, nil
		}
	}
	return mine, nil // contended: the claim stays; the caller tries again later
}

func (s etcdStore) snapshot(ctx context.Context, prefix string) ([]kv, int64, error) {
	r, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := make([]kv, 0, len(r.Kvs))
	for _, k := range r.Kvs {
		out = append(out, kv{key: string(k.Key), val: k.Value, createRev: k.CreateRevision, modRev: k.ModRevision})
	}
	return out, r.Header.Revision, nil
}

func (s etcdStore) watch(ctx context.Context, prefix string, rev int64) <-chan []kvEvent {
	out := make(chan []kvEvent)
	wc := s.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	go func() {
		defer close(out)
		for wr := range wc {
			if wr.Err() != nil || wr.Canceled {
				return
			}
			batch := make([]kvEvent, 0, len(wr.Events))
			for _, e := range wr.Events {
				k := e.Kv
				batch = append(batch, kvEvent{
					kv:      kv{key: string(k.Key), val: k.Value, createRev: k.CreateRevision, modRev: k.ModRevision},
					deleted: e.Type == mvccpb.DELETE,
				})
			}
			if len(batch) == 0 {
				continue
			}
			select {
			case out <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
