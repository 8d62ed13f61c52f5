#!/usr/bin/env bash
# Issue #20, back to back on one machine: the build before the fix (OLD, 9fb2167) and after it
# (NEW), each through bench/http/run.sh on the 30-tree ONNX Runtime fixture (the script's
# default) and on the published 1,500-tree engine-rul (native trees), then the fixture again
# under bench/http/jitter.py's emulated jitter.
#   OLD=path/to/old/fleetscore NEW=path/to/new/fleetscore bench/http/recorded/2026-11-30-tails/ab.sh
# BUILDS="OLD NEW" (default): which of the two to run.
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$here/../../../.."
args=(--runs 3 --seconds 6)
for case in fixture published jitter; do
  extra=()
  [[ $case == published ]] && extra=(--model models/engine-rul/1)
  [[ $case == jitter ]] && extra=(--jitter)
  for build in ${BUILDS:-OLD NEW}; do
    echo "== $case $build $(date -u +%H:%M:%S)" >&2
    FLEETSCORE_BIN="${!build}" bench/http/run.sh "${args[@]}" "${extra[@]}" \
      >"$here/$case-$build.md" 2>"$here/$case-$build.log"
  done
done
