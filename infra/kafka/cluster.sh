#!/usr/bin/env bash
# A local 3-node Apache Kafka cluster (KRaft, combined broker+controller nodes, static quorum),
# from the same Maven Central jars as the single broker. Called by infra/kafka.sh when
# KAFKA_BROKERS > 1; not meant to be run directly.
#
# Usage: KAFKA_BROKERS=3 infra/kafka.sh <command> [node]
#   start [N]    all nodes (or node N), in parallel; wait until each started node answers on
#                its own port and an AdminClient sees every broker, then create the topics
#                (replication factor KAFKA_BROKERS, min.insync.replicas=2)
#   stop [N]     SIGTERM (SIGKILL after $KAFKA_STOP_TIMEOUT s), all nodes or node N
#   kill N       SIGKILL node N (a hard failure)
#   restart      stop + start
#   status       exit 0 all nodes running and ready, 1 some down or not answering, 3 all stopped
#   topics       create the topics on the running cluster      logs [N]   tail node N's log (1)
#   reset        stop and delete every node's data
#   isr          print in-sync replica counts per partition (JSON)
#   bootstrap    print the bootstrap servers (every node), for KAFKA_BOOTSTRAP_SERVERS
#
# Layout: $KAFKA_HOME/libs (shared jars), $KAFKA_HOME/node-N/{server.properties,kraft-logs,
# kafka.pid,kafka.log}, $KAFKA_HOME/cluster.id.
# Ports: node N listens on KAFKA_PORT+2(N-1) (clients) and that +1 (controller):
# 9092/9093, 9094/9095, 9096/9097 by default.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CONF_DIR="$SCRIPT_DIR"

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/.data/kafka-cluster}"
# Three JVMs on one machine: a smaller heap than the single broker's 512m is plenty for tests.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
LOG_PREFIX=kafka-cluster
# shellcheck source=infra/kafka/common.sh
source "$CONF_DIR/common.sh"  # KAFKA_PORT and the other settings, log, die, lock, alive, port_open
KAFKA_BROKERS="${KAFKA_BROKERS:-3}"
KAFKA_MIN_INSYNC_REPLICAS="${KAFKA_MIN_INSYNC_REPLICAS:-2}"

(( KAFKA_BROKERS >= 3 )) || die "KAFKA_BROKERS=$KAFKA_BROKERS: a cluster needs at least 3 nodes (1 = the single broker)"

nodes() { seq 1 "$KAFKA_BROKERS"; }
broker_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((KAFKA_PORT + 2 * ($1 - 1) + 1)); }
node_dir() { echo "$KAFKA_HOME/node-$1"; }
bootstrap() { local n out=""; for n in $(nodes); do out+="${out:+,}127.0.0.1:$(broker_port "$n")"; done; echo "$out"; }
voters() { local n out=""; for n in $(nodes); do out+="${out:+,}$n@127.0.0.1:$(controller_port "$n")"; done; echo "$out"; }

running_pid() {  # node
  local pid="" f; f="$(node_dir "$1")/kafka.pid"
  [[ -f "$f" ]] && pid="$(<"$f")"
  if alive "$pid"; then echo "$pid"; return 0; fi
  return 1
}

install_jars() {
  # The single-broker script knows how to download the jars; same KAFKA_HOME, same libs/.
  KAFKA_BROKERS=1 KAFKA_HOME="$KAFKA_HOME" "$CONF_DIR/../kafka.sh" install
}

cluster_id() {
  local f="$KAFKA_HOME/cluster.id"
  if [[ ! -s "$f" ]]; then "$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >"$f"; fi
  cat "$f"
}

prepare_node() {  # node
  local n="$1" dir; dir="$(node_dir "$n")"
  mkdir -p "$dir"
  sed -e "s|@NODE_ID@|$n|g" -e "s|@BROKER_PORT@|$(broker_port "$n")|g" \
      -e "s|@CONTROLLER_PORT@|$(controller_port "$n")|g" -e "s|@VOTERS@|$(voters)|g" \
      -e "s|@LOG_DIR@|$dir/kraft-logs|g" \
      "$CONF_DIR/server-cluster.properties.template" >"$dir/server.properties"
  if [[ ! -f "$dir/kraft-logs/meta.properties" ]]; then
    # One cluster id for every node; no --standalone (the voters are listed statically).
    "$JAVA" -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" -cp "$LIBS/*" \
      kafka.tools.StorageTool format -t "$(cluster_id)" -c "$dir/server.properties" --ignore-formatted >&2
  fi
}

launch_node() {  # node: start the JVM in its own session, detached
  local n="$1" dir p; dir="$(node_dir "$n")"
  for p in "$(broker_port "$n")" "$(controller_port "$n")"; do
    if port_open "$p"; then die "node $n: port $p is already in use (set KAFKA_PORT)"; fi
  done
  [[ -f "$dir/kafka.log" ]] && mv -f "$dir/kafka.log" "$dir/kafka.log.1"
  rm -f "$dir/kafka.pid"
  # shellcheck disable=SC2206  # word splitting of the *_OPTS variables is intended
  local cmd=("$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    $KAFKA_JVM_OPTS -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties"
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties")
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$0"
    for fd in /proc/$$/fd/*; do fd=${fd##*/}; if (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi; done
    exec "$@"' "$dir/kafka.pid" "${cmd[@]}" </dev/null >"$dir/kafka.log" 2>&1 9>&- &
  local i; for i in $(seq 1 50); do [[ -s "$dir/kafka.pid" ]] && break; sleep 0.1; done
  log "node $n: pid $(<"$dir/kafka.pid") on 127.0.0.1:$(broker_port "$n") (log: $dir/kafka.log)"
}

