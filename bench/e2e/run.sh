#!/usr/bin/env bash
# End-to-end benchmark on a real local Kafka broker: fleetscore vs the same job written by two
# other teams, on the same broker, data and machine, in one run: in Python with Quix Streams +
# onnxruntime (bench/e2e/peer.py, "peer") and in Java with Kafka Streams + ONNX Runtime's Java
# API (bench/e2e/kstreams/, "kstreams").
#
#   bench/e2e/run.sh [--out DIR]
#
# A fresh single-node broker (scripts/kafka-broker.sh), warmed up for WARM_SECONDS with
# unmeasured traffic; then for each system (fleetscore first, then the Quix peer, then the
# Kafka Streams peer), on topic sets of its own (3 partitions each):
#   1. sustained throughput: pre-produce N real C-MAPSS FD001 telemetry events (20,631 events of
#      100 engines, repeated with a distinct tail prefix per copy), start the system on the
#      backlog, wait for all N predictions; events/s = (N-1) / (last - first prediction's
#      append time). RUNS runs, each a fresh process and consumer group; the median is reported.
#   2. latency at half that median (LAT_FRACTIONS): a fresh process, caught up (one probe event
#      scored), then a producer at the fixed rate for LAT_WARMUP + LAT_SECONDS s; latency per
#      event = the prediction's append time at the broker minus its source event's append time
#      (both topics use message.timestamp.type=LogAppendTime: one clock, the broker's; what is
#      measured is the time an event spends between being in Kafka and its prediction being in
#      Kafka, which a consumer of predictions can see), matched by the
#      fleet.source.partition/offset headers; the warm-up is left out. RUNS runs; medians of
#      p50/p90/p99/max. This "produced" latency leaves out, under exactly-once, the wait for
#      the transaction's commit (the append time is the prediction's, not its commit's). For
#      the systems in VISIBLE, a live read_committed reader of the predictions (VISIBLE_READER,
#      started before the system, fetching with fetch.wait.max.ms=5) also gives the
#      "visible" latency: the wall-clock time it received each prediction minus its event's
#      append time, what a read_committed consumer of the predictions sees.
#   3. each peer's predictions are compared with fleetscore's for the same events (throughput
#      run 1; as float32: how many are identical, the largest difference).
# CPU use of the system, the broker, the load generator and the rest of the machine is recorded
# for every measured window (so a run on a busy shared machine shows it). For fleetscore's latency
# runs, where the window's time went: its /metrics scraped when the window begins and when it
# ends (NAME.metrics-start, NAME.metrics), their difference per stage of a micro-batch, event lag
# and commit step summarized by `measure.py stages` (the "stages" lines of results.jsonl and the
# report's last table).
#
# Environment (defaults):
#   FS_EVENTS=412620      events for fleetscore's throughput runs (20 copies of FD001: about as
#                         many seconds of work as the peers')
#   PEER_EVENTS=41262     the same for the Quix peer (the first 2 copies of the same sequence)
#   KSTREAMS_EVENTS=412620  the same for the Kafka Streams peer (the same 20 copies as
#                         fleetscore's, all compared: a fresh JVM spends its first ~10 s
#                         compiling, at a fraction of its later speed; with fewer events that
#                         would be most of the run. The throughput record also has the rate over
#                         the second half of the predictions, which leaves the warm-up out)
#   RUNS=3  LAT_SECONDS=20  LAT_WARMUP=10 (seconds at the rate before the measured window:
#                         a freshly started process catches up for a few seconds first)
#   FS_BATCH_MAX_RECORDS, FS_BATCH_MAX_MS   fleetscore [kafka] batch settings (service defaults
#                         when unset: 512 records, 0 ms)
#   FS_CONSUMER, FS_PRODUCER   "key=value,key=value" for [kafka.consumer] / [kafka.producer]
#   FS_KAFKA              raw TOML lines for fleetscore's [kafka] section, e.g.
#                         'guarantee = "at_least_once"' (\n separates lines)
#   FS_ALERTS_TOPIC=fs.alerts   fleetscore's alerts topic; empty: the key is left out (builds
#                         from before alerts refuse it)
#   FS_LOADGEN_ARGS       more arguments for the Rust load generator's every run, e.g.
#                         "--traceparent-sampled-every 100" (a traceparent on every event)
#   FS_EVENT_STREAMS=0    fleet-view pages to keep open on fleetscore while it runs: each a
#                         `curl -N .../events` reading the live updates (issue #16); the bytes
#                         each received go to OUT/NAME.pages
#   OTEL_EXPORTER_OTLP_ENDPOINT   set: the service exports traces there (README Observability)
#   PEER_ARGS="--store memory --no-changelog"   peer.py arguments: state in memory and not
#                         persisted, as fleetscore keeps it. When not empty, the peer's
#                         throughput is also measured with Quix Streams' defaults (RocksDB state
#                         plus changelog topics) unless PEER_DEFAULTS_TOO=0.
#   KSTREAMS_ARGS="--store memory --no-changelog"   arguments of the Kafka Streams peer
#                         (java -jar bench/e2e/kstreams/target/fleet-kstreams-peer.jar --help):
#                         an in-memory KeyValueStore without a changelog topic, at-least-once,
#                         2 stream threads. Add e.g. "--guarantee exactly_once_v2",
#                         "--threads 3", "--config producer.linger.ms=5". When not empty, its
#                         throughput is also measured with Kafka Streams' defaults (RocksDB
#                         store with its record cache, changelog topic) unless
#                         KSTREAMS_DEFAULTS_TOO=0.
#   KSTREAMS_JVM_OPTS="-Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20"   its JVM
#   KSTREAMS_JAR          a prebuilt peer jar; unset: bench/e2e/kstreams/target/
#                         fleet-kstreams-peer.jar, built first (mvn -q -B package -DskipTests,
#                         Maven Central or ~/.m2) when missing or older than its sources
#   FLEETSCORE_BIN        (target/release/fleetscore; copied at start so a rebuild mid-run
#                         changes nothing; so is the peer's jar)
#   LOADGEN=rust          who produces the load: rust = bench/loadgen (target/release/
#                         fleet-loadgen, LOADGEN_BIN; 1 ms ticks, 0.11 core at 30k events/s),
#                         python = measure.py produce (the generator of all runs before
#                         2026-11-25 03:20 UTC; a third of a core at 30k/s; it fell behind by up
#                         to 25 ms, then sent the backlog in a burst)
#   FLEETSCORE_DATA_DIR   (data/ of this repository; needs cmapss/train_FD001.txt or .txt.gz)
#   SYSTEMS="fleetscore peer kstreams"  PHASES="tput lat"   what to run (for tuning one system)
#   LAT_FRACTIONS="0.5"   latency runs at these fractions of the sustained maximum
#   VISIBLE="fleetscore"  systems whose latency runs also measure the visible latency ("":
#                         none)
#   VISIBLE_READER=rust   the live reader: rust = bench/loadgen's fleet-visible (VISIBLE_BIN,
#                         default next to LOADGEN_BIN; its receipts matched by measure.py
#                         visible-match after the run), python = measure.py visible (the
#                         reader of all runs before 2026-12-01; about a quarter of a core at
#                         22k predictions/s on session 16's machine, taken from the cores the
#                         system and the broker share)
#   VISIBLE_IDLE=10       the reader stops this many seconds after the last prediction once
#                         the load has ended (it stops at once on the expected count)
#   WARM_SECONDS=30 WARM_RATE=20000   broker warm-up before any measurement (0: none)
#   FS_MAX_RATE, PEER_MAX_RATE, KSTREAMS_MAX_RATE   the maximum to take instead of the
#                         measured median (needed when PHASES has no tput)
#   KAFKA_HEAP_OPTS="-Xms6g -Xmx6g"  KAFKA_JVM_OPTS="-XX:MetaspaceSize=96m
#                         -XX:G1HeapRegionSize=16M -XX:InitiatingHeapOccupancyPercent=35"
#                         the broker's JVM as Kafka's documentation recommends for production
#                         (section "Java Version"; G1 with MaxGCPauseMillis=20 comes from
#                         scripts/kafka-broker.sh). With the test script's 512 MB heap the
#                         broker pauses for a young collection every second.
#   MODELS_DIR=models     the published models to score with (engine-rul: greatest version;
#                         only engine-rul and delay-risk are given to fleetscore: the peers
#                         have no interval or anomaly model)
#   MAX_SECONDS=2400      the whole run is stopped after this long (1200 before the third
#                         system)
#   BENCH_NICE            if set (e.g. -10; negative needs root), the run and everything it starts
#                         (broker, systems, load) run at this nice level, so that other work on a
#                         shared machine disturbs the measurement less
# Needs Java 17+ (the broker and the Kafka Streams peer), Maven 3.8+ (to build that peer),
# python3.11 and PyPI (bench/e2e/env.sh), the built binaries
# (cargo build --release -p fleetscore -p fleet-loadgen).
# All traffic goes to the broker on 127.0.0.1. Writes results.jsonl (one JSON object per
# measurement), summary.json, summary.md and every log to DIR (default
# bench/e2e/results/<UTC time>).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd -- "$here/../.." && pwd -P)"

