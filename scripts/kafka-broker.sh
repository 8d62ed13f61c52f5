#!/usr/bin/env bash
# kafka-broker.sh - a real Apache Kafka 4.x broker (KRaft) for development and CI,
# without Docker: the jars come from Maven Central via scripts/kafka/pom.xml.
#
# Usage:
#   scripts/kafka-broker.sh start [--brokers N] [--dir DIR]
#       Format fresh KRaft storage in DIR, start N combined broker+controller
#       nodes (default 1; 3 for fault tests) on free 127.0.0.1 ports, wait until
#       the cluster answers, print BOOTSTRAP=127.0.0.1:PORT[,...] on stdout and
#       write DIR/env (KAFKA_BOOTSTRAP=..., KAFKA_DIR=...). Usable as
#       `eval "$(scripts/kafka-broker.sh start)"`.
#   scripts/kafka-broker.sh stop [--dir DIR] [--keep]
#       SIGTERM all nodes, SIGKILL after a deadline, delete DIR unless --keep.
#   scripts/kafka-broker.sh status [--dir DIR]      exit 0 iff every node is up
#   scripts/kafka-broker.sh kill-node I [--dir DIR]  kill -9 node I (1-based)
#   scripts/kafka-broker.sh start-node I [--dir DIR] restart a killed node
#   scripts/kafka-broker.sh topics create NAME [--partitions P] [--rf R] [--dir DIR]
#   scripts/kafka-broker.sh topics list|describe [NAME]|delete NAME [--dir DIR]
#   scripts/kafka-broker.sh produce TOPIC [--dir DIR]   lines on stdin -> TOPIC
#   scripts/kafka-broker.sh consume TOPIC [--max N] [--timeout-ms MS] [--group G] [--dir DIR]
#       print TOPIC from the beginning; like Kafka's console consumer it exits 0
#       after the timeout (default 10000) even if fewer than N messages came
#   scripts/kafka-broker.sh logs [I] [--dir DIR]     tail a node's server.log
#   scripts/kafka-broker.sh fetch                    only download the jars
#
# DIR defaults to ${KAFKA_DIR:-/tmp/fleetscore-kafka}. Environment:
#   KAFKA_VERSION        Kafka version to fetch (default 4.4.0)
#   FLEETSCORE_CACHE     jar cache root (default ~/.cache/fleetscore); jars go to
#                        $FLEETSCORE_CACHE/kafka-$KAFKA_VERSION/libs
#   KAFKA_START_TIMEOUT  seconds to wait for the cluster (default 90)
#   KAFKA_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_HEAP_OPTS      broker heap (default "-Xms128m -Xmx512m")
#   KAFKA_GC_OPTS        the brokers' collector (default "-XX:+UseG1GC -XX:MaxGCPauseMillis=20",
#                        as Kafka's own start script)
#   KAFKA_JVM_OPTS       extra JVM options for the brokers
# Needs Java 17+ and (first run only) mvn with access to Maven Central.
# Progress goes to stderr; only BOOTSTRAP=... goes to stdout.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/kafka/pom.xml"
readonly KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
readonly CACHE_DIR="${FLEETSCORE_CACHE:-$HOME/.cache/fleetscore}/kafka-$KAFKA_VERSION"
readonly LIBS_DIR="$CACHE_DIR/libs"
readonly LIBS_MARKER="$LIBS_DIR/.complete"
readonly TOOLS_LOG4J="$CACHE_DIR/tools-log4j2.properties"
readonly START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
readonly STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
readonly HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
# Written into DIR so that stop never deletes a directory this script did not create.
readonly DIR_MARKER=".fleetscore-kafka"
# Broker/controller ports are picked in this range, below Linux's default
# ephemeral range (32768+), so outgoing connections cannot grab them.
readonly PORT_MIN=20000 PORT_MAX=32000

RUN_DIR="${KAFKA_DIR:-/tmp/fleetscore-kafka}"
JAVA=""

