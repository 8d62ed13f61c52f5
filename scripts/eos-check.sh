#!/usr/bin/env bash
# Issue #13's fault tests at full scale (service/tests/exactly_once.rs): every scenario on a
# 3-node Apache Kafka cluster of its own, with 1,000,000 events over 4,900 aircraft.
#
#   scripts/eos-check.sh [--events N] [TEST_FILTER]
#
# Sets FLEETSCORE_EOS=1 (the scenarios run even without KAFKA_BOOTSTRAP) and FLEETSCORE_EOS_EVENTS (default 1000000; CI runs
# 200,000), then `cargo test --release -p fleetscore --test exactly_once` one test at a time,
# with each scenario's counts on stderr (predictions expected and read by a read_committed
# consumer, missing, duplicates, differing from `fleetscore replay`, out of order, dead letters)
# and its run time. TEST_FILTER picks tests by name as cargo test does (e.g. `kill_9`).
# The cluster (jars from Maven Central on first use, Java 17+) runs in /tmp/eos-kafka-*, and is
# stopped when the test process exits; the workload (~1.3 GB at full scale) is written under the
# target directory. Output is also kept in $CARGO_TARGET_DIR/eos-check.log (default
# <repo>/target). Exit status is non-zero if a check fails.
set -euo pipefail

events=1000000
filter=()
while (($#)); do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "eos-check.sh: unknown argument: $1" >&2; exit 2 ;;
    *) filter+=("$1"); shift ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
eval "$(scripts/python-env.sh --print)"
export FLEETSCORE_EOS=1 FLEETSCORE_EOS_EVENTS="$events"
log="${CARGO_TARGET_DIR:-$repo/target}/eos-check.log"
mkdir -p "$(dirname "$log")"

start=$(date +%s)
status=0
cargo test --release -p fleetscore --test exactly_once -- --nocapture --test-threads=1 \
  "${filter[@]+"${filter[@]}"}" 2>&1 | tee "$log" || status=$?
echo
echo "== eos-check: $events events, $(($(date +%s) - start)) s; full output in $log"
# Each scenario's counts and what failed (not its progress lines).
grep -E '^([a-z0-9-]+: |[a-z0-9-]+ \((ExactlyOnce|AtLeastOnce), )|^test result' "$log" |
  grep -vE ' at [0-9.]+ s$|, group g\.|^(kafka-broker|note|error): ' || true
exit "$status"
