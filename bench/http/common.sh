# Sourced by bench/http's scripts (run from the repository root).
#
# one_model MODEL_DIR OUT puts the engine-rul package MODEL_DIR in OUT/models as engine-rul/1
# (its manifest's version set to 1; with the delay-risk fixture, for /readyz), one real feature
# row of it by name in OUT/row.json (a golden row), and a wrk script posting that row to /score
# in OUT/post.lua. PYTHON: the interpreter (default python3).
one_model() {
  local model="$1" out="$2"
  rm -rf "$out/models"; mkdir -p "$out/models/engine-rul"
  cp -r "$model" "$out/models/engine-rul/1"
  cp -r service/tests/fixtures/models/delay-risk "$out/models/"
  "${PYTHON:-python3}" - "$out/row.json" "$out/models/engine-rul/1/" <<'PY'
import json, sys
d = sys.argv[2]
m = json.load(open(d + "manifest.json")); g = json.load(open(d + "golden.json"))
if m["version"] != "1":  # a later version (models/engine-rul/2) served as version 1
    m["version"] = "1"; json.dump(m, open(d + "manifest.json", "w"), indent=2)
json.dump({"model": "engine-rul", "rows": [dict(zip(m["input"]["features"], g["inputs"][3]))]},
          open(sys.argv[1], "w"))
PY
  cat >"$out/post.lua" <<LUA
local f = io.open("$out/row.json", "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
}

# serve_builds OUT BASE_PORT: each build of BUILDS ("name=/path/to/fleetscore ...") serves OUT's
# models on its own port from BASE_PORT + 1 (no Kafka); fills the global `names` (in BUILDS'
# order), `pid` and `port` (by name), stops the servers on exit, and returns once each answers
# /score.
serve_builds() {
  local out="$1" p="$2" b name
  declare -gA pid port; names=()
  for b in $BUILDS; do
    name=${b%%=*}; names+=("$name"); p=$((p + 1)); port[$name]=$p
    RUST_LOG=warn FLEETSCORE_MODELS_DIR="$out/models" "${b#*=}" serve --no-kafka \
      --http-addr "127.0.0.1:$p" >"$out/$name.log" 2>&1 &
    pid[$name]=$!
  done
  trap 'kill "${pid[@]}" 2>/dev/null' EXIT
  for name in "${names[@]}"; do
    until curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data @"$out/row.json" \
      "http://127.0.0.1:${port[$name]}/score" 2>/dev/null; do sleep 0.1; done
  done
}
