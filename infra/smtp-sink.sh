#!/usr/bin/env bash
# Development SMTP sink for `make run`: catches every email the mailer sends, delivers none.
#
#   infra/smtp-sink.sh install   install maildev (npm) into .data/node; fast no-op when present
#   infra/smtp-sink.sh run       foreground: SMTP on 127.0.0.1:1025, web inbox http://127.0.0.1:1080
#                                (each email is also kept as an .eml file in .data/mail/)
#   infra/smtp-sink.sh status    exit 0 if the web inbox (or, in fallback mode, SMTP) answers
#
# Preferred: maildev (npm, installed locally, never globally). Without node/npm it falls back to a
# Python aiosmtpd sink (python -m mailer.dev_sink) that writes one .eml file per email into
# .data/mail/ (no web inbox then).
#
# Environment (defaults):
#   SMTP_SINK_HOST=127.0.0.1  SMTP_SINK_PORT=1025  SMTP_SINK_WEB_PORT=1080
#   SMTP_SINK_MAIL_DIR=<repo>/.data/mail   SMTP_SINK_NODE_PREFIX=<repo>/.data/node
#   MAILDEV_VERSION=2.2.1 (maildev 3 needs Node 22+)   PYTHON=<repo>/.venv/bin/python
#   SMTP_SINK_MODE=auto   auto: maildev if npm is there, else .eml files; eml: always .eml files
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${SMTP_SINK_HOST:-127.0.0.1}"
SMTP_PORT_="${SMTP_SINK_PORT:-${SMTP_PORT:-1025}}"  # follows the mailer's SMTP_PORT in dev
WEB_PORT="${SMTP_SINK_WEB_PORT:-1080}"
MAIL_DIR="${SMTP_SINK_MAIL_DIR:-$ROOT/.data/mail}"
NODE_PREFIX="${SMTP_SINK_NODE_PREFIX:-$ROOT/.data/node}"
MAILDEV_VERSION="${MAILDEV_VERSION:-2.2.1}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
MAILDEV="$NODE_PREFIX/node_modules/.bin/maildev"
MODE="${SMTP_SINK_MODE:-auto}"

have_node() { [ "$MODE" != eml ] && command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }

installed_version() {
  local pkg="$NODE_PREFIX/node_modules/maildev/package.json"
  [ -f "$pkg" ] && node -p "require('$pkg').version" 2>/dev/null || true
}

install_maildev() {
  have_node || return 1
  if [ -x "$MAILDEV" ] && [ "$(installed_version)" = "$MAILDEV_VERSION" ]; then
    return 0
  fi
  echo "smtp-sink: installing maildev@$MAILDEV_VERSION into $NODE_PREFIX"
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
    "maildev@$MAILDEV_VERSION" >&2
  [ -x "$MAILDEV" ]
}

run() {
  mkdir -p "$MAIL_DIR"
  if install_maildev; then
    echo "smtp-sink: maildev SMTP on $HOST:$SMTP_PORT_, web inbox http://$HOST:$WEB_PORT/ (.eml copies in $MAIL_DIR)"
    exec "$MAILDEV" --smtp "$SMTP_PORT_" --web "$WEB_PORT" --ip "$HOST" \
      --mail-directory "$MAIL_DIR" --silent
  fi
  echo "smtp-sink: Python sink (no npm, or SMTP_SINK_MODE=eml) writing .eml files into $MAIL_DIR"
  cd "$ROOT"
  exec "$PYTHON" -m mailer.dev_sink --host "$HOST" --port "$SMTP_PORT_" --dir "$MAIL_DIR"
}

status() {
  if [ -x "$MAILDEV" ] && have_node; then
    "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$WEB_PORT/', timeout=2)" \
      2>/dev/null && { echo "smtp-sink: web inbox http://$HOST:$WEB_PORT/"; return 0; }
  fi
  "$PYTHON" -c "import socket; socket.create_connection(('$HOST', $SMTP_PORT_), timeout=2)" 2>/dev/null \
    && { echo "smtp-sink: SMTP answering on $HOST:$SMTP_PORT_"; return 0; }
  echo "smtp-sink: not running"; return 3
}

case "${1:-run}" in
  install) install_maildev || { echo "smtp-sink: npm not found (the run fallback needs none)"; exit 1; } ;;
  run) run ;;
  status) status ;;
  *) echo "usage: $0 install|run|status" >&2; exit 2 ;;
esac
