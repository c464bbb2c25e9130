#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller), from Maven Central jars.
#
# Usage: infra/kafka.sh <command>
#   install   download the broker jars once into $KAFKA_HOME/libs (needs mvn + java 17+)
#   start     install if needed, format storage if needed, start in the background,
#             wait until ready, create the topics; no-op (+ ensure topics) if already running
#   stop      SIGTERM, wait up to $KAFKA_STOP_TIMEOUT s, then SIGKILL; no-op if not running
#   restart   stop + start
#   status    exit 0 running+ready, 1 running but not answering, 3 stopped
#   run       foreground (exec java), for a supervisor; topics are created by a helper
#   topics    wait until ready and create the topics (for a broker started with `run`)
#   logs      tail -f the broker log ($KAFKA_HOME/kafka.log)
#   reset     stop and delete the data ($KAFKA_HOME/kraft-logs); next start re-formats
#
# Environment (defaults):
#   KAFKA_HOME=<repo>/.data/kafka      libs/, kraft-logs/, server.properties, kafka.pid, kafka.log
#   KAFKA_PORT=9092                    client listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT=9093         KRaft controller listener on 127.0.0.1
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx512m"
#   KAFKA_JVM_OPTS=                    extra JVM options
#   KAFKA_TOPIC=events                 KAFKA_DLQ_TOPIC=$KAFKA_TOPIC.dlq
#   KAFKA_PARTITIONS=3
#   KAFKA_START_TIMEOUT=90             KAFKA_STOP_TIMEOUT=30
#   PYTHON=<repo>/.venv/bin/python     must have confluent_kafka (readiness + topics)
#   JAVA=$JAVA_HOME/bin/java or java
#   KAFKA_BROKERS=1                    3: a 3-node cluster instead (infra/kafka/cluster.sh, its
#                                      own usage; KAFKA_HOME defaults to <repo>/.data/kafka-cluster)
set -euo pipefail

if [[ "${KAFKA_BROKERS:-1}" != 1 ]]; then
  exec "$(dirname "${BASH_SOURCE[0]}")/kafka/cluster.sh" "$@"
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CONF_DIR="$SCRIPT_DIR/kafka"

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/.data/kafka}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
LOG_PREFIX=kafka
# shellcheck source=infra/kafka/common.sh
source "$CONF_DIR/common.sh"  # KAFKA_PORT and the other settings, log, die, lock, alive, port_open
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"

MARKER="$LIBS/.installed"          # written last, holds the pom.xml hash
DATA_DIR="$KAFKA_HOME/kraft-logs"
PROPS="$KAFKA_HOME/server.properties"
PID_FILE="$KAFKA_HOME/kafka.pid"
LOG_FILE="$KAFKA_HOME/kafka.log"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

# ---------------------------------------------------------------- install
pom_hash() { sha256sum "$CONF_DIR/pom.xml" | cut -d' ' -f1; }

installed() { [[ -f "$MARKER" && "$(<"$MARKER")" == "$(pom_hash)" ]]; }

do_install() {
  if installed; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found (needed once to download the Kafka jars)"
  command -v "$JAVA" >/dev/null || die "java not found (Java 17+ needed)"
  log "downloading Kafka jars from Maven Central into $LIBS ..."
  local tmp="$KAFKA_HOME/libs.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_HOME"
  if ! mvn -B -q -f "$CONF_DIR/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$KAFKA_HOME/install.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME/install.log" >&2
    rm -rf "$tmp"
    die "maven download failed (full output: $KAFKA_HOME/install.log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "kafka_2.13 jar missing after download"; }
  pom_hash >"$tmp/.installed"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "installed $(ls "$LIBS"/kafka_2.13-*.jar | sed 's#.*/##') ($(ls "$LIBS"/*.jar | wc -l) jars)"
}

# ---------------------------------------------------------------- process helpers
# Prints the pid of the broker using this KAFKA_HOME, if running.
running_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(<"$PID_FILE")"
  if alive "$pid"; then echo "$pid"; return 0; fi
  # Not in the pid file (e.g. pid file removed): look for our own config path.
  pid="$(pgrep -f -- "kafka\.Kafka $PROPS\$" | head -n1 || true)"
  if alive "$pid"; then echo "$pid" >"$PID_FILE"; echo "$pid"; return 0; fi
  return 1
}

# A running broker may have been started with other ports: use the ones from its config.
use_running_port() {
  local port
  port="$(sed -n 's|^listeners=PLAINTEXT://[^:]*:\([0-9]*\).*|\1|p' "$PROPS" 2>/dev/null || true)"
  if [[ -n "$port" && "$port" != "$KAFKA_PORT" ]]; then
    log "note: running broker listens on port $port (KAFKA_PORT=$KAFKA_PORT ignored until restart)"
    KAFKA_PORT="$port"
    BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  fi
}

check_python() {
  [[ -x "$PYTHON" ]] || command -v "$PYTHON" >/dev/null || die "python not found: $PYTHON (set PYTHON)"
}

ensure_topics() {  # extra args passed to ensure_topics.py
  check_python
  "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$BOOTSTRAP" --partitions "$KAFKA_PARTITIONS" \
    "$@" "$KAFKA_TOPIC" "$KAFKA_DLQ_TOPIC"
}

