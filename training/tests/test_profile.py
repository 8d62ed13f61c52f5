"""fleet_training.profile and the profile written by write_package (drift monitoring):

* bins against a naive per-value recomputation (edges strictly below the value; exact value
  matches), the values/deciles cut-off at 20 distinct values, merged decile edges taken from
  the data, counts that add up to the rows, missing values;
* write_package writes profile.json before the manifest, which names it with its sha256, and
  the output entry is the profile of the graph's own predictions on the rows;
* the shared fixture (service/tests/fixtures/profile/, read by the Rust tests) is what
  training/make_profile_fixture.py writes today, byte for byte.

    "$FLEETSCORE_PYTHON" -m pytest training/tests/test_profile.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from fleet_training import export_lightgbm, predict_column, write_package
from fleet_training import package as pkg
from fleet_training.profile import (
    MAX_VALUE_BINS,
    PROFILE_FILE,
    bin_index,
    compute_profile,
    profile_entry,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "service" / "tests" / "fixtures" / "profile"
FEATURES = [f"f{i}" for i in range(5)]


def naive_bin(entry: dict, v: float) -> int:
    v = np.float32(v)
    if not np.isfinite(v):
        return -1
    if entry["kind"] == "quantile":
        return sum(1 for e in entry["edges"] if np.float32(e) < v)
    for i, known in enumerate(entry["values"]):
        if np.float32(known) == v:
            return i
    return len(entry["values"])


def test_bins_equal_a_naive_recomputation():
    rng = np.random.default_rng(1)
    ref = np.concatenate([np.round(rng.normal(0, 2, 500), 1), [np.nan, np.inf, -np.inf, -0.0]])
    entry = profile_entry("x", ref)
    assert entry["kind"] == "quantile"
    probe = np.concatenate([ref, np.float32(entry["edges"]),
                            np.nextafter(np.float32(entry["edges"]), np.float32(np.inf)),
                            [-1e30, 1e30]]).astype(np.float32)
    assert bin_index(entry, probe).tolist() == [naive_bin(entry, v) for v in probe]
    assert entry["counts"] == [sum(1 for v in ref if naive_bin(entry, v) == i)
                               for i in range(len(entry["edges"]) + 1)]
    assert entry["missing"] == 3
    assert sum(entry["counts"]) + entry["missing"] == len(ref)
    # Edges are values of the data (inverted_cdf), ascending, and the reference deciles.
    finite = np.float32(ref[np.isfinite(ref)])
    assert set(np.float32(entry["edges"])) <= set(finite)
    assert np.all(np.diff(entry["edges"]) > 0)
    for q in (0.1, 0.5, 0.9):
        assert np.float32(np.quantile(finite, q, method="inverted_cdf")) in np.float32(
            entry["edges"])
    assert entry["min"] == float(finite.min()) and entry["max"] == float(finite.max())
    assert entry["mean"] == pytest.approx(float(np.mean(finite.astype(np.float64))))


def test_value_bins_up_to_twenty_distinct_values():
    twenty = np.arange(400) % MAX_VALUE_BINS
    e20 = profile_entry("x", twenty)
    assert e20["kind"] == "values" and e20["values"] == [float(v) for v in range(20)]
    assert e20["counts"] == [20] * 20 + [0]
    assert bin_index(e20, [3.0, 3.5, 25.0, np.nan]).tolist() == [3, 20, 20, -1]
    e21 = profile_entry("x", np.arange(420) % (MAX_VALUE_BINS + 1))
    assert e21["kind"] == "quantile"
    # A 98 % / 2 % binary feature keeps its two bins (deciles would merge them); -0.0 is 0.0.
    binary = np.array([1.0] * 98 + [0.0, -0.0], np.float32)
    eb = profile_entry("b", binary)
    assert eb["kind"] == "values" and len(eb["values"]) == 2
    assert eb["counts"] == [2, 98, 0]
    assert bin_index(eb, [0.0, -0.0, 1.0]).tolist() == [0, 0, 1]


def test_merged_edges_and_all_missing():
    zeros = np.concatenate([np.zeros(700), np.linspace(1, 50, 300)])
    e = profile_entry("z", zeros)
    assert e["kind"] == "quantile" and e["edges"][0] == 0.0
    assert e["counts"][0] == 700  # the merged deciles 0.1..0.7 are one bin
    nothing = profile_entry("n", [np.nan, np.inf])
    assert nothing["kind"] == "values" and nothing["values"] == []
    assert nothing["counts"] == [0] and nothing["missing"] == 2
    assert nothing["min"] is None and nothing["std"] is None


def test_compute_profile_shape_and_errors():
    x = np.random.default_rng(2).normal(size=(300, 3)).astype(np.float32)
    p = compute_profile(x, ["a", "b", "c"], x[:, 0] * 2)
    assert p["format"] == 1 and p["rows"] == 300
    assert [f["name"] for f in p["features"]] == ["a", "b", "c"]
    assert p["output"]["name"] == "output"
    assert p["output"]["edges"] == [2 * v for v in p["features"][0]["edges"]]
    with pytest.raises(ValueError):
        compute_profile(x, ["a", "b"], x[:, 0])
    with pytest.raises(ValueError):
        compute_profile(x, ["a", "b", "c"], x[:10, 0])
    with pytest.raises(ValueError):
        compute_profile(x[:0], ["a", "b", "c"], x[:0, 0])


@pytest.fixture(scope="module")
def model_and_rows():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    x[:, 4] = rng.integers(0, 3, len(x))  # a discrete feature
    y = 3 * x[:, 0] - x[:, 1] ** 2
    reg = lgb.LGBMRegressor(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1).fit(x, y)
    return export_lightgbm(reg, len(FEATURES)), x


def _write(models_dir, onx, x, **kw):
    return write_package(
        models_dir, name="test-model", version="1", onnx_model=onx,
        feature_set_name="test-set", feature_set_version="abc123", feature_names=FEATURES,
        input_name="input", output_name="variable", output_column=0, meaning="a number",
        unit="units", golden_inputs=x[:3], description="test", **kw)


def test_write_package_writes_the_profile_before_the_manifest(tmp_path, model_and_rows,
                                                              monkeypatch):
    onx, x = model_and_rows
    renames = []
    real_replace = pkg.os.replace

    def spy(src, dst):
        renames.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(pkg.os, "replace", spy)
    d = _write(tmp_path, onx, x, profile_rows=x)
    assert renames == ["model.onnx", "golden.json", PROFILE_FILE, "manifest.json"]
    manifest = json.loads((d / "manifest.json").read_text())
    raw = (d / PROFILE_FILE).read_bytes()
    assert manifest["profile"] == {"file": PROFILE_FILE,
                                   "sha256": hashlib.sha256(raw).hexdigest()}
    profile = json.loads(raw)
    assert profile["rows"] == 600
    assert [f["name"] for f in profile["features"]] == FEATURES
    assert profile["features"][4]["kind"] == "values"
    outputs = predict_column(onx, x, input_name="input", output_name="variable")
    assert profile["output"] == profile_entry("output", outputs)
    for j, f in enumerate(profile["features"]):
        assert f == profile_entry(FEATURES[j], x[:, j])


def test_without_rows_there_is_no_profile(tmp_path, model_and_rows):
    onx, x = model_and_rows
    d = _write(tmp_path, onx, x, profile_rows=x)
    assert (d / PROFILE_FILE).exists()
    d = _write(tmp_path, onx, x, overwrite=True)  # republished without: no stale profile
    assert "profile" not in json.loads((d / "manifest.json").read_text())
    assert not (d / PROFILE_FILE).exists()
    with pytest.raises(ValueError):
        _write(tmp_path / "other", onx, x, profile_rows=x[:, :3])
    assert not (tmp_path / "other").exists()


def test_shared_fixture_is_current(tmp_path):
    """The committed fixture the Rust tests read is what the writer produces today."""
    proc = subprocess.run([sys.executable, str(REPO / "training" / "make_profile_fixture.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("reference.csv", "live.csv", "profile.json", "expected.json"):
        assert (tmp_path / name).read_bytes() == (SHARED / name).read_bytes(), (
            f"{name} changed: rerun training/make_profile_fixture.py and commit it")
    # And the reference table's counts are its own profile's.
    profile = json.loads((SHARED / "profile.json").read_text())
    table = np.genfromtxt(SHARED / "reference.csv", delimiter=",", names=True,
                          dtype=np.float32)
    for entry in [*profile["features"], profile["output"]]:
        bins = bin_index(entry, table[entry["name"]])
        assert np.bincount(bins[bins >= 0], minlength=len(entry["counts"])).tolist() == \
            entry["counts"]
