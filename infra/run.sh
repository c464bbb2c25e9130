#!/usr/bin/env bash
# `make run`: start the infrastructure, migrate, then run every service in the foreground with
# honcho (Procfile). Ctrl-C stops the services, then Postgres and Kafka. Data in .data/ is kept,
# so a second `make run` continues where the first stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
# .env fills in settings the environment does not already give (the environment always wins).
if [ -f .env ]; then
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
    value="${value%\"}"; value="${value#\"}"
    [ -n "${!key+x}" ] || export "$key=$value"
  done < .env
fi

# KAFKA_BROKERS=3: a 3-node cluster (infra/kafka/cluster.sh) instead of the single broker; every
# service then lists all three nodes, so none depends on one node being up when it starts.
if [ "${KAFKA_BROKERS:-1}" != 1 ]; then
  KAFKA_BOOTSTRAP_SERVERS="$(infra/kafka.sh bootstrap)"
  export KAFKA_BROKERS KAFKA_BOOTSTRAP_SERVERS
fi

# Stop on exit only what this run started: servers already running (e.g. for `make test`) stay up.
started=()
cleanup() {
  trap - EXIT INT TERM
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do "${started[i]}" stop || true; done
}
trap cleanup EXIT INT TERM
for part in infra/postgres.sh infra/kafka.sh; do
  "$part" status >/dev/null 2>&1 || started+=("$part")
  "$part" start
done
alembic upgrade head
# Installed once per machine (Debian's nginx, maildev from npm); instant afterwards.
infra/nginx.sh install >/dev/null
infra/smtp-sink.sh install >/dev/null

cat <<MSG

  TODO platform starting (Ctrl-C stops everything):
    SPA           http://127.0.0.1:${GATEWAY_PORT:-8080}/
    command API   http://${COMMAND_API_HOST:-127.0.0.1}:${COMMAND_API_PORT:-8001}/docs
    query API     http://${QUERY_API_HOST:-127.0.0.1}:${QUERY_API_PORT:-8002}/docs
    dev inbox     http://${SMTP_SINK_HOST:-127.0.0.1}:${SMTP_SINK_WEB_PORT:-1080}/  (emails also in .data/mail/)
    Kafka         ${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} (topic ${KAFKA_TOPIC:-events})
    PostgreSQL    ${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-5432}/${POSTGRES_DB:-todo}

MSG
# COMMAND_API_WORKERS=N runs N command API processes (each with its own group commit; the store's
# table lock keeps positions contiguous across them) on COMMAND_API_PORT, +100, +200..., and the
# gateway spreads requests over all of them (connection refused → the next one).
procfile=Procfile
workers="${COMMAND_API_WORKERS:-1}"
if [ "$workers" -gt 1 ]; then
  procfile=.data/Procfile
  base="${COMMAND_API_PORT:-8001}" upstreams=()
  {
    grep -v '^command_api:' Procfile
    for ((i = 0; i < workers; i++)); do
      echo "command_api_$((i + 1)): env COMMAND_API_PORT=$((base + 100 * i)) python -m command_api"
      upstreams+=("127.0.0.1:$((base + 100 * i))")
    done
  } >"$procfile"
  if [ -z "${COMMAND_API_UPSTREAM:-}" ]; then
    COMMAND_API_UPSTREAM="$(IFS=,; echo "${upstreams[*]}")"
    export COMMAND_API_UPSTREAM
  fi
  echo "  $workers command API processes: ${COMMAND_API_UPSTREAM}"
fi
# Not exec: the trap above must still run to stop the infrastructure after honcho exits.
honcho start -f "$procfile" -d "$ROOT"
