# shellcheck shell=bash
# What the single broker (infra/kafka.sh) and the cluster (infra/kafka/cluster.sh) share, sourced
# by both after their own defaults (KAFKA_HOME, heap, start timeout) and LOG_PREFIX: the settings
# with one default for both, and the helpers.

# The client port (node 1's in a cluster) follows KAFKA_BOOTSTRAP_SERVERS (the services' setting)
# unless KAFKA_PORT is given.
_bootstrap_port="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"; _bootstrap_port="${_bootstrap_port%%,*}"; _bootstrap_port="${_bootstrap_port##*:}"
KAFKA_PORT="${KAFKA_PORT:-${_bootstrap_port:-9092}}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_TOPIC="${KAFKA_TOPIC:-events}"
KAFKA_DLQ_TOPIC="${KAFKA_DLQ_TOPIC:-$KAFKA_TOPIC.dlq}"
KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-3}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi
LIBS="$KAFKA_HOME/libs"

log() { echo "$LOG_PREFIX: $*" >&2; }
die() { echo "$LOG_PREFIX: error: $*" >&2; exit 1; }

lock() {
  mkdir -p "$KAFKA_HOME"
  exec 9>"$KAFKA_HOME/.lock"
  flock -w 300 9 || die "another infra/kafka.sh holds $KAFKA_HOME/.lock"
}

# alive PID: process exists, is not a zombie, and is a Kafka broker.
alive() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"kafka.Kafka "* ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
