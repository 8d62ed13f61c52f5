#!/usr/bin/env bash
# Builds the fleetscore container image from this checkout with Debian's tools only (no container
# registry needed): a bookworm minbase root filesystem made by mmdebstrap, the release binary, and
# libonnxruntime.so from the pinned onnxruntime wheel (PyPI), as the Containerfile's target
# runtime-prebuilt. Tags localhost/fleetscore:<git short sha> and :latest.
#
#   scripts/image.sh [--smoke] [--keep-work]
#
#   --smoke       then run the image: `serve --no-kafka` on the shipped models, /readyz, one
#                 /score checked against the golden outputs; again with a read-only root, no
#                 capabilities and a read-only models volume, where a new model version is
#                 published and must be validated (child process) and served; both stopped with
#                 SIGTERM and must exit 0
#   --keep-work   keep the scratch directory (root filesystem tarball, wheel, build context)
#
# Environment: FLEETSCORE_BIN (a release binary built on bookworm or older glibc; default:
# `cargo build --release --locked -p fleetscore`; the tag and labels name the checkout either
# way), IMAGE_NAME (localhost/fleetscore), IMAGE_WORK (scratch directory; default a new one
# under ${TMPDIR:-/tmp}), DEBIAN_MIRROR (http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
# (http://deb.debian.org/debian-security), SOURCE_DATE_EPOCH (default: the last commit's time),
# BUILDAH_ISOLATION (chroot). Prints the image's tag on stdout.
# Needs root (mmdebstrap's root mode, rootful podman) and Debian bookworm or newer; installs
# mmdebstrap, podman, binutils, python3-pip and curl with apt-get if missing (runc too, if
# --smoke finds that crun cannot run containers here).
#
# Reproducible: with the same mirror contents, binary and SOURCE_DATE_EPOCH the root filesystem
# tarball and the image are bit-identical (mmdebstrap and podman build --timestamp).
set -euo pipefail

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
smoke=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --keep-work) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "image.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
log() { echo "image.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap --mode=root, rootful podman)"

image="${IMAGE_NAME:-localhost/fleetscore}"
base="$image-base:bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}"
sha="$(git -C "$repo" rev-parse --short HEAD)"
# A binary built from uncommitted changes is not the commit's: say so in the tag.
[[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ]] || sha="$sha-dirty"

# ---- tools ----------------------------------------------------------------------------------
need=()
for pair in mmdebstrap:mmdebstrap podman:podman objcopy:binutils curl:curl python3:python3; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

work="${IMAGE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fleetscore-image.XXXXXX")}"
mkdir -p "$work"
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if ((keep)); then log "scratch kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- ONNX Runtime: version and wheel digest from the Containerfile -----------------------------
arg() { sed -n "s/^ARG $1=//p" "$repo/Containerfile"; }
ort_version="$(arg ORT_VERSION)"
ort_sha256="$(arg ORT_WHEEL_SHA256)"
[[ -n "$ort_version" && -n "$ort_sha256" ]] \
  || die "ORT_VERSION/ORT_WHEEL_SHA256 not found in the Containerfile"
# The image must load the library the tests and benchmarks load.
grep -qx "onnxruntime==$ort_version" "$repo/training/requirements.txt" \
  || die "Containerfile ORT_VERSION=$ort_version differs from training/requirements.txt"
mkdir -p "$work/context/prebuilt"
log "onnxruntime $ort_version wheel (PyPI, sha256 checked)"
echo "onnxruntime==$ort_version --hash=sha256:$ort_sha256" > "$work/ort.txt"
python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: \
  --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 \
  -r "$work/ort.txt" -d "$work/wheel" >&2
python3 - "$work/wheel" "$ort_version" "$work/context/prebuilt" <<'EOF'
import pathlib, sys, zipfile
wheel_dir, version, out = sys.argv[1:]
(wheel,) = pathlib.Path(wheel_dir).glob(f"onnxruntime-{version}-*.whl")
name = f"libonnxruntime.so.{version}"
pathlib.Path(out, name).write_bytes(zipfile.ZipFile(wheel).read(f"onnxruntime/capi/{name}"))
EOF

# ---- the binary ---------------------------------------------------------------------------------
bin="${FLEETSCORE_BIN:-}"
if [[ -z "$bin" ]]; then
  log "cargo build --release --locked -p fleetscore"
  (cd "$repo" && cargo build --release --locked -p fleetscore >&2)
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/fleetscore"
fi
[[ -x "$bin" ]] || die "no executable at $bin"
# It runs on bookworm's glibc 2.36 only if it needs no newer symbol version.
glibc="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n1)"
[[ "$(printf '%s\n' "$glibc" GLIBC_2.36 | sort -V | tail -n1)" == GLIBC_2.36 ]] \
  || die "$bin needs $glibc, newer than bookworm's 2.36: build it on bookworm"