log() { printf 'kafka-broker: %s\n' "$*" >&2; }
die() { printf 'kafka-broker: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

now() { date +%s; }

# ---------------------------------------------------------------- java & jars

find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found (Kafka 4 needs Java 17+; set JAVA_HOME or put java on PATH)"
  fi
  local ver major
  ver="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${ver%%.*}"
  [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse Java version from '$JAVA -version'"
  (( major >= 17 )) || die "Kafka $KAFKA_VERSION needs Java 17+, but $JAVA is $ver"
}

# Download kafka_2.13 + tools + logging and all runtime deps into LIBS_DIR, once.
ensure_libs() {
  [[ -f "$LIBS_MARKER" ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it is needed once to fetch Kafka $KAFKA_VERSION into $LIBS_DIR"
  [[ -f "$POM" ]] || die "missing $POM"
  mkdir -p "$CACHE_DIR"
  # Serialise concurrent first runs (e.g. parallel CI jobs) on the same cache.
  exec 8>"$CACHE_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then flock 8; fi
  if [[ -f "$LIBS_MARKER" ]]; then exec 8>&-; return 0; fi

  log "fetching Kafka $KAFKA_VERSION and its dependencies from Maven (first run only) ..."
  local t0 tmp mvn_log
  t0="$(now)"
  tmp="$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")"
  mvn_log="$CACHE_DIR/mvn.log"
  if ! mvn -B -q -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    tail -n 30 "$mvn_log" >&2 || true
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full log: $mvn_log)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "mvn succeeded but kafka_2.13-$KAFKA_VERSION.jar is missing in the output"; }
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  printf '%s\n' "$KAFKA_VERSION" >"$LIBS_MARKER"
  exec 8>&-
  log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars into $LIBS_DIR in $(( $(now) - t0 ))s"
}

write_tools_log4j() {
  local content
  content="# log4j2 config for Kafka's command-line tools run by kafka-broker.sh: warnings to stderr.
status = warn
shutdownHook = disable
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR"
  # Rewrite only when missing or changed (atomically: parallel runs share it).
  [[ -f "$TOOLS_LOG4J" && "$(cat "$TOOLS_LOG4J")" == "$content" ]] && return 0
  printf '%s\n' "$content" >"$TOOLS_LOG4J.tmp.$$"
  mv "$TOOLS_LOG4J.tmp.$$" "$TOOLS_LOG4J"
}

prepare() {
  find_java
  ensure_libs
  write_tools_log4j
}

