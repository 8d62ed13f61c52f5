#!/usr/bin/env bash
# Session 15, issue #18: the session's start (OLD, 2b84e85) against the build with both of its
# cuts (NEW: the prediction writer and the rolling lanes), bench/e2e/cpu-ab.sh's defaults.
#   OLD=... NEW=... LOADGEN_BIN=... bench/e2e/recorded/2026-11-30-session-15-cuts/ab.sh
exec "$(dirname -- "${BASH_SOURCE[0]}")/../../cpu-ab.sh" "$(dirname -- "${BASH_SOURCE[0]}")"
