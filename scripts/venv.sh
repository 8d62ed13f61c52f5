#!/usr/bin/env bash
# Ensure a Python virtualenv holds exactly a pinned requirements file.
#
#   scripts/venv.sh REQUIREMENTS VENV_DIR [extra pip install options...]
#
# Nothing is done when VENV_DIR's stamp (the sha256 of REQUIREMENTS, written after the last
# successful install) matches; otherwise the venv is rebuilt from scratch (venv --clear, then
# pip install -r REQUIREMENTS with the extra options). Concurrent callers for the same VENV_DIR
# are serialised with a lock. A directory that exists and is not a virtualenv is never wiped.
# The base interpreter is ${FLEETSCORE_BASE_PYTHON:-python3.11} (falls back to python3).
# Progress goes to stderr; nothing is written to stdout.
set -euo pipefail

(($# >= 2)) || { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
req="$1"
venv="$(realpath -m -- "$2")"
shift 2
stamp="$venv/.requirements.sha256"

log() { echo "venv.sh: $*" >&2; }
[[ -f "$req" ]] || { log "missing $req"; exit 1; }
want="$(sha256sum -- "$req")"
want="${want%% *}"

up_to_date() {
  [[ -x "$venv/bin/python" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]
}

build() {
  local base="${FLEETSCORE_BASE_PYTHON:-}"
  if [[ -z "$base" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi
  fi
  command -v "$base" >/dev/null 2>&1 || { log "no Python interpreter '$base' found"; exit 1; }
  local pyver
  pyver="$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$pyver" == "3.11" ]] || log "warning: $base is Python $pyver; $req is pinned for 3.11"
  if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]] && [[ -n "$(ls -A -- "$venv" 2>/dev/null)" ]]; then
    log "$venv exists and is not a virtualenv; refusing to overwrite it"
    exit 1
  fi
  local t0=$SECONDS
  log "creating virtualenv at $venv ($base, Python $pyver) from $req"
  mkdir -p -- "$(dirname -- "$venv")"
  "$base" -m venv --clear -- "$venv"
  "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    "$@" -r "$req" >&2
  # Stamp last: an interrupted install leaves no stamp and is redone next time.
  printf '%s\n' "$want" >"$stamp"
  log "ready in $((SECONDS - t0)) s"
}

if ! up_to_date; then
  lock="${TMPDIR:-/tmp}/fleetscore-venv-$(printf '%s' "$venv" | sha256sum | cut -c1-16).lock"
  exec 9>"$lock"
  flock 9
  up_to_date || build "$@"
  exec 9>&-
fi
