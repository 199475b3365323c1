#!/usr/bin/env bash
# run.sh runs the whole comparison suite and writes, from that one run:
#   bench/results.txt   raw `go test -bench` output of every round
#   bench/RESULTS.md    machine, commands, every goal of issue 8 judged met or
#                       missed, the tables, the README paragraph, benchstat
#   bench/chart.svg     scores per scenario and the S2 scaling plots
#   bench/profiles/     where each S8 pool's CPU time goes (PROFILE=1)
#
# Usage: bench/run.sh [CPU list]        # GOMAXPROCS values for S1–S3; default $CPUS or "1,2"
#        COUNT=5 BENCHTIME=1s PROFILE=1 bench/run.sh 1,2,4,8
#        COUNT=1 BENCHTIME=100ms TESTS=0 bench/run.sh 2    # a quick check of the harness
#
# Environment: COUNT rounds (default 5); BENCHTIME per benchmark (default 1s),
# except S1 and S2, whose ops take nanoseconds and run S12_BENCHTIME (default
# BENCHTIME when that is set, else 500ms: millions of ops a sample), and S7,
# which builds 10,000 connections per op and runs S7_BENCHTIME (default 3x);
# PROFILE=1 profiles S8 in a separate pass (default 1) for PROFILE_BENCHTIME
# (default 1s); TESTS=1 runs the harness's own tests first (default),
# TESTS=race runs them with -race, TESTS=0 skips them.
#
# Each round runs every scenario and every pool once, S1–S3 at each GOMAXPROCS of
# the CPU list and S4–S8 at the machine's, so that a burst of load from another
# process hurts one sample of every pool instead of every sample of one. The
# rounds share one PostgreSQL and one redis-server, started here on 127.0.0.1
# (cmd/benchservers) and stopped at the end; without them S8 skips, saying why.
# With the defaults it takes about 11 minutes on a 2-core machine even with other
# work on it (measured at a load average of 14: a round 117 s, the harness tests
# 50 s, the S8 profiling pass 23 s).
set -euo pipefail
cd "$(dirname "$0")"

CPUS=${1:-${CPUS:-1,2}}
COUNT=${COUNT:-5}
S12_BENCHTIME=${S12_BENCHTIME:-${BENCHTIME:-500ms}}
BENCHTIME=${BENCHTIME:-1s}
PROFILE=${PROFILE:-1}
PROFILE_BENCHTIME=${PROFILE_BENCHTIME:-1s}
S7_BENCHTIME=${S7_BENCHTIME:-3x}
TESTS=${TESTS:-1}

tmp=$(mktemp -d)
servers_pid=""
cleanup() {
  if [ -n "$servers_pid" ]; then
    kill -TERM "$servers_pid" 2>/dev/null || true
    wait "$servers_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
t_start=$(date +%s)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C .. describe --always --dirty 2>/dev/null || echo unknown) # before this run rewrites its outputs
phase() { echo "== $*" >&2; }

phase "building the benchmark binary and the server helper"
go build -o "$tmp/benchservers" ./cmd/benchservers
go test -c -o "$tmp/bench.test" .

phase "starting PostgreSQL and redis-server for S8"
"$tmp/benchservers" -env "$tmp/servers.env" &
servers_pid=$!
for _ in $(seq 900); do
  [ -f "$tmp/servers.env" ] && break
  kill -0 "$servers_pid" 2>/dev/null || break
  sleep 0.1