out=""
while (($#)); do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

FS_EVENTS="${FS_EVENTS:-412620}"
PEER_EVENTS="${PEER_EVENTS:-41262}"
KSTREAMS_EVENTS="${KSTREAMS_EVENTS:-412620}"
RUNS="${RUNS:-3}"
LAT_SECONDS="${LAT_SECONDS:-20}"
LAT_WARMUP="${LAT_WARMUP:-10}"
LAT_FRACTIONS="${LAT_FRACTIONS:-0.5}"
WARM_SECONDS="${WARM_SECONDS:-30}"
WARM_RATE="${WARM_RATE:-20000}"
PEER_ARGS="${PEER_ARGS---store memory --no-changelog}"
KSTREAMS_ARGS="${KSTREAMS_ARGS---store memory --no-changelog}"
KSTREAMS_JVM_OPTS="${KSTREAMS_JVM_OPTS:--Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20}"
SYSTEMS="${SYSTEMS:-fleetscore peer kstreams}"
PHASES="${PHASES:-tput lat}"
VISIBLE="${VISIBLE-fleetscore}"
VISIBLE_IDLE="${VISIBLE_IDLE:-10}"
MAX_SECONDS="${MAX_SECONDS:-2400}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms6g -Xmx6g}"
export KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:MetaspaceSize=96m -XX:G1HeapRegionSize=16M -XX:InitiatingHeapOccupancyPercent=35}"
FLEETSCORE_BIN="${FLEETSCORE_BIN:-$repo/target/release/fleetscore}"
LOADGEN="${LOADGEN:-rust}"
LOADGEN_BIN="${LOADGEN_BIN:-$repo/target/release/fleet-loadgen}"
VISIBLE_READER="${VISIBLE_READER:-rust}"
VISIBLE_BIN="${VISIBLE_BIN:-$(dirname -- "$LOADGEN_BIN")/fleet-visible}"
data_dir="${FLEETSCORE_DATA_DIR:-$repo/data}"
models_dir="${MODELS_DIR:-$repo/models}"
out="${out:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd -- "$out" && pwd -P)"
results="$out/results.jsonl"
: >"$results"

log() { printf '[%s] run.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
has() { [[ " $1 " == *" $2 "* ]]; }

if [[ -n "${BENCH_NICE:-}" ]]; then
  renice -n "$BENCH_NICE" -p $$ >/dev/null || die "renice -n $BENCH_NICE failed"
fi

# The service must read only what this script configures.
unset FLEETSCORE_MODELS_DIR FLEETSCORE_KAFKA_BROKERS FLEETSCORE_HTTP_ADDR FLEETSCORE_ADMIN_TOKEN

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fleetscore-e2e.XXXXXX")"
kafka_dir="$tmp/kafka"
broker_started=0
sut_pid=""
visible_pid=""
watchdog=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$watchdog" ]]; then kill "$watchdog" 2>/dev/null || true; fi
  if [[ -n "$sut_pid" ]] && kill -0 "$sut_pid" 2>/dev/null; then
    kill -KILL "$sut_pid" 2>/dev/null || true
  fi
  if [[ -n "$visible_pid" ]]; then kill -KILL "$visible_pid" 2>/dev/null || true; fi
  if ((broker_started)); then
    "$repo/scripts/kafka-broker.sh" stop --dir "$kafka_dir" >/dev/null 2>&1 || true
  fi
  rm -rf -- "$tmp"
  ((rc == 0)) || log "failed (exit $rc); logs in $out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# Watchdog: polls in short sleeps so that nothing of it outlives the run by more than 2 s.
(
  end=$(($(date +%s) + MAX_SECONDS))
  while (($(date +%s) < end)); do sleep 2; done
  log "still running after ${MAX_SECONDS}s: stopping"
  kill -TERM $$
) &
watchdog=$!

# ------------------------------------------------------------------------------ set-up

eval "$("$here/env.sh" --print)" # BENCH_PYTHON, ORT_DYLIB_PATH (also fleetscore's ONNX Runtime)
py() { "$BENCH_PYTHON" "$here/measure.py" "$@"; }

for _ in $(seq 60); do [[ -x "$FLEETSCORE_BIN" ]] && break; sleep 2; done
[[ -x "$FLEETSCORE_BIN" ]] || die "no $FLEETSCORE_BIN (cargo build --release -p fleetscore)"
cp -- "$FLEETSCORE_BIN" "$tmp/fleetscore"
fs="$tmp/fleetscore"
case "$LOADGEN" in
  rust)
    [[ -x "$LOADGEN_BIN" ]] || die "no $LOADGEN_BIN (cargo build --release -p fleet-loadgen)"
    cp -- "$LOADGEN_BIN" "$tmp/fleet-loadgen"
    # shellcheck disable=SC2086 # FS_LOADGEN_ARGS: words on purpose
    produce() { "$tmp/fleet-loadgen" "$@" ${FS_LOADGEN_ARGS:-}; }
    ;;
  python) produce() { py produce "$@"; } ;;
  *) die "LOADGEN must be rust or python, not $LOADGEN" ;;
