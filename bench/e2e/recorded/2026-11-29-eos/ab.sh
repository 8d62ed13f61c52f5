#!/usr/bin/env bash
set -u
cd /work/main
export FLEETSCORE_VENV=/root/.cache/fleetscore/venv
out=/tmp/e2e-ab; rm -rf $out; mkdir -p $out
for round in 1; do
  for sys in base eos alo; do
    bin=/tmp/fleetscore-new; extra=""
    [[ $sys == base ]] && bin=/tmp/fleetscore-base
    [[ $sys == alo ]] && extra='guarantee = "at_least_once"'
    echo "== round $round $sys $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    SYSTEMS=fleetscore PHASES=tput RUNS=3 FS_EVENTS=206310 WARM_SECONDS=10 FLEETSCORE_BIN=$bin \
      LOADGEN_BIN=/root/.cache/fleetscore/target/release/fleet-loadgen FS_KAFKA="$extra" \
      bench/e2e/run.sh --out $out/$sys-$round > $out/$sys-$round.log 2>&1
    grep -h '"throughput"' $out/$sys-$round/*.jsonl 2>/dev/null | python3 -c 'import sys,json; print([json.loads(l)["events_per_s"] for l in sys.stdin])'
  done
done