# No debug info in the image (line tables: ~150 MB); symbols stay, backtraces name functions.
objcopy --strip-debug "$bin" "$work/context/prebuilt/fleetscore"
cp -a "$repo/models" "$work/context/models"

# ---- base: Debian bookworm minbase from Debian's mirror ------------------------------------------
# minbase is what debian:bookworm-slim is made of (libc6, libstdc++6, zlib1g, apt, passwd, ...),
# plus ca-certificates (the Containerfile would fetch it otherwise), without man pages, docs
# (copyright files kept) and translations. The merged-usr hook merges /usr without the usrmerge
# package (which drags in perl). resolv.conf and hostname emptied: they are the host's otherwise
# (the container runtime provides both).
log "root filesystem (mmdebstrap, bookworm minbase)"
mmdebstrap --mode=root --variant=minbase --include=ca-certificates \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='truncate -s 0 "$1/etc/resolv.conf" "$1/etc/hostname"' \
  bookworm "$work/rootfs.tar" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main" > "$work/mmdebstrap.log" 2>&1 \
  || { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
# Device nodes: the runtime mounts /dev.
tar --delete --wildcards -f "$work/rootfs.tar" './dev/?*'
log "rootfs.tar sha256 $(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)"
# Imported through a build (not `podman import`) so that --timestamp makes it reproducible.
mkdir -p "$work/base"
mv "$work/rootfs.tar" "$work/base/"
printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' \
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["bash"]' \
  > "$work/base/Containerfile"
# chroot isolation: the default (oci) needs a working OCI runtime and cgroup setup, which a
# sandbox may lack (crun refuses a cgroup v1/v2 hybrid); the only RUN (useradd) needs none.
isolation="${BUILDAH_ISOLATION:-chroot}"
podman build -q --isolation "$isolation" --timestamp "$SOURCE_DATE_EPOCH" -t "$base" \
  "$work/base" >&2
rm -f "$work/base/rootfs.tar"

# ---- image --------------------------------------------------------------------------------------
log "image $image:$sha"
podman build --isolation "$isolation" --timestamp "$SOURCE_DATE_EPOCH" \
  -f "$repo/Containerfile" --target runtime-prebuilt --build-arg BASE_IMAGE="$base" \
  --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)" \
  --build-arg REVISION="$(git -C "$repo" rev-parse HEAD)$([[ $sha == *-dirty ]] && echo -dirty)" \
  --build-arg CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$image:$sha" -t "$image:latest" "$work/context" >&2
inspect() { podman image inspect --format "{{.$1}}" "$2"; }
size="$(inspect Size "$image:$sha")"
log "built $image:$sha and :latest: id $(inspect Id "$image:$sha" | cut -c1-12)," \
  "$((size / 1000000)) MB ($size bytes; the base $(($(inspect Size "$base") / 1000000)) MB)"
echo "$image:$sha"
((smoke)) || exit 0

