#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then runs
# every test of the library with the race detector.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (Debian package) for the Redis integration tests" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
go test -race "$@" ./...
