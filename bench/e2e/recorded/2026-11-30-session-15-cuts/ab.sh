#!/usr/bin/env bash
# Session 15, issue #18: service CPU per event at full load, the session's start (OLD, 2b84e85)
# against the build with both of its cuts (NEW, the prediction writer and the rolling lanes), two rounds alternating, each
# a bench/e2e/run.sh throughput phase of 3 runs on a fresh broker.
#   OLD=path/to/old/fleetscore NEW=path/to/new/fleetscore LOADGEN_BIN=... \
#     bench/e2e/recorded/2026-11-30-session-15-cuts/ab.sh
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$here/../../../.."
for round in 1 2; do
  for v in old new; do
    bin=$OLD; [[ $v == new ]] && bin=$NEW
    FLEETSCORE_BIN=$bin SYSTEMS=fleetscore PHASES=tput FS_EVENTS=412620 RUNS=3 \
      bash bench/e2e/run.sh --out "$here/$v-$round" >"$here/$v-$round.out" 2>&1
  done
done
