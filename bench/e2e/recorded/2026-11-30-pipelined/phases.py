import re, sys, glob
from datetime import datetime
def q(v, p): v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
for d in sys.argv[1:]:
    tot, drain, offs, com = [], [], [], []
    for f in sorted(glob.glob(d + "/fs-lat50-*.log")):
        ack = None
        for l in open(f):
            m = re.search(r'drain_ms=([\d.]+)', l)
            if m: ack = (datetime.fromisoformat(l[:26]), float(m.group(1)))
            m = re.search(r'offsets_ms=([\d.]+) commit_ms=([\d.]+)', l)
            if m and ack:
                t1 = datetime.fromisoformat(l[:26])
                drain.append(ack[1]); offs.append(float(m.group(1))); com.append(float(m.group(2)))
                tot.append(ack[1] + (t1 - ack[0]).total_seconds() * 1e3)
    print(d, "commits", len(tot), "| total p50 %.1f p90 %.1f p99 %.1f | drain p50 %.1f | offsets p50 %.1f | commit p50 %.1f ms" % (
        q(tot, .5), q(tot, .9), q(tot, .99), q(drain, .5), q(offs, .5), q(com, .5)))
