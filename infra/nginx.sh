#!/usr/bin/env bash
# The gateway (nginx) for development, tests and CI, without Docker: one origin serving the SPA
# (frontend/) and proxying /api to the command and query APIs. Config templates live in gateway/;
# rendered files, pid, logs and temp dirs live in .data/nginx (git-ignored), so nginx never writes
# to /var and the Debian service is never used.
#
#   infra/nginx.sh install|render|test|run|start|stop|status|restart
#
#   install  install Debian's nginx if missing (and make sure its packaged service is not running)
#   render   render gateway/*.template into .data/nginx (only our ${VARS}; nginx's $vars untouched)
#   test     render, then `nginx -t` on the rendered config
#   run      render, then run nginx in the foreground (exec; for supervisors / Procfiles)
#   start    render, then start nginx in the background and wait until /gateway-health answers
#   stop     stop the background nginx started by `start`
#
# Settings (env): GATEWAY_PORT (8080), COMMAND_API_UPSTREAM (127.0.0.1:8001),
# QUERY_API_UPSTREAM (127.0.0.1:8002) (each may list several processes: "host:port,host:port"), FRONTEND_ROOT (<repo>/frontend), NGINX_DATA (<repo>/.data/nginx),
# NGINX_WORKER_USER (worker account when run as root), NGINX (nginx binary, found on PATH or
# /usr/sbin), PYTHON (<repo>/.venv/bin/python; python3 fallback).
#
# Docker compose does not use this script: it mounts gateway/default.conf.template into the official
# nginx image's /etc/nginx/templates/ (see the header of that file for the environment to set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3 || true)"

export GATEWAY_PORT="${GATEWAY_PORT:-8080}"
export COMMAND_API_UPSTREAM="${COMMAND_API_UPSTREAM:-127.0.0.1:8001}"
export QUERY_API_UPSTREAM="${QUERY_API_UPSTREAM:-127.0.0.1:8002}"
export FRONTEND_ROOT="${FRONTEND_ROOT:-$ROOT/frontend}"
export NGINX_DATA="${NGINX_DATA:-$ROOT/.data/nginx}"
# Worker account when started as root (default: www-data, else nginx, else nobody).
NGINX_WORKER_USER="${NGINX_WORKER_USER:-}"

TEMPLATES="$ROOT/gateway"
CONF="$NGINX_DATA/nginx.conf"
PIDFILE="$NGINX_DATA/nginx.pid"
HEALTH_URL="http://127.0.0.1:$GATEWAY_PORT/gateway-health"

nginx_bin() {
  if [ -n "${NGINX:-}" ]; then echo "$NGINX"; return; fi
  command -v nginx 2>/dev/null && return
  [ -x /usr/sbin/nginx ] && { echo /usr/sbin/nginx; return; }
  echo "nginx: binary not found (run: infra/nginx.sh install)" >&2
  exit 1
}

install() {
  if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($("$(nginx_bin)" -v 2>&1))"
    return 0
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # Do not let the package start its own service on port 80 (policy-rc.d 101 = "action forbidden").
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && created_policy=1
  fi
  $sudo apt-get update -qq
  # nginx-light is the small flavour on Debian 12; fall back to the plain package elsewhere.
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx
  fi
  [ "$created_policy" = 1 ] && $sudo rm -f "$policy"
  # Belt and braces: if the packaged service started anyway, stop it (ignore errors: no init here).
  $sudo service nginx stop >/dev/null 2>&1 || true
  if [ -f /run/nginx.pid ]; then
    $sudo kill "$(cat /run/nginx.pid)" >/dev/null 2>&1 || true
  fi
  echo "nginx: installed ($("$(nginx_bin)" -v 2>&1))"
}

