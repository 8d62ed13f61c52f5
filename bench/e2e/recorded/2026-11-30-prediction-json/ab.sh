#!/usr/bin/env bash
# Session 15, issue #18: the build before the prediction record's own JSON writer (OLD, 2b84e85)
# against the one with it (NEW, e06f350), bench/e2e/cpu-ab.sh's defaults.
#   OLD=... NEW=... LOADGEN_BIN=... bench/e2e/recorded/2026-11-30-prediction-json/ab.sh
exec "$(dirname -- "${BASH_SOURCE[0]}")/../../cpu-ab.sh" "$(dirname -- "${BASH_SOURCE[0]}")"
