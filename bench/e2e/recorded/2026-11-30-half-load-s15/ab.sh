#!/usr/bin/env bash
# Session 15, issue #13: the visible p99 at 22,091 events/s (session 14's half load on this
# machine) with the session's start (OLD, 2b84e85) and with its CPU cuts (NEW, 3e27664), two
# rounds alternating, one latency run each on a fresh broker (bench/e2e/cpu-ab.sh).
#   OLD=... NEW=... LOADGEN_BIN=... bench/e2e/recorded/2026-11-30-half-load-s15/ab.sh
PHASES=lat FS_MAX_RATE=44182 EVENTS=20631 RUNS=1 \
  exec "$(dirname -- "${BASH_SOURCE[0]}")/../../cpu-ab.sh" "$(dirname -- "${BASH_SOURCE[0]}")"
