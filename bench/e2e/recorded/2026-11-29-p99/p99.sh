#!/usr/bin/env bash
# Driver of the 2026-11-29 visible-latency measurements (see README.md here): one run.sh per
# variant, back to back, each after the machine's 1-minute load is at most 1.5 (polled once a
# minute, for at most WAIT_MAX minutes, default 20; the load measured is logged either way).
#
#   bench/e2e/recorded/2026-11-29-p99/p99.sh OUT_DIR VARIANT...
#
# VARIANT: base (the build c6b2686: at-least-once, no changelog; throughput only),
# eosN (exactly_once, commit_interval_ms = N), aloN (at_least_once, commit_interval_ms = N).
# The first latency variant without FS_MAX_RATE in the environment takes half its own
# sustained maximum; export FS_MAX_RATE to hold every variant at the same rate. PHASES (default
# "tput lat") is passed on.
set -u
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd -- "$here/../../../.." && pwd -P)"
out="$1"
shift
mkdir -p "$out"
bins=/tmp/wt-p99-bins  # private copies: a rebuild during the runs changes nothing
for v in "$@"; do
  for i in $(seq "${WAIT_MAX:-20}"); do
    load="$(cut -d' ' -f1 /proc/loadavg)"
    awk -v l="$load" 'BEGIN { exit !(l <= 1.5) }' && break
    echo "== $v: load $load > 1.5 at $(date -u +%T), waiting a minute ($i/${WAIT_MAX:-20})"
    sleep 60
  done
  echo "== $v: start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  bin="$bins/fleetscore-new" phases="${PHASES:-tput lat}" kafka=""
  case "$v" in
    base) bin="$bins/fleetscore-base-c6b2686"; phases="tput" ;;
    eos*) kafka="guarantee = \"exactly_once\"\ncommit_interval_ms = ${v#eos}" ;;
    alo*) kafka="guarantee = \"at_least_once\"\ncommit_interval_ms = ${v#alo}" ;;
    *) echo "unknown variant $v"; exit 2 ;;
  esac
  SYSTEMS=fleetscore PHASES="$phases" RUNS=3 FS_EVENTS=206310 WARM_SECONDS=10 \
    FLEETSCORE_BIN="$bin" LOADGEN_BIN="$bins/fleet-loadgen" FS_KAFKA="$kafka" \
    "$repo/bench/e2e/run.sh" --out "$out/$v" >"$out/$v.log" 2>&1
  echo "== $v: exit $? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -h '"what": "throughput"\|"what": "latency"' "$out/$v/results.jsonl" 2>/dev/null |
    "${BENCH_PYTHON:-python3}" -c '
import json, sys
for r in map(json.loads, sys.stdin):
    if r["what"] == "throughput":
        print("  tput", r["run"], r["events_per_s"])
    else:
        print("  lat", r.get("measure", "produced"), r["run"], r["rate"],
              *(f"{k}={r.get(k)}" for k in ("p50_ms", "p99_ms", "max_ms", "stopped")))'
done
