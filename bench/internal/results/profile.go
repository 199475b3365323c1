package results

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// PoolCode lists, per pool, the prefixes of the function names that are the
// pool's own code, for the profile summaries: what runs in the pool's
// background goroutines is attributed to the pool through them.
var PoolCode = map[string][]string{
	"tidepool": {
		"github.com/tidepool-go/tidepool.",
		"github.com/tidepool-go/tidepool/conn.",
		"github.com/tidepool-go/tidepool/queue.",
		"github.com/tidepool-go/tidepool/registry.",
		"github.com/tidepool-go/tidepool/health.",
		"github.com/tidepool-go/tidepool/reconciler.",
	},
	"pgxpool": {"github.com/jackc/pgx/v5/pgxpool.", "github.com/jackc/puddle/v2."},
	"redigo": {
		"github.com/gomodule/redigo/redis.(*Pool).",
		"github.com/gomodule/redigo/redis.(*activeConn).Close",
		"github.com/gomodule/redigo/redis.(*idleList).",
	},
}

// adapterCall matches the bench adapters' Get and Put: whatever runs under
// them is the pool's part of an op (waiting, hand-off, and what the pool does
// to a connection on its way in and out, such as redigo's flush on Close).
var adapterCall = regexp.MustCompile(`^github\.com/tidepool-go/tidepool/bench\.\(\*(?:Tidepool|Pgxpool|Redigo)(?:\[.*\])?\)\.(Get|Put)$`)

// ProfileSummary is where one S8 benchmark's CPU time went.
type ProfileSummary struct {
	Key  Key
	Pool string
	// Total is the CPU time the profile sampled (the timed region only: see
	// bench.EnvProfileDir).
	Total time.Duration
	// Shares of Total: under the adapter's Get and Put, in the pool's code
	// elsewhere (its background goroutines), and their sum.
	Get, Put, Background, InPool float64
	// Top are the functions the pool's time was spent in (leaf functions of
	// the samples counted in InPool), with their share of that time, largest
	// first, at most TopN.
	Top []FuncShare
}

// FuncShare is a function's share of a pool's CPU time.
type FuncShare struct {
	Func  string
	Share float64
}

// TopN is how many functions a ProfileSummary lists.
const TopN = 6

// SummarizeProfile reads a CPU profile written by the benchmark named by its
// file name (bench.EnvProfileDir's naming) and attributes its samples.
func SummarizeProfile(path string) (ProfileSummary, error) {
	name := strings.ReplaceAll(strings.TrimSuffix(filepath.Base(path), ".pprof"), "_", "/")
	k, pool, ok := ParseName(name)
	if !ok {
		return ProfileSummary{}, fmt.Errorf("results: profile %s: not named Benchmark…_pool=<pool>.pprof", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return ProfileSummary{}, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return ProfileSummary{}, fmt.Errorf("results: profile %s: %w", path, err)
	}
	sum := Summarize(p, pool)
	sum.Key = k
	return sum, nil
}

// Summarize attributes the samples of a CPU profile to pool's code or not.
func Summarize(p *profile.Profile, pool string) ProfileSummary {
	vi := len(p.SampleType) - 1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	prefixes := PoolCode[pool]
	var total, get, put, bg int64
	leaves := map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		call, inCode, leaf := "", false, ""
		for _, loc := range s.Location {
			for _, ln := range loc.Line { // innermost (inlined) first
				if ln.Function == nil {
					continue
				}
				fn := ln.Function.Name
				if leaf == "" {
					leaf = fn
				}
				if m := adapterCall.FindStringSubmatch(fn); m != nil {
					call = m[1]
				}
				for _, pre := range prefixes {
					if strings.HasPrefix(fn, pre) {
						inCode = true
					}
				}
			}
		}
		switch {
		case call == "Get":
			get += v
		case call == "Put":
			put += v
		case inCode:
			bg += v
		default:
			continue
		}
		leaves[ShortFunc(leaf)] += v
	}
	sum := ProfileSummary{Pool: pool, Total: time.Duration(total)}
	if p.SampleType[vi].Unit != "nanoseconds" {
		sum.Total = 0
	}
	if total == 0 {
		return sum
	}
	in := get + put + bg
	sum.Get, sum.Put, sum.Background = float64(get)/float64(total), float64(put)/float64(total), float64(bg)/float64(total)
	sum.InPool = float64(in) / float64(total)
	for fn, v := range leaves {
		sum.Top = append(sum.Top, FuncShare{Func: fn, Share: float64(v) / float64(in)})
	}
	slices.SortFunc(sum.Top, func(a, b FuncShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Func, b.Func)
	})
	sum.Top = sum.Top[:min(len(sum.Top), TopN)]
	return sum
}

var shapeArgs = regexp.MustCompile(`\[[^\[\]]*\]`)

// ShortFunc shortens a function name for a table: generic type arguments
// become […] and the import path is cut to its last element.
func ShortFunc(fn string) string {
	for {
		s := shapeArgs.ReplaceAllString(fn, "…")
		if s == fn {
			break
		}
		fn = s
	}
	fn = strings.ReplaceAll(fn, "…", "[…]")
	head, tail := fn, ""
	if i := strings.IndexAny(fn, "("); i >= 0 {
		head, tail = fn[:i], fn[i:]
	}
	if i := strings.LastIndexByte(head, '/'); i >= 0 {
		head = head[i+1:]
	}
	return head + tail
}

// ReadProfiles summarizes every *.pprof file in dir, in name order.
func ReadProfiles(dir string) ([]ProfileSummary, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pprof"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []ProfileSummary
	for _, path := range paths {
		s, err := SummarizeProfile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
