"""The reference profile of a model package (``profile.json``, contract in ``models/README.md``):
what the training rows looked like, so the service and ``fleetscore drift`` can measure how far
live rows have moved from them (population stability index, Jensen-Shannon distance).

For every input feature, and for the model's output, one *entry*:

* ``kind = "values"`` when the reference has at most :data:`MAX_VALUE_BINS` distinct finite
  values: one bin per value (``values``, ascending) plus a last bin for any other value;
* ``kind = "quantile"`` otherwise: the reference deciles 0.1 ... 0.9 taken with
  ``method="inverted_cdf"`` (so every edge is a value of the data, an exact float32), equal
  edges merged; bin ``i`` of ``len(edges) + 1`` holds ``edges[i-1] < v <= edges[i]`` (open at
  both ends), i.e. the bin index is the number of edges strictly below ``v``;
* ``missing``: the rows whose value is NaN or infinite (never in a bin);
* ``counts``: integer counts per bin, so ``sum(counts) + missing == rows`` exactly; shares are
  derived by the reader;
* ``min``, ``max`` (float32 values of the data), ``mean``, ``std`` (population, over the
  finite values, in float64): ``null`` when no value is finite.

Everything is computed on float32, the values the service computes and scores, and the
service bins a live value with the same rule (``service/src/model/profile.rs``); the shared
fixture ``service/tests/fixtures/profile/`` pins the two together.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

PROFILE_FORMAT = 1
PROFILE_FILE = "profile.json"
# At most this many distinct values: one bin per value (Evidently's cut-off for numerical
# features, `stattests/utils.py::get_binned_data`); deciles would merge e.g. a 98 % / 2 %
# binary feature into one bin and never see it move.
MAX_VALUE_BINS = 20
QUANTILES = tuple(i / 10 for i in range(1, 10))
BINNING = "deciles-inverted_cdf/values<=20"
OUTPUT_ENTRY = "output"


def _f32(values: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32).ravel())


def bin_index(entry: dict, values: Any) -> np.ndarray:
    """The bin of each value under ``entry`` (an entry of a profile): ``0..len(counts)-1``,
    or ``-1`` for a missing (non-finite) value."""
    x = _f32(values)
    finite = np.isfinite(x)
    if entry["kind"] == "quantile":
        edges = _f32(entry["edges"])
        idx = np.searchsorted(edges, x, side="left")  # number of edges < x
    elif entry["kind"] == "values":
        known = _f32(entry["values"])
        pos = np.searchsorted(known, x, side="left")
        if len(known):
            hit = (pos < len(known)) & (known[np.minimum(pos, len(known) - 1)] == x)
        else:
            hit = np.zeros(x.shape, dtype=bool)
        idx = np.where(hit, pos, len(known))  # the last bin: any other value
    else:
        raise ValueError(f"unknown bin kind {entry['kind']!r}")
    return np.where(finite, idx, -1).astype(np.int64)


def profile_entry(name: str, values: Any) -> dict:
    """One profile entry for ``values`` (any shape, read as float32)."""
    x = _f32(values)
    if x.size == 0:
        raise ValueError(f"{name}: no reference rows")
    finite = x[np.isfinite(x)]
    distinct = np.unique(finite)  # -0.0 and 0.0 are one value
    entry: dict[str, Any] = {"name": name}
    if len(distinct) <= MAX_VALUE_BINS:
        entry["kind"] = "values"
        # `+ 0.0` writes -0.0 as 0.0: which of the two a sort puts first differs between
        # CPUs (numpy's SIMD sorts), and they are one value to the reader.
        entry["values"] = [float(v) + 0.0 for v in distinct]
    else:
        q = np.quantile(finite, QUANTILES, method="inverted_cdf")
        entry["kind"] = "quantile"
        entry["edges"] = [float(v) + 0.0 for v in np.unique(q.astype(np.float32))]
    bins = bin_index(entry, x)
    n_bins = len(entry.get("edges", entry.get("values"))) + 1
    counts = np.bincount(bins[bins >= 0], minlength=n_bins)
    entry["counts"] = [int(c) for c in counts]
    entry["missing"] = int(np.count_nonzero(bins < 0))
    if finite.size:
        f64 = finite.astype(np.float64)
        entry.update(min=float(finite.min()), max=float(finite.max()),
                     mean=float(f64.mean()), std=float(f64.std()))
    else:
        entry.update(min=None, max=None, mean=None, std=None)
    assert sum(entry["counts"]) + entry["missing"] == x.size
    return entry


def compute_profile(rows: np.ndarray, feature_names: Sequence[str], outputs: Any) -> dict:
    """The profile of the reference ``rows`` (``[n, len(feature_names)]``, float32) and the
    model's ``outputs`` on them (``[n]``)."""
    x = np.asarray(rows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise ValueError(
            f"profile rows must be [n, {len(feature_names)}], got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("profile rows are empty")
    y = _f32(outputs)
    if y.shape != (x.shape[0],):
        raise ValueError(f"{y.shape[0]} outputs for {x.shape[0]} profile rows")
    return {
        "format": PROFILE_FORMAT,
        "rows": int(x.shape[0]),
        "binning": BINNING,
        "features": [profile_entry(name, x[:, j]) for j, name in enumerate(feature_names)],
        "output": profile_entry(OUTPUT_ENTRY, y),
    }
