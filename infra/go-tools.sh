#!/usr/bin/env bash
# Go tools the project checks itself with, built from the Go module proxy into .data/go/bin
# (git-ignored; no system install):
#   actionlint    lints .github/workflows/*.yml (`make lint`)
#   composecheck  loads docker-compose.yml with compose-go, the loader Docker Compose uses
#                 (tools/composecheck; run by tests/unit/test_compose_go.py)
#   loadgen       the freshness benchmark's open-model load generator, stdlib only
#                 (tools/loadgen; run by bench/bench_freshness.py)
#   streamgen     the stream benchmark's generator: SSE streams + open-model commands, stdlib
#                 only (tools/streamgen; run by bench/bench_stream.py)
# loadgen and streamgen share tools/internal/loadkit (flags, tokens, open model, POST /tasks,
# percentiles), a local module each of them replaces in its go.mod: no module proxy involved.
#
#   infra/go-tools.sh install     build what is missing or out of date (a no-op otherwise)
#
# Needs Go >= 1.24 on PATH (Debian/Ubuntu images and GitHub's runners have one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${GO_TOOLS_BIN:-$ROOT/.data/go/bin}"
ACTIONLINT_VERSION="v1.7.12"

log() { echo "go-tools: $*" >&2; }

install() {
  command -v go >/dev/null 2>&1 || { log "go is not on PATH (install Go >= 1.24)"; exit 1; }
  mkdir -p "$BIN"
  local stamp="$BIN/.actionlint-$ACTIONLINT_VERSION"
  if [ ! -x "$BIN/actionlint" ] || [ ! -e "$stamp" ]; then
    log "installing actionlint $ACTIONLINT_VERSION"
    GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    rm -f "$BIN"/.actionlint-* && touch "$stamp"
  fi
  build composecheck "compose-go"
  build loadgen "freshness load generator" internal/loadkit
  build streamgen "stream load generator" internal/loadkit
}

# Rebuilt whenever its source or module files, or those of the local modules it uses (further
# arguments, folders under tools/), are newer than the binary.
build() {
  local name="$1" what="$2" src="$ROOT/tools/$1"
  local dirs=("$src") dep
  for dep in "${@:3}"; do dirs+=("$ROOT/tools/$dep"); done
  if [ ! -x "$BIN/$name" ] || [ -n "$(find "${dirs[@]}" -newer "$BIN/$name" -type f | head -1)" ]; then
    log "building $name ($what)"
    (cd "$src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -o "$BIN/$name" .)
  fi
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
