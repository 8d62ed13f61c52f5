"""CPU per event of the two builds of a bench/e2e/cpu-ab.sh comparison: every run and the
median per build, then each round's medians and their ratio (rounds alternate the builds, so a
round's two builds share the machine's state, which can drift between rounds more than a
change moves it).
    python3 bench/e2e/rounds.py OUT   (the OUT of cpu-ab.sh: old-N/ and new-N/ with
    results.jsonl)"""
import glob, json, statistics, sys


def runs(path):
    with open(path) as f:
        return [json.loads(line)["sut_cpu_us_per_event"] for line in f if '"cpu"' in line]


root = sys.argv[1]
for v in ("old", "new"):
    every = [r for path in sorted(glob.glob(f"{root}/{v}-*/results.jsonl")) for r in runs(path)]
    print(f"{v}: {' '.join(map(str, every))} µs/event, median {statistics.median(every):.2f}")
ratios = []
for old in sorted(glob.glob(f"{root}/old-*/results.jsonl")):
    n = old.split("/")[-2].split("-")[1]
    o, w = runs(old), runs(f"{root}/new-{n}/results.jsonl")
    ratio = statistics.median(w) / statistics.median(o)
    ratios.append(ratio)
    print(f"round {n}: old {o} median {statistics.median(o)}, new {w} median {statistics.median(w)}, ratio {ratio:.3f}")
print(f"rounds favouring new: {sum(r < 1 for r in ratios)} of {len(ratios)}; median ratio {statistics.median(ratios):.3f}")