# ---------------------------------------------------------------- config + storage
render_config() {
  mkdir -p "$KAFKA_HOME"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@LOG_DIR@|$DATA_DIR|g" \
      "$CONF_DIR/server.properties.template" >"$PROPS.tmp"
  mv "$PROPS.tmp" "$PROPS"
}

format_storage() {
  # Storage is (re)formatted only when meta.properties is missing, e.g. first start or after
  # `rm -rf $KAFKA_HOME/kraft-logs`. Changing the ports later works on the same data.
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local id
  id="$("$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
  mkdir -p "$DATA_DIR"
  log "formatting $DATA_DIR (cluster id $id)"
  "$JAVA" -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" -cp "$LIBS/*" \
    kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" --ignore-formatted >&2
}

prepare() {
  do_install
  render_config
  format_storage
}

java_cmd() {
  # shellcheck disable=SC2206  # word splitting of the *_OPTS variables is intended
  JAVA_CMD=("$JAVA" $KAFKA_HEAP_OPTS
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    $KAFKA_JVM_OPTS
    -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties"
    -cp "$LIBS/*" kafka.Kafka "$PROPS")
}

check_ports_free() {
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then die "port $p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"; fi
  done
}

# ---------------------------------------------------------------- commands
do_start() {
  local pid rc
  if pid="$(running_pid)"; then
    use_running_port
    ensure_topics --pid "$pid" --timeout "$KAFKA_START_TIMEOUT" || {
      log "broker pid $pid is running but not ready; log tail:"; tail -n 40 "$LOG_FILE" >&2 || true; exit 1; }
    return 0
  fi
  check_python
  prepare
  check_ports_free
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  rm -f "$PID_FILE"
  java_cmd
  # setsid: own session, survives the caller's terminal/process group. All inherited fds
  # above 2 (our lock, a caller's pipes) are closed so nobody waits on the daemon.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$0"
    for fd in /proc/$$/fd/*; do fd=${fd##*/}; if (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi; done
    exec "$@"' "$PID_FILE" "${JAVA_CMD[@]}" </dev/null >"$LOG_FILE" 2>&1 9>&- &
  local i
  for i in $(seq 1 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  pid="$(<"$PID_FILE")"
  log "started broker pid $pid on $BOOTSTRAP (log: $LOG_FILE), waiting up to ${KAFKA_START_TIMEOUT}s ..."
  rc=0
  ensure_topics --pid "$pid" --timeout "$KAFKA_START_TIMEOUT" || rc=$?
  if [[ $rc -ne 0 ]]; then
    if [[ $rc -eq 2 ]]; then log "broker exited during startup"; else log "broker not ready after ${KAFKA_START_TIMEOUT}s"; fi
    echo "----- last lines of $LOG_FILE -----" >&2
    tail -n 40 "$LOG_FILE" >&2 || true
    echo "-----" >&2
    stop_pid "$pid" >/dev/null 2>&1 || true
    rm -f "$PID_FILE"
    die "start failed"
  fi
}

stop_pid() {
  local pid="$1" waited=0 limit=$((KAFKA_STOP_TIMEOUT * 10))
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    if (( waited >= limit )); then
      log "broker pid $pid still running after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  ! alive "$pid"
}

do_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping broker pid $pid ..."
  stop_pid "$pid" || die "could not stop pid $pid"
  rm -f "$PID_FILE"
  log "stopped"
}

do_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "kafka: stopped"
    return 3
  fi
  use_running_port
  if check_python && "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$BOOTSTRAP" --timeout 5 --quiet --pid "$pid"; then
    echo "kafka: running (pid $pid), ready at $BOOTSTRAP"
    return 0
  fi
  echo "kafka: running (pid $pid) but not answering at $BOOTSTRAP"
  return 1
}

do_run() {
  local pid
  if pid="$(running_pid)"; then die "already running (pid $pid); use stop first"; fi
  prepare
  check_ports_free
  java_cmd
  echo $$ >"$PID_FILE"
  exec 9>&-   # release the lock; the broker keeps this pid ($$)
  # Helper: wait for the broker (this pid after exec) and create the topics. Double fork so
  # it is not left as a zombie child of the JVM.
  if [[ -x "$PYTHON" ]] || command -v "$PYTHON" >/dev/null; then
    ( "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$BOOTSTRAP" --partitions "$KAFKA_PARTITIONS" \
      --pid $$ --timeout "$KAFKA_START_TIMEOUT" "$KAFKA_TOPIC" "$KAFKA_DLQ_TOPIC" </dev/null >&2 & )
  fi
  exec "${JAVA_CMD[@]}"
}

do_reset() {
  do_stop
  rm -rf "$DATA_DIR"
  log "deleted $DATA_DIR"
}

cmd="${1:-}"
case "$cmd" in
  install) lock; do_install ;;
  start)   lock; do_start ;;
  stop)    lock; do_stop ;;
  restart) lock; do_stop; do_start ;;
  status)  do_status ;;
  run)     lock; do_run ;;
  topics)  pid="$(running_pid)" || die "not running"; use_running_port; ensure_topics --pid "$pid" --timeout "$KAFKA_START_TIMEOUT" ;;
  logs)    exec tail -n 100 -F "$LOG_FILE" ;;
  reset)   lock; do_reset ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
