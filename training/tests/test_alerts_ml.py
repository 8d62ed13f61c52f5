"""Issue #14's training side: the episode mirror of the service's alert rules, the lead-time /
false-alarm / coverage helpers, the interval's calibration and ordering fix-up, and the
engine-anomaly and engine-rul-interval packages (quick settings) against their Python models.

    "$FLEETSCORE_PYTHON" -m pytest training/tests/test_alerts_ml.py
"""

from __future__ import annotations

import json
import subprocess

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from conftest import QUICK_VERSION, service_env
from fleet_training import engine_anomaly, feature_sets, predict_column
from fleet_training import engine_rul_interval as eri
from fleet_training.alert_evaluation import engine_outcomes, summarize
from fleet_training.data import engine_rul_labels, features_matrix, load_features
from fleet_training.episodes import Episode, Rule, Transition, episodes, transitions
from fleet_training.evaluation import coverage

# --- episodes: the cases of service/src/alerts/episode.rs, which must give the same answer


def _t(rule, values):
    return [(t.index, t.kind, t.severity) for t in transitions(rule, values)]


def test_oscillation_raises_once_and_clears_once():
    r = Rule("r", "below", {"warning": 30.0}, 5.0)
    series = [40.0, 31.0, 29.5, 30.5, 28.0, 33.0, 29.0, 34.9, 31.0, 35.0, 36.0, 29.0]
    assert _t(r, series) == [(2, "raised", "warning"), (9, "cleared", "warning"),
                             (11, "raised", "warning")]
    assert episodes(r, series) == [Episode(2, 9, "warning"), Episode(11, None, "warning")]


def test_escalation_keeps_the_worst_until_cleared():
    r = Rule("r", "below", {"warning": 60.0, "critical": 30.0}, 5.0)
    series = [80.0, 55.0, 50.0, 25.0, 40.0, 20.0, 62.0, 70.0]
    assert _t(r, series) == [(1, "raised", "warning"), (3, "escalated", "critical"),
                             (7, "cleared", "critical")]


def test_above_rules_mirror_below_rules():
    r = Rule("r", "above", {"info": 0.5, "critical": 0.9}, 0.1)
    assert _t(r, [0.2, 0.95, 0.45, 0.39, 0.6]) == [
        (1, "raised", "critical"), (3, "cleared", "critical"), (4, "raised", "info")]


def test_non_finite_values_change_nothing():
    r = Rule("r", "below", {"warning": 30.0})
    assert transitions(r, [np.nan, 10.0, np.inf, np.nan]) == [Transition(1, "raised", "warning")]


def test_float32_semantics_and_validation():
    # 0.1 + 0.2 in float32 is the float32 0.3 exactly: cleared at the boundary, as in Rust
    r = Rule("r", "below", {"warning": 0.1}, 0.2)
    assert _t(r, [0.0, np.float32(0.3)]) == [(0, "raised", "warning"), (1, "cleared", "warning")]
    with pytest.raises(ValueError, match="critical threshold must be below"):
        Rule("r", "below", {"warning": 30.0, "critical": 40.0})
    with pytest.raises(ValueError, match="hysteresis"):
        Rule("r", "above", {"warning": 1.0}, -1.0)


# --- alert evaluation on a synthetic engine


def _engine(unit, values, life):
    cycles = np.arange(1, life + 1)
    return pd.DataFrame({"unit": unit, "cycle": cycles, "rul_uncapped": life - cycles,
                         "value": values})


