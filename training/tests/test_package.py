"""fleet_training.package: write_package round trip, export_lightgbm exactness, and the
committed test fixtures (service/tests/fixtures/models) against the current binary.

    "$FLEETSCORE_PYTHON" -m pytest training/tests/test_package.py
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import pytest
from onnx import TensorProto, helper
from onnxmltools.convert.common.data_types import FloatTensorType

import fleet_training
from fleet_training import package as pkg
from fleet_training import (
    default_fleetscore_bin,
    export_lightgbm,
    feature_sets,
    predict_column,
    write_package,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "service" / "tests" / "fixtures" / "models"
EXPECTED_FIXTURES = {
    ("engine-rul", "1"), ("engine-rul", "2"), ("engine-rul-mlp", "1"),
    ("delay-risk", "1"), ("nan-model", "1"),
}
MANIFEST_KEYS = {
    "format", "name", "version", "model_file", "sha256", "backend", "stage", "feature_set",
    "input", "output", "golden", "metrics", "created_at", "description",
}
FEATURES = [f"f{i}" for i in range(5)]


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    y = 3 * x[:, 0] - x[:, 1] ** 2 + rng.normal(scale=0.1, size=len(x))
    return x, y


@pytest.fixture(scope="module")
def regressor(data):
    x, y = data
    return lgb.LGBMRegressor(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1).fit(x, y)


@pytest.fixture(scope="module")
def classifier(data):
    x, y = data
    return lgb.LGBMClassifier(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1).fit(x, y > 0)


def _write(models_dir, model, golden, **kw):
    args = dict(
        name="test-model", version="1", onnx_model=model, feature_set_name="test-set",
        feature_set_version="abc123", feature_names=FEATURES, input_name="input",
        output_name="variable", output_column=0, meaning="a number", unit="units",
        golden_inputs=golden, metrics={"rmse": 1.5, "rows": 600}, description="test",
    )
    args.update(kw)
    return write_package(models_dir, **args)


def _load(d: Path) -> tuple[dict, dict]:
    return (json.loads((d / "manifest.json").read_text()),
            json.loads((d / "golden.json").read_text()))


# --- write_package -------------------------------------------------------------------------


def test_round_trip(tmp_path, data, regressor):
    x, _ = data
    onx = export_lightgbm(regressor, len(FEATURES))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    d = _write(tmp_path, onx, x[:8], backend="ort")
    assert d == tmp_path / "test-model" / "1"
    assert sorted(p.name for p in d.iterdir()) == ["golden.json", "manifest.json", "model.onnx"]

    manifest, golden = _load(d)
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["format"] == 1
    assert (manifest["name"], manifest["version"]) == ("test-model", "1")
    assert manifest["model_file"] == "model.onnx"
    assert manifest["sha256"] == hashlib.sha256((d / "model.onnx").read_bytes()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["sha256"])
    assert manifest["backend"] == "ort" and manifest["stage"] == "serving"
    assert manifest["feature_set"] == {"name": "test-set", "version": "abc123"}
    assert manifest["input"] == {"name": "input", "features": FEATURES}
    assert manifest["output"] == {
        "name": "variable", "column": 0, "meaning": "a number", "unit": "units",
    }
    assert manifest["golden"] == {"file": "golden.json", "tolerance": 1e-4}
    assert manifest["metrics"] == {"rmse": 1.5, "rows": 600}
    assert manifest["description"] == "test"
    created = datetime.strptime(manifest["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    created = created.replace(tzinfo=timezone.utc)
    assert before <= created <= datetime.now(timezone.utc) + timedelta(seconds=1)

    assert set(golden) == {"inputs", "outputs"}
    inputs = np.array(golden["inputs"], dtype=np.float32)
    np.testing.assert_array_equal(inputs, x[:8])  # float32 values survive JSON exactly
    again = predict_column((d / "model.onnx").read_bytes(), inputs, input_name="input",
                           output_name="variable")
    np.testing.assert_array_equal(again, np.array(golden["outputs"], np.float32))
    np.testing.assert_allclose(golden["outputs"], regressor.predict(x[:8]), atol=1e-4)


def test_backend_null_classifier_column_and_shadow(tmp_path, data, classifier):
    x, _ = data
    onx = export_lightgbm(classifier, len(FEATURES))
    d = _write(tmp_path, onx, x[:5], output_name="probabilities", output_column=1,
               stage="shadow", backend=None, metrics=None, tolerance=1e-5)
    manifest, golden = _load(d)
    assert manifest["backend"] is None and manifest["stage"] == "shadow"
    assert manifest["metrics"] == {} and manifest["golden"]["tolerance"] == 1e-5
    np.testing.assert_allclose(golden["outputs"], classifier.predict_proba(x[:5])[:, 1],
                               atol=1e-5)


def test_manifest_is_written_last_via_tmp_rename(tmp_path, data, regressor, monkeypatch):
    x, _ = data
    renames = []
    real_replace = pkg.os.replace

    def spy(src, dst):
        present = sorted(p.name for p in Path(dst).parent.iterdir())
        renames.append((Path(src).name, Path(dst).name, present))
        real_replace(src, dst)

    monkeypatch.setattr(pkg.os, "replace", spy)
    _write(tmp_path, export_lightgbm(regressor, len(FEATURES)), x[:3])
    assert [(s, d) for s, d, _ in renames] == [
        ("model.onnx.tmp", "model.onnx"),
        ("golden.json.tmp", "golden.json"),
        ("manifest.json.tmp", "manifest.json"),
    ]
    # Just before the manifest appears, the other files are complete and in place.
    assert renames[-1][2] == ["golden.json", "manifest.json.tmp", "model.onnx"]


def test_refuses_to_overwrite_a_published_version(tmp_path, data, regressor):
    x, _ = data
    onx = export_lightgbm(regressor, len(FEATURES))
    d = _write(tmp_path, onx, x[:3], description="first")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(FileExistsError):
        _write(tmp_path, onx, x[3:6], description="second")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    _write(tmp_path, onx, x[3:6], description="second", overwrite=True)
    manifest, golden = _load(d)
    assert manifest["description"] == "second"
    np.testing.assert_array_equal(np.array(golden["inputs"], np.float32), x[3:6])
    # A directory without manifest.json is not published: writing into it is allowed.
    (tmp_path / "test-model" / "2").mkdir()
    (tmp_path / "test-model" / "2" / "model.onnx").write_bytes(b"half copied")
    _write(tmp_path, onx, x[:3], version="2")
    assert _load(tmp_path / "test-model" / "2")[0]["version"] == "2"


def test_golden_outputs_override(tmp_path, data, regressor):
    x, _ = data
    d = _write(tmp_path, export_lightgbm(regressor, len(FEATURES)), x[:4],
               golden_outputs=[1.0, 2.0, 3.0, 4.5])
    assert _load(d)[1]["outputs"] == [1.0, 2.0, 3.0, 4.5]


@pytest.mark.parametrize(
    "change, error",
    [
        ({"name": "Engine_RUL"}, ValueError),
        ({"version": "1/2"}, ValueError),
        ({"version": ".."}, ValueError),
        ({"version": ".hidden"}, ValueError),
        ({"name": "x" * 65}, ValueError),
        ({"stage": "canary"}, ValueError),
        ({"backend": "onnxruntime"}, ValueError),
        ({"tolerance": 0}, ValueError),
        ({"feature_names": FEATURES[:4]}, ValueError),  # graph input is [N, 5]
        ({"input_name": "x"}, ValueError),
        ({"output_name": "label"}, ValueError),
        ({"output_column": 1}, ValueError),  # "variable" is [N, 1]
        ({"golden_inputs": np.full((2, 5), np.nan, np.float32)}, ValueError),
        ({"golden_inputs": np.zeros((0, 5), np.float32)}, ValueError),
        ({"golden_inputs": np.zeros((1001, 5), np.float32)}, ValueError),
        ({"golden_outputs": [float("nan")] * 3}, ValueError),
        ({"golden_outputs": [1.0, 2.0]}, ValueError),
        ({"metrics": {"auc": float("inf")}}, ValueError),
        ({"metrics": {"note": "text"}}, TypeError),
    ],
)
def test_invalid_arguments_write_nothing(tmp_path, data, regressor, change, error):
    x, _ = data
    args = {"golden": x[:3], **change}
    golden = args.pop("golden")
    if "golden_inputs" in args:
        golden = args.pop("golden_inputs")
    with pytest.raises(error):
        _write(tmp_path, export_lightgbm(regressor, len(FEATURES)), golden, **args)
    assert list(tmp_path.iterdir()) == []


def test_nan_outputs_need_an_explicit_override(tmp_path):
    onx = _graph("Sqrt", [helper.make_node("Neg", ["one_col"], ["neg"]),
                          helper.make_node("Sqrt", ["neg"], ["out"])], out_shape=["N", 1])
    with pytest.raises(ValueError, match="not all finite"):
        _write(tmp_path, onx, np.ones((2, 5), np.float32), output_name="out")
    d = _write(tmp_path, onx, np.ones((2, 5), np.float32), output_name="out",
               golden_outputs=[7.0, 7.0])
    assert _load(d)[1]["outputs"] == [7.0, 7.0]


def _graph(name: str, nodes: list, out_shape: list) -> onnx.ModelProto:
    """input [N, 5] -> Gather column 0 as "one_col" [N, 1] -> nodes -> "out"."""
    col = helper.make_tensor("col0", TensorProto.INT64, [1], [0])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["input", "col0"], ["one_col"], axis=1), *nodes], name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)],
        initializer=[col],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def test_predict_column_shapes():
    x = np.arange(15, dtype=np.float32).reshape(3, 5)
    flat = _graph("flat", [helper.make_node("Squeeze", ["one_col", "ax"], ["out"])], ["N"])
    flat.graph.initializer.append(helper.make_tensor("ax", TensorProto.INT64, [1], [1]))
    np.testing.assert_array_equal(
        predict_column(flat, x, input_name="input", output_name="out"), x[:, 0])
    with pytest.raises(ValueError, match="must be 0"):
        predict_column(flat, x, input_name="input", output_name="out", output_column=1)
    wide = _graph("wide", [helper.make_node("Identity", ["input"], ["out"])], ["N", 5])
    np.testing.assert_array_equal(
        predict_column(wide, x, input_name="input", output_name="out", output_column=3), x[:, 3])
    with pytest.raises(ValueError, match="out of range"):
        predict_column(wide, x, input_name="input", output_name="out", output_column=5)


# --- export_lightgbm ------------------------------------------------------------------------


def test_export_is_float32_exact_where_the_plain_recipe_is_not():
    """Values a few float32 ulps apart at a large magnitude (like C-MAPSS NRf_mean ~ 2388):
    LightGBM's double thresholds fall between adjacent float32 values, and rounding them to
    the nearest float32 sends some rows down the wrong branch."""
    rng = np.random.default_rng(3)
    ulp = np.spacing(np.float32(2388.0))
    x = (np.float32(2388.0) + ulp * rng.integers(0, 64, size=(3000, 2))).astype(np.float32)
    y = np.sin(x[:, 0].astype(np.float64) / ulp) + (x[:, 1] > 2388.0 + 31 * ulp)
    reg = lgb.LGBMRegressor(n_estimators=20, num_leaves=15, min_child_samples=5, n_jobs=1,
                            verbose=-1).fit(x, y)
    want = reg.predict(x)

    plain = onnxmltools.convert_lightgbm(reg, initial_types=[("input", FloatTensorType([None, 2]))])
    got_plain = predict_column(plain, x, input_name="input", output_name="variable")
    assert np.max(np.abs(got_plain - want)) > 1e-2  # the bug this export avoids

    onx = export_lightgbm(reg, 2)
    got = predict_column(onx, x, input_name="input", output_name="variable")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # The patched booster itself predicts exactly what the original does on float32 rows.
    np.testing.assert_array_equal(
        fleet_training.float32_exact_booster(reg.booster_).predict(x), want)


def test_export_matches_the_smoke_test_recipe_shapes(regressor, classifier):
    reg = export_lightgbm(regressor, len(FEATURES), input_name="features")
    assert [i.name for i in reg.graph.input] == ["features"]
    assert {o.name: helper.printable_type(o.type) for o in reg.graph.output} == {
        "variable": "FLOAT, Nx1"}
    clf = export_lightgbm(classifier, len(FEATURES))
    assert {o.name: helper.printable_type(o.type) for o in clf.graph.output} == {
        "label": "INT64, N", "probabilities": "FLOAT, Nx2"}
    assert "ZipMap" not in {n.op_type for n in clf.graph.node}
    # A Booster exports like its sklearn wrapper.
    assert export_lightgbm(classifier.booster_, len(FEATURES)).graph == clf.graph


# --- feature sets and the committed fixtures ------------------------------------------------


def test_feature_sets_binary_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETSCORE_BIN", str(tmp_path / "nope"))
    assert default_fleetscore_bin() == tmp_path / "nope"
    assert default_fleetscore_bin("/x/fleetscore") == Path("/x/fleetscore")
    with pytest.raises(FileNotFoundError):
        feature_sets()
    monkeypatch.delenv("FLEETSCORE_BIN")
    assert default_fleetscore_bin() == REPO / "target" / "release" / "fleetscore"


@pytest.fixture(scope="module")
def service_feature_sets():
    if not default_fleetscore_bin().is_file():
        pytest.skip(f"fleetscore binary missing at {default_fleetscore_bin()}")
    return feature_sets()


def _fixture_dirs() -> list[Path]:
    return sorted(p.parent for p in FIXTURES.glob("*/*/manifest.json"))


def test_all_fixtures_are_present():
    assert {(d.parent.name, d.name) for d in _fixture_dirs()} >= EXPECTED_FIXTURES


@pytest.mark.parametrize("d", _fixture_dirs(), ids=lambda d: f"{d.parent.name}/{d.name}")
def test_fixture_package_is_valid(d):
    manifest, golden = _load(d)
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["format"] == 1
    assert (manifest["name"], manifest["version"]) == (d.parent.name, d.name)
    model = (d / manifest["model_file"]).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(model).hexdigest()
    assert len(model) < 200_000
    assert not list(d.glob("*.tmp"))
    inputs = np.array(golden["inputs"], np.float32)
    assert inputs.shape == (len(golden["outputs"]), len(manifest["input"]["features"]))
    assert 1 <= len(inputs) <= 1000 and np.isfinite(golden["outputs"]).all()
    out = predict_column(model, inputs, input_name=manifest["input"]["name"],
                         output_name=manifest["output"]["name"],
                         output_column=manifest["output"]["column"])
    if manifest["name"] == "nan-model":
        assert np.isnan(out).all()  # deliberately broken: the service must reject it
    else:
        np.testing.assert_allclose(out, golden["outputs"], rtol=0,
                                   atol=manifest["golden"]["tolerance"])


@pytest.mark.parametrize("d", _fixture_dirs(), ids=lambda d: f"{d.parent.name}/{d.name}")
def test_fixture_feature_set_matches_the_service(d, service_feature_sets):
    manifest, _ = _load(d)
    fs = service_feature_sets[manifest["feature_set"]["name"]]
    assert manifest["feature_set"]["version"] == fs["version"], (
        "feature set changed: rerun training/make_test_models.py")
    assert manifest["input"]["features"] == fs["features"]