esac
if [[ -n "$VISIBLE" && "$VISIBLE_READER" == rust ]]; then
  [[ -x "$VISIBLE_BIN" ]] || die "no $VISIBLE_BIN (cargo build --release -p fleet-loadgen)"
  cp -- "$VISIBLE_BIN" "$tmp/fleet-visible"
fi
# The Kafka Streams peer: its fat jar, built when missing or older than its sources (Maven's
# default local repository, so a cached ~/.m2 builds it offline), copied like the binaries.
if has "$SYSTEMS" kstreams; then
  ks_dir="$here/kstreams"
  ks_jar="${KSTREAMS_JAR:-$ks_dir/target/fleet-kstreams-peer.jar}"
  if [[ -z "${KSTREAMS_JAR:-}" ]] &&
    { [[ ! -f "$ks_jar" ]] || [[ -n "$(find "$ks_dir/pom.xml" "$ks_dir/src" -newer "$ks_jar" -print -quit)" ]]; }; then
    log "building the Kafka Streams peer (mvn -q -B package -DskipTests)"
    (cd "$ks_dir" && mvn -q -B package -DskipTests) >"$out/kstreams-build.log" 2>&1 ||
      die "the Kafka Streams peer did not build (see $out/kstreams-build.log)"
  fi
  [[ -f "$ks_jar" ]] || die "no $ks_jar"
  cp -- "$ks_jar" "$tmp/fleet-kstreams-peer.jar"
