#!/usr/bin/env bash
# A/B of the exactly-once commit (2026-11-30): base = ed8a8ff (changelog written after the
# outputs are acknowledged), new = 4b20f38 (changelog written first, acknowledged with them).
# One run.sh per variant and round, alternating; throughput (3 runs) then latency at 19,004/s
# (2 runs) with the commit phases logged at debug.
set -u
out="$1"; rounds="${2:-1}"
mkdir -p "$out"
for r in $(seq "$rounds"); do
  for v in base new; do
    echo "== $v round $r start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    RUST_LOG=info,fleetscore::kafka::commit=debug SYSTEMS=fleetscore PHASES="tput lat" RUNS=3 \
      LAT_SECONDS=20 LAT_WARMUP=10 FS_EVENTS=206310 WARM_SECONDS=10 FS_MAX_RATE=38008.3 \
      FLEETSCORE_BIN=${BINS:-/tmp/s8-bins}/fleetscore-$v LOADGEN_BIN=${BINS:-/tmp/s8-bins}/fleet-loadgen \
      FS_KAFKA='guarantee = "exactly_once"' \
      /work/main/bench/e2e/run.sh --out "$out/$v-$r" >"$out/$v-$r.log" 2>&1
    echo "== $v round $r exit $? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
