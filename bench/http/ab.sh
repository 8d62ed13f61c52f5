#!/usr/bin/env bash
# Back-to-back A/B of two or more fleetscore builds on issue #20's three targets and its
# throughput condition, interleaved round by round so that the machine's drift hits every build
# alike:
#
#   BUILDS="base=/path/a new=/path/b" bench/http/ab.sh [--rounds 5] [--seconds 6]
#       [--model DIR] [--jitter] [--out DIR]
#
# Each build serves the same one-model directory (bench/http/common.sh; default the ONNX
# Runtime fixture) on its own port, without Kafka. Per round and build, in turn: oha (open loop,
# latency-corrected) on /score then /healthz at 1,000 req/s (8 connections) and at 10,000 req/s
# (64 connections), the server's CPU time per request over the /score run at 10,000 req/s
# (/proc/PID/stat), and the peak with wrk (closed loop, 64 connections, one thread, as
# bench/http/run.sh). --jitter: bench/http/jitter.py on each CPU for the whole run (as run.sh).
# Prints each round, then per build the medians and how many rounds met each target
# (1k /score p99 ≤ 2x /healthz's, 10k p99 < 5 ms, 10k p99.9 < 10 ms); raw outputs in --out.
set -euo pipefail
rounds=5 seconds=6 model="service/tests/fixtures/models/engine-rul/1" jitter="" out=""
while (($#)); do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --jitter) jitter=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ab.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ -n "${BUILDS:-}" ]] || { echo "ab.sh: set BUILDS=\"name=/path/to/fleetscore ...\"" >&2; exit 2; }
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
oha="$(command -v oha || echo "${OHA:-/tmp/oha/bin/oha}")"
out="${out:-${CARGO_TARGET_DIR:-target}/bench-http-ab}"
rm -rf "$out"; mkdir -p "$out"
source bench/http/common.sh
one_model "$model" "$out"
serve_builds "$out" 18300
if [[ -n "$jitter" ]]; then
  for cpu in $(seq 0 $(($(nproc) - 1))); do
    chrt -f 50 taskset -c "$cpu" python3 bench/http/jitter.py &
    pid[jitter$cpu]=$!
  done
fi
oha_at() { # port rate connections path name [post]
  local body=()
  [[ "${6:-}" == post ]] && body=(-m POST -T application/json -D "$out/row.json")
  "$oha" --no-tui --output-format json -z "${seconds}s" -q "$2" -c "$3" --latency-correction \
    "${body[@]}" "http://127.0.0.1:$1$4" >"$out/$5.json"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    p=${port[$name]}
    oha_at "$p" 1000 8 /score "$name-s1k-$r" post
    oha_at "$p" 1000 8 /healthz "$name-h1k-$r"
    before=$(ticks "${pid[$name]}")
    oha_at "$p" 10000 64 /score "$name-s10k-$r" post
    echo "$(($(ticks "${pid[$name]}") - before))" >"$out/$name-cpu10k-$r.ticks"
    oha_at "$p" 10000 64 /healthz "$name-h10k-$r"
    wrk -t1 -c64 -d"${seconds}s" -s "$out/post.lua" "http://127.0.0.1:$p/score" >"$out/$name-peak-$r.txt"
  done
done
python3 - "$out" "$rounds" "$(getconf CLK_TCK)" "${names[@]}" <<'PY'
import json, re, statistics as st, sys
out, rounds, hz, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def lat(name, q):
    return json.load(open(f"{out}/{name}.json"))["latencyPercentiles"][q] * 1e3
def served(name):
    return json.load(open(f"{out}/{name}.json"))["summary"]["successRate"]
rows = {}
for r in range(1, rounds + 1):
    for n in names:
        s1, h1 = lat(f"{n}-s1k-{r}", "p99"), lat(f"{n}-h1k-{r}", "p99")
        s99, s999 = lat(f"{n}-s10k-{r}", "p99"), lat(f"{n}-s10k-{r}", "p99.9")
        h99, h999 = lat(f"{n}-h10k-{r}", "p99"), lat(f"{n}-h10k-{r}", "p99.9")
        reqs = json.load(open(f"{out}/{n}-s10k-{r}.json"))["statusCodeDistribution"].get("200", 0)
        cpu = int(open(f"{out}/{n}-cpu10k-{r}.ticks").read()) / hz / max(reqs, 1) * 1e6
        peak = float(re.search(r"Requests/sec:\s+([\d.]+)", open(f"{out}/{n}-peak-{r}.txt").read())[1])
        rows.setdefault(n, []).append((s1 / h1, s99, s999, h99, h999, cpu, peak))
        print(f"round {r} {n}: 1k /score p99 {s1:.2f} vs /healthz {h1:.2f} = {s1 / h1:.2f}x; "
              f"10k /score p99 {s99:.2f} p99.9 {s999:.2f} (/healthz {h99:.2f} / {h999:.2f}); "
              f"{cpu:.1f} µs CPU/request at 10k; peak {peak:,.0f} req/s")
first = None
for n, rs in rows.items():
    m = [st.median(c) for c in zip(*rs)]
    first = first or m
    met = (sum(x[0] <= 2 for x in rs), sum(x[1] < 5 for x in rs), sum(x[2] < 10 for x in rs))
    print(f"{n}: medians 1k ratio {m[0]:.2f}x, 10k p99 {m[1]:.2f} p99.9 {m[2]:.2f} ms "
          f"(/healthz {m[3]:.2f} / {m[4]:.2f}), {m[5]:.1f} µs CPU/request at 10k "
          f"({m[5] / first[5]:.2f}x the first), peak {m[6]:,.0f} req/s ({m[6] / first[6]:.2f}x); "
          f"rounds meeting the three targets: {met[0]}, {met[1]}, {met[2]} of {len(rs)}")
PY