ensure_topics() {  # extra args
  "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$(bootstrap)" --partitions "$KAFKA_PARTITIONS" \
    --replication-factor "$KAFKA_BROKERS" --min-insync-replicas "$KAFKA_MIN_INSYNC_REPLICAS" \
    --min-brokers "$KAFKA_BROKERS" "$@" "$KAFKA_TOPIC" "$KAFKA_DLQ_TOPIC"
}

do_start() {  # [node]
  local which=("$@") n started=()
  [[ ${#which[@]} -gt 0 ]] || mapfile -t which < <(nodes)
  for n in "${which[@]}"; do
    if running_pid "$n" >/dev/null; then continue; fi
    prepare_node "$n"
    launch_node "$n"
    started+=("$n")
  done
  # In parallel: no node is ready before a majority of the controllers has a leader.
  log "waiting up to ${KAFKA_START_TIMEOUT}s for $KAFKA_BROKERS brokers at $(bootstrap) ..."
  local ok=1
  # Each started node must answer on its own port: right after a SIGKILL the cluster's metadata
  # still lists the dead incarnation until its session expires (~9 s), so "3 brokers
  # registered" alone could be the old one.
  for n in "${started[@]}"; do
    node_answers "$n" "$KAFKA_START_TIMEOUT" || { ok=0; break; }
  done
  if (( ok )) && ensure_topics --timeout "$KAFKA_START_TIMEOUT"; then return 0; fi
  for n in "${started[@]}"; do
    echo "----- node $n: last lines of $(node_dir "$n")/kafka.log -----" >&2
    tail -n 20 "$(node_dir "$n")/kafka.log" >&2 || true
  done
  die "start failed"
}

node_answers() {  # node timeout: its own listener serves metadata (fails fast if its JVM dies)
  local n="$1" pid; pid="$(running_pid "$n")" || return 1
  "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "127.0.0.1:$(broker_port "$n")" \
    --pid "$pid" --timeout "$2" --quiet
}

stop_node() {  # node signal
  local n="$1" sig="$2" pid waited=0 limit=$((KAFKA_STOP_TIMEOUT * 10))
  pid="$(running_pid "$n")" || { rm -f "$(node_dir "$n")/kafka.pid"; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  while alive "$pid"; do
    if (( waited >= limit )); then log "node $n (pid $pid) still running, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.1; waited=$((waited + 1))
  done
  rm -f "$(node_dir "$n")/kafka.pid"
  log "node $n stopped ($sig)"
}

do_stop() {  # [node]: all nodes are signalled at once, then waited for
  local which=("$@") n
  [[ ${#which[@]} -gt 0 ]] || mapfile -t which < <(nodes)
  for n in "${which[@]}"; do stop_node "$n" TERM & done
  wait
}

do_status() {
  local n up=0 pid
  for n in $(nodes); do
    if pid="$(running_pid "$n")"; then echo "kafka node $n: running (pid $pid) on 127.0.0.1:$(broker_port "$n")"; up=$((up + 1))
    else echo "kafka node $n: stopped"; fi
  done
  (( up > 0 )) || return 3
  if (( up < KAFKA_BROKERS )); then echo "kafka: $up of $KAFKA_BROKERS nodes running"; return 1; fi
  if "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$(bootstrap)" --min-brokers "$KAFKA_BROKERS" --timeout 5 --quiet; then
    echo "kafka: cluster ready at $(bootstrap)"; return 0
  fi
  echo "kafka: cluster not fully up at $(bootstrap)"; return 1
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install_jars ;;
  start)   install_jars; lock; do_start "$@" ;;
  stop)    lock; do_stop "$@" ;;
  kill)    [[ $# -eq 1 ]] || die "kill needs a node number"; stop_node "$1" KILL ;;
  restart) install_jars; lock; do_stop; do_start ;;
  status)  do_status ;;
  topics)  ensure_topics --timeout "$KAFKA_START_TIMEOUT" ;;
  isr)     "$PYTHON" "$CONF_DIR/ensure_topics.py" --bootstrap "$(bootstrap)" --isr --quiet "$KAFKA_TOPIC" "$KAFKA_DLQ_TOPIC" ;;
  logs)    exec tail -n 100 -F "$(node_dir "${1:-1}")/kafka.log" ;;
  reset)   lock; do_stop; rm -rf "$KAFKA_HOME"/node-* "$KAFKA_HOME/cluster.id"; log "deleted the data of every node" ;;
  bootstrap) bootstrap ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
