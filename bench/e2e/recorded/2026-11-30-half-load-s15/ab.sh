#!/usr/bin/env bash
# Session 15, issue #13: the visible p99 at 22,091 events/s (session 14's half load on this
# machine) with the session's start (OLD, 2b84e85) and with its CPU cuts (NEW, 3e27664), two
# rounds alternating, one bench/e2e/run.sh latency run each on a fresh broker.
#   OLD=... NEW=... LOADGEN_BIN=... bench/e2e/recorded/2026-11-30-half-load-s15/ab.sh
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$here/../../../.."
for round in 1 2; do
  for v in old new; do
    bin=$OLD; [[ $v == new ]] && bin=$NEW
    FLEETSCORE_BIN=$bin SYSTEMS=fleetscore PHASES=lat FS_MAX_RATE=44182 FS_EVENTS=20631 RUNS=1 \
      bash bench/e2e/run.sh --out "$here/$v-$round" >"$here/$v-$round.out" 2>&1
  done
done
