#!/usr/bin/env bash
# Peak /score throughput of two or more builds, interleaved (issue #20's "without losing more
# than 10 % of peak"): each build serves the same one-model directory on its own port; for
# ROUNDS rounds, wrk (closed loop, 64 connections, one thread, as bench/http/run.sh) loads each
# in turn for SECONDS; medians and each run, ratio to the first build.
#   BUILDS="old=/path/a new=/path/b" peaks.sh MODEL_DIR [ROUNDS] [SECONDS]
# Run from the repository with the Python env active (scripts/python-env.sh --print).
set -euo pipefail
model=$1 rounds=${2:-5} seconds=${3:-8}
out="${TMPDIR:-/tmp}/peaks-$(echo "$model" | tr / -)"
rm -rf "$out"; mkdir -p "$out"
source bench/http/common.sh
one_model "$model" "$out"
serve_builds "$out" 18200
for r in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    wrk -t1 -c64 -d"${seconds}s" -s "$out/post.lua" "http://127.0.0.1:${port[$name]}/score" >"$out/$name-$r.txt"
    echo "$r $name $(awk '/^Requests\/sec:/ {print $2}' "$out/$name-$r.txt")"
  done
done | tee "$out/peaks.txt"
python3 - "$out/peaks.txt" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, b, rps = line.split(); d[b].append(float(rps))
base = statistics.median(next(iter(d.values())))
for b, vs in d.items():
    print(f"{b}: median {statistics.median(vs):,.0f} req/s ({', '.join(f'{v:,.0f}' for v in vs)}), "
          f"ratio to the first {statistics.median(vs) / base:.3f}")
PY
