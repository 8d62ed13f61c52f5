#!/usr/bin/env bash
# Back-to-back A/B of POST /score peak throughput (wrk, 1 thread, 64 connections, 8 s),
# Usage: A_BIN=path/to/old/fleetscore B_BIN=path/to/new/fleetscore ab.sh (from the repository root)
# the session's starting build (A) against its final build (B), interleaved, 3 rounds.
set -euo pipefail
repo="$(git rev-parse --show-toplevel)"; out="${OUT:-$repo/target/http-ab}"; mkdir -p "$out"
rm -rf "$out/models"; mkdir -p "$out/models"
cp -r $repo/service/tests/fixtures/models/engine-rul "$out/models/"; rm -rf "$out/models/engine-rul/2"
cp -r $repo/service/tests/fixtures/models/delay-risk "$out/models/"
python3 - "$out/row.json" <<'PY'
import json, sys
d = "service/tests/fixtures/models/engine-rul/1/"
m = json.load(open(d + "manifest.json")); g = json.load(open(d + "golden.json"))
json.dump({"model": "engine-rul", "rows": [dict(zip(m["input"]["features"], g["inputs"][3]))]}, open(sys.argv[1], "w"))
PY
cat >"$out/post.lua" <<LUA
local f = io.open("$out/row.json", "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
eval "$(cd $repo && scripts/python-env.sh --print)"
for round in 1 2 3; do
  for ab in A B; do
    bin=$A_BIN; [[ $ab == B ]] && bin=$B_BIN
    RUST_LOG=warn FLEETSCORE_MODELS_DIR="$out/models" $bin serve --no-kafka --http-addr 127.0.0.1:18099 >"$out/$ab-$round.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data @"$out/row.json" http://127.0.0.1:18099/score 2>/dev/null && break; sleep 0.1; done
    rps=$(wrk -t1 -c64 -d8s -s "$out/post.lua" http://127.0.0.1:18099/score | tee "$out/$ab-$round.wrk" | awk '/Requests\/sec/ {print $2}')
    echo "round $round $ab $rps"
    kill -TERM $pid; wait $pid || true
  done
done
