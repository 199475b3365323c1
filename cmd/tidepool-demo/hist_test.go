package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBucketsAreOrderedAndCoverEveryValue(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 1000, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		i := histBucket(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histBucket(%d) = %d (previous %d, size %d)", v, i, prev, histBuckets)
		}
		prev = i
	}
}

func TestHistQuantilesAreWithinBucketPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h waitHist
	var vals []time.Duration
	for range 100_000 {
		d := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		vals = append(vals, d)
		h.observe(d)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 1.0/16 || diff < -1.0/16 {
			t.Errorf("q%.3f = %v, exact %v: off by %.1f%%, want within 6.25%%", q, got, exact, 100*diff)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("q1 = %v, want the max %v", h.quantile(1), vals[len(vals)-1])
	}
}

func TestHistMergeAddsCounts(t *testing.T) {
	var a, b waitHist
	a.observe(time.Microsecond)
	b.observe(time.Second)
	b.observe(time.Second)
	a.merge(&b)
	if a.n != 3 || a.max != time.Second || a.quantile(0.5) < 900*time.Millisecond {
		t.Errorf("merged n=%d max=%v p50=%v, want 3, 1s, ≈1s", a.n, a.max, a.quantile(0.5))
	}
	var empty waitHist
	if empty.quantile(0.5) != 0 {
		t.Error("quantile of an empty histogram is not 0")
	}
}
