#!/usr/bin/env bash
# Property-based checks of the HTTP API against its own OpenAPI document (schemathesis).
#
#   scripts/http-checks.sh [--max-examples N] [--keep-log]
#
# Builds `fleetscore` (release), copies the fixture models to a temporary directory, starts
# `fleetscore serve --no-kafka` on a free loopback port, waits until /readyz says ready, then
# runs schemathesis on /openapi.json (examples, coverage and fuzzing phases, fixed seed) with
# every check but one: no server error; status codes, content types, headers and bodies as
# documented; schema-violating input rejected; admin calls refused without the token. Left out:
# `positive_data_acceptance`, because a schema-valid row may still lack the model's feature
# names (which depend on the model, a free string): that is a documented 422. Settings in
# tests/http/schemathesis.toml. The server is stopped whatever happens; a panic in its log
# fails the run. Exit status is non-zero on any finding.
#
# Tools: tests/http/requirements.txt in ${FLEETSCORE_CHECKS_VENV:-<target dir>/venv-http-checks}
# (created from PyPI on first run and when the requirements change). ONNX Runtime: as for every
# test, from scripts/python-env.sh --print (ORT_DYLIB_PATH). The binary: $FLEETSCORE_BIN when
# set (scripts/test.sh passes the one its tests ran), else built here into $CARGO_TARGET_DIR
# (default <repo>/target).
set -euo pipefail

max_examples=100
keep_log=0
while (($#)); do
  case "$1" in
    --max-examples) max_examples="$2"; shift 2 ;;
    --keep-log) keep_log=1; shift ;;
    -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "http-checks.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
log() { echo "http-checks.sh: $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
venv="${FLEETSCORE_CHECKS_VENV:-$target_dir/venv-http-checks}"
scripts/venv.sh "$repo/tests/http/requirements.txt" "$venv"

eval "$(scripts/python-env.sh --print)"
bin="${FLEETSCORE_BIN:-}"
if [[ -z "$bin" ]]; then
  cargo build --release -p fleetscore --quiet
  bin="$target_dir/release/fleetscore"
fi
[[ -x "$bin" ]] || { log "no fleetscore binary at $bin"; exit 1; }

# --- server --------------------------------------------------------------------------------
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if ((keep_log)); then log "server log: $work/serve.log"; else rm -rf "$work"; fi
}
trap cleanup EXIT

cp -r service/tests/fixtures/models "$work/models"
# Small limits so that the checks reach them; admin calls on, with a token schemathesis sends
# (and leaves out to check that they are then refused).
token="http-checks-$RANDOM$RANDOM$RANDOM"
cat >"$work/fleetscore.toml" <<TOML
[models]
dir = "$work/models"
[http]
max_batch_rows = 64
max_body_bytes = 262144
admin_token = "$token"
TOML
FLEETSCORE_HTTP_ADDR= RUST_LOG=warn,fleetscore::lifecycle=info \
  "$bin" serve --no-kafka --config "$work/fleetscore.toml" --http-addr 127.0.0.1:0 \
  >"$work/serve.log" 2>&1 &
server_pid=$!

addr="$(scripts/wait-ready.sh "$work/serve.log" "$server_pid")"
log "server ready on $addr"

# --- checks --------------------------------------------------------------------------------
status=0
# One worker: with two, Hypothesis describes strategies from two threads at once, and
# CPython 3.11's ast.parse is not thread-safe ("AST constructor recursion depth mismatch").
"$venv/bin/schemathesis" --config-file tests/http/schemathesis.toml run "http://$addr/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "$max_examples" \
  --workers 1 \
  --seed 20261124 \
  || status=$?

if grep -q "panicked" "$work/serve.log"; then
  log "the server logged a panic:"; grep -A5 "panicked" "$work/serve.log" >&2; status=1
fi
exit "$status"
