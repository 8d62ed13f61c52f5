"""training/train.py and its modules: quick training of both models into a temp dir gives
valid packages the service accepts, grouped CV never splits an engine, the delay-risk split is
by time, the labels are right on hand-checked rows, and training is deterministic.

    "$FLEETSCORE_PYTHON" -m pytest training/tests/test_train.py      # ~20 s
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import QUICK_CREATED_AT as CREATED_AT
from conftest import QUICK_VERSION as VERSION
from conftest import service_env
from fleet_training import delay_risk, engine_rul, feature_sets, predict_column
from fleet_training.data import (
    ID_COLUMNS,
    delay_labels,
    engine_rul_labels,
    load_features,
    read_cmapss,
    read_flights,
)
from fleet_training.evaluation import grouped_folds, reliability

TRAINING = Path(__file__).resolve().parents[1]
MANIFEST_KEYS = {
    "format", "name", "version", "model_file", "sha256", "backend", "stage", "feature_set",
    "input", "output", "golden", "profile", "metrics", "created_at", "description",
}
EXPECTED = {
    "engine-rul": dict(feature_set="engine-health", output="variable", column=0,
                       meaning="remaining useful life (capped at 125)", unit="cycles",
                       metrics=["cv_rmse", "cv_rmse_rul_le_125", "cv_rmse_last_cycle",
                                "train_rows", "trees"]),
    "delay-risk": dict(feature_set="delay-risk", output="probabilities", column=1,
                       meaning="probability the departure leaves 15+ minutes late",
                       unit="probability",
                       metrics=["eval_auc", "eval_logloss", "eval_brier", "eval_ece",
                                "baseline_overall_logloss", "baseline_carrier_hour_auc",
                                "baseline_carrier_hour_logloss", "trees"]),
}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sets(fleetscore_bin):
    return feature_sets(fleetscore_bin)


@pytest.fixture(scope="session")
def engine_rows(cmapss_rows, sets):
    return engine_rul_labels(load_features(cmapss_rows["features"],
                                           sets["engine-health"]["features"]))


@pytest.fixture(scope="session")
def delay_rows(nyc_rows, nyc_dir, sets):
    return delay_labels(load_features(nyc_rows["features"], sets["delay-risk"]["features"]),
                        read_flights(nyc_dir))


# --- packages ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_quick_package_is_valid(quick_run, sets, name):
    exp = EXPECTED[name]
    d = quick_run["models"] / name / VERSION
    assert sorted(p.name for p in d.iterdir()) == [
        "golden.json", "manifest.json", "model.onnx", "profile.json"]
    manifest = json.loads((d / "manifest.json").read_text())
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["format"] == 1
    assert (manifest["name"], manifest["version"]) == (name, VERSION)
    # Tree models leave the backend to the service (its native trees, else ONNX Runtime).
    assert manifest["backend"] == ("ort" if name == "engine-anomaly" else None)
    assert manifest["stage"] == "serving"
    assert manifest["created_at"] == CREATED_AT
    assert manifest["description"].startswith("QUICK TEST MODEL")
    fs = sets[exp["feature_set"]]
    assert manifest["feature_set"] == {"name": exp["feature_set"], "version": fs["version"]}
    assert manifest["input"] == {"name": "input", "features": fs["features"]}
    assert manifest["output"] == {"name": exp["output"], "column": exp["column"],
                                  "meaning": exp["meaning"], "unit": exp["unit"]}
    model = (d / "model.onnx").read_bytes()
    assert manifest["sha256"] == hashlib.sha256(model).hexdigest()
    for key in exp["metrics"]:
        assert np.isfinite(manifest["metrics"][key]), key
    # The drift profile: named with its checksum; its reference rows are the training rows
    # (delay-risk: January-September only; engine-rul: every FD001 row).
    raw = (d / "profile.json").read_bytes()
    assert manifest["profile"] == {"file": "profile.json",
                                   "sha256": hashlib.sha256(raw).hexdigest()}
    profile = json.loads(raw)
    assert [f["name"] for f in profile["features"]] == fs["features"]
    assert profile["rows"] == (manifest["metrics"]["train_rows"] if name == "delay-risk"
                               else 20_631)

    golden = json.loads((d / "golden.json").read_text())
    x = np.array(golden["inputs"], np.float32)
    assert x.shape == (32, len(fs["features"]))
    assert len({tuple(r) for r in x.tolist()}) == 32  # 32 distinct real rows
    y = predict_column(model, x, input_name="input", output_name=exp["output"],
                       output_column=exp["column"])
    np.testing.assert_allclose(y, golden["outputs"], rtol=0,
                               atol=manifest["golden"]["tolerance"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_quick_package_accepted_by_service(quick_run, fleetscore_bin, name):
    d = quick_run["models"] / name / VERSION
    proc = subprocess.run([str(fleetscore_bin), "model", "validate", "--json", str(d)],
                          capture_output=True, text=True, timeout=120, env=service_env())
    assert proc.returncode == 0, f"fleetscore rejected {d}:\n{proc.stdout}\n{proc.stderr}"


def test_quick_reports(quick_run):
    expected = {
        "engine-rul": ["engine_life.png", "pred_vs_actual.png", "feature_importance.png"],
        "delay-risk": ["calibration.png", "roc.png", "feature_importance.png"],
    }
    for name, pngs in expected.items():
        d = quick_run["reports"] / f"{name}-{VERSION}"
        text = (d / "report.md").read_text()
        assert "train.py all --quick" in text  # the exact command is recorded
        for png in pngs:
            assert f"]({png})" in text
            assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        metrics = json.loads((d / "metrics.json").read_text())["metrics"]
        manifest = json.loads((quick_run["models"] / name / VERSION / "manifest.json").read_text())
        assert metrics == manifest["metrics"]


def test_published_version_is_refused_without_overwrite(quick_run):
    cmd = [a if a != "all" else "engine-rul" for a in quick_run["cmd"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already published" in proc.stderr


# --- engine-rul ----------------------------------------------------------------------------


def test_engine_labels_hand_checked(engine_rows, cmapss_file):
    raw = read_cmapss(cmapss_file)
    assert len(engine_rows) == len(raw) == 20631
    assert engine_rows["unit"].nunique() == 100
    u1 = engine_rows[engine_rows["tail"] == "CMAPSS-1"].set_index("cycle")
    assert len(u1) == 192 and u1.index.max() == 192  # unit 1 runs 192 cycles
    assert u1.loc[192, "rul"] == 0 and u1.loc[192, "rul_uncapped"] == 0
    assert u1.loc[1, "rul_uncapped"] == 191 and u1.loc[1, "rul"] == 125  # capped
    assert u1.loc[67, "rul"] == 125 and u1.loc[68, "rul"] == 124  # 192 - 68 = 124
    assert u1.loc[100, "rul"] == 92
    u2 = engine_rows[engine_rows["unit"] == 2].set_index("cycle")
    assert u2.index.max() == 287 and u2.loc[200, "rul"] == 87
    # every unit's last cycle is RUL 0, and labels never exceed the cap
    last = engine_rows.groupby("unit")["rul"].min()
    assert (last == 0).all() and engine_rows["rul"].max() == 125


def test_grouped_cv_never_splits_an_engine(engine_rows):
    units = engine_rows["unit"].to_numpy()
    folds = grouped_folds(units, 5)
    assert len(folds) == 5
    seen = []
    for train_idx, val_idx in folds:
        assert not set(units[train_idx]) & set(units[val_idx])
        assert len(train_idx) + len(val_idx) == len(units)
        seen += list(set(units[val_idx]))
    assert sorted(seen) == list(range(1, 101))  # every engine validated exactly once


def test_engine_training_uses_grouped_folds_and_is_deterministic(
        engine_rows, sets, quick_run, monkeypatch):
    """Spy on every CV fit (outer and nested inner folds) of an in-process quick training:
    no engine is ever on both sides, inner folds use only the outer training engines. The
    final model equals the one the CLI published (same bytes)."""
    calls = []
    real = engine_rul.cv_predict

    def spy(x, y, folds, params, tree_grid):
        calls.append([(tr.copy(), va.copy()) for tr, va in folds])
        return real(x, y, folds, params, tree_grid)

    monkeypatch.setattr(engine_rul, "cv_predict", spy)
    plan = dataclasses.replace(engine_rul.QUICK_PLAN, inner_folds=2)
    feats = sets["engine-health"]["features"]
    res = engine_rul.train(engine_rows, feats, plan, log=lambda s: None)
    units = res.df["unit"].to_numpy()
    outer = calls[0]
    assert len(calls) == 1 + len(outer)  # outer CV, then one inner CV per outer fold
    for (o_tr, o_va), inner in zip(outer, calls[1:]):
        assert not set(units[o_tr]) & set(units[o_va])
        o_units = units[o_tr]
        for i_tr, i_va in inner:  # indices into the outer training rows
            assert not set(o_units[i_tr]) & set(o_units[i_va])
    assert not np.isnan(res.df["cv_pred"]).any() and not np.isnan(res.df["nested_pred"]).any()

    published = quick_run["models"] / "engine-rul" / VERSION / "model.onnx"
    assert res.onnx_model.SerializeToString() == published.read_bytes()


# --- delay-risk ----------------------------------------------------------------------------


def test_delay_labels_hand_checked(delay_rows):
    rows = delay_rows.set_index("row")
    # flights.csv data rows (1-based): tail, dep_delay -> label
    assert rows.loc[1, ["tail", "dep_delay", "late"]].tolist() == ["N14228", 2.0, 0]
    assert rows.loc[184, ["tail", "dep_delay", "late"]].tolist() == ["N810UA", 14.0, 0]
    assert rows.loc[188, ["tail", "dep_delay", "late"]].tolist() == ["N346JB", 15.0, 1]
    assert rows.loc[27006, ["tail", "month", "late"]].tolist() == ["N556UA", 10, 0]
    assert rows.loc[1, "event_id"] == "nyc13:r1:scheduled"
    assert 839 not in rows.index  # N18120, cancelled (no dep_delay): excluded
    assert len(delay_rows) == 334264 - 5743  # scheduled events minus cancellations
    assert delay_rows["dep_delay"].notna().all()
    assert ((delay_rows["dep_delay"] >= 15) == (delay_rows["late"] == 1)).all()


def test_delay_row_join_checks_tail_numbers(nyc_rows, sets, nyc_dir):
    df = load_features(nyc_rows["features"], sets["delay-risk"]["features"]).head(50).copy()
    i = int(np.flatnonzero(df["tail"] != "N14228")[0])
    df.loc[i, "event_id"] = "nyc13:r1:scheduled"  # flights.csv row 1 is N14228's
    with pytest.raises(ValueError, match="tail"):
        delay_labels(df, read_flights(nyc_dir))


def test_delay_split_is_by_time_and_deterministic(delay_rows, sets, quick_run, monkeypatch):
    """No October-December row reaches any fit (selection fits see January-July only); the
    evaluation rows are exactly October-December; the quick model equals the CLI's."""
    fits = []
    real = delay_risk._fit

    def spy(x, y, params, n_trees):
        fits.append(x.copy())
        return real(x, y, params, n_trees)

    monkeypatch.setattr(delay_risk, "_fit", spy)
    feats = sets["delay-risk"]["features"]
    res = delay_risk.train(delay_rows, feats, delay_risk.QUICK_PLAN, log=lambda s: None)
    assert res.train["month"].between(1, 9).all()
    assert res.test["month"].between(10, 12).all()
    assert len(res.test) == int((delay_rows["month"] >= 10).sum())
    assert not set(res.train["event_id"]) & set(res.test["event_id"])
    assert len(fits) == 1 and len(fits[0]) == len(res.train)
    published = quick_run["models"] / "delay-risk" / VERSION / "model.onnx"
    assert res.onnx_model.SerializeToString() == published.read_bytes()

    # with a choice to make: the selection fits see January-July only
    fits.clear()
    plan = dataclasses.replace(delay_risk.QUICK_PLAN, configs={
        "a": dict(num_leaves=7, learning_rate=0.2), "b": dict(num_leaves=15, learning_rate=0.2)},
        tree_grid=(5, 10))
    res = delay_risk.train(delay_rows, feats, plan, log=lambda s: None)
    jan_jul = int((res.train["month"] <= 7).sum())
    assert [len(x) for x in fits] == [jan_jul, jan_jul, len(res.train)]
    assert len(res.selection) == 4