done
[ -f "$tmp/servers.env" ] || { echo "run.sh: cmd/benchservers did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$tmp/servers.env"

t_tests=0
if [ "$TESTS" != 0 ]; then
  race=()
  [ "$TESTS" = race ] && race=(-race)
  phase "harness tests (go test ${race[*]} ./...), against the same servers"
  t0=$(date +%s)
  go test "${race[@]}" -count=1 ./... >&2
  t_tests=$(( $(date +%s) - t0 ))
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
: > "$tmp/results.txt"
# -test.v: the testing package prints why a benchmark skipped only under -v.
common=(-test.run '^$' -test.v -test.benchmem -test.benchtime "$BENCHTIME" -test.timeout 60m)
t0=$(date +%s)
for round in $(seq "$COUNT"); do
  phase "round $round of $COUNT: S1–S3 at GOMAXPROCS $CPUS"
  "$tmp/bench.test" -test.bench '^BenchmarkS[12]' -test.cpu "$CPUS" "${common[@]}" -test.benchtime "$S12_BENCHTIME" | tee -a "$tmp/results.txt" >&2 || status=1
  "$tmp/bench.test" -test.bench '^BenchmarkS3' -test.cpu "$CPUS" "${common[@]}" | tee -a "$tmp/results.txt" >&2 || status=1
  phase "round $round of $COUNT: S4–S8"
  "$tmp/bench.test" -test.bench '^BenchmarkS[4-68]' "${common[@]}" | tee -a "$tmp/results.txt" >&2 || status=1
  "$tmp/bench.test" -test.bench '^BenchmarkS7' "${common[@]}" -test.benchtime "$S7_BENCHTIME" | tee -a "$tmp/results.txt" >&2 || status=1
done
t_rounds=$(( $(date +%s) - t0 ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$tmp/results.txt" results.txt

t_profile=0
profiles_flag=()
if [ "$PROFILE" = 1 ]; then
  phase "S8 profiling pass (CPU profiles of the timed region, $PROFILE_BENCHTIME each)"
  t0=$(date +%s)
  mkdir -p "$tmp/prof"
  TIDEPOOL_BENCH_PROFILE_DIR="$tmp/prof" "$tmp/bench.test" -test.run '^$' -test.bench '^BenchmarkS8' \
    -test.benchtime "$PROFILE_BENCHTIME" -test.timeout 30m > "$tmp/profile-run.txt" 2>&1 || status=1
  rm -rf profiles
  mkdir -p profiles
  cp "$tmp/profile-run.txt" profiles/run.txt
  for f in "$tmp"/prof/*.pprof; do
    [ -e "$f" ] || continue
    go tool pprof -top -nodecount=30 "$f" > "profiles/$(basename "$f" .pprof).txt" 2>/dev/null || true
  done
  profiles_flag=(-profiles "$tmp/prof")
  t_profile=$(( $(date +%s) - t0 ))
fi

phase "benchstat, goals, chart"
# -confidence 0.9: benchstat needs 6 samples for a 95% interval, 5 for 90%.
stat_by_pool=$(go tool benchstat -confidence 0.9 -col /pool results.txt)
go run ./cmd/chart results.txt > chart.svg
report=$(go run ./cmd/ratios -reasons reasons.md "${profiles_flag[@]}" -rounds "$COUNT" results.txt)
skipped=$(awk '/^--- SKIP: / { sub(/^--- SKIP: /, ""); print $0 ": " msg; next } /^    / { msg = $0; sub(/^ +[^ :]+:[0-9]+: /, "", msg) }' results.txt | sort -u || true)
failed=$(grep -- '--- FAIL' results.txt | sort -u || true)

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
bench_cpu=$(grep -m1 '^cpu:' results.txt | cut -d: -f2- | sed 's/^ *//;s/ *$//' || true)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
versions=$(go list -m -f '{{.Path}} {{.Version}}' github.com/jackc/puddle/v2 github.com/jackc/pgx/v5 github.com/gomodule/redigo | paste -sd ';' | sed 's/;/; /g')
took=$(( $(date +%s) - t_start ))

{
cat <<MD
# tidepool comparison benchmarks: results

Generated by \`bench/run.sh $CPUS\` on $started from tidepool $commit, in ${took}s
(harness tests ${t_tests}s, rounds ${t_rounds}s, S8 profiling ${t_profile}s). Every
number on this page comes from this one run: \`bench/results.txt\` (the rounds) and
\`bench/profiles/\` (the profiling pass). Rerun \`bench/run.sh\` to refresh it; write the
reason for a missed goal in \`bench/reasons.md\` and it appears in the tables below.

MD
if [ "$status" != 0 ]; then
  echo "**Warning: a benchmark failed in this run** (its rows are missing below):"
  echo
  echo '```'
  echo "$failed"
  echo '```'
  echo
fi
cat <<MD
## Machine

- nproc: $(nproc); S1–S3 ran at GOMAXPROCS $CPUS, S4–S8 at $(nproc)
- CPU (/proc/cpuinfo): $cpu (Go reports: $bench_cpu); memory $mem; kernel $(uname -r)
- $(go version)
- load average before / after the rounds: $load_before / $load_after
- servers for S8: PostgreSQL ${TIDEPOOL_BENCH_PG_VERSION:-not run (${TIDEPOOL_BENCH_PG_SKIP:-?})} (initdb in a temporary
  directory, trust auth, 127.0.0.1, $("$tmp/benchservers" -settings)); redis-server
  ${TIDEPOOL_BENCH_REDIS_VERSION:-not run (${TIDEPOOL_BENCH_REDIS_SKIP:-?})} (127.0.0.1, no persistence)
- client libraries and puddle: $versions

Read the ratios, not the absolute times: all pools run in the same process, one after
the other within each round, so they see the same machine, while the absolute times
depend on the machine and on its load at the time (a load average well above nproc
means other work shared the CPUs).

## Commands

\`\`\`
cd bench
go test -c -o bench.test .
# COUNT=$COUNT rounds of:
./bench.test -test.run '^\$' -test.bench '^BenchmarkS[12]' -test.cpu $CPUS -test.benchmem -test.benchtime $S12_BENCHTIME
./bench.test -test.run '^\$' -test.bench '^BenchmarkS3' -test.cpu $CPUS -test.benchmem -test.benchtime $BENCHTIME
./bench.test -test.run '^\$' -test.bench '^BenchmarkS[4-68]' -test.benchmem -test.benchtime $BENCHTIME
./bench.test -test.run '^\$' -test.bench '^BenchmarkS7' -test.benchmem -test.benchtime $S7_BENCHTIME
# then, with the servers of cmd/benchservers in the environment:
TIDEPOOL_BENCH_PROFILE_DIR=dir ./bench.test -test.run '^\$' -test.bench '^BenchmarkS8' -test.benchtime $PROFILE_BENCHTIME
go tool benchstat -confidence 0.9 -col /pool results.txt
go run ./cmd/ratios -reasons reasons.md -profiles dir -rounds $COUNT results.txt
go run ./cmd/chart results.txt > chart.svg
\`\`\`

MD
echo "$report"
cat <<MD

![scores per scenario and S2 scaling](chart.svg)

## What each scenario does

- **S1Single**: one goroutine, pool of 8, acquire + release.
- **S2Parallel**: b.RunParallel with gpp × GOMAXPROCS goroutines (gpp = 1, 4, 16) and
  as many connections: nobody waits.
- **S3Contended**: 64 goroutines on 4 connections; each holds its connection for ~300 ns
  of work on it (a xorshift chain written into the connection, calibrated at start-up:
  real work that cannot be optimised away and touches no shared line). ops/s; fairness
  is Jain's index over the ops each goroutine completed (the goroutines share the budget
  of b.N ops, claimed in small batches); p50/p99/p99.9 of the wait in Get, timed on one
  op in 16 of each goroutine, the clock read inside the hold paid for by as much less work.
- **S4Sockets**: a loopback TCP echo server in the same process; 8 pooled connections,
  32 goroutines, each op writes 64 bytes and reads them back. The goal compares
  tidepool with the best hand-written pool (chan, mutex) on the same 8 connections;
  *dial-per-request* (no pool, SO_LINGER 0) is the floor.
- **S5CancelChurn**: 32 goroutines on 4 connections; the odd ones acquire under
  contexts that expire after 5 µs, the even ones under a 2-minute watchdog; whoever
  gets a connection works ~300 ns on it. Every pool runs exactly this op. ok-ops/s
  counts successful ops; *lost* counts the connections that cannot all be acquired at
  once within 1 s each afterwards (reported, not fatal); *stalled* counts watchdog
  expiries.
- **S6ResizeUnderLoad**: max 4, all held; 32 Gets waiting; Resize(max 36); serve-ns is the
  time from the Resize call until the last of the 32 got its connection, every dial
  sleeping 1 ms. puddle and the hand-written pools cannot grow; database/sql raises
  MaxOpenConns but opens nothing for requests already waiting (served-frac 0).
- **S7IdleMemory**: HeapInuse + StackInuse after GC, before and after making a pool of
  10,000 idle connections, divided by 10,000; tidepool runs with a Check and a
  MaxLifetime, so every connection has its watcher goroutine.
- **S8Postgres / S8Redis**: real clients against the servers above, 32 goroutines on 8
  connections: \`*pgx.Conn\` pooled by tidepool and by pgxpool (a SELECT of one row by
  primary key; a transaction BEGIN, UPDATE, SELECT, COMMIT on the goroutine's own row),
  and redigo connections pooled by tidepool and by redigo's \`redis.Pool\` (GET; SET of
  32 bytes). Each op is timed whole (four clock reads, ~0.1 µs on ops of tens of µs);
  allocs/op include the client's.

MD
if [ -n "$skipped" ]; then
  echo "## Skipped benchmarks"
  echo
  echo '```'
  echo "$skipped"
  echo '```'
  echo
fi
cat <<MD
## benchstat, pools side by side

\`\`\`
$stat_by_pool
\`\`\`
MD
} > RESULTS.md
phase "wrote $(pwd)/RESULTS.md, chart.svg, results.txt and profiles/ in ${took}s"
exit "$status"
