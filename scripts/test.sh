#!/usr/bin/env bash
# Every test of the project, from nothing: Python environment, a real Apache Kafka broker
# (scripts/kafka-broker.sh, jars from Maven Central), lints, Rust tests (unit, property,
# real-data, binary and end-to-end Kafka tests), Python training tests, the fleet view in a
# real browser (Playwright and Debian's chromium: scripts/browser-test.sh), the Kubernetes
# manifests (scripts/k8s-check.sh), model packages from a real S3-compatible server (moto), the
# Kafka Streams peer of the end-to-end benchmark (bench/e2e/kstreams: mvn verify).
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
# Real-data and Kafka tests must not pass by finding no data or no broker.
export FLEETSCORE_REQUIRE_DATA=1
export FLEETSCORE_REQUIRE_KAFKA=1

step "S3-compatible server for the object-storage model tests (moto, tests/s3/requirements.txt)"
s3_venv="${FLEETSCORE_S3_VENV:-$HOME/.cache/fleetscore/venv-s3}"
scripts/venv.sh tests/s3/requirements.txt "$s3_venv"
export FLEETSCORE_MOTO_SERVER="$s3_venv/bin/moto_server"
export FLEETSCORE_REQUIRE_S3=1

step "Apache Kafka broker (KRaft, loopback)"
kafka_dir="$(mktemp -d "${TMPDIR:-/tmp}/fleetscore-test-kafka.XXXXXX")"
rmdir "$kafka_dir"
eval "$(scripts/kafka-broker.sh start --dir "$kafka_dir")"
trap 'scripts/kafka-broker.sh stop --dir "$kafka_dir" >/dev/null 2>&1 || true' EXIT
export KAFKA_BOOTSTRAP="$BOOTSTRAP"

if ((lint)); then
  step "cargo fmt --check"
  cargo fmt --all --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
fi

step "cargo test (release profile: the binaries the tests run are the ones we ship)"
# `lake` (polars) is for the backfill tests. Not --all-features: `test-feature-set` adds a
# third, test-only feature set that the shipped binary must not have.
cargo test --workspace --release --features fleetscore/lake

step "cargo test with a third feature set (nothing may assume there are two)"
cargo test --release -p fleetscore --features test-feature-set --lib

# The checks and the Python tests run the binary built above.
export FLEETSCORE_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"

step "HTTP API against its OpenAPI document (schemathesis)"
scripts/http-checks.sh --max-examples 50

step "pytest training/tests"
# Parity with onnxruntime in Python, feature-set versions.
"$FLEETSCORE_PYTHON" -m pytest -q training/tests

step "Kafka Streams peer of the e2e benchmark (bench/e2e/kstreams: mvn verify, jars from Maven Central)"
(cd bench/e2e/kstreams && mvn -q -B verify)

step "fleet view in a real browser (Playwright on Debian's chromium, against fleetscore demo)"
# Installs chromium (apt-get) and the pinned npm packages on first run.
scripts/browser-test.sh

step "Kubernetes manifests: kustomize build, strict schema validation, cross-references (k8s/)"
scripts/k8s-check.sh

step "cargo test with injected faults (a panicking HTTP accept loop, a panicking handler, a transaction call that never returns)"
# Last: this rebuilds target/release/fleetscore with `fault-injection`, which the checks above
# must not run (the feature is never in a shipped build).
cargo test --release -p fleetscore --features fault-injection --test http_server
FLEETSCORE_EOS_EVENTS=50000 cargo test --release -p fleetscore --features fault-injection \
    --test exactly_once -- a_transaction_call_that_never_returns