# Run one of Kafka's Java tools (class name + args) with a small, fast-starting JVM.
kafka_tool() {
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIBS_DIR/*" "$@"
}

# ---------------------------------------------------------------- run dir state

node_dir() { printf '%s/node-%s' "$RUN_DIR" "$1"; }

# Make RUN_DIR absolute and symlink-free: pids are matched against the config
# path on the broker's command line, which start always writes this way.
normalize_run_dir() {
  if [[ -d "$RUN_DIR" ]]; then RUN_DIR="$(cd "$RUN_DIR" && pwd -P)"; fi
}

node_count() {
  [[ -f "$RUN_DIR/brokers" ]] || die "no cluster in $RUN_DIR (run: $0 start --dir $RUN_DIR)"
  cat "$RUN_DIR/brokers"
}

bootstrap() { cat "$RUN_DIR/bootstrap"; }

# Is this pid alive and really the Kafka node whose config lives in $2?
pid_is_node() {
  local pid="$1" ndir="$2" args
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    args="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  else
    args="$(ps -p "$pid" -o args= 2>/dev/null)" || return 1
  fi
  [[ "$args" == *kafka.Kafka*"$ndir/server.properties"* ]]
}

# Prints the pid of node $1 if it is running.
node_pid() {
  local ndir pid
  ndir="$(node_dir "$1")"
  [[ -f "$ndir/kafka.pid" ]] || return 1
  pid="$(cat "$ndir/kafka.pid")"
  pid_is_node "$pid" "$ndir" || return 1
  printf '%s\n' "$pid"
}

any_node_running() {
  local i n
  [[ -f "$RUN_DIR/brokers" ]] || return 1
  n="$(cat "$RUN_DIR/brokers")"
  for ((i = 1; i <= n; i++)); do
    node_pid "$i" >/dev/null && return 0
  done
  return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints $1 distinct ports in [PORT_MIN, PORT_MAX] that nothing listens on.
pick_ports() {
  local want="$1" tries=0 p
  local -a picked=()
  while (( ${#picked[@]} < want )); do
    (( ++tries > 1000 )) && die "could not find $want free ports on 127.0.0.1"
    p=$(( PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN) ))
    [[ " ${picked[*]-} " == *" $p "* ]] && continue
    port_in_use "$p" && continue
    picked+=("$p")
  done
  printf '%s\n' "${picked[@]}"
}

# base64url of 16 random bytes, as Kafka's Uuid.randomUuid() (never starts with '-').
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && { printf '%s\n' "$id"; return; }
  done
}

write_broker_log4j() {
  cat >"$RUN_DIR/log4j2.properties" <<'EOF'
# log4j2 config for the brokers started by kafka-broker.sh:
# WARN and above to <node dir>/logs/server.log, plus the "started" lines.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF
}

# write_node_config I N BROKER_PORT VOTERS
write_node_config() {
  local i="$1" n="$2" bport="$3" cport="$4" voters="$5" ndir rf isr
  ndir="$(node_dir "$i")"
  if (( n >= 3 )); then rf=3; isr=2; else rf="$n"; isr=1; fi
  mkdir -p "$ndir/data" "$ndir/logs"
  cat >"$ndir/server.properties" <<EOF
# Generated by kafka-broker.sh: node $i of $n, combined broker + controller.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$ndir/data

# Test-friendly defaults: topics are created explicitly by the tests.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
delete.topic.enable=true

# Small machine (2 cores): few threads.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF
}

# Launch node I in the background and record its pid.
launch_node() {
  local i="$1" ndir pid
  ndir="$(node_dir "$i")"
  # shellcheck disable=SC2086  # heap/JVM opts are word lists
  nohup "$JAVA" $HEAP_OPTS ${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" -Dkafka.logs.dir="$ndir/logs" \
    ${KAFKA_JVM_OPTS:-} \
    -cp "$LIBS_DIR/*" kafka.Kafka "$ndir/server.properties" \
    >"$ndir/kafka.out" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$ndir/kafka.pid"
}

dump_node_logs() {
  local i n ndir
  n="$(cat "$RUN_DIR/brokers" 2>/dev/null || echo 0)"
  for ((i = 1; i <= n; i++)); do
    ndir="$(node_dir "$i")"
    for f in "$ndir/logs/server.log" "$ndir/kafka.out"; do
      [[ -s "$f" ]] || continue
      printf '\n----- tail of %s -----\n' "$f" >&2
      tail -n 40 "$f" >&2
    done
  done
}

# Block until all N brokers are registered and answer metadata requests, or die.
wait_ready() {
  local n="$1" deadline="$2" i out count
  local admin_cfg="$RUN_DIR/admin.properties"
  printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n' >"$admin_cfg"
  while :; do
    for ((i = 1; i <= n; i++)); do
      node_pid "$i" >/dev/null || { dump_node_logs; die "node $i (pid $(cat "$(node_dir "$i")/kafka.pid")) exited during startup"; }
    done
    if (( $(now) >= deadline )); then
      dump_node_logs
      die "Kafka cluster in $RUN_DIR did not come up within ${START_TIMEOUT}s (logs above; dir kept)"
    fi
    # Cheap check first: are all client ports accepting TCP?
    local all_open=1
    for port in $(tr ',' '\n' <"$RUN_DIR/bootstrap" | sed 's/.*://'); do
      port_in_use "$port" || { all_open=0; break; }
    done
    if (( all_open )); then
      # Then a real metadata + ApiVersions round trip: one line per live broker.
      if out="$(kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
          --bootstrap-server "$(bootstrap)" --command-config "$admin_cfg" 2>>"$RUN_DIR/wait.log")"; then
        count="$(grep -cE '^127\.0\.0\.1:[0-9]+ \(id: [0-9]+' <<<"$out" || true)"
        (( count >= n )) && return 0
        log "waiting: $count of $n brokers registered"
      fi
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local n=1
  while (( $# )); do
    case "$1" in
      --brokers) [[ $# -ge 2 ]] || die "--brokers needs a value"; n="$2"; shift 2 ;;
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; RUN_DIR="$2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "start: unknown argument '$1'" ;;
    esac
  done
  [[ "$n" =~ ^[1-9]$ ]] || die "--brokers must be 1..9, got '$n'"
  prepare

  # DIR must be new, empty, or a stopped cluster of ours (then it is wiped).
  if [[ -e "$RUN_DIR" ]]; then
    [[ -d "$RUN_DIR" ]] || die "$RUN_DIR exists and is not a directory"
    if [[ -f "$RUN_DIR/$DIR_MARKER" ]]; then
      any_node_running && die "a Kafka cluster is already running in $RUN_DIR (BOOTSTRAP=$(bootstrap)); run '$0 stop --dir $RUN_DIR' first"
      log "removing stale cluster directory $RUN_DIR"
      rm -rf "$RUN_DIR"
    elif [[ -n "$(ls -A "$RUN_DIR")" ]]; then
      die "$RUN_DIR exists, is not empty and was not created by this script; pick another --dir"
    fi
  fi
  mkdir -p "$RUN_DIR"
  normalize_run_dir
  touch "$RUN_DIR/$DIR_MARKER"
  printf '%s\n' "$n" >"$RUN_DIR/brokers"
  write_broker_log4j

  local t0 deadline i cluster_id voters="" bootstrap_list=""
  t0="$(now)"
  deadline=$(( t0 + START_TIMEOUT ))
  local -a ports
  mapfile -t ports < <(pick_ports $(( 2 * n )))
  (( ${#ports[@]} == 2 * n )) || die "could not pick $(( 2 * n )) free ports on 127.0.0.1"
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[2 * i - 1]}"
    bootstrap_list+="${bootstrap_list:+,}127.0.0.1:${ports[2 * i - 2]}"
  done
  printf '%s\n' "$bootstrap_list" >"$RUN_DIR/bootstrap"
  cluster_id="$(new_cluster_id)"
  printf '%s\n' "$cluster_id" >"$RUN_DIR/cluster-id"

  # Format every node's storage (in parallel: each is a JVM start).
  local -a fmt_pids=()
  for ((i = 1; i <= n; i++)); do
    write_node_config "$i" "$n" "${ports[2 * i - 2]}" "${ports[2 * i - 1]}" "$voters"
    kafka_tool kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$(node_dir "$i")/server.properties" >"$(node_dir "$i")/format.log" 2>&1 &
    fmt_pids+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    if ! wait "${fmt_pids[i - 1]}"; then
      cat "$(node_dir "$i")/format.log" >&2
      die "formatting storage for node $i failed (see above)"
    fi
  done

  # From here on, a failure must not leave brokers behind.
  trap 'kill_all_nodes KILL >/dev/null 2>&1 || true' EXIT
  for ((i = 1; i <= n; i++)); do launch_node "$i"; done
  log "started $n node(s) in $RUN_DIR, waiting for the cluster (deadline ${START_TIMEOUT}s) ..."
  wait_ready "$n" "$deadline"
  trap - EXIT

  cat >"$RUN_DIR/env" <<EOF
KAFKA_BOOTSTRAP=$bootstrap_list
KAFKA_DIR=$RUN_DIR
KAFKA_BROKERS=$n
KAFKA_VERSION=$KAFKA_VERSION
EOF
  log "Kafka $KAFKA_VERSION up with $n node(s) in $(( $(now) - t0 ))s; env in $RUN_DIR/env"
  printf 'BOOTSTRAP=%s\n' "$bootstrap_list"
}

# Signal every running node with $1 (TERM/KILL).
kill_all_nodes() {
  local sig="$1" i n pid
  n="$(cat "$RUN_DIR/brokers" 2>/dev/null || echo 0)"
  for ((i = 1; i <= n; i++)); do
    if pid="$(node_pid "$i")"; then kill "-$sig" "$pid" 2>/dev/null || true; fi
  done
}

cmd_stop() {
  local keep=0
  while (( $# )); do
    case "$1" in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; RUN_DIR="$2"; shift 2 ;;
      --keep) keep=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "stop: unknown argument '$1'" ;;
    esac
  done
  normalize_run_dir
  if [[ ! -f "$RUN_DIR/$DIR_MARKER" ]]; then
    log "no Kafka cluster in $RUN_DIR; nothing to stop"
    return 0
  fi
  if any_node_running; then
    local deadline
    deadline=$(( $(now) + STOP_TIMEOUT ))
    log "stopping Kafka in $RUN_DIR (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s) ..."
    kill_all_nodes TERM
    while any_node_running && (( $(now) < deadline )); do sleep 0.5; done
    if any_node_running; then
      log "still running after ${STOP_TIMEOUT}s: sending SIGKILL"
      kill_all_nodes KILL
      deadline=$(( $(now) + 10 ))
      while any_node_running && (( $(now) < deadline )); do sleep 0.2; done
      any_node_running && die "could not kill Kafka nodes in $RUN_DIR"
    fi
  fi
  if (( keep )); then
    log "stopped; kept $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
    log "stopped; removed $RUN_DIR"
  fi
}

cmd_status() {
  while (( $# )); do
    case "$1" in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; RUN_DIR="$2"; shift 2 ;;
      *) die "status: unknown argument '$1'" ;;
    esac
  done
  normalize_run_dir
  if [[ ! -f "$RUN_DIR/$DIR_MARKER" || ! -f "$RUN_DIR/brokers" ]]; then
    echo "down: no Kafka cluster in $RUN_DIR"
    return 1
  fi
  local n i up=0 pid port
  n="$(cat "$RUN_DIR/brokers")"
  for ((i = 1; i <= n; i++)); do
    port="$(cut -d, -f"$i" <"$RUN_DIR/bootstrap")"
    if pid="$(node_pid "$i")"; then
      if port_in_use "${port##*:}"; then
        echo "node $i: up (pid $pid, $port)"; up=$(( up + 1 ))
      else
        echo "node $i: starting/not listening (pid $pid, $port)"
      fi
    else
      echo "node $i: down ($port)"
    fi
  done
  if (( up == n )); then
    echo "up: $up/$n nodes, BOOTSTRAP=$(bootstrap)"
  else
    echo "degraded: $up/$n nodes up, BOOTSTRAP=$(bootstrap)"
    return 1
  fi
}

# Parse "I [--dir DIR]" for node commands; sets NODE.
parse_node_args() {
  NODE=""
  while (( $# )); do
    case "$1" in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; RUN_DIR="$2"; shift 2 ;;
      [0-9]*) NODE="$1"; shift ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  normalize_run_dir
  local n
  n="$(node_count)"
  if ! [[ "$NODE" =~ ^[0-9]+$ ]] || (( NODE < 1 || NODE > n )); then
    die "node must be 1..$n, got '${NODE}'"
  fi
}

cmd_kill_node() {
  parse_node_args "$@"
  local pid
  pid="$(node_pid "$NODE")" || die "node $NODE is not running"
  kill -KILL "$pid"
  local deadline=$(( $(now) + 10 ))
  while kill -0 "$pid" 2>/dev/null && (( $(now) < deadline )); do sleep 0.1; done
  log "killed node $NODE (pid $pid) with SIGKILL"
}

cmd_start_node() {
  parse_node_args "$@"
  node_pid "$NODE" >/dev/null && die "node $NODE is already running"
  find_java
  [[ -f "$LIBS_MARKER" ]] || die "Kafka jars missing in $LIBS_DIR"
  launch_node "$NODE"
  local port deadline=$(( $(now) + START_TIMEOUT ))
  port="$(cut -d, -f"$NODE" <"$RUN_DIR/bootstrap")"
  until port_in_use "${port##*:}"; do
    node_pid "$NODE" >/dev/null || { tail -n 40 "$(node_dir "$NODE")/logs/server.log" >&2 || true; die "node $NODE exited"; }
    (( $(now) < deadline )) || die "node $NODE not listening on $port after ${START_TIMEOUT}s"
    sleep 0.5
  done
  log "node $NODE is listening on $port again"
}

# Pull --dir out of a tool command's arguments; the rest go to ARGS.
split_dir_arg() {
  ARGS=()
  while (( $# )); do
    if [[ "$1" == --dir ]]; then
      [[ $# -ge 2 ]] || die "--dir needs a value"; RUN_DIR="$2"; shift 2
    else
      ARGS+=("$1"); shift
    fi
  done
  normalize_run_dir
}

require_running() {
  if ! [[ -f "$RUN_DIR/$DIR_MARKER" ]] || ! any_node_running; then
    die "no running Kafka cluster in $RUN_DIR (start one with: $0 start --dir $RUN_DIR)"
  fi
  prepare
}

cmd_topics() {
  split_dir_arg "$@"
  set -- "${ARGS[@]+"${ARGS[@]}"}"
  local sub="${1:-}"; shift || true
  require_running
  local tc=org.apache.kafka.tools.TopicCommand bs
  bs="$(bootstrap)"
  case "$sub" in
    create)
      local name="" parts="" rf=""
      while (( $# )); do
        case "$1" in
          --partitions) parts="${2:?--partitions needs a value}"; shift 2 ;;
          --rf|--replication-factor) rf="${2:?--rf needs a value}"; shift 2 ;;
          -*) die "topics create: unknown option '$1'" ;;
          *) [[ -z "$name" ]] || die "topics create: one topic name only"; name="$1"; shift ;;
        esac
      done
      [[ -n "$name" ]] || die "usage: topics create NAME [--partitions P] [--rf R]"
      kafka_tool "$tc" --bootstrap-server "$bs" --create --topic "$name" \
        ${parts:+--partitions "$parts"} ${rf:+--replication-factor "$rf"} ;;
    list) kafka_tool "$tc" --bootstrap-server "$bs" --list ;;
    describe) kafka_tool "$tc" --bootstrap-server "$bs" --describe ${1:+--topic "$1"} ;;
    delete) [[ -n "${1:-}" ]] || die "usage: topics delete NAME"
      kafka_tool "$tc" --bootstrap-server "$bs" --delete --topic "$1" ;;
    *) die "usage: topics create NAME [--partitions P] [--rf R] | list | describe [NAME] | delete NAME" ;;
  esac
}

cmd_produce() {
  split_dir_arg "$@"
  (( ${#ARGS[@]} == 1 )) || die "usage: produce TOPIC [--dir DIR]  (reads lines from stdin)"
  require_running
  kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$(bootstrap)" \
    --topic "${ARGS[0]}"
}

cmd_consume() {
  split_dir_arg "$@"
  set -- "${ARGS[@]+"${ARGS[@]}"}"
  local topic="" max="" timeout=10000 group=""
  while (( $# )); do
    case "$1" in
      --max) max="${2:?--max needs a value}"; shift 2 ;;
      --timeout-ms) timeout="${2:?--timeout-ms needs a value}"; shift 2 ;;
      --group) group="${2:?--group needs a value}"; shift 2 ;;
      -*) die "consume: unknown option '$1'" ;;
      *) topic="$1"; shift ;;
    esac
  done
  [[ -n "$topic" ]] || die "usage: consume TOPIC [--max N] [--timeout-ms MS] [--group G]"
  require_running
  kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$(bootstrap)" \
    --topic "$topic" --from-beginning --timeout-ms "$timeout" \
    ${max:+--max-messages "$max"} ${group:+--group "$group"}
}

cmd_logs() {
  split_dir_arg "$@"
  local i="${ARGS[0]:-1}"
  local f
  f="$(node_dir "$i")/logs/server.log"
  [[ -f "$f" ]] || die "no log at $f"
  tail -n 100 "$f"
}

main() {
  local cmd="${1:-}"
  (( $# )) && shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    kill-node) cmd_kill_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    topics) cmd_topics "$@" ;;
    produce) cmd_produce "$@" ;;
    consume) cmd_consume "$@" ;;
    logs) cmd_logs "$@" ;;
    fetch) prepare; printf '%s\n' "$LIBS_DIR" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
