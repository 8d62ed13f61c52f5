#!/usr/bin/env bash
# Throughput only, alternating: c6b2686 (at-least-once, no changelog: issue #13's baseline; no
# alerts topic, which it predates) and new (bacbe6c) exactly-once at 20 ms, twice each.
set -u
out="$1"; mkdir -p "$out"
for r in 1 2; do
  for v in c6b new20; do
    echo "== $v-$r start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ $v == c6b ]]; then bin=c6b kafka="" alerts=""; else bin=new kafka='guarantee = "exactly_once"\ncommit_interval_ms = 20' alerts=fs.alerts; fi
    SYSTEMS=fleetscore PHASES=tput RUNS=3 FS_EVENTS=206310 WARM_SECONDS=10 \
      FLEETSCORE_BIN=${BINS:-/tmp/s9-bins}/fleetscore-$bin LOADGEN_BIN=${BINS:-/tmp/s9-bins}/fleet-loadgen \
      FS_KAFKA="$kafka" FS_ALERTS_TOPIC="$alerts" \
      /work/main/bench/e2e/run.sh --out "$out/$v-$r" >"$out/$v-$r.log" 2>&1
    echo "== $v-$r exit $? end $(date -u +%T)"
  done
done
