#!/usr/bin/env python3
"""The BENCHMARKS.md table of this directory's runs.

    python3 table.py [TPUT_DIR [LAT_DIR]]

Throughput (and CPU per event) from TPUT_DIR (default: tput2 here; round1 has every variant),
latencies from LAT_DIR (default: latency here): round1's visible latencies were taken with the
reader's first version, which dated records up to 50 ms late (see README.md).
"""

import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).parent
tput_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "tput2"
lat_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else here / "latency"
med = statistics.median


def rows(variant: str, where: Path | None = None) -> list[dict]:
    f = (where or tput_dir) / variant / "results.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []


def tput(variant: str) -> list[float]:
    return [r["events_per_s"] for r in rows(variant) if r["what"] == "throughput"]


def lat(variant: str, measure: str) -> list[dict]:
    return [r for r in rows(variant, lat_dir) if r["what"] == "latency"
            and r.get("measure", "produced") == measure and r.get("measured")]


def runs(rs: list[dict]) -> str:
    return ", ".join(f"{r['p99_ms']:.0f}" for r in rs)


base = med(tput("base"))
order = ["base", "alo100", "eos100", "eos50", "eos25", "eos20", "eos10"]
print("| variant | events/s, 3 runs | median | vs base | CPU µs/event | visible p50 | "
      "visible p99 (runs) | visible max | produced p99 (runs) | reader CPU |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for v in order:
    if not rows(v) and not rows(v, lat_dir):
        continue
    t = tput(v)
    cpu = [r["sut_cpu_us_per_event"] for r in rows(v) if r["what"] == "cpu" and r["phase"] == "tput"]
    vis, pro = lat(v, "visible"), lat(v, "produced")
    cells = [
        v,
        " ".join(f"{x:,.0f}" for x in t),
        f"**{med(t):,.0f}**" if t else "",
        f"{med(t) / base:.2f}" if t else "",
        f"{min(cpu):.1f}-{max(cpu):.1f}" if cpu else "",
    ]
    if vis:
        cells += [
            f"{med(r['p50_ms'] for r in vis):.0f} ms",
            f"**{med(r['p99_ms'] for r in vis):.0f} ms** ({runs(vis)})",
            f"{med(r['max_ms'] for r in vis):.0f} ms",
        ]
    else:
        cells += ["", "", ""]
    cells.append(f"{med(r['p99_ms'] for r in pro):.0f} ms ({runs(pro)})" if pro else "")
    cells.append(f"{med(r['reader_cpu_s'] / r['reader_s'] for r in vis):.2f} cores" if vis else "")
    print("| " + " | ".join(cells) + " |")
print()
for d in [tput_dir, lat_dir]:
    for v in order:
        m = d / v / "machine.txt"
        if m.exists():
            loads = [line for line in m.read_text().splitlines() if line.startswith("loadavg")]
            print(f"{d.name}/{v}: " + "; ".join(loads))
