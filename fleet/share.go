package fleet

import "fmt"

// Share splits budget among members: the max-min fair allocation of their
// demands with a per-member floor. demands is in priority order (the fleet
// uses join order): it decides who gets a floor when the budget cannot give
// everyone one, and who gets the odd unit when a level does not divide evenly.
// The result has one grant per member and sums to budget whenever there is at
// least one member:
//
//  1. floors: each member in order gets min(floor, what is left);
//  2. demand: what is left is water-filled over the demand above the floors:
//     the largest level L with Σ min(excess_i, L) ≤ left, then one more unit
//     to members whose excess is above L, in order, while units remain;
//  3. spare: what is still left (every demand is met) is water-filled over
//     the grants themselves, so that idle members get headroom up to an
//     equal level, the lowest first.
//
// Share is a pure function: every member computes it from the same published
// demands and gets the same answer. It panics if budget or floor is negative
// or a demand is; it costs O(n log budget).
func Share(budget, floor int, demands []int) []int {
	if budget < 0 || floor < 0 {
		panic(fmt.Sprintf("fleet.Share: budget (%d) and floor (%d) must not be negative", budget, floor))
	}
	n := len(demands)
	g := make([]int, n)
	if n == 0 {
		return g
	}
	left := budget
	for i, d := range demands {
		if d < 0 {
			panic(fmt.Sprintf("fleet.Share: demand %d of member %d is negative", d, i))
		}
		g[i] = min(floor, left)
		left -= g[i]
	}
	excess := make([]int, n)
	for i, d := range demands {
		excess[i] = max(0, d-g[i])
	}
	left = fill(g, excess, left)
	if left == 0 {
		return g
	}
	// Spare capacity: raise the lowest grants to a common level.
	hi := 0
	for _, v := range g {
		hi = max(hi, v)
	}
	room := make([]int, n)
	// Water-fill on the grants: the amount given to i at level M is
	// max(0, M - g_i); find it with fill over "demand" M - g_i by searching M.
	lo, up := 0, hi+left
	for lo < up { // largest M with Σ max(0, M-g_i) ≤ left
		m := (lo + up + 1) / 2
		need := 0
		for _, v := range g {
			need += max(0, m-v)
		}
		if need <= left {
			lo = m
		} else {
			up = m - 1
		}
	}
	for i, v := range g {
		room[i] = max(0, lo-v)
		left -= room[i]
	}
	for i := range g {
		g[i] += room[i]
	}
	// The rest (fewer than the members at the level) goes one each, in order.
	for i := 0; left > 0 && i < n; i++ {
		if g[i] == lo {
			g[i]++
			left--
		}
	}
	return g
}

// fill water-fills left over want (in order for the odd units), adds the
// result to g and returns what is left (non-zero only when every want is met).
func fill(g, want []int, left int) int {
	total := 0
	hi := 0
	for _, w := range want {
		total += w
		hi = max(hi, w)
	}
	if total <= left {
		for i, w := range want {
			g[i] += w
		}
		return left - total
	}
	lo, up := 0, hi
	for lo < up { // largest L with Σ min(w_i, L) ≤ left
		m := (lo + up + 1) / 2
		s := 0
		for _, w := range want {
			s += min(w, m)
		}
		if s <= left {
			lo = m
		} else {
			up = m - 1
		}
	}
	for i, w := range want {
		give := min(w, lo)
		g[i] += give
		left -= give
	}
	for i, w := range want {
		if left == 0 {
			break
		}
		if w > lo {
			g[i]++
			left--
		}
	}
	return left
}
