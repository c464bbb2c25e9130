#!/usr/bin/env bash
# `make run`: start the infrastructure, migrate, then run every service in the foreground with
# honcho (Procfile). Ctrl-C stops the services, then Postgres and Kafka. Data in .data/ is kept,
# so a second `make run` continues where the first stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
# .env fills in settings the environment does not already give (the environment always wins),
# read by the parser the services' settings use, so every process sees the same values.
eval "$(python infra/dotenv_exports.py .env)"

# Stop on exit only what this run started: servers already running (e.g. for `make test`) stay up.
started=()
cleanup() {
  trap - EXIT INT TERM
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do "${started[i]}" stop || true; done
  rm -f "${procfile:-}"
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
# The dev SMTP sink runs only when the mailer sends to this machine (not to Mailjet or another
# real server).
procfile="$(mktemp -t todo-procfile.XXXXXX)"
case "${SMTP_HOST:-127.0.0.1}" in
  127.0.0.1 | localhost | ::1) cp Procfile "$procfile" ;;
  *) grep -v '^smtp_sink:' Procfile >"$procfile"
     echo "  mail goes to ${SMTP_HOST}:${SMTP_PORT:-1025} (no dev SMTP sink)" ;;
esac
# COMMAND_API_WORKERS=N runs N command API processes (each with its own group commit; the store's
# table lock keeps positions contiguous across them) on COMMAND_API_PORT, +100, +200..., and the
# gateway spreads requests over all of them (connection refused → the next one).
workers="${COMMAND_API_WORKERS:-1}"
if [ "$workers" -gt 1 ]; then
  base="${COMMAND_API_PORT:-8001}" upstreams=()
  single="$(grep -v '^command_api:' "$procfile")"
  {
    echo "$single"
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
