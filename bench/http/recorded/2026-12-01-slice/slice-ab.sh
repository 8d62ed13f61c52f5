#!/usr/bin/env bash
# slice-ab.sh MODEL_DIR ROUNDS OUT: alternating servers without/with FLEETSCORE_SLICE_US=$SLICE
set -euo pipefail
model=$1 rounds=$2 out=$3; slice=${SLICE:-100}
mkdir -p $out; cd /work/main
source bench/http/common.sh
one_model "$model" "$out"
oha_at() {  # port rate conns path file [post]
  local body=()
  [[ "${6:-}" == post ]] && body=(-m POST -T application/json -D "$out/row.json")
  /tmp/oha/bin/oha --no-tui --output-format json -z ${SECS:-6}s -q "$2" -c "$3" --latency-correction "${body[@]}" \
    "http://127.0.0.1:$1$4" >"$out/$5.json"
}
for r in $(seq $rounds); do
  for v in off on; do
    if [[ $v == on ]]; then export FLEETSCORE_SLICE_US=$slice; else unset FLEETSCORE_SLICE_US; fi
    RUST_LOG=warn FLEETSCORE_MODELS_DIR="$out/models" $BIN serve --no-kafka --http-addr 127.0.0.1:18701 >"$out/$v.log" 2>&1 &
    p=$!
    until curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data @"$out/row.json" http://127.0.0.1:18701/score 2>/dev/null; do sleep 0.1; done
    oha_at 18701 1000 8 /score "$v-s1k-$r" post
    oha_at 18701 1000 8 /healthz "$v-h1k-$r"
    oha_at 18701 10000 64 /score "$v-s10k-$r" post
    oha_at 18701 10000 64 /healthz "$v-h10k-$r"
    kill $p; wait $p 2>/dev/null || true
  done
done
unset FLEETSCORE_SLICE_US
python3 - "$out" "$rounds" <<'PY'
import json, sys, statistics as st
out, rounds = sys.argv[1], int(sys.argv[2])
def p(name, q): return json.load(open(f"{out}/{name}.json"))["latencyPercentiles"][q] * 1e3
agg={}
for r in range(1, rounds + 1):
    for v in ("off","on"):
        s, h = p(f"{v}-s1k-{r}", "p99"), p(f"{v}-h1k-{r}", "p99")
        s99, s999 = p(f"{v}-s10k-{r}", "p99"), p(f"{v}-s10k-{r}", "p99.9")
        h99, h999 = p(f"{v}-h10k-{r}", "p99"), p(f"{v}-h10k-{r}", "p99.9")
        agg.setdefault(v,[]).append((s/h,s99,s999,h99,h999,s,h))
        print(f"round {r} {v}: 1k /score p99 {s:.2f} / /healthz {h:.2f} = {s/h:.2f}x; 10k /score p99 {s99:.2f} p99.9 {s999:.2f} (/healthz {h99:.2f} / {h999:.2f})")
for v,rows in agg.items():
    m=[st.median(c) for c in zip(*rows)]
    met=(sum(r[0]<=2 for r in rows),sum(r[1]<5 for r in rows),sum(r[2]<10 for r in rows))
    print(f"{v}: medians 1k ratio {m[0]:.2f}x, 10k p99 {m[1]:.2f} p99.9 {m[2]:.2f} (/healthz {m[3]:.2f} / {m[4]:.2f}); rounds meeting {met} of {len(rows)}")
PY
