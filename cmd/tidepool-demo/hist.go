package main

import (
	"math/bits"
	"time"
)

// waitHist counts durations in log-linear buckets: exact below 32ns, then 16
// buckets per power of two, so any reported percentile is within 1/16 (6.25%)
// of the true value. One worker writes its own; they are merged after the
// workers have exited. Fixed size: recording allocates nothing.
type waitHist struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

func histBucket(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e is in [histSub, 2·histSub)
	return (e+1)*histSub + int(v>>e) - histSub
}

// histMid returns the middle of bucket i's range.
func histMid(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	lo := uint64(i%histSub+histSub) << e
	return lo + (uint64(1)<<e)/2
}

func (h *waitHist) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *waitHist) merge(o *waitHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q ≤ 1): the smallest recorded value
// (to bucket precision) with at least q·n values at or below it; 0 if empty.
func (h *waitHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histMid(i)), h.max)
		}
	}
	return h.max
}