fi
cmapss="$data_dir/cmapss/train_FD001.txt"
[[ -f "$cmapss" ]] || cmapss+=".gz"  # the plain file if there, else the compressed one
[[ -f "$cmapss" ]] || die "no $cmapss"

events="$tmp/fd001.jsonl"
"$fs" import cmapss "$cmapss" --output "$events" 2>"$out/import.log"
"$fs" feature-sets >"$tmp/feature-sets.json"

# The engine-rul version both systems score with: the greatest published one, pinned in fleetscore.
rul_version="$(find "$models_dir/engine-rul" -mindepth 2 -maxdepth 2 -name manifest.json -printf '%h\n' |
  xargs -n1 basename | sort -V | tail -n1)"
[[ -n "$rul_version" ]] || die "no published engine-rul model under $models_dir/engine-rul"
rul_dir="$models_dir/engine-rul/$rul_version"
# The peers score engine-rul alone: fleetscore gets only engine-rul and delay-risk too (not the
# quantile models of engine-rul's interval, nor engine-anomaly), the same work per event.
mkdir -p "$tmp/models"
cp -R -- "$models_dir/engine-rul" "$models_dir/delay-risk" "$tmp/models/"
models_dir="$tmp/models"

log "starting a fresh Kafka broker"
broker_started=1
bootstrap="$("$repo/scripts/kafka-broker.sh" start --dir "$kafka_dir" 2>"$out/broker-start.log" |
  sed -n 's/^BOOTSTRAP=//p')"