def test_carrier_hour_baseline():
    train = pd.DataFrame({"carrier": ["AA"] * 4 + ["UA"] * 6, "hour": [5] * 10,
                          "late": [1, 1, 1, 1] + [0] * 6})
    b = delay_risk.CarrierHourBaseline(prior_flights=10).fit(train)
    overall = 0.4
    p = b.predict(pd.DataFrame({"carrier": ["AA", "UA", "DL"], "hour": [5, 5, 5]}))
    np.testing.assert_allclose(p, [(4 + 10 * overall) / 14, (0 + 10 * overall) / 16, overall])


def test_reliability_bins():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.6, 0.6, 0.9, 0.9])
    r = reliability(y, p, n_bins=4)
    np.testing.assert_allclose(r["mean_predicted"], [0.1, 0.2, 0.6, 0.9])
    np.testing.assert_allclose(r["observed"], [0, 1, 0.5, 1])
    r = reliability(y, np.full(8, 0.3), n_bins=10)  # a constant is one bin
    assert r["count"].tolist() == [8]


# --- export determinism ----------------------------------------------------------------------

_EXPORT_SCRIPT = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import lightgbm as lgb, numpy as np
from fleet_training import export_lightgbm
x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
y = (x[:, 0] > 0).astype(int)
for m in (lgb.LGBMClassifier(n_estimators=3, n_jobs=1, verbose=-1).fit(x, y),
          lgb.LGBMRegressor(n_estimators=3, n_jobs=1, verbose=-1).fit(x, x[:, 1])):
    print(hashlib.sha256(export_lightgbm(m, 3).SerializeToString()).hexdigest())
