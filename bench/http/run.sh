#!/usr/bin/env bash
# Load benchmark of POST /score (one row, explicit features): fleetscore against the same
# endpoint written idiomatically in Python (bench/http/peer.py: FastAPI + uvicorn + ONNX
# Runtime), same model file (engine-rul/1 fixture), same machine, same run.
#
#   bench/http/run.sh [--runs 3] [--seconds 10] [--connections 64] [--python-workers 2]
#                     [--model DIR] [--backend ort|trees] [--jitter]
#
# --model: the engine-rul package both servers score (default the 30-tree test fixture
# service/tests/fixtures/models/engine-rul/1; models/engine-rul/1 is the published 1,500-tree
# model). --backend: fleetscore's backend for it (written into the copied manifest; default the
# package's own choice); the Python peer always runs ONNX Runtime. FLEETSCORE_BIN: the binary
# (default ${CARGO_TARGET_DIR:-target}/release/fleetscore, built first).
#
# For each server: peak throughput with wrk (closed loop, --connections connections, one wrk
# thread), then latency at half of that peak with oha at a fixed rate (open loop, latency
# corrected for coordinated omission). For fleetscore also the tail as a function of load
# (issue #20): /score at 10, 25, 50 and 80 % of its peak, at 1,000 and at 10,000 req/s, each
# beside /healthz at the same rate (same server, no model) and, before the runs, the machine's
# own jitter (how late a 1 ms sleep wakes, 6 s): a /score tail near /healthz's is the machine's,
# not the service's. Rates up to 1,000 req/s use 8 connections, faster ones --connections.
# Medians of --runs runs (max: the median of the runs' maxima). Needs wrk (Debian package) and
# oha (cargo install oha); traffic goes to 127.0.0.1 only. Results: Markdown tables on stdout,
# raw outputs in target/bench-http/.
#
# --jitter: emulate a jittery machine during the whole run (bench/http/jitter.py: a real-time
# process per CPU, busy ~2 ms every ~10 ms, as a hypervisor's preemption; needs root for
# SCHED_FIFO, and chrt/taskset from util-linux).
set -euo pipefail

runs=3 seconds=10 connections=64 py_workers=2
model="service/tests/fixtures/models/engine-rul/1" backend="" jitter=""
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --python-workers) py_workers="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --jitter) jitter=1; shift ;;
    -h | --help) sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$repo"
log() { echo "bench/http: $*" >&2; }
oha="$(command -v oha || echo "${OHA:-/tmp/oha/bin/oha}")"
command -v wrk >/dev/null || { log "wrk is missing: apt-get install -y wrk"; exit 1; }
[[ -x "$oha" ]] || { log "oha is missing: cargo install oha --locked (or set OHA)"; exit 1; }

# Python peer's virtualenv (pinned, apart from training/).
venv="${FLEETSCORE_BENCH_VENV:-$repo/target/venv-bench-http}"
scripts/venv.sh bench/http/requirements.txt "$venv"

eval "$(scripts/python-env.sh --print)"
[[ -n "${FLEETSCORE_BIN:-}" ]] || cargo build --release -p fleetscore --quiet
bin="${FLEETSCORE_BIN:-${CARGO_TARGET_DIR:-target}/release/fleetscore}"
out="$repo/target/bench-http"
rm -rf "$out"; mkdir -p "$out"
# Both servers score this package as engine-rul/1; one real feature row, and wrk's script.
source bench/http/common.sh
PYTHON="$venv/bin/python" one_model "$model" "$out"
if [[ -n "$backend" ]]; then
  "$venv/bin/python" - "$out/models/engine-rul/1/manifest.json" "$backend" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["backend"] = sys.argv[2]
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_up() {  # url
  for _ in $(seq 300); do
    curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data @"$out/row.json" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "$1 never answered"; exit 1
}

RUST_LOG=warn FLEETSCORE_MODELS_DIR="$out/models" \
  "$bin" serve --no-kafka --http-addr 127.0.0.1:18091 >"$out/fleetscore.log" 2>&1 &
pids+=($!)
MODEL_DIR="$out/models/engine-rul/1" "$venv/bin/uvicorn" peer:app --app-dir bench/http \
  --host 127.0.0.1 --port 18092 --workers "$py_workers" --log-level warning --no-access-log \
  >"$out/python.log" 2>&1 &
pids+=($!)
wait_up http://127.0.0.1:18091/score
wait_up http://127.0.0.1:18092/score
if [[ -n "$jitter" ]]; then
  for cpu in $(seq 0 $(($(nproc) - 1))); do
    chrt -f 50 taskset -c "$cpu" python3 bench/http/jitter.py &
    pids+=($!)
  done
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

peak() {  # name url -> median req/s
  local name="$1" url="$2" i
  for i in $(seq "$runs"); do
    wrk -t1 -c"$connections" -d"${seconds}s" -s "$out/post.lua" "$url" >"$out/$name-peak-$i.txt"
    awk '/^Requests\/sec:/ {print $2}' "$out/$name-peak-$i.txt"
  done | median
}

