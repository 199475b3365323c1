#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine (Debian's
# redis-server, postgresql and etcd-server, when missing), then runs every test of
# every module with the race detector: the library, fleet/, examples/ and bench/'s
# harness checks (bench/run.sh runs the benchmarks themselves).
#
# Usage: ./test.sh [go test flags...]     e.g. ./test.sh -short, ./test.sh -count=1
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]} (Debian packages) for the integration tests" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  # The packages may start system instances; the tests start and stop their own.
  if command -v service >/dev/null 2>&1; then
    for s in redis-server postgresql etcd; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
  fi
fi

echo "+ go test -race $* ./..." >&2
go test -race "$@" ./...
for m in fleet examples bench; do
  [ -f "$m/go.mod" ] || continue
  echo "+ (cd $m && go test -race $* ./...)" >&2
  (cd "$m" && go test -race "$@" ./...)
done
