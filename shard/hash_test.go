package shard

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// names returns shard names "0".."n-1".
func names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}

// randomKeys returns n keys drawn from a PCG with a fixed seed: the same keys
// on every run, so the statistics below are fixed numbers and cannot flake.
func randomKeys(n int) []string {
	r := rand.New(rand.NewPCG(0x7469646570, 0x6f6f6c))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d:%x", r.IntN(1_000_000_000), r.Uint64())
	}
	return keys
}

// locator returns Locate(·, shards) with the shards' hashes computed once,
// for the tests that map hundreds of thousands of keys.
func locator(shards []string) func(key string) string {
	tb := &table[int]{}
	for _, s := range shards {
		tb = tb.with(&member[int]{name: s})
	}
	return func(key string) string { return tb.names[pick(tb.seeds, tb.names, hashString(key))] }
}

// chiSquare is Pearson's statistic of counts against a uniform distribution.
func chiSquare(counts map[string]int, total int) float64 {
	expected := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - expected
		x += d * d / expected
	}
	return x
}

// chiSquareCritical001 holds the chi-square critical values at p = 0.001 for
// 1..15 degrees of freedom: a uniform distribution exceeds them one time in a
// thousand. With fixed keys the statistic is a fixed number, so the test is
// a deterministic check that the hash spreads keys like a uniform one.
var chiSquareCritical001 = []float64{0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.70}

// The mapping is part of the contract (data lives where it says): these
// golden values, checked against an independent implementation of FNV-1a,
// fmix64 and rendezvous selection, fail the test if the hash or the
// tie-break ever change.
func TestMappingIsStable(t *testing.T) {
	if got := hashString(""); got != mix(fnvOffset) {
		t.Errorf("hashString(\"\") = %#x, want mix(FNV offset) = %#x", got, mix(fnvOffset))
	}
	for _, tc := range []struct {
		s    string
		want uint64
	}{
		{"a", 0x82a2a958a9bece5b}, // FNV-1a("a") = 0xaf63dc4c8601ec8c, then fmix64
		{"user:42", 0x998817bee6718248},
	} {
		if got := hashString(tc.s); got != tc.want {
			t.Errorf("hashString(%q) = %#x, want %#x", tc.s, got, tc.want)
		}
	}
	eight := names(8)
	golden := map[string]string{
		"user:1": "0", "user:2": "2", "user:3": "3", "user:42": "0", "session:abc": "4", "": "1",
	}
	for key, want := range golden {
		if got := Locate(key, eight); got != want {
			t.Errorf("Locate(%q, 0..7) = %q, want %q", key, got, want)
		}
	}
}

func TestLocateIgnoresTheOrderOfShards(t *testing.T) {
	keys := randomKeys(2000)
	base := names(8)
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := slices.Clone(base)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, k := range keys {
			if a, b := Locate(k, base), Locate(k, shuffled); a != b {
				t.Fatalf("key %q: %q with shards %v, %q with %v", k, a, base, b, shuffled)
			}
		}
	}
	if got := Locate("k", nil); got != "" {
		t.Errorf("Locate with no shards = %q, want \"\"", got)
	}
}

// Keys spread evenly: a chi-square test at p = 0.001 on 100 000 keys drawn
// with a fixed seed, for 2..16 shards, and on sequential keys.
func TestKeysSpreadEvenlyOverShards(t *testing.T) {
	random := randomKeys(100_000)
	sequential := make([]string, 100_000)
	for i := range sequential {
		sequential[i] = "k" + strconv.Itoa(i)
	}
	for _, set := range []struct {
		name string
		keys []string
	}{{"random", random}, {"sequential", sequential}} {
		for n := 2; n <= 16; n++ {
			shards := names(n)
			counts := map[string]int{}
			for _, s := range shards {
				counts[s] = 0
			}
			locate := locator(shards)
			for _, k := range set.keys {
				counts[locate(k)]++
			}
			x := chiSquare(counts, len(set.keys))
			if x > chiSquareCritical001[n-1] {
				t.Errorf("%s keys over %d shards: chi-square %.2f > %.2f (p < 0.001 for a uniform spread); counts %v",
					set.name, n, x, chiSquareCritical001[n-1], counts)
			}
		}
	}
}

// Adding a shard to n moves exactly the keys that now map to it — every moved
// key moves to the new shard — and about 1/(n+1) of them: within 10 % of that
// share on 100 000 fixed keys (the binomial standard deviation is under 1 %
// of it, so 10 % is far outside chance).
func TestAddingAShardMovesAboutOneInNPlusOneKeysAllToIt(t *testing.T) {
	keys := randomKeys(100_000)
	all := names(17)
	for n := 1; n <= 16; n++ {
		before, after := all[:n], all[:n+1]
		added := all[n]
		moved := 0
		locBefore, locAfter := locator(before), locator(after)
		for _, k := range keys {
			a, b := locBefore(k), locAfter(k)
			if a == b {
				continue
			}
			moved++
			if b != added {
				t.Fatalf("adding shard %q to %v moved key %q from %q to %q, not to the new shard", added, before, k, a, b)
			}
		}
		share, want := float64(moved)/float64(len(keys)), 1/float64(n+1)
		if math.Abs(share-want) > 0.1*want {
			t.Errorf("adding a shard to %d moved %.4f of the keys, want %.4f ± 10%%", n, share, want)
		}
	}
}

// Removing a shard moves only its own keys, and spreads them evenly over the
// others (chi-square at p = 0.001).
func TestRemovingAShardMovesOnlyItsKeysSpreadOverTheRest(t *testing.T) {
	keys := randomKeys(100_000)
	for _, n := range []int{3, 8, 16} {
		all := names(n)
		for _, gone := range []int{0, n / 2, n - 1} {
			rest := slices.Delete(slices.Clone(all), gone, gone+1)
			moved := 0
			counts := map[string]int{}
			for _, s := range rest {
				counts[s] = 0
			}
			locAll, locRest := locator(all), locator(rest)
			for _, k := range keys {
				a, b := locAll(k), locRest(k)
				if a == all[gone] {
					moved++
					counts[b]++
				} else if a != b {
					t.Fatalf("removing shard %q of %d moved key %q from %q to %q", all[gone], n, k, a, b)
				}
			}
			share, want := float64(moved)/float64(len(keys)), 1/float64(n)
			if math.Abs(share-want) > 0.1*want {
				t.Errorf("removing a shard of %d moved %.4f of the keys, want %.4f ± 10%%", n, share, want)
			}
			if x := chiSquare(counts, moved); x > chiSquareCritical001[n-2] {
				t.Errorf("the keys of removed shard %q spread unevenly over the other %d: chi-square %.2f; counts %v",
					all[gone], n-1, x, counts)
			}
		}
	}
}

func TestPickMatchesLocate(t *testing.T) {
	shards := names(8)
	tb := &table[int]{}
	for _, s := range shards {
		tb = tb.with(&member[int]{name: s})
	}
	for _, k := range randomKeys(5000) {
		if got, want := tb.names[pick(tb.seeds, tb.names, hashString(k))], Locate(k, shards); got != want {
			t.Fatalf("key %q: pick %q, Locate %q", k, got, want)
		}
	}
	if pick(nil, nil, 1) != -1 {
		t.Error("pick on no shards != -1")
	}
}

func BenchmarkLocate(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		tb := &table[int]{}
		for _, s := range names(n) {
			tb = tb.with(&member[int]{name: s})
		}
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			sink := 0
			for i := 0; b.Loop(); i++ {
				sink += pick(tb.seeds, tb.names, hashString("user:12345678"))
			}
			_ = sink
		})
	}
}
