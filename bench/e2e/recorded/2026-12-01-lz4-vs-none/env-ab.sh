#!/usr/bin/env bash
# env A/B on one binary: ROUNDS rounds, each runs A (env A_ENV) then B (env B_ENV)
set -euo pipefail
out="$(mkdir -p "$1" && cd -- "$1" && pwd -P)"
cd /work/main
for round in $(seq "${ROUNDS:-2}"); do
  for v in old new; do
    e=$A_ENV; [[ $v == new ]] && e=$B_ENV
    env $e FLEETSCORE_BIN=$BIN SYSTEMS=fleetscore PHASES="${PHASES:-tput}" FS_EVENTS="${EVENTS:-412620}" RUNS="${RUNS:-3}" \
      bash bench/e2e/run.sh --out "$out/$v-$round" >"$out/$v-$round.out" 2>&1
  done
done
python3 bench/e2e/rounds.py "$out"
