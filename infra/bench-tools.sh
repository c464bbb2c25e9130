#!/usr/bin/env bash
# What the benchmarks (bench/, `make bench`) need beyond the virtualenv and the Go tools
# (infra/go-tools.sh: loadgen, streamgen): `wrk`, the HTTP load generator of bench_commands.py,
# bench_read_side.py (query) and bench_command_replicas.py, from Debian.
#
#   infra/bench-tools.sh install   install what is missing (a no-op otherwise)
set -euo pipefail

install() {
  if command -v wrk >/dev/null 2>&1; then
    echo "bench-tools: wrk already installed"
    return 0
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
  echo "bench-tools: wrk installed ($(command -v wrk))"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
