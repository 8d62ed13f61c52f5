#!/usr/bin/env bash
# Overload check of POST /score (issue #12's reproduction): `fleetscore serve --no-kafka` with
# its default [http] limits on the fixture models, 2,000 keep-alive connections posting 400-row
# batches as fast as they can for 15 s (bench/http/overload.py), then a fresh client's first
# 200. Prints one JSON object: answers by status, the server's RSS (before, peak, after) and the
# seconds until that first 200.
#
#   bench/http/overload.sh [--connections 2000] [--rows 400] [--seconds 15] [--concurrency-limit N]
#
# --concurrency-limit sets [http] concurrency_limit (default: the service's): memory for bodies
# in flight is bounded by it times the body size.
# Traffic goes to 127.0.0.1 only; raw output in target/bench-http-overload/.
set -euo pipefail

args=() limit=""
while (($#)); do
  case "$1" in
    --concurrency-limit) limit="$2"; shift 2 ;;
    --connections | --rows | --seconds) args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "overload.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$repo"
log() { echo "bench/http/overload: $*" >&2; }
eval "$(scripts/python-env.sh --print)"
cargo build --release -p fleetscore --quiet
bin="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"
out="${CARGO_TARGET_DIR:-$repo/target}/bench-http-overload"
rm -rf "$out"; mkdir -p "$out"
cp -r service/tests/fixtures/models "$out/models"
printf '[models]\ndir = "%s/models"\n' "$out" >"$out/fleetscore.toml"
[[ -z "$limit" ]] || printf '[http]\nconcurrency_limit = %s\n' "$limit" >>"$out/fleetscore.toml"

# One real feature row of engine-rul (a golden row), by name.
"$FLEETSCORE_PYTHON" - "$out/row.json" <<'PY'
import json, sys
d = "service/tests/fixtures/models/engine-rul/1/"
m = json.load(open(d + "manifest.json")); g = json.load(open(d + "golden.json"))
json.dump({"model": "engine-rul", "rows": [dict(zip(m["input"]["features"], g["inputs"][3]))]},
          open(sys.argv[1], "w"))
PY

# Client and server both need file descriptors for 2,000 connections.
ulimit -n "$(ulimit -Hn)"
FLEETSCORE_HTTP_ADDR= RUST_LOG=warn,fleetscore::lifecycle=info \
  "$bin" serve --no-kafka --config "$out/fleetscore.toml" --http-addr 127.0.0.1:0 \
  >"$out/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
addr="$(scripts/wait-ready.sh "$out/serve.log" "$pid")"
log "server ready on $addr (pid $pid)"
"$FLEETSCORE_PYTHON" bench/http/overload.py --addr "$addr" --pid "$pid" --row "$out/row.json" \
  ${args[@]+"${args[@]}"} | tee "$out/result.json"
kill -0 "$pid" || { log "the server died under the load"; exit 1; }
