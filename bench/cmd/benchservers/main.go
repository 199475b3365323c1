// Command benchservers starts the servers S8 measures against, once for a
// whole bench/run.sh: PostgreSQL (internal/pgtest) and redis-server
// (internal/redistest), both on 127.0.0.1 on ports the kernel picked, in
// temporary directories. It writes shell export lines to the -env file — the
// servers' addresses (TIDEPOOL_BENCH_PG_DSN, TIDEPOOL_BENCH_REDIS_ADDR) and
// versions, or, for a server that could not start, TIDEPOOL_BENCH_PG_SKIP /
// TIDEPOOL_BENCH_REDIS_SKIP with the reason, which makes S8 skip with that
// message — and then waits. On SIGINT or SIGTERM, or when its parent process
// exits, it stops the servers, removes their directories and exits.
//
// Usage: benchservers -env servers.env &
//
//	benchservers -settings   # print the PostgreSQL settings, for RESULTS.md
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tidepool-go/tidepool/bench/internal/pgtest"
	"github.com/tidepool-go/tidepool/bench/internal/redistest"
)

func main() {
	envPath := flag.String("env", "", "file to write the export lines to (required)")
	settings := flag.Bool("settings", false, "print the PostgreSQL settings it starts the server with, and exit")
	flag.Parse()
	if *settings {
		fmt.Println(pgtest.QuoteSettings())
		return
	}
	if *envPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("benchservers: ")
	parent := os.Getppid()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	lines, stop := start(context.Background())
	if err := writeEnv(*envPath, lines); err != nil {
		stop()
		log.Fatal(err)
	}

	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-sigs:
			log.Printf("%v: stopping the servers", s)
			stop()
			return
		case <-tick.C:
			if os.Getppid() != parent {
				log.Print("parent exited: stopping the servers")
				stop()
				return
			}
		}
	}
}

// start starts both servers and returns the export lines for them (or the
// skip reason of one that did not start) and the function that stops them.
func start(ctx context.Context) (lines []string, stop func()) {
	var stops []func()
	if pg, err := pgtest.Start(ctx); err != nil {
		log.Printf("PostgreSQL not started, S8Postgres will skip: %v", err)
		lines = append(lines, export(pgtest.EnvSkip, firstLine(err.Error())))
	} else {
		stops = append(stops, pg.Stop)
		log.Printf("PostgreSQL %s on %s", pg.Version(), pg.DSN())
		lines = append(lines, export(pgtest.EnvDSN, pg.DSN()), export("TIDEPOOL_BENCH_PG_VERSION", pg.Version()))
	}
	if rd, err := redistest.Start(ctx); err != nil {
		log.Printf("redis-server not started, S8Redis will skip: %v", err)
		lines = append(lines, export(redistest.EnvSkip, firstLine(err.Error())))
	} else {
		stops = append(stops, rd.Stop)
		log.Printf("redis-server %s on %s", rd.Version(), rd.Addr())
		lines = append(lines, export(redistest.EnvAddr, rd.Addr()), export("TIDEPOOL_BENCH_REDIS_VERSION", rd.Version()))
	}
	return lines, func() {
		for _, f := range stops {
			f()
		}
	}
}

// writeEnv writes the lines to path whole, under another name first and then
// renamed, so that a reader polling for the file never sees half of it.
func writeEnv(path string, lines []string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// export renders a shell export line with the value single-quoted.
func export(name, value string) string {
	return fmt.Sprintf("export %s='%s'", name, strings.ReplaceAll(value, "'", `'\''`))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
