#!/usr/bin/env bash
# The Kubernetes manifests (k8s/): render every kustomization, validate every object strictly
# against the Kubernetes schemas and the vendored KEDA and Prometheus Operator CRDs, then the
# cross-reference tests (pytest k8s/tests), which run the service binary with each overlay's
# ConfigMap.
#
#   scripts/k8s-check.sh
#
# Installs what it needs on first run and reuses it afterwards: kustomize from the Go module
# proxy (go install, pinned) into ${FLEETSCORE_TOOLS_DIR:-~/.cache/fleetscore/tools}, the
# pinned k8s/requirements.txt into ${FLEETSCORE_K8S_VENV:-~/.cache/fleetscore/k8s-venv}
# (kubernetes-validate, pytest), and ONNX Runtime for the binary through
# scripts/python-env.sh when ORT_DYLIB_PATH is not set. The binary: FLEETSCORE_BIN (default
# ${CARGO_TARGET_DIR:-target}/release/fleetscore; not built here). Non-zero exit on any failure.
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "k8s-check.sh: unknown argument: $1" >&2; exit 2 ;;
esac

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "k8s-check.sh: $*" >&2; exit 1; }

KUSTOMIZE_VERSION=v5.8.2 # v5.8.3 needs Go >= 1.27
tools="${FLEETSCORE_TOOLS_DIR:-$HOME/.cache/fleetscore/tools}"
kustomize="$tools/kustomize-$KUSTOMIZE_VERSION/kustomize"
venv="${FLEETSCORE_K8S_VENV:-$HOME/.cache/fleetscore/k8s-venv}"
bin="${FLEETSCORE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore}"

step "kustomize $KUSTOMIZE_VERSION (Go module proxy)"
if [[ ! -x "$kustomize" ]] || ! "$kustomize" version 2>/dev/null | grep -qx "$KUSTOMIZE_VERSION"; then
  command -v go >/dev/null 2>&1 || die "go is needed to install kustomize"
  mkdir -p -- "$(dirname -- "$kustomize")"
  GOBIN="$(dirname -- "$kustomize")" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
"$kustomize" version

step "Python environment (k8s/requirements.txt)"
"$repo/scripts/venv.sh" "$repo/k8s/requirements.txt" "$venv" --only-binary=:all:
python="$venv/bin/python"

if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
  step "ONNX Runtime for the service (scripts/python-env.sh)"
  eval "$(scripts/python-env.sh --print)"
fi
[[ -x "$bin" ]] || die "no fleetscore binary at $bin (cargo build --release -p fleetscore, or set FLEETSCORE_BIN)"

out="$(mktemp -d "${TMPDIR:-/tmp}/fleetscore-k8s.XXXXXX")"
trap 'rm -rf -- "$out"' EXIT

step "kustomize build (base, every overlay)"
rendered=()
for dir in k8s/base k8s/overlays/*/; do
  dir="${dir%/}"
  name="$(basename -- "$dir")"
  "$kustomize" build "$dir" >"$out/$name.yaml"
  printf '%-24s %2d objects\n' "$dir" "$(grep -c '^kind:' "$out/$name.yaml")"
  rendered+=("$out/$name.yaml")
done

step "strict validation (Kubernetes schemas; KEDA and Prometheus Operator CRDs in k8s/schemas)"
"$python" k8s/validate.py "${rendered[@]}"

step "pytest k8s/tests (cross-references; the service started with each overlay's ConfigMap)"
KUSTOMIZE="$kustomize" FLEETSCORE_BIN="$bin" \
  "$python" -m pytest -q -p no:cacheprovider k8s/tests