def test_engine_outcomes_count_episodes_not_cycles():
    rule = Rule("r", "below", {"warning": 50.0, "critical": 20.0}, 10.0)
    # unit 1, 100 cycles (true RUL 99..0): a false dip at true RUL 89-87 (cleared at 86),
    # then a standing alert from true RUL 40 to failure.
    v1 = np.full(100, 100.0)
    v1[10:13] = 45.0
    v1[59:] = np.linspace(45, 0, 41)
    # unit 2, 80 cycles: never below 50 -> not warned
    v2 = np.full(80, 90.0)
    df = pd.concat([_engine(1, v1, 100), _engine(2, v2, 80)])
    out = engine_outcomes(df, "value", rule, horizon=60).set_index("unit")
    assert out.loc[1, "episodes"] == 2 and out.loc[1, "false_episodes"] == 1
    assert out.loc[1, "spurious_episodes"] == 1  # the dip cleared before the failure
    assert out.loc[1, "warned"] and out.loc[1, "warning_cycles"] == 40
    assert out.loc[1, "first_crossing"] == 89
    assert out.loc[1, "exposure_cycles"] == 39  # true RUL 61..99
    assert not out.loc[2, "warned"] and np.isnan(out.loc[2, "warning_cycles"])
    s = summarize(out.reset_index())
    assert s["share_warned"] == 0.5 and s["median_warning_cycles"] == 40
    assert s["false_per_1000_cycles"] == pytest.approx(1000 / (39 + 19))


def test_alert_raised_only_at_failure_is_not_a_warning():
    rule = Rule("r", "below", {"warning": 10.0})
    v = np.full(50, 30.0)
    v[-1] = 5.0  # crosses at true RUL 0: too late
    out = engine_outcomes(_engine(1, v, 50), "value", rule, horizon=60)
    assert not out.loc[0, "warned"] and out.loc[0, "episodes"] == 1


def test_coverage():
    lo, hi = np.array([0, 0, 5, 5.0]), np.array([10, 10, 6, 6.0])
    y = np.array([0, 11, 5.5, 7])
    assert coverage(lo, hi, y) == 0.5  # bounds are inside
    assert coverage(lo, hi, y, [True, True, False, False]) == 0.5
    assert coverage(lo, hi, y, [True, False, True, False]) == 1.0


# --- interval pieces


def test_ordering_fixup_clamps_and_counts():
    lower, point, upper = [1.0, 8.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [9.0, 9.0, 4.0, 6.0]
    lo, hi, counts = eri.order_interval(lower, point, upper)
    assert lo.tolist() == [1, 5, 3, 2] and hi.tolist() == [9, 9, 5, 6]
    assert counts == {"rows": 4, "lower_above_point": 1, "upper_below_point": 1, "either": 2}
    assert (lo <= np.asarray(point)).all() and (np.asarray(point) <= hi).all()


def test_calibration_shift_leaves_ten_percent_beyond_each_bound():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=10_000)
    pred = np.zeros_like(truth)  # a bound at the median: 50% beyond
    lo = pred + eri.calibration_shift("lower", pred, truth)
    hi = pred + eri.calibration_shift("upper", pred, truth)
    assert np.mean(truth < lo) == pytest.approx(0.1, abs=0.002)
    assert np.mean(truth > hi) == pytest.approx(0.1, abs=0.002)
    # with a point estimate: 10% beyond the fixed-up bounds (the clamp can only widen them)
    point = truth + rng.normal(size=truth.size)
    lo, _, _ = eri.order_interval(pred + eri.calibration_shift("lower", pred, truth, point),
                                  point, point)
    _, hi, _ = eri.order_interval(point, point,
                                  pred + eri.calibration_shift("upper", pred, truth, point))
    assert np.mean(truth < lo) == pytest.approx(0.1, abs=0.002)
    assert np.mean(truth > hi) == pytest.approx(0.1, abs=0.002)


def test_shifted_booster_adds_the_shift_everywhere():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    m = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, n_jobs=1, verbose=-1,
                          objective="quantile", alpha=0.1).fit(x, x[:, 0] * 3)
    b = eri.shifted_booster(m, -2.5)
    np.testing.assert_allclose(b.predict(x), m.predict(x) - 2.5, atol=1e-9)