render() {
  [ -n "$PYTHON" ] || { echo "nginx: python is needed to render the templates" >&2; exit 1; }
  [ -f "$FRONTEND_ROOT/index.html" ] || echo "nginx: warning: $FRONTEND_ROOT/index.html not found" >&2
  mkdir -p "$NGINX_DATA/conf.d" "$NGINX_DATA/tmp"
  local user_directive=""
  if [ "$(id -u)" = 0 ]; then
    # Workers must not run as root; pick an account that exists (Debian: www-data).
    local u="$NGINX_WORKER_USER" cand
    if [ -z "$u" ]; then
      for cand in www-data nginx nobody; do
        id "$cand" >/dev/null 2>&1 && { u="$cand"; break; }
      done
    fi
    [ -n "$u" ] && user_directive="user $u $(id -gn "$u");"
    # A checkout under a private directory (e.g. /root) is out of the workers' reach: serve a
    # copy of the SPA from outside it, refreshed on every render.
    if [ -n "$u" ] && ! runuser -u "$u" -- test -r "$FRONTEND_ROOT/index.html" 2>/dev/null; then
      local copy; copy="/var/tmp/todo-frontend-$(printf '%s' "$FRONTEND_ROOT" | cksum | cut -d' ' -f1)"
      rm -rf "$copy" && cp -a "$FRONTEND_ROOT" "$copy" && chmod -R a+rX "$copy"
      echo "nginx: $FRONTEND_ROOT is not readable by $u; serving a copy from $copy" >&2
      FRONTEND_ROOT="$copy"
    fi
  fi
  export NGINX_USER_DIRECTIVE="$user_directive"
  "$PYTHON" - "$TEMPLATES/nginx.conf.template" "$CONF" \
    "$TEMPLATES/default.conf.template" "$NGINX_DATA/conf.d/default.conf" <<'PY'
import os
import re
import sys

# Only these are substituted; anything else that looks like a variable is nginx's and stays as is.
NAMES = (
    "GATEWAY_PORT", "COMMAND_API_UPSTREAM", "QUERY_API_UPSTREAM", "FRONTEND_ROOT",
    "NGINX_DATA", "NGINX_USER_DIRECTIVE",
)
pattern = re.compile(r"\$\{(" + "|".join(NAMES) + r")\}")


def value(name: str) -> str:
    text = os.environ[name]
    if name.endswith("_UPSTREAM"):
        # "host:port,host:port" (several processes of one API): the template's `server ${X};`
        # becomes one `server` line per address.
        return ";\n    server ".join(a.strip() for a in text.split(",") if a.strip())
    return text


args = sys.argv[1:]
for src, dst in zip(args[0::2], args[1::2], strict=True):
    with open(src, encoding="utf-8") as f:
        text = f.read()
    text = pattern.sub(lambda m: value(m.group(1)), text)
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, dst)
PY
  echo "nginx: rendered $CONF (port $GATEWAY_PORT, command $COMMAND_API_UPSTREAM, query $QUERY_API_UPSTREAM, root $FRONTEND_ROOT)"
}

nginx_cmd() {
  # -p: prefix for relative paths; -e: error log before the config is read (keeps /var untouched).
  "$(nginx_bin)" -p "$NGINX_DATA/" -c "$CONF" -e "$NGINX_DATA/error.log" "$@"
}

test_config() {
  render >/dev/null
  nginx_cmd -t
}

is_running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null
}

health() {
  "$PYTHON" - "$HEALTH_URL" <<'PY' >/dev/null 2>&1
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

run() {
  render
  nginx_cmd -t -q
  echo "nginx: serving http://127.0.0.1:$GATEWAY_PORT/ in the foreground (logs in $NGINX_DATA)"
  exec "$(nginx_bin)" -p "$NGINX_DATA/" -c "$CONF" -e "$NGINX_DATA/error.log" -g 'daemon off;'
}

start() {
  if is_running; then
    echo "nginx: already running (pid $(cat "$PIDFILE")) on port $GATEWAY_PORT"
    return 0
  fi
  render
  nginx_cmd -t -q
  nginx_cmd  # daemonizes itself and writes $PIDFILE
  local i
  for i in $(seq 1 50); do
    if health; then
      echo "nginx: ready on http://127.0.0.1:$GATEWAY_PORT/ (pid $(cat "$PIDFILE"))"
      return 0
    fi
    sleep 0.2
  done
  echo "nginx: did not answer $HEALTH_URL in time" >&2
  tail -n 20 "$NGINX_DATA/error.log" >&2 || true
  exit 1
}

stop() {
  if ! is_running; then
    echo "nginx: not running"
    rm -f "$PIDFILE"
    return 0
  fi
  local pid i; pid="$(cat "$PIDFILE")"
  nginx_cmd -s quit 2>/dev/null || kill -QUIT "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { echo "nginx: stopped"; rm -f "$PIDFILE"; return 0; }
    sleep 0.2
  done
  kill -TERM "$pid" 2>/dev/null || true
  echo "nginx: stopped (forced)"
  rm -f "$PIDFILE"
}

status() {
  if is_running; then
    echo "nginx: running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$GATEWAY_PORT/"
  else
    echo "nginx: not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  render) render ;;
  test) test_config ;;
  run) run ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *)
    echo "usage: $0 install|render|test|run|start|stop|restart|status" >&2
    exit 2
    ;;
esac
