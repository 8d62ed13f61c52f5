#!/usr/bin/env bash
set -euo pipefail
out="$(mkdir -p "$1" && cd -- "$1" && pwd -P)"
cd /work/main
for round in 1 2; do
  for v in old new; do
    lg=/tmp/lg1/fleet-loadgen; [[ $v == new ]] && lg=/tmp/lg5/fleet-loadgen
    LOADGEN_BIN=$lg FLEETSCORE_BIN=/tmp/bins/s17start SYSTEMS=fleetscore PHASES=lat FS_MAX_RATE=44182 RUNS=2 \
      bash bench/e2e/run.sh --out "$out/$v-$round" >"$out/$v-$round.out" 2>&1
  done
done
