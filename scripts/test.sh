#!/usr/bin/env bash
# Every test of the project, from nothing: Python environment, lints, Rust tests (unit,
# property, real-data and binary tests), Python training tests.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-lint  skip rustfmt and clippy
#
# Installs what it needs on first run (the Python virtualenv from PyPI; crates from crates.io)
# and reuses it afterwards. Exit status is non-zero if anything fails.
set -euo pipefail

lint=1
for arg in "$@"; do
  case "$arg" in
    --no-lint) lint=0 ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
step() { printf '\n==> %s\n' "$*" >&2; }

step "Python environment (training/requirements.txt)"
eval "$(scripts/python-env.sh --print)"
# Real-data tests must not pass by finding no data.
export FLEETSCORE_REQUIRE_DATA=1

if ((lint)); then
  step "cargo fmt --check"
  cargo fmt --all --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

step "cargo test (release profile: the binaries the tests run are the ones we ship)"
cargo test --workspace --release

step "pytest training/tests"
"$FLEETSCORE_PYTHON" -m pytest -q training/tests
