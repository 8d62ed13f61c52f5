"""Per-round CPU per event of the two builds of a cpu-ab.sh comparison: each round's medians and
their ratio (rounds alternate the builds, so a round's two builds share the machine's state).
    python3 bench/e2e/rounds.py OUT   (the OUT of bench/e2e/cpu-ab.sh: old-N/ and new-N/ with
    results.jsonl)"""
import glob, json, os, statistics, sys

def runs(path):
    with open(path) as f:
        return [json.loads(line)["sut_cpu_us_per_event"] for line in f if '"cpu"' in line]

root = sys.argv[1]
ratios = []
for old in sorted(glob.glob(f"{root}/old-*/results.jsonl")):
    n = old.split("/")[-2].split("-")[1]
    o, w = runs(old), runs(f"{root}/new-{n}/results.jsonl")
    ratio = statistics.median(w) / statistics.median(o)
    ratios.append(ratio)
    print(f"round {n}: old {o} median {statistics.median(o)}, new {w} median {statistics.median(w)}, ratio {ratio:.3f}")
print(f"rounds favouring new: {sum(r < 1 for r in ratios)} of {len(ratios)}; median ratio {statistics.median(ratios):.3f}")