at_rate() {  # name url rate [get] -> "p50_ms p99_ms p999_ms achieved_rps statuses max_ms" (medians)
  local name="$1" url="$2" rate="$3" i conns="$connections" body=(-m POST -T application/json -D "$out/row.json")
  ((rate <= 1000)) && conns=8
  [[ "${4:-}" == get ]] && body=()
  for i in $(seq "$runs"); do
    "$oha" --no-tui --output-format json -z "${seconds}s" -q "$rate" -c "$conns" \
      --latency-correction "${body[@]}" "$url" >"$out/$name-rate$rate-$i.json"
  done
  "$venv/bin/python" - "$out" "$name-rate$rate" "$runs" <<'PY'
import json, statistics, sys
out, prefix, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
rs = [json.load(open(f"{out}/{prefix}-{i}.json")) for i in range(1, runs + 1)]
def med(f): return statistics.median(f(r) for r in rs)
ok = all(set(r.get("statusCodeDistribution", {})) <= {"200"} for r in rs)
print(f'{med(lambda r: r["latencyPercentiles"]["p50"]) * 1e3:.3f} '
      f'{med(lambda r: r["latencyPercentiles"]["p99"]) * 1e3:.3f} '
      f'{med(lambda r: r["latencyPercentiles"]["p99.9"]) * 1e3:.3f} '
      f'{med(lambda r: r["summary"]["requestsPerSec"]):.0f} {"all-200" if ok else "NON-200-SEEN"} '
      f'{med(lambda r: r["summary"]["slowest"]) * 1e3:.3f}')
PY
}

# The machine's own jitter: how late a 1 ms sleep wakes (ms), while the servers idle.
sleep_late="$("$venv/bin/python" - <<'PY'
import time
late = []
end = time.perf_counter() + 6
while time.perf_counter() < end:
    t = time.perf_counter(); time.sleep(0.001); late.append((time.perf_counter() - t - 0.001) * 1e3)
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))]
print(f"{q(.5):.3f} {q(.99):.3f} {q(.999):.3f} {late[-1]:.3f}")
PY
)"

log "fleetscore: peak"
rust_peak="$(peak fleetscore http://127.0.0.1:18091/score)"
log "python: peak"
py_peak="$(peak python http://127.0.0.1:18092/score)"
rust_half=$(awk -v p="$rust_peak" 'BEGIN {printf "%d", p / 2}')
py_half=$(awk -v p="$py_peak" 'BEGIN {printf "%d", p / 2}')
sweep=()  # "label rate"
for pct in 10 25 50 80; do
  sweep+=("$pct%-of-peak $(awk -v p="$rust_peak" -v f="$pct" 'BEGIN {printf "%d", p * f / 100}')")
done
sweep+=("fixed 1000" "fixed 10000")
declare -A tails
for entry in "${sweep[@]}"; do
  read -r label rate <<<"$entry"
  log "fleetscore: /score and /healthz at $rate req/s ($label)"
  tails["score $rate"]="$(at_rate fleetscore http://127.0.0.1:18091/score "$rate")"
  tails["healthz $rate"]="$(at_rate fleetscore-healthz http://127.0.0.1:18091/healthz "$rate" get)"
done
rust_at_half="${tails["score $rust_half"]}"
rust_at_10k="${tails["score 10000"]}"
log "python: latency at $py_half req/s"
py_at_half="$(at_rate python http://127.0.0.1:18092/score "$py_half")"

row() { read -r p50 p99 p999 rps ok _ <<<"$3"; echo "| $1 | $2 | $rps | $p50 | $p99 | $p999 | $ok |"; }
echo
platform="$(curl -fsS http://127.0.0.1:18091/v2/models/engine-rul | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["platform"])')"
echo "runs=$runs seconds=$seconds connections=$connections python_workers=$py_workers model=$model fleetscore_platform=$platform jitter=${jitter:-0}"
echo
echo "| server | peak req/s (wrk, median) |"
echo "| --- | --- |"
echo "| fleetscore | $rust_peak |"
echo "| FastAPI + onnxruntime ($py_workers workers) | $py_peak |"
echo "| ratio | $(awk -v a="$rust_peak" -v b="$py_peak" 'BEGIN {printf "%.1fx", a / b}') |"
echo
echo "| server | offered req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | statuses |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row fleetscore "$rust_half (half of peak)" "$rust_at_half"
row fleetscore "10000" "$rust_at_10k"
row "FastAPI + onnxruntime" "$py_half (half of peak)" "$py_at_half"
echo
echo "fleetscore tail by load (oha, latency-corrected; rates up to 1,000 req/s on 8 connections, faster on $connections):"
echo
echo "| load | offered req/s | /score p50 / p99 / p99.9 / max ms | /healthz p50 / p99 / p99.9 / max ms | p99 ratio | statuses |"
echo "| --- | --- | --- | --- | --- | --- |"
for entry in "${sweep[@]}"; do
  read -r label rate <<<"$entry"
  read -r s50 s99 s999 _ sok smax <<<"${tails["score $rate"]}"
  read -r h50 h99 h999 _ hok hmax <<<"${tails["healthz $rate"]}"
  echo "| $label | $rate | $s50 / $s99 / $s999 / $smax | $h50 / $h99 / $h999 / $hmax | $(awk -v a="$s99" -v b="$h99" 'BEGIN {printf "%.2fx", a / b}') | $sok, $hok |"
done
read -r j50 j99 j999 jmax <<<"$sleep_late"
echo
echo "The machine's own jitter (with --jitter's emulation if given), a 1 ms sleep's lateness over 6 s (ms): p50 $j50, p99 $j99, p99.9 $j999, max $jmax"
