#!/usr/bin/env python3
"""Write the shared profile fixture (service/tests/fixtures/profile/) that pins the Python
profile writer and the Rust reader together.

    "$FLEETSCORE_PYTHON" training/make_profile_fixture.py [--out DIR]

Files:

* ``reference.csv``  a small table (features ``f_*`` and an ``output`` column) with the awkward
  cases: ties on decile edges, merged edges (most values 0), a 98 % / 2 % binary feature with
  both 0.0 and -0.0, NaN and infinities, a feature with exactly 20 and one with 21 distinct
  values;
* ``profile.json``   :func:`fleet_training.profile.compute_profile` of it;
* ``live.csv``       other rows of the same columns (shifted, with values never seen);
* ``expected.json``  per entry, the bin of every live row (``bins``), the live counts, and the
  PSI (empty shares replaced by 1e-4) and Jensen-Shannon distance (base 2) of the live rows
  against the profile, computed here naively in float64.

The Rust tests (``service/src/drift/`` unit tests) read the profile, bin the reference and live
rows and must reproduce the counts and the measures; ``training/tests/test_profile.py`` checks
that this script still writes the committed files byte for byte. Deterministic (fixed seed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_training.profile import bin_index, compute_profile  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "service" / "tests" / "fixtures" / "profile"
SEED = 15
EPSILON = 1e-4


def tables(rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    n, m = 400, 160
    cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Continuous on a coarse grid: many ties, some on the decile edges.
    cols["f_ties"] = (np.round(rng.normal(10, 3, n) * 2) / 2,
                      np.round(rng.normal(12, 3, m) * 2) / 2)
    # 70 % zeros: the low deciles are all 0 and merge into one edge.
    ref = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(5, n))
    cols["f_zeros"] = (ref, np.where(rng.random(m) < 0.4, 0.0, rng.exponential(5, m)))
    # Binary, 98 % ones, with -0.0 among the zeros; live adds a 2 (an unseen value).
    ref = np.where(rng.random(n) < 0.98, 1.0, 0.0)
    ref[np.flatnonzero(ref == 0.0)[::2]] = -0.0
    live = np.where(rng.random(m) < 0.9, 1.0, -0.0)
    live[:5] = 2.0
    cols["f_binary"] = (ref, live)
    # Non-finite values: missing.
    ref = rng.normal(0, 1, n)
    ref[::37] = np.nan
    ref[5] = np.inf
    live = rng.normal(0.3, 1, m)
    live[::10] = np.nan
    live[3] = -np.inf
    cols["f_missing"] = (ref, live)
    # Exactly 20 distinct values (values bins) and 21 (deciles).
    cols["f_20"] = (rng.integers(0, 20, n).astype(float), rng.integers(0, 22, m).astype(float))
    cols["f_21"] = (rng.integers(0, 21, n).astype(float), rng.integers(0, 21, m).astype(float))
    # Values that are not short decimals in float32.
    cols["f_thirds"] = (rng.integers(0, 300, n) / 3.0 + 1e-3, rng.integers(0, 400, m) / 3.0)
    names = list(cols)
    ref = np.stack([cols[c][0] for c in names], axis=1).astype(np.float32)
    live = np.stack([cols[c][1] for c in names], axis=1).astype(np.float32)
    return names, ref, live


def output_of(x: np.ndarray) -> np.ndarray:
    """A stand-in for a model's prediction: finite, continuous."""
    return (0.1 * np.nan_to_num(x[:, 0]) + 0.05 * x[:, 4]).astype(np.float32)


def write_csv(path: Path, names: list[str], x: np.ndarray, y: np.ndarray) -> None:
    lines = [",".join([*names, "output"])]
    for row, out in zip(x, y):
        lines.append(",".join(repr(float(v)) for v in (*row, out)))
    path.write_text("\n".join(lines) + "\n")


def shares(counts: list[int], missing: int) -> np.ndarray:
    c = np.array([*counts, missing], dtype=np.float64)
    return c / c.sum()


def psi(e: np.ndarray, a: np.ndarray) -> float:
    e = np.where(e == 0, EPSILON, e)
    a = np.where(a == 0, EPSILON, a)
    return float(np.sum((a - e) * np.log(a / e)))


def js(e: np.ndarray, a: np.ndarray) -> float:
    m = (e + a) / 2
    kl = lambda p: sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m) if pi > 0)  # noqa: E731
    return math.sqrt(max(0.0, 0.5 * kl(e) + 0.5 * kl(a)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    names, ref, live = tables(rng)
    ref_out, live_out = output_of(ref), output_of(live)
    profile = compute_profile(ref, names, ref_out)

    expected = {}
    for j, entry in enumerate([*profile["features"], profile["output"]]):
        values = live[:, j] if j < len(names) else live_out
        bins = bin_index(entry, values)
        n_bins = len(entry["counts"])
        counts = np.bincount(bins[bins >= 0], minlength=n_bins)
        missing = int(np.count_nonzero(bins < 0))
        e = shares(entry["counts"], entry["missing"])
        a = shares(counts.tolist(), missing)
        expected[entry["name"]] = {
            "bins": [int(b) for b in bins],
            "counts": [int(c) for c in counts],
            "missing": missing,
            "psi": psi(e, a),
            "js": js(e, a),
        }

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "reference.csv", names, ref, ref_out)
    write_csv(out / "live.csv", names, live, live_out)
    (out / "profile.json").write_text(json.dumps(profile, indent=1, allow_nan=False) + "\n")
    (out / "expected.json").write_text(json.dumps(expected, allow_nan=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