def test_mahalanobis_export_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 100
    scorer = engine_anomaly.fit_mahalanobis(x, [0, 2, 3, 5], 3)
    # mean 1 on the fitting rows, up to np.cov's n - 1
    assert np.mean(scorer.score(x)) == pytest.approx(499 / 500, rel=1e-9)
    assert not scorer.weights[[1, 4]].any()  # unused features: zero weights
    x32 = x.astype(np.float32)
    got = predict_column(engine_anomaly.export_mahalanobis(scorer), x32, input_name="input",
                         output_name="score")
    np.testing.assert_allclose(got, scorer.score(x32), rtol=1e-4, atol=1e-5)


# --- the quick packages and reports (train.py all --quick, shared with test_train.py)

NEW_PACKAGES = {
    "engine-anomaly": "score",
    "engine-rul-p10": "variable",
    "engine-rul-p90": "variable",
}


@pytest.fixture(scope="module")
def engine_rows(cmapss_rows, fleetscore_bin):
    feats = feature_sets(fleetscore_bin)["engine-health"]["features"]
    return engine_rul_labels(load_features(cmapss_rows["features"], feats)), feats


@pytest.mark.parametrize("name", sorted(NEW_PACKAGES))
def test_quick_new_packages_are_valid(quick_run, fleetscore_bin, name):
    d = quick_run["models"] / name / QUICK_VERSION
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["output"]["name"] == NEW_PACKAGES[name]
    assert manifest["feature_set"]["name"] == "engine-health"
    assert manifest["description"].startswith("QUICK TEST MODEL")
    proc = subprocess.run([str(fleetscore_bin), "model", "validate", "--json", str(d)],
                          capture_output=True, text=True, timeout=120, env=service_env())
    assert proc.returncode == 0, f"fleetscore rejected {d}:\n{proc.stdout}\n{proc.stderr}"


def test_quick_new_reports(quick_run):
    expected = {
        "engine-anomaly": ["score_vs_rul.png", "engine_traces.png", "lead_time.png",
                           "threshold_tradeoff.png"],
        "engine-rul-interval": ["interval_life.png", "coverage_by_rul.png", "alert_rules.png"],
    }
    for name, pngs in expected.items():
        d = quick_run["reports"] / f"{name}-{QUICK_VERSION}"
        text = (d / "report.md").read_text()
        assert "train.py all --quick" in text and "written to `models/`" in text
        for png in pngs:
            assert f"]({png})" in text
            assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads((d / "metrics.json").read_text())["metrics"]


def test_quick_anomaly_onnx_equals_python_model(quick_run, engine_rows):
    rows, feats = engine_rows
    res = engine_anomaly.train(rows, feats, engine_anomaly.QUICK_PLAN, log=lambda s: None)
    published = quick_run["models"] / "engine-anomaly" / QUICK_VERSION / "model.onnx"
    assert res.onnx_model.SerializeToString() == published.read_bytes()
    x = features_matrix(rows.iloc[::997], feats)
    got = predict_column(published.read_bytes(), x, input_name="input", output_name="score")
    np.testing.assert_allclose(got, res.final.scorer.score(x), rtol=1e-4, atol=1e-5)
    # the nested evaluation never fits on a held-out engine: every row has a score and a
    # threshold, and the numbers are in range
    assert res.df["score"].notna().all() and res.df["threshold"].notna().all()
    assert 0 <= res.metrics["false_alarm_rate_cycles"] <= 1


def test_quick_interval_onnx_equals_python_model(quick_run, engine_rows):
    rows, feats = engine_rows
    res = eri.train(rows, feats, eri.QUICK_PLAN, log=lambda s: None)
    x = features_matrix(rows.iloc[::997], feats)
    for side, name in eri.NAMES.items():
        published = quick_run["models"] / name / QUICK_VERSION / "model.onnx"
        assert res.onnx_models[side].SerializeToString() == published.read_bytes()
        got = predict_column(published.read_bytes(), x, input_name="input",
                             output_name="variable")
        np.testing.assert_allclose(got, res.boosters[side].predict(x), atol=1e-3)
    # the served interval is ordered on every held-out row
    assert (res.df["lower"] <= res.df["point"]).all()
    assert (res.df["point"] <= res.df["upper"]).all()
