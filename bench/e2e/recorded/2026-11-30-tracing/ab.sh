#!/usr/bin/env bash
# Tracing off vs on (issue #15), back to back: the same build (BIN), the same input (every event
# with a traceparent of its own, 1 in 100 sampled upstream, as a traced producer sends them);
# "on" exports to bench/e2e/otlp_sink.py with the default sampling (a sampled link samples its
# batch, otherwise ratio 1.0: every batch traced). Throughput (3 runs) then latency at
# 19,004/s (3 runs), per variant and round, alternating. "base" = BASE_BIN, the build this
# session started from (no tracing code, no drift window), same input and settings.
#   BIN=... LOADGEN_BIN=... [BASE_BIN=...] [PHASES="tput"] ab.sh OUT [VARIANTS...]
#   (default variants: off on)
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
out="$1"; shift
variants="${*:-off on}"
mkdir -p "$out"
port=43180
for v in $variants; do
  endpoint="" bin="$BIN"
  if [[ $v == base ]]; then bin="$BASE_BIN"; fi
  if [[ $v == on ]]; then
    python3 "$repo/bench/e2e/otlp_sink.py" $port >"$out/$v.sink.log" 2>&1 &
    sink=$!
    endpoint="http://127.0.0.1:$port"
  fi
  echo "== $v start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" SYSTEMS=fleetscore PHASES="${PHASES:-tput lat}" RUNS=3 \
    LAT_SECONDS=20 LAT_WARMUP=10 FS_EVENTS=206310 WARM_SECONDS=10 FS_MAX_RATE=38008.3 \
    FS_LOADGEN_ARGS="--traceparent-sampled-every 100" \
    FS_KAFKA="commit_interval_ms = 20" FLEETSCORE_BIN="$bin" LOADGEN_BIN="$LOADGEN_BIN" \
    "$repo/bench/e2e/run.sh" --out "$out/$v" >"$out/$v.log" 2>&1
  echo "== $v exit $? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ $v == on ]]; then kill "$sink"; wait "$sink" 2>/dev/null; fi
done
