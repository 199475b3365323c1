// Command ratios reads the bench module's `go test -bench` output and writes,
// as Markdown on stdout, the sections of RESULTS.md that come from the numbers:
// each goal of issue 8 judged met or missed at every point swept (with the
// reason for a miss from reasons.md), the scaling table, the per-scenario
// tables, S8 with its CPU profile summaries, and the paragraph the README
// quotes. With -readme it writes only that paragraph.
//
// Usage: go run ./cmd/ratios [-reasons reasons.md] [-profiles dir] [-rounds n] [-readme] results.txt
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tidepool-go/tidepool/bench"
	"github.com/tidepool-go/tidepool/bench/internal/results"
)

func main() {
	reasons := flag.String("reasons", "reasons.md", "the file of reasons for missed goals (\"- <goal>: <reason>\" lines); a missing file means none")
	profiles := flag.String("profiles", "", "directory of S8 CPU profiles (*.pprof) to summarize")
	rounds := flag.Int("rounds", 0, "how many rounds run.sh ran, for the README lines")
	readme := flag.Bool("readme", false, "write only the README paragraph")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ratios [flags] results.txt")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *reasons, *profiles, *rounds, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
}

// run writes the report of the results file to w.
func run(w io.Writer, resultsPath, reasonsPath, profileDir string, rounds int, readme bool) error {
	s, err := results.ParseFile(resultsPath)
	if err != nil {
		return err
	}
	rs, err := results.ReadReasons(reasonsPath)
	if err != nil {
		return err
	}
	r := results.NewReport(s, rs)
	r.Rounds = rounds
	r.S8Configs = bench.S8Configs()
	if profileDir != "" {
		if r.Profiles, err = results.ReadProfiles(profileDir); err != nil {
			return err
		}
	}
	if readme {
		r.WriteReadme(w)
		return nil
	}
	r.WriteAll(w)
	return nil
}
