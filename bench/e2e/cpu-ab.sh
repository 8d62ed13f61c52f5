#!/usr/bin/env bash
# Service CPU per event, two builds back to back (issue #18's before/after): ROUNDS rounds
# (default 2), each running OLD then NEW through a bench/e2e/run.sh phase (PHASES, default tput:
# full load; `lat` with FS_MAX_RATE for a fixed rate) of RUNS runs (default 3) of EVENTS events
# (default 412,620) on a fresh broker. Results per build and round in OUT/{old,new}-ROUND/
# (results.jsonl: `what=cpu` records); prints the CPU per event of every run and the medians,
# overall and per round (bench/e2e/rounds.py: the machine's speed can drift between rounds
# more than a change moves it).
#   OLD=path/to/old/fleetscore NEW=path/to/new/fleetscore LOADGEN_BIN=... bench/e2e/cpu-ab.sh OUT
set -euo pipefail
out="$(mkdir -p "$1" && cd -- "$1" && pwd -P)"
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
for round in $(seq "${ROUNDS:-2}"); do
  for v in old new; do
    bin=$OLD; [[ $v == new ]] && bin=$NEW
    FLEETSCORE_BIN=$bin SYSTEMS=fleetscore PHASES="${PHASES:-tput}" FS_EVENTS="${EVENTS:-412620}" RUNS="${RUNS:-3}" \
      bash bench/e2e/run.sh --out "$out/$v-$round" >"$out/$v-$round.out" 2>&1
  done
done
python3 bench/e2e/rounds.py "$out"
