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
# The venv lives at ${FLEETSCORE_CACHE:-$HOME/.cache/fleetscore}/bench-venv. It is rebuilt
# (venv --clear, pip install --only-binary=:all: -r bench/e2e/requirements.txt) whenever the
# sha256 of requirements.txt differs from the stamp written after the last successful install;
# otherwise nothing is done. Base interpreter: ${FLEETSCORE_BASE_PYTHON:-python3.11}.
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
req="$here/requirements.txt"
venv="${FLEETSCORE_CACHE:-$HOME/.cache/fleetscore}/bench-venv"
venv="$(realpath -m -- "$venv")"
stamp_name=".bench-requirements.sha256"

[[ -f "$req" ]] || { echo "env.sh: missing $req" >&2; exit 1; }
want="$(sha256sum -- "$req")"
want="${want%% *}"

log() { echo "env.sh: $*" >&2; }

up_to_date() {
  [[ -x "$venv/bin/python" && -f "$venv/$stamp_name" ]] || return 1
  [[ "$(<"$venv/$stamp_name")" == "$want" ]]
}

build() {
  local base="${FLEETSCORE_BASE_PYTHON:-}"
  if [[ -z "$base" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi
  fi
  command -v "$base" >/dev/null 2>&1 || { log "no Python interpreter '$base' found"; exit 1; }
  local pyver
  pyver="$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$pyver" == "3.11" ]] || log "warning: $base is Python $pyver; requirements.txt is pinned for 3.11"
  # Never wipe a directory that is not a virtualenv.
  if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]] && [[ -n "$(ls -A -- "$venv" 2>/dev/null)" ]]; then
    log "$venv exists and is not a virtualenv; refusing to overwrite it"
    exit 1
  fi
  local t0=$SECONDS
  log "creating virtualenv at $venv ($base, Python $pyver)"
  mkdir -p -- "$(dirname -- "$venv")"
  "$base" -m venv --clear -- "$venv"
  log "installing $req"
  "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    --only-binary=:all: -r "$req" >&2
  # Stamp last: an interrupted install leaves no stamp and is redone next time.
  printf '%s\n' "$want" >"$venv/$stamp_name"
  log "ready in $((SECONDS - t0)) s"
}

if ! up_to_date; then
  # Serialise concurrent callers; re-check under the lock.
  lock="${TMPDIR:-/tmp}/fleetscore-bench-venv-$(printf '%s' "$venv" | sha256sum | cut -c1-16).lock"
  exec 9>"$lock"
  flock 9
  up_to_date || build
  exec 9>&-
fi

((print)) || exit 0

shopt -s nullglob
ort_libs=("$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*)
shopt -u nullglob
((${#ort_libs[@]} >= 1)) || { log "libonnxruntime.so* not found in $venv's onnxruntime package"; exit 1; }
ort_lib="${ort_libs[0]}"
for f in "${ort_libs[@]}"; do [[ -L "$f" ]] || { ort_lib="$f"; break; }; done
printf 'export BENCH_PYTHON=%q\n' "$venv/bin/python"
printf 'export ORT_DYLIB_PATH=%q\n' "$ort_lib"
