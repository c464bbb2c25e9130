#!/usr/bin/env bash
# `make run`: start the infrastructure, migrate, then run every service in the foreground with
# honcho (Procfile). Ctrl-C stops the services, then Postgres and Kafka. Data in .data/ is kept,
# so a second `make run` continues where the first stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
[ -f .env ] && { set -a; . ./.env; set +a; }

cleanup() {
  trap - EXIT INT TERM
  echo "stopping infrastructure..."
  infra/kafka.sh stop || true
  infra/postgres.sh stop || true
}
trap cleanup EXIT INT TERM

infra/postgres.sh start
infra/kafka.sh start
if [ -f alembic.ini ]; then alembic upgrade head; fi

cat <<MSG

  TODO platform starting (Ctrl-C stops everything):
    command API   http://${COMMAND_API_HOST:-127.0.0.1}:${COMMAND_API_PORT:-8001}/docs
    Kafka         ${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} (topic ${KAFKA_TOPIC:-events})
    PostgreSQL    ${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-5432}/${POSTGRES_DB:-todo}

MSG
# Not exec: the trap above must still run to stop the infrastructure after honcho exits.
honcho start -f Procfile
