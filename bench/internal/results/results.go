package results

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Key identifies one row of results: a scenario, its parameters, and the
// GOMAXPROCS it ran under. Every pool's result for a Key is comparable.
type Key struct {
	// Scenario is the benchmark's name without "Benchmark", e.g. "S2Parallel".
	Scenario string
	// Variant holds the sub-benchmark parameters other than pool=, joined by
	// "/" in the order they appear, e.g. "gpp=4" or "op=select"; "" if none.
	Variant string
	// Procs is GOMAXPROCS: the -N suffix of the name, 1 when there is none
	// (the testing package omits "-1").
	Procs int
}

// String renders k as the benchmark name does, without the pool.
func (k Key) String() string {
	s := k.Scenario
	if k.Variant != "" {
		s += "/" + k.Variant
	}
	return fmt.Sprintf("%s-%d", s, k.Procs)
}

// Param returns the value of parameter name in k's Variant.
func (k Key) Param(name string) (string, bool) {
	for _, kv := range strings.Split(k.Variant, "/") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Goroutines returns how many goroutines k's scenario runs: S1 one, S2
// gpp·GOMAXPROCS, the others their fixed count (0 when unknown).
func (k Key) Goroutines() int {
	switch k.Scenario {
	case S1:
		return 1
	case S2:
		v, _ := k.Param("gpp")
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0
		}
		return n * k.Procs
	}
	return FixedGoroutines[k.Scenario]
}

// FixedGoroutines is the goroutine count of the scenarios that fix it.
var FixedGoroutines = map[string]int{S3: 64, S4: 32, S5: 32, S6: 32, S8Postgres: 32, S8Redis: 32}

// Where describes k for a reader: the GOMAXPROCS, and the goroutines or the
// op where they vary within a scenario.
func (k Key) Where() string {
	switch k.Scenario {
	case S2:
		if k.Goroutines() == 1 {
			return fmt.Sprintf("cpu=%d, 1 goroutine", k.Procs)
		}
		return fmt.Sprintf("cpu=%d, %d goroutines", k.Procs, k.Goroutines())
	case S8Postgres, S8Redis:
		return fmt.Sprintf("%s, cpu=%d", k.Variant, k.Procs)
	}
	if k.Variant != "" {
		return fmt.Sprintf("%s, cpu=%d", k.Variant, k.Procs)
	}
	return fmt.Sprintf("cpu=%d", k.Procs)
}

// Set holds every sample of a benchmark run: key → pool → unit → samples (one
// per run of the benchmark), with the order in which keys and pools appeared.
type Set struct {
	samples map[Key]map[string]map[string][]float64
	keys    []Key
	pools   map[Key][]string
}

// ParseFile parses the benchmark output in the named file.
func ParseFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// ParseName splits a benchmark result's name,
// Benchmark<Scenario>[/<param>=<value>…]/pool=<name>[-<procs>], into its key
// and pool. ok is false for names without a pool= part.
func ParseName(name string) (k Key, pool string, ok bool) {
	rest, found := strings.CutPrefix(name, "Benchmark")
	if !found {
		return Key{}, "", false
	}
	k.Procs = 1
	if i := strings.LastIndexByte(rest, '-'); i > 0 {
		if n, err := strconv.Atoi(rest[i+1:]); err == nil && n > 0 {
			k.Procs, rest = n, rest[:i]
		}
	}
	parts := strings.Split(rest, "/")
	k.Scenario = parts[0]
	var variant []string
	for _, p := range parts[1:] {
		if v, isPool := strings.CutPrefix(p, "pool="); isPool {
			pool = v
			continue
		}
		variant = append(variant, p)
	}
	k.Variant = strings.Join(variant, "/")
	return k, pool, pool != ""
}

// Parse reads `go test -bench` output, possibly the concatenation of several
// runs. Lines that are not benchmark results are skipped, and so are results
// whose name has no pool= part.
func Parse(r io.Reader) (*Set, error) {
	s := &Set{samples: map[Key]map[string]map[string][]float64{}, pools: map[Key][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line (e.g. "--- BENCH:")
		}
		k, pool, ok := ParseName(f[0])
		if !ok {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("results: %q: bad value %q", f[0], f[i])
			}
			s.add(k, pool, f[i+1], v)
		}
	}
	return s, sc.Err()
}

func (s *Set) add(k Key, pool, unit string, v float64) {
	byPool, ok := s.samples[k]
	if !ok {
		byPool = map[string]map[string][]float64{}
		s.samples[k] = byPool
		s.keys = append(s.keys, k)
	}
	byUnit, ok := byPool[pool]
	if !ok {
		byUnit = map[string][]float64{}
		byPool[pool] = byUnit
		s.pools[k] = append(s.pools[k], pool)
	}
	byUnit[unit] = append(byUnit[unit], v)
}

// Keys returns every key in the order it first appeared.
func (s *Set) Keys() []Key { return s.keys }

// KeysOf returns the keys of a scenario, ordered by GOMAXPROCS, then by
// goroutines, then by variant.
func (s *Set) KeysOf(scenario string) []Key {
	var ks []Key
	for _, k := range s.keys {
		if k.Scenario == scenario {
			ks = append(ks, k)
		}
	}
	slices.SortStableFunc(ks, func(a, b Key) int {
		if a.Procs != b.Procs {
			return a.Procs - b.Procs
		}
		if ga, gb := a.Goroutines(), b.Goroutines(); ga != gb {
			return ga - gb
		}
		return strings.Compare(a.Variant, b.Variant)
	})
	return ks
}

// Scenarios returns the scenarios in the order they first appeared.
func (s *Set) Scenarios() []string {
	var out []string
	for _, k := range s.keys {
		if !slices.Contains(out, k.Scenario) {
			out = append(out, k.Scenario)
		}
	}
	return out
}

// Procs returns the GOMAXPROCS values that appear, ascending.
func (s *Set) Procs() []int {
	var out []int
	for _, k := range s.keys {
		if !slices.Contains(out, k.Procs) {
			out = append(out, k.Procs)
		}
	}
	slices.Sort(out)
	return out
}

// Pools returns the pools of a key in the order they ran.
func (s *Set) Pools(k Key) []string { return s.pools[k] }

// Median returns the median of a metric's samples, and false if there are none.
func (s *Set) Median(k Key, pool, unit string) (float64, bool) {
	xs := slices.Clone(s.samples[k][pool][unit])
	if len(xs) == 0 {
		return math.NaN(), false
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2], true
	}
	return (xs[n/2-1] + xs[n/2]) / 2, true
}

// Samples returns how many samples a metric has.
func (s *Set) Samples(k Key, pool, unit string) int { return len(s.samples[k][pool][unit]) }

// Scenario names as the benchmarks spell them.
const (
	S1         = "S1Single"
	S2         = "S2Parallel"
	S3         = "S3Contended"
	S3Parked   = "S3Parked"
	S4         = "S4Sockets"
	S5         = "S5CancelChurn"
	S6         = "S6ResizeUnderLoad"
	S7         = "S7IdleMemory"
	S8Postgres = "S8Postgres"
	S8Redis    = "S8Redis"
)

// ClientPool is the client's own pool each S8 scenario compares tidepool with.
var ClientPool = map[string]string{S8Postgres: "pgxpool", S8Redis: "redigo"}
