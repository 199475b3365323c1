package fleet

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestShareSplitsBudgetMaxMinFairOverDemand(t *testing.T) {
	for _, tc := range []struct {
		name           string
		budget, floor  int
		demands, wants []int
	}{
		{"no members", 10, 1, nil, []int{}},
		{"one member takes the budget", 10, 1, []int{3}, []int{10}},
		{"demand met, spare split to equal level", 20, 1, []int{12, 2}, []int{12, 8}},
		{"busy member capped at the level", 12, 1, []int{2, 2, 8}, []int{2, 2, 8}},
		{"water level with odd unit to the first above it", 10, 0, []int{9, 9, 1}, []int{5, 4, 1}},
		{"floor for idle members", 10, 2, []int{0, 0, 20}, []int{2, 2, 6}},
		{"floors in join order when the budget is short", 5, 2, []int{9, 9, 9}, []int{2, 2, 1}},
		{"zero budget", 0, 1, []int{3, 3}, []int{0, 0}},
		{"spare raises the lowest first", 30, 1, []int{10, 1, 1}, []int{10, 10, 10}},
		{"spare remainder in join order", 31, 0, []int{0, 0, 0}, []int{11, 10, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Share(tc.budget, tc.floor, tc.demands)
			if !slices.Equal(got, tc.wants) {
				t.Fatalf("Share(%d, %d, %v) = %v, want %v", tc.budget, tc.floor, tc.demands, got, tc.wants)
			}
		})
	}
}

// TestShareProperties checks, on random inputs, what makes Share max-min fair:
// the budget is split exactly, floors come first, a member whose demand is not
// met is not below any other member's grant by more than the odd unit (unless
// that member got only its floor or is above its own demand), and demands are
// met before any spare is handed out.
func TestShareProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		n := r.IntN(8)
		budget, floor := r.IntN(60), r.IntN(4)
		d := make([]int, n)
		total := 0
		for j := range d {
			d[j] = r.IntN(25)
			total += d[j]
		}
		g := Share(budget, floor, d)
		sum := 0
		for _, v := range g {
			sum += v
		}
		if n > 0 && sum != budget {
			t.Fatalf("#%d Share(%d,%d,%v)=%v sums to %d", i, budget, floor, d, g, sum)
		}
		for j := range g {
			if want := min(floor, max(0, budget-j*floor)); g[j] < want {
				t.Fatalf("#%d Share(%d,%d,%v)=%v: member %d below its floor %d", i, budget, floor, d, g, j, want)
			}
		}
		if budget < n*floor {
			continue // floors in join order, nothing else to hand out
		}
		for j := range g {
			if g[j] >= d[j] {
				continue
			}
			for k := range g {
				if g[k] > g[j]+1 {
					t.Fatalf("#%d Share(%d,%d,%v)=%v: member %d unmet at %d while %d has %d: not max-min fair", i, budget, floor, d, g, j, g[j], k, g[k])
				}
				if g[k] > max(d[k], floor) {
					t.Fatalf("#%d Share(%d,%d,%v)=%v: member %d has spare %d while %d is unmet", i, budget, floor, d, g, k, g[k], j)
				}
			}
		}
		if budget >= total+n*floor && n > 0 { // all met: the spare evens out the grants
			lo, hi := g[0], g[0]
			for _, v := range g {
				lo, hi = min(lo, v), max(hi, v)
			}
			for j := range g {
				if g[j] > d[j]+floor && g[j] > lo+1 {
					t.Fatalf("#%d Share(%d,%d,%v)=%v: member %d got spare above the common level %d", i, budget, floor, d, g, j, lo)
				}
			}
		}
	}
}

func TestShareIsDeterministic(t *testing.T) {
	d := []int{7, 3, 0, 12, 5}
	a := Share(25, 1, d)
	for range 100 {
		if b := Share(25, 1, d); !slices.Equal(a, b) {
			t.Fatalf("Share changed its answer: %v then %v", a, b)
		}
	}
}

func TestShareRejectsNegativeInputWithAPanicThatSaysSo(t *testing.T) {
	for _, f := range []func(){
		func() { Share(-1, 0, []int{1}) },
		func() { Share(1, -1, []int{1}) },
		func() { Share(1, 0, []int{-1}) },
	} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); len(s) < len("fleet.Share") || s[:11] != "fleet.Share" {
					t.Fatalf("panic %v, want a fleet.Share message", r)
				}
			}()
			f()
		}()
	}
}
