#!/usr/bin/env bash
# Issue #20's three targets, repeated: one server on one model directory; for ROUNDS rounds,
# oha (latency-corrected, 6 s each, as bench/http/run.sh) sends /score then /healthz at 1,000
# req/s (8 connections), then /score and /healthz at 10,000 req/s (64 connections); prints each
# round's /score p99 / /healthz p99 ratio at 1k and /score (and /healthz) p99 and p99.9 at 10k,
# and how many rounds met each target (ratio <= 2, p99 < 5 ms, p99.9 < 10 ms).
#   FLEETSCORE_BIN=... repeat.sh MODEL_DIR [ROUNDS]
# Run from the repository with the Python env active (scripts/python-env.sh --print).
set -euo pipefail
model=$1 rounds=${2:-5}
out="${TMPDIR:-/tmp}/repeat-$(echo "$model" | tr / -)"
rm -rf "$out"; mkdir -p "$out"
source bench/http/common.sh
one_model "$model" "$out"
BUILDS="server=$FLEETSCORE_BIN" serve_builds "$out" 18300
oha_at() {  # rate conns path file [post]
  local body=()
  [[ "${5:-}" == post ]] && body=(-m POST -T application/json -D "$out/row.json")
  "${OHA:-oha}" --no-tui --output-format json -z 6s -q "$1" -c "$2" --latency-correction "${body[@]}" \
    "http://127.0.0.1:18301$3" >"$out/$4.json"
}
for r in $(seq "$rounds"); do
  oha_at 1000 8 /score "score1k-$r" post
  oha_at 1000 8 /healthz "healthz1k-$r"
  oha_at 10000 64 /score "score10k-$r" post
  oha_at 10000 64 /healthz "healthz10k-$r"
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def p(name, q): return json.load(open(f"{out}/{name}.json"))["latencyPercentiles"][q] * 1e3
met = [0, 0, 0]
for r in range(1, rounds + 1):
    s, h = p(f"score1k-{r}", "p99"), p(f"healthz1k-{r}", "p99")
    s99, s999 = p(f"score10k-{r}", "p99"), p(f"score10k-{r}", "p99.9")
    h99, h999 = p(f"healthz10k-{r}", "p99"), p(f"healthz10k-{r}", "p99.9")
    met[0] += s / h <= 2; met[1] += s99 < 5; met[2] += s999 < 10
    print(f"round {r}: 1k /score p99 {s:.2f} / /healthz p99 {h:.2f} = {s / h:.2f}x; "
          f"10k /score p99 {s99:.2f} p99.9 {s999:.2f} ms (/healthz {h99:.2f} / {h999:.2f})")
print(f"rounds meeting: 1k ratio <= 2x {met[0]}/{rounds}, 10k p99 < 5 ms {met[1]}/{rounds}, "
      f"10k p99.9 < 10 ms {met[2]}/{rounds}")
PY
