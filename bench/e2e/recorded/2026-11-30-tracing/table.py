"""Summarises ab.sh outputs: python3 table.py r1 r2 r3 (variants as ab.sh named them)."""
import json, re, sys, glob, os
from statistics import median
rows = {}
for rnd in sys.argv[1:]:
    for vdir in sorted(glob.glob(rnd + "/*/")):
        v = os.path.basename(vdir.rstrip("/"))
        md = open(vdir + "summary.md").read()
        m = re.search(r"^\| fleetscore \| ([\d,]+) \| ([\d, ]+) \|(.*)$", md, re.M)
        tput = [int(x.replace(",", "")) for x in m.group(2).split(", ")] if m else []
        lat = {}
        for meas in ("produced", "visible"):
            mm = re.search(r"\| %s \| (\d+) ms \| (\d+) ms \| (\d+) ms \| (\d+) ms \|" % meas, md)
            if mm:
                lat[meas] = tuple(int(x) for x in mm.groups())
        cl = []
        for f in glob.glob(vdir + "fs-lat50-*.metrics"):
            t = open(f).read()
            b = sum(float(x) for x in re.findall(r"^fleetscore_changelog_bytes_total (\S+)", t, re.M))
            e = sum(float(x) for x in re.findall(r"^fleetscore_events_consumed_total(?:\{[^}]*\})? (\S+)", t, re.M))
            if e: cl.append(b / e)
        rows.setdefault(v, []).append((rnd, tput, lat, cl))
for v, rs in rows.items():
    allt = [t for r in rs for t in r[1]]
    print(f"## {v}: tput median {median(allt):,.0f} runs " + " · ".join(" ".join(f"{t:,}" for t in r[1]) for r in rs))
    for rnd, tput, lat, cl in rs:
        print(f"  {rnd}: produced p50/p99 {lat.get('produced', ('-',)*4)[0::2]} visible p50/p90/p99/max {lat.get('visible')} changelog B/event at 19k/s {['%.0f' % c for c in cl]}")