[[ "$bootstrap" == 127.0.0.1:* ]] || die "broker did not start (see $out/broker-start.log)"
log "broker at $bootstrap"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "kafka: ${KAFKA_VERSION:-4.4.0} (scripts/kafka-broker.sh, 1 KRaft node, $(java -version 2>&1 | head -n1))"
  echo "python: $("$BENCH_PYTHON" -c 'import sys, quixstreams, confluent_kafka, onnxruntime, numpy; print(sys.version.split()[0], "quixstreams", quixstreams.__version__, "confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)')"
  echo "fleetscore: $("$fs" --version) ($(sha256sum "$fs" | cut -c1-12), binary from $(date -u -r "$FLEETSCORE_BIN" +%Y-%m-%dT%H:%M:%SZ))"
  echo "model: engine-rul $rul_version ($(sed -n 's/.*"backend": *"\([a-z]*\)".*/\1/p' "$rul_dir/manifest.json"), sha256 $(sha256sum "$rul_dir/model.onnx" | cut -c1-12), $(sed -n 's/.*"description": *"\([^"]*\)".*/\1/p' "$rul_dir/manifest.json"))"
  echo "settings: SYSTEMS=$SYSTEMS PHASES=$PHASES FS_EVENTS=$FS_EVENTS PEER_EVENTS=$PEER_EVENTS KSTREAMS_EVENTS=$KSTREAMS_EVENTS RUNS=$RUNS LAT_SECONDS=$LAT_SECONDS LAT_WARMUP=$LAT_WARMUP LAT_FRACTIONS=$LAT_FRACTIONS WARM_SECONDS=$WARM_SECONDS WARM_RATE=$WARM_RATE VISIBLE=$VISIBLE VISIBLE_READER=$VISIBLE_READER FS_MAX_RATE=${FS_MAX_RATE:-} PEER_MAX_RATE=${PEER_MAX_RATE:-} KSTREAMS_MAX_RATE=${KSTREAMS_MAX_RATE:-}"
  echo "load generator: $LOADGEN"
  echo "fleetscore: FS_BATCH_MAX_RECORDS=${FS_BATCH_MAX_RECORDS:-default} FS_BATCH_MAX_MS=${FS_BATCH_MAX_MS:-default} FS_CONSUMER=${FS_CONSUMER:-} FS_PRODUCER=${FS_PRODUCER:-} FS_KAFKA=${FS_KAFKA:-}"
  echo "peer: PEER_ARGS=$PEER_ARGS"
  if has "$SYSTEMS" kstreams; then
    echo "kstreams: $(java -jar "$tmp/fleet-kstreams-peer.jar" --version) (jar sha256 $(sha256sum "$tmp/fleet-kstreams-peer.jar" | cut -c1-12)); KSTREAMS_ARGS=$KSTREAMS_ARGS; KSTREAMS_JVM_OPTS=$KSTREAMS_JVM_OPTS"
  fi
  echo "broker JVM: $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS"
  echo "nice: $(ps -o ni= -p $$ | tr -d ' ')"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

# ------------------------------------------------------------------- systems under test

free_port() { "$BENCH_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

toml_table() { # "k=v,k=v" -> TOML lines "k" = "v"
  local IFS=, kv
  for kv in $1; do
    if [[ -n "$kv" ]]; then printf '"%s" = "%s"\n' "${kv%%=*}" "${kv#*=}"; fi
  done
}

# start_system KIND NAME TELEMETRY_TOPIC PREDICTIONS_TOPIC [PEER ARGS...]: in the background.
start_system() {
  local kind=$1 name=$2 tel=$3 pred=$4
  shift 4
  if [[ "$kind" == fleetscore ]]; then
    http_port="$(free_port)"
    {
      echo "[models]"
      echo "dir = \"$models_dir\""
      echo "pins = { \"engine-rul\" = \"$rul_version\" }"
      echo "[http]"
      echo "addr = \"127.0.0.1:$http_port\""
      echo "[kafka]"
      echo "brokers = \"$bootstrap\""
      echo "group_id = \"$name\""
      echo "telemetry_topic = \"$tel\""
      echo "schedule_topic = \"fs.schedule\""
      echo "predictions_topic = \"$pred\""
      echo "deadletter_topic = \"fs.deadletter\""
      # FS_ALERTS_TOPIC="": not set (builds from before alerts refuse the key).
      if [[ -n "${FS_ALERTS_TOPIC-fs.alerts}" ]]; then echo "alerts_topic = \"${FS_ALERTS_TOPIC-fs.alerts}\""; fi
      if [[ -n "${FS_BATCH_MAX_RECORDS:-}" ]]; then echo "batch_max_records = $FS_BATCH_MAX_RECORDS"; fi
      if [[ -n "${FS_BATCH_MAX_MS:-}" ]]; then echo "batch_max_ms = $FS_BATCH_MAX_MS"; fi
      if [[ -n "${FS_KAFKA:-}" ]]; then printf '%b\n' "$FS_KAFKA"; fi
      echo "[kafka.consumer]"
      toml_table "${FS_CONSUMER:-}"
      echo "[kafka.producer]"
      toml_table "${FS_PRODUCER:-}"
    } >"$out/$name.toml"
    "$fs" serve --config "$out/$name.toml" >"$out/$name.log" 2>&1 &
    sut_pid=$!
    open_pages "$name"
    return
  elif [[ "$kind" == kstreams ]]; then
    # shellcheck disable=SC2086 # KSTREAMS_JVM_OPTS: words on purpose
    java $KSTREAMS_JVM_OPTS -jar "$tmp/fleet-kstreams-peer.jar" --brokers "$bootstrap" \
      --input-topic "$tel" --output-topic "$pred" --application-id "$name" \
      --model-dir "$rul_dir" --feature-sets "$tmp/feature-sets.json" \
      --state-dir "$tmp/kstreams-state" --loglevel info "$@" >"$out/$name.log" 2>&1 &
  else
    "$BENCH_PYTHON" "$here/peer.py" --brokers "$bootstrap" --input-topic "$tel" \
      --output-topic "$pred" --group "$name" --model-dir "$rul_dir" \
      --feature-sets "$tmp/feature-sets.json" --state-dir "$tmp/quix-state" \
      --loglevel INFO "$@" >"$out/$name.log" 2>&1 &
  fi
  sut_pid=$!
}

# open_pages NAME: FS_EVENT_STREAMS readers of fleetscore's live updates, each a page's stream,
# kept open until stop_system (they connect as soon as HTTP listens).
page_pids=()
open_pages() {
  local i
  page_started=$(date +%s.%N)
  for ((i = 0; i < ${FS_EVENT_STREAMS:-0}; i++)); do
    curl -sN --retry 60 --retry-connrefused --retry-delay 1 \
      -o "$tmp/page.$i" "http://127.0.0.1:$http_port/events" 2>/dev/null &
    page_pids+=($!)
  done
}

# close_pages NAME: the readers' bytes per second each, to OUT/NAME.pages.
close_pages() {
  ((${#page_pids[@]})) || return 0
  kill "${page_pids[@]}" 2>/dev/null || true
  wait "${page_pids[@]}" 2>/dev/null || true
  local seconds i
  seconds="$(echo "$(date +%s.%N) - $page_started" | bc)"
  for ((i = 0; i < ${#page_pids[@]}; i++)); do
    printf 'page %d: %d bytes in %.1f s\n' "$i" "$(stat -c %s "$tmp/page.$i")" "$seconds"
  done >"$out/$1.pages"
  page_pids=()
}

# CPU snapshot: wall seconds, CPU ticks of the system under test and of the broker, busy and
# total ticks of the whole machine (/proc/stat; idle and iowait are not busy).
snap() {
  local sut broker
  sut="$(awk '{ print $14 + $15 }' "/proc/$sut_pid/stat")"
  broker="$(awk '{ print $14 + $15 }' "/proc/$broker_pid/stat")"
  printf '%s %s %s %s\n' "$(date +%s.%N)" "$sut" "$broker" \
    "$(awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)"
}

# cpu_record SYSTEM NAME PHASE EVENTS SNAP_BEFORE SNAP_AFTER [LOADGEN_CPU_S]
cpu_record() {
  py cpu --system "$1" --name "$2" --phase "$3" --events "$4" --before "$5" --after "$6" \
    --loadgen-cpu-s "${7:-0}" --hz "$(getconf CLK_TCK)" --ncpu "$(nproc)" >>"$results"
}

# stop_system KIND NAME: SIGTERM, bounded wait (fleetscore's /metrics saved first).
stop_system() {
  local kind=$1 name=$2
  if [[ "$kind" == fleetscore ]]; then
    curl -sf --max-time 5 "http://127.0.0.1:$http_port/metrics" >"$out/$name.metrics" || true
  fi
  close_pages "$name"
  kill -TERM "$sut_pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$sut_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$sut_pid" 2>/dev/null; then
    log "$name did not stop within 30 s: SIGKILL"
    kill -KILL "$sut_pid" 2>/dev/null || true
  fi
  wait "$sut_pid" 2>/dev/null || true
  sut_pid=""
}

alive_or_die() {
  kill -0 "$sut_pid" 2>/dev/null || die "$1 exited early (see $out/$1.log)"
}

# wait_for NAME TOPIC COUNT TIMEOUT: until TOPIC holds COUNT records, while the system runs;
# prints how many it holds.
wait_for() {
  local name=$1 topic=$2 count=$3 timeout=$4 deadline=$((SECONDS + $4))
  while ((SECONDS < deadline)); do
    alive_or_die "$name"
    if py wait --brokers "$bootstrap" --topic "$topic" --count "$count" --timeout 5 --print 2>/dev/null; then
      return 0
    fi
  done
  die "$name: $topic has fewer than $count records after ${timeout}s (see $out/$name.log)"
}

median_tput() { # SYSTEM
  "$BENCH_PYTHON" -c '
import json, statistics, sys
v = [r["events_per_s"] for r in map(json.loads, open(sys.argv[1])) if r["what"] == "throughput" and r["system"] == sys.argv[2]]
print(statistics.median(v))' "$results" "$1"
}

# start_visible SYSTEM RUN RATE FRACTION TELEMETRY_TOPIC PREDICTIONS_TOPIC NAME: the live
# read_committed reader (VISIBLE_READER), in the background, before the system starts.
start_visible() {
  rm -f -- "$tmp/visible.ready" "$tmp/visible.done" "$tmp/visible.reader.json"
  visible_series="$out/$7.visible.series"
  if [[ "$VISIBLE_READER" == rust ]]; then
    # What visible_done gives measure.py visible-match once the reader is done.
    visible_match=(--brokers "$bootstrap" --source-topic "$5" --system "$1" --run "$2"
      --rate "$3" --fraction "$4" --warmup-s "$LAT_WARMUP" --done-file "$tmp/visible.done"
      --receipts "$tmp/visible.receipts" --reader-json "$tmp/visible.reader.json" --series)
    "$tmp/fleet-visible" --brokers "$bootstrap" --pred-topic "$6" \
      --receipts "$tmp/visible.receipts" --ready-file "$tmp/visible.ready" \
      --done-file "$tmp/visible.done" --idle-s "$VISIBLE_IDLE" \
      --max-s "$((LAT_WARMUP + LAT_SECONDS + 300))" \
      >"$tmp/visible.reader.json" 2>"$visible_series" &
  else
    "$BENCH_PYTHON" "$here/measure.py" visible --brokers "$bootstrap" --source-topic "$5" \
      --pred-topic "$6" --system "$1" --run "$2" --rate "$3" --fraction "$4" \
      --warmup-s "$LAT_WARMUP" --ready-file "$tmp/visible.ready" --done-file "$tmp/visible.done" \
      --idle-s "$VISIBLE_IDLE" --max-s "$((LAT_WARMUP + LAT_SECONDS + 300))" --series \
      >"$tmp/visible.json" 2>"$visible_series" &
  fi
  visible_pid=$!
}

# visible_ready: until the reader has received the probe's prediction (it is fetching).
visible_ready() {
  local deadline=$((SECONDS + 60))
  until [[ -f "$tmp/visible.ready" ]]; do
    kill -0 "$visible_pid" 2>/dev/null || die "the visible-latency reader exited early"
    ((SECONDS < deadline)) || die "the visible-latency reader received nothing within 60 s"
    sleep 0.1
  done
}

# visible_done EXPECT SINCE_MS: tells the reader the load has ended, waits for its result
# (bounded: it stops by itself on the count, VISIBLE_IDLE s without a record, or its deadline;
# SIGTERM makes it print what it got) and appends it to the results.
visible_done() {
  printf '{"expect": %d, "since_ms": %d}\n' "$1" "$2" >"$tmp/visible.done.tmp"
  mv -- "$tmp/visible.done.tmp" "$tmp/visible.done"
  local deadline=$((SECONDS + VISIBLE_IDLE + 120))
  while kill -0 "$visible_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$visible_pid" 2>/dev/null; then
    log "the visible-latency reader is still running: SIGTERM"
    kill -TERM "$visible_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$visible_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$visible_pid" 2>/dev/null || true
  fi
  wait "$visible_pid" 2>/dev/null || log "the visible-latency reader exited non-zero"
  visible_pid=""
  if [[ "$VISIBLE_READER" == rust ]]; then
    py visible-match "${visible_match[@]}" >"$tmp/visible.json" 2>>"$visible_series"
  fi
  tee -a "$results" <"$tmp/visible.json" >&2
}

json_field() { "$BENCH_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# --------------------------------------------------------------------------- the runs

# throughput_runs SYSTEM KIND PREFIX INPUT_TOPIC EVENTS [PEER ARGS...]
throughput_runs() {
  local system=$1 kind=$2 p=$3 input=$4 n=$5 r name first a b
  shift 5
  for r in $(seq "$RUNS"); do
    name="$p-tput-$r"
    log "$system: throughput run $r/$RUNS"
    py topics --brokers "$bootstrap" --partitions 3 --log-append-time "$p.pred.t$r"
    start_system "$kind" "$name" "$input" "$p.pred.t$r" "$@"
    first="$(wait_for "$name" "$p.pred.t$r" 1 300)"
    a="$(snap)"
    wait_for "$name" "$p.pred.t$r" "$n" 600 >/dev/null
    b="$(snap)"
    stop_system "$kind" "$name"
    cpu_record "$system" "$name" tput "$((n - first))" "$a" "$b"
    py throughput --brokers "$bootstrap" --topic "$p.pred.t$r" --system "$system" --run "$r" \
      --expect "$n" | tee -a "$results" >&2
  done
}

# latency_runs SYSTEM KIND PREFIX [PEER ARGS...]: RUNS runs at each of LAT_FRACTIONS × max.
latency_runs() {
  local system=$1 kind=$2 p=$3 r f pct name max rate sent since a b tel pred visible scrape_pid
  shift 3
  local override="${system^^}_MAX_RATE"
  override="${override/FLEETSCORE/FS}"
  if [[ -n "${!override:-}" ]]; then max="${!override}"; else max="$(median_tput "$system")"; fi
  for f in $LAT_FRACTIONS; do
    pct="$(awk -v f="$f" 'BEGIN { printf "%d", f * 100 }')"
    rate="$(awk -v m="$max" -v f="$f" 'BEGIN { printf "%d", m * f }')"
    for r in $(seq "$RUNS"); do
      name="$p-lat$pct-$r"
      tel="$p.tel.l$pct.$r"
      pred="$p.pred.l$pct.$r"
      log "$system: latency run $r/$RUNS at $rate events/s ($f × $max)"
      py topics --brokers "$bootstrap" --partitions 3 --log-append-time "$tel"
      py topics --brokers "$bootstrap" --partitions 3 --log-append-time "$pred"
      visible=0
      if has "$VISIBLE" "$system"; then
        visible=1
        start_visible "$system" "$r" "$rate" "$f" "$tel" "$pred" "$name"
      fi
      start_system "$kind" "$name" "$tel" "$pred" "$@"
      # Caught up: one probe event scored before the measured load starts.
      produce --brokers "$bootstrap" --topic "$tel" --events "$events" --tag "P$r" \
        --count 1 >/dev/null
      wait_for "$name" "$pred" 1 120 >/dev/null
      if ((visible)); then visible_ready; fi
      a="$(snap)"
      # fleetscore's stage histograms when the measured window begins (after the warm-up), to
      # be subtracted from those at its end (measure.py stages).
      scrape_pid=""
      if [[ "$kind" == fleetscore ]]; then
        (sleep "$LAT_WARMUP"
          curl -sf --max-time 5 "http://127.0.0.1:$http_port/metrics" >"$out/$name.metrics-start" ||
            true) &
        scrape_pid=$!
      fi
      produce --brokers "$bootstrap" --topic "$tel" --events "$events" --tag "L$r" \
        --rate "$rate" --seconds "$((LAT_WARMUP + LAT_SECONDS))" >"$tmp/produce.json"
      if [[ -n "$scrape_pid" ]]; then wait "$scrape_pid" || true; fi
      cat "$tmp/produce.json" >>"$results"
      sent="$(json_field "$tmp/produce.json" sent)"
      since="$(json_field "$tmp/produce.json" start_ms)"
      wait_for "$name" "$pred" "$((sent + 1))" 180 >/dev/null
      b="$(snap)"
      if ((visible)); then visible_done "$((sent + 1))" "$since"; fi
      stop_system "$kind" "$name"
      cpu_record "$system" "$name" "lat$pct" "$sent" "$a" "$b" "$(json_field "$tmp/produce.json" cpu_s)"
      py latency --brokers "$bootstrap" --source-topic "$tel" --pred-topic "$pred" \
        --system "$system" --run "$r" --rate "$rate" --fraction "$f" --since-ms "$since" \
        --warmup-s "$LAT_WARMUP" --series 2>>"$out/$name.series" | tee -a "$results" >&2
      if [[ "$kind" == fleetscore ]]; then
        py stages --start "$out/$name.metrics-start" --end "$out/$name.metrics" --run "$r" \
          --name "$name" | tee -a "$results" >&2
      fi
    done
  done
}

broker_pid="$(cat "$kafka_dir/node-1/kafka.pid")"
t0=$SECONDS
py topics --brokers "$bootstrap" --partitions 3 fs.tel.tput py.tel.tput ks.tel.tput fs.schedule \
  fs.deadletter fs.alerts
log "pre-producing $FS_EVENTS events for fleetscore, $PEER_EVENTS for the Quix peer and $KSTREAMS_EVENTS for the Kafka Streams peer (those in SYSTEMS)"
if has "$SYSTEMS" fleetscore; then
  produce --brokers "$bootstrap" --topic fs.tel.tput --events "$events" --tag R \
    --count "$FS_EVENTS" --linger-ms 5 >>"$results"
fi
if has "$SYSTEMS" peer; then
  produce --brokers "$bootstrap" --topic py.tel.tput --events "$events" --tag R \
    --count "$PEER_EVENTS" --linger-ms 5 >>"$results"
fi
if has "$SYSTEMS" kstreams; then
  produce --brokers "$bootstrap" --topic ks.tel.tput --events "$events" --tag R \
    --count "$KSTREAMS_EVENTS" --linger-ms 5 >>"$results"
fi

# A fresh broker's JVM is cold: its first heavy minute (JIT compilation, heap growth) costs it
# up to a core more than later and backed up the first latency run by seconds in trials. Warm it
# with the real traffic pattern first (fleetscore at a fixed rate); nothing of this is measured.
if ((WARM_SECONDS > 0)); then
  log "warming the broker up: fleetscore at $WARM_RATE events/s for $WARM_SECONDS s (not measured)"
  py topics --brokers "$bootstrap" --partitions 3 warm.tel warm.pred
  start_system fleetscore warm warm.tel warm.pred
  produce --brokers "$bootstrap" --topic warm.tel --events "$events" --tag W \
    --rate "$WARM_RATE" --seconds "$WARM_SECONDS" >/dev/null
  stop_system fleetscore warm
fi

read -r -a peer_args <<<"$PEER_ARGS"
read -r -a ks_args <<<"$KSTREAMS_ARGS"
if has "$SYSTEMS" fleetscore; then
  if has "$PHASES" tput; then throughput_runs fleetscore fleetscore fs fs.tel.tput "$FS_EVENTS"; fi
  if has "$PHASES" lat; then latency_runs fleetscore fleetscore fs; fi
fi
if has "$SYSTEMS" peer; then
  if has "$PHASES" tput; then throughput_runs peer peer py py.tel.tput "$PEER_EVENTS" "${peer_args[@]}"; fi
  if has "$PHASES" lat; then latency_runs peer peer py "${peer_args[@]}"; fi
  if has "$PHASES" tput && ((${#peer_args[@]})) && [[ "${PEER_DEFAULTS_TOO:-1}" == 1 ]]; then
    # The same peer with Quix Streams' own defaults (RocksDB state, changelog topics): throughput.
    throughput_runs peer-quix-defaults peer pyd py.tel.tput "$PEER_EVENTS"
  fi
fi
if has "$SYSTEMS" kstreams; then
  if has "$PHASES" tput; then throughput_runs kstreams kstreams ks ks.tel.tput "$KSTREAMS_EVENTS" "${ks_args[@]}"; fi
  if has "$PHASES" lat; then latency_runs kstreams kstreams ks "${ks_args[@]}"; fi
  if has "$PHASES" tput && ((${#ks_args[@]})) && [[ "${KSTREAMS_DEFAULTS_TOO:-1}" == 1 ]]; then
    # The same peer with Kafka Streams' own defaults (RocksDB store, changelog topic): throughput.
    throughput_runs kstreams-defaults kstreams ksd ks.tel.tput "$KSTREAMS_EVENTS"
  fi
fi
if has "$SYSTEMS" fleetscore && has "$PHASES" tput; then
  for p in peer:py kstreams:ks; do
    if has "$SYSTEMS" "${p%%:*}"; then
      log "comparing the ${p%%:*} predictions with fleetscore's (throughput run 1, same events)"
      py compare --brokers "$bootstrap" --a fs.pred.t1 --b "${p#*:}.pred.t1" --system "${p%%:*}" |
        tee -a "$results" >&2
    fi
  done
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
py report "$results" >"$out/summary.json"
py report "$results" --markdown >"$out/summary.md"
log "done in $((SECONDS - t0)) s; results in $out"
cat "$out/summary.md"
