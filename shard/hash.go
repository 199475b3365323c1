package shard

// The mapping from keys to shards is rendezvous (highest random weight)
// hashing:
//
//	shard(key) = the shard s that maximizes mix(hash(key) XOR hash(s.Name))
//
// where hash is 64-bit FNV-1a finished with mix, and mix is MurmurHash3's
// 64-bit finalizer (fmix64). Ties, which need two 64-bit scores to collide,
// go to the smaller name. The mapping depends only on the key and the set of
// shard names — not on the order shards were added in, the process, the
// machine or the Go version — and it is part of the package's contract: a
// change to it would move data between shards, so TestMappingIsStable pins it
// with golden values.
//
// Why rendezvous and not jump hash: jump hash numbers its buckets 0..n-1 and
// can only grow or shrink at the end; removing shard 3 of 8 would renumber
// 4..7 and move their keys too. Rendezvous scores each named shard on its own,
// so:
//   - adding a shard moves exactly the keys that now score highest on it,
//     about 1/(n+1) of them, and every moved key moves to the new shard;
//   - removing a shard moves exactly its own keys (about 1/n), each to the
//     shard that scored second for it; no other key moves.
//
// The price is O(n) per lookup: one mix per shard (about 1 ns each); with the
// tens of shards a pool of pools has, that is a few nanoseconds.

// FNV-1a 64-bit parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString is FNV-1a over s, finished with mix so that every input bit
// reaches every output bit. It allocates nothing.
func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// mix is MurmurHash3's fmix64: a bijection on uint64 with full avalanche.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// score is the rendezvous weight of a key (hashed kh) on a shard whose name
// hashes to seed.
func score(kh, seed uint64) uint64 { return mix(kh ^ seed) }

// pick returns the index of the shard that key hash kh maps to, given the
// shards' name hashes and names (parallel slices), or -1 if there are none.
func pick(seeds []uint64, names []string, kh uint64) int {
	best, bestScore := -1, uint64(0)
	for i, seed := range seeds {
		s := score(kh, seed)
		if best < 0 || s > bestScore || (s == bestScore && names[i] < names[best]) {
			best, bestScore = i, s
		}
	}
	return best
}

// Locate returns the name of the shard that key maps to among shards (by
// name), with the same rendezvous hashing as Pool.Acquire; "" if shards is
// empty. Use it to place or migrate data without a pool, e.g. to list the keys
// that AddShard will move. Cost: O(len(key) + len(shards)), plus hashing each
// name; no allocation.
func Locate(key string, shards []string) string {
	kh := hashString(key)
	best, bestScore := -1, uint64(0)
	for i, name := range shards {
		s := score(kh, hashString(name))
		if best < 0 || s > bestScore || (s == bestScore && name < shards[best]) {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ""
	}
	return shards[best]
}
