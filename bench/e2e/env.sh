#!/usr/bin/env bash
# The Python environment of the end-to-end benchmark (Quix Streams peer and the harness).
#
#   bench/e2e/env.sh            ensure the venv is up to date (silent if it already is)
#   bench/e2e/env.sh --print    same, then print `export` lines for:
#                                 BENCH_PYTHON    the venv's python
#                                 ORT_DYLIB_PATH  libonnxruntime.so from its onnxruntime wheel
#
#   eval "$(bench/e2e/env.sh --print)"
#
# The venv lives at ${FLEETSCORE_CACHE:-$HOME/.cache/fleetscore}/bench-venv; scripts/venv.sh
# rebuilds it (wheels only) from bench/e2e/requirements.txt whenever that file changes.
# Progress goes to stderr, so stdout carries only the export lines.
set -euo pipefail

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

print=0
for arg in "$@"; do
  case "$arg" in
    --print) print=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "env.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
venv="$(realpath -m -- "${FLEETSCORE_CACHE:-$HOME/.cache/fleetscore}/bench-venv")"
log() { echo "env.sh: $*" >&2; }
"$here/../../scripts/venv.sh" "$here/requirements.txt" "$venv" --only-binary=:all:

((print)) || exit 0

shopt -s nullglob
ort_libs=("$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*)
shopt -u nullglob
((${#ort_libs[@]} >= 1)) || { log "libonnxruntime.so* not found in $venv's onnxruntime package"; exit 1; }
ort_lib="${ort_libs[0]}"
for f in "${ort_libs[@]}"; do [[ -L "$f" ]] || { ort_lib="$f"; break; }; done
printf 'export BENCH_PYTHON=%q\n' "$venv/bin/python"
printf 'export ORT_DYLIB_PATH=%q\n' "$ort_lib"
