#!/usr/bin/env bash
# The fleet view's cost on the service (issue #16), back to back: the same build (BIN), the
# same input; "none" with no page open, "pages10" with 10 pages open on GET /events all along
# (each a curl reading the live updates: with 1,000 aircraft all changing, every update carries
# every row). Throughput (3 runs) then latency at 19,004/s (3 runs), per variant and round,
# alternating (ABBA over two rounds: OUT/r1 none pages10, OUT/r2 pages10 none).
#   BIN=... LOADGEN_BIN=... ab.sh OUT [VARIANTS...]   (default variants: none pages10)
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
out="$1"; shift
variants="${*:-none pages10}"
mkdir -p "$out"
for v in $variants; do
  pages=0
  if [[ $v == pages10 ]]; then pages=10; fi
  echo "== $v start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  FS_EVENT_STREAMS=$pages SYSTEMS=fleetscore PHASES="${PHASES:-tput lat}" RUNS=3 \
    LAT_SECONDS=20 LAT_WARMUP=10 FS_EVENTS=206310 WARM_SECONDS=10 FS_MAX_RATE=38008.3 \
    FS_KAFKA="commit_interval_ms = 20" FLEETSCORE_BIN="$BIN" LOADGEN_BIN="$LOADGEN_BIN" \
    "$repo/bench/e2e/run.sh" --out "$out/$v" >"$out/$v.log" 2>&1
  echo "== $v exit $? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