# ---- smoke run ----------------------------------------------------------------------------------
# How containers run here: podman's defaults first; a sandbox may need explicit rlimits (podman
# raises RLIMIT_NOFILE/NPROC, which needs CAP_SYS_RESOURCE beyond the hard limit) and runc
# instead of crun (crun refuses a cgroup v1/v2 hybrid).
# nproc: buildah's own default (32768), or the hard limit if lower.
hard_nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
if [[ "$nproc" == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
limits=(--ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit "nproc=$nproc:$nproc")
run_opts=()
try_run() { podman run --rm "$@" "$base" true >/dev/null 2>&1; }
if try_run; then
  run_opts=()
elif try_run "${limits[@]}"; then
  run_opts=("${limits[@]}")
else
  command -v runc >/dev/null || {
    log "installing runc (crun cannot run containers here)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >&2
  }
  try_run --runtime runc "${limits[@]}" \
    || die "podman cannot run a container here: $(podman run --rm --runtime runc \
      "${limits[@]}" "$base" true 2>&1 | tail -n1)"
  run_opts=(--runtime runc "${limits[@]}")
fi
log "podman run options needed here: ${run_opts[*]:-(none)}"

# start NAME [podman run options]: runs the image's serve --no-kafka, prints its host port.
# (Called in $(...): the caller records NAME in containers for the cleanup.)
start() {
  local name="$1" port i
  shift
  podman run -d --name "$name" "${run_opts[@]}" -p 127.0.0.1::8080 "$@" "$image:$sha" \
    serve --config /etc/fleetscore/fleetscore.toml --no-kafka >/dev/null
  port="$(podman port "$name" 8080/tcp | sed 's/.*://')"
  for i in $(seq 600); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && { echo "$port"; return; }
    [[ "$(podman inspect --format '{{.State.Running}}' "$name")" == true ]] || break
    sleep 0.1
  done
  podman logs "$name" >&2
  die "$name: not ready (/readyz) within 60 s"
}
# stop NAME: SIGTERM; the service (PID 1) must drain and exit 0.
stop() {
  local code
  podman stop -t 20 "$1" >/dev/null
  code="$(podman inspect --format '{{.State.ExitCode}}' "$1")"
  [[ "$code" == 0 ]] || { podman logs "$1" >&2; die "$1: exit $code after SIGTERM"; }
  log "$1: stopped by SIGTERM, exit 0"
}

name="fleetscore-smoke-$$"
containers+=("$name")
port="$(start "$name")"
log "$name: ready on 127.0.0.1:$port (uid $(podman exec "$name" sh -c 'id -u'))"
# /score on the first 3 golden rows of the serving engine-rul, named by GET /v2/models/engine-rul,
# against the golden outputs within the manifest's tolerance.
curl -fsS "http://127.0.0.1:$port/v2/models/engine-rul" > "$work/meta.json"
python3 - "$work/meta.json" "$work/context/models" "$work/score.json" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
package = f"{sys.argv[2]}/engine-rul/{meta['version']}"
golden = json.load(open(f"{package}/golden.json"))
features = meta["parameters"]["features"]
rows = [dict(zip(features, row, strict=True)) for row in golden["inputs"][:3]]
json.dump({"model": "engine-rul", "rows": rows}, open(sys.argv[3], "w"))
EOF
curl -fsS "http://127.0.0.1:$port/score" -H 'Content-Type: application/json' \
  --data-binary @"$work/score.json" > "$work/answer.json"
python3 - "$work/answer.json" "$work/context/models" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
package = f"{sys.argv[2]}/engine-rul/{answer['model_version']}"
golden = json.load(open(f"{package}/golden.json"))
tolerance = json.load(open(f"{package}/manifest.json"))["golden"]["tolerance"]
want = [float(out[0] if isinstance(out, list) else out) for out in golden["outputs"][:3]]
got = answer["predictions"]
bad = [(g, w) for g, w in zip(got, want, strict=True) if abs(g - w) > tolerance]
print(f"image.sh: /score engine-rul v{answer['model_version']}: {got} (golden {want}, "
      f"tolerance {tolerance}): {'ok' if not bad else 'MISMATCH'}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
stop "$name"

# Read-only root (no tmpfs either), all capabilities dropped, no privilege gain, uid 10001, and
# the models on a read-only volume; then a new engine-rul version is published on the host side
# (files first, manifest last): the service must validate it in a child process (/proc/self/exe)
# and serve it.
cp -a "$repo/models" "$work/models"
name="fleetscore-smoke-ro-$$"
containers+=("$name")
port="$(start "$name" --read-only --read-only-tmpfs=false --cap-drop=ALL \
  --security-opt no-new-privileges --user 10001:10001 -v "$work/models:/models:ro")"
log "$name: ready on 127.0.0.1:$port, read-only root, no capabilities, models read-only"
next="$(python3 - "$work/models/engine-rul" <<'EOF'
import json, pathlib, shutil, sys
root = pathlib.Path(sys.argv[1])
current = max((d for d in root.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
new = root / str(int(current.name) + 1)
new.mkdir()
manifest = json.loads((current / "manifest.json").read_text())
for f in current.iterdir():
    if f.name != "manifest.json":
        shutil.copy2(f, new / f.name)
manifest["version"] = new.name
(new / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(new.name)
EOF
)"
for _ in $(seq 300); do
  served="$(curl -fsS "http://127.0.0.1:$port/models" | python3 -c '
import json, sys
print(*[m["version"] for m in json.load(sys.stdin)["models"]
        if m["name"] == "engine-rul" and m["state"] == "serving"])' || true)"
  [[ "$served" == "$next" ]] && break
  sleep 0.1
done
[[ "$served" == "$next" ]] \
  || { podman logs "$name" >&2; die "$name: engine-rul/$next not served within 30 s"; }
log "$name: engine-rul/$next published on the volume, validated in a child process, serving"
stop "$name"
log "smoke run passed: $image:$sha"
