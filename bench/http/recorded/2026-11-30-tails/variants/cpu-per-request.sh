#!/usr/bin/env bash
# Server CPU per /score request at a fixed rate, builds interleaved (issue #20's design choice):
# each build serves the same one-model directory on its own port; for ROUNDS rounds, oha sends
# RATE req/s for 6 s (64 connections, latency-corrected) to each in turn, and the server's
# utime+stime over the window is divided by the requests answered. Medians, ratio to the first.
#   BUILDS="old=/path/a new=/path/b" variants/cpu-per-request.sh MODEL_DIR [RATE] [ROUNDS]
# Run from the repository with the Python env active (scripts/python-env.sh --print).
set -euo pipefail
model=$1 rate=${2:-20000} rounds=${3:-3}
out="${TMPDIR:-/tmp}/cpu-per-request-$(echo "$model" | tr / -)"
rm -rf "$out"; mkdir -p "$out"
source bench/http/common.sh
one_model "$model" "$out"
serve_builds "$out" 18100
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    t0=$(ticks "${pid[$name]}")
    "${OHA:-oha}" --no-tui --output-format json -z 6s -q "$rate" -c 64 --latency-correction -m POST \
      -T application/json -D "$out/row.json" "http://127.0.0.1:${port[$name]}/score" >"$out/$name-$r.json"
    t1=$(ticks "${pid[$name]}")
    n=$(python3 -c "import json; r = json.load(open('$out/$name-$r.json')); print(sum(r['statusCodeDistribution'].values()))")
    echo "$r $name $(((t1 - t0) * 1000000 / hz)) $n"
  done
done | tee "$out/cpu.txt"
python3 - "$out/cpu.txt" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, b, us, n = line.split(); d[b].append(int(us) / int(n))
base = statistics.median(next(iter(d.values())))
for b, vs in d.items():
    print(f"{b}: {statistics.median(vs):.2f} µs CPU/request ({', '.join(f'{v:.2f}' for v in vs)}), "
          f"ratio to the first {statistics.median(vs) / base:.3f}")
PY