"""


def test_export_is_byte_identical_across_processes():
    """skl2onnx orders opset_import by a set of tuples (per-process string hashing): with
    PYTHONHASHSEED 20 the plain export comes out in the other order than with 1.
    export_lightgbm sorts it, so every process writes the same bytes."""
    outs = set()
    for seed in ("1", "20", "22"):
        proc = subprocess.run([sys.executable, "-c", _EXPORT_SCRIPT, str(TRAINING)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert len(outs) == 1, outs


# --- feature rows: CSV and Parquet -----------------------------------------------------------


def test_load_features_csv_and_parquet(cmapss_rows, sets, tmp_path):
    feats = sets["engine-health"]["features"]
    csv = load_features(cmapss_rows["features"], feats)
    assert list(csv.columns) == ID_COLUMNS + feats
    pq = tmp_path / "rows.parquet"
    raw = pd.read_csv(cmapss_rows["features"], dtype={"tail": str, "event_id": str})
    # a backfill may carry label columns after the features
    raw = pd.concat([raw, pd.Series(1.0, index=raw.index, name="rul_label")], axis=1)
    raw.astype({f: np.float32 for f in feats}).to_parquet(pq)
    parquet = load_features(pq, feats)
    pd.testing.assert_frame_equal(parquet[csv.columns], csv)
    assert "rul_label" in parquet.columns
    with pytest.raises(ValueError, match="feature columns differ"):
        load_features(cmapss_rows["features"], list(reversed(feats)))
    bad = tmp_path / "bad.csv"
    raw.drop(columns=["event_time"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=re.escape(str(ID_COLUMNS))):
        load_features(bad, feats)
