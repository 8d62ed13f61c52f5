#!/usr/bin/env bash
# A/B of the exactly-once commit (2026-11-30, later): base = 02f1c9e (the commit runs on the
# pipeline thread), new = bacbe6c (prepared on the pipeline thread, finished on a commit thread
# while the next transaction's batches go on), new at the default 50 ms and at 20 ms.
# One run.sh per variant and round, alternating; throughput (3 runs) then latency at 19,004/s
# (3 runs) with the commit phases logged at debug. c6b = c6b2686 (at-least-once, no changelog:
# the baseline), throughput only. BINS holds fleetscore-base, fleetscore-new,
# fleetscore-c6b and fleet-loadgen.
set -u
out="$1"; shift
variants="${*:-base new new20}"
mkdir -p "$out"
for v in $variants; do
  bin=$v interval=50 phases="tput lat"
  case $v in new*) bin=new; interval=${v#new}; interval=${interval:-50};; base*) bin=base; interval=${v#base}; interval=${interval:-50};; esac
  kafka="guarantee = \"exactly_once\"
commit_interval_ms = $interval"
  if [[ $v == c6b ]]; then kafka=""; phases="tput"; fi
  echo "== $v start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  RUST_LOG=info,fleetscore::kafka::commit=debug SYSTEMS=fleetscore PHASES="$phases" RUNS=3 \
    LAT_SECONDS=20 LAT_WARMUP=10 FS_EVENTS=206310 WARM_SECONDS=10 FS_MAX_RATE=38008.3 \
    FLEETSCORE_BIN=${BINS:-/tmp/s9-bins}/fleetscore-$bin LOADGEN_BIN=${BINS:-/tmp/s9-bins}/fleet-loadgen \
    FS_KAFKA="$kafka" \
    /work/main/bench/e2e/run.sh --out "$out/$v" >"$out/$v.log" 2>&1
  echo "== $v exit $? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
