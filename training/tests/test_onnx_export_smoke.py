"""Smoke test of the offline export path: LightGBM -> ONNX (onnxmltools) -> onnxruntime.

It pins down what the Rust service can rely on:
  * input  "input": float32 [N, n_features]; NaN means "missing" and is routed like LightGBM does;
  * regressor outputs  "variable": float32 [N, 1];
  * binary classifier (zipmap=False) outputs "label": int64 [N] and
    "probabilities": float32 [N, 2] (column 1 = P(class 1));
  * ops: ai.onnx.ml TreeEnsembleRegressor / TreeEnsembleClassifier (ai.onnx.ml opset 1) plus
    trivial default-domain ops (Identity, Cast, Mul; opset 8 / 9);
  * onnxruntime agrees with LightGBM to 1e-5;
  * the onnxruntime wheel ships libonnxruntime.so.<version>, usable as ORT_DYLIB_PATH.

Run with the venv from scripts/python-env.sh:  .venv/bin/python -m pytest training/tests
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
import pytest
from onnxmltools.convert.common.data_types import FloatTensorType

N_FEATURES = 10
TOL = 1e-5
REPO = Path(__file__).resolve().parents[2]


# --- export recipe (what the real export script should do) -------------------------------


def make_batch_dims_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """Declare the first dimension of every graph output as the symbolic batch size "N".

    onnxmltools declares the classifier's "label" output as shape [1] even for a [None, F]
    input, which makes onnxruntime log a VerifyOutputSizes warning on every batch > 1.
    """
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "N"
    return model


def export_lightgbm(model, n_features: int) -> onnx.ModelProto:
    """LightGBM sklearn-API model -> ONNX with a float input "input" [N, n_features].

    zipmap=False keeps classifier probabilities a plain float tensor instead of
    a sequence of {class: prob} maps (which the Rust side cannot use as a tensor).
    """
    extra = {"zipmap": False} if isinstance(model, lgb.LGBMClassifier) else {}
    onx = onnxmltools.convert_lightgbm(
        model,
        name=type(model).__name__,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        **extra,
    )
    onx = make_batch_dims_dynamic(onx)
    onnx.checker.check_model(onx, full_check=True)
    return onx


# --- helpers -------------------------------------------------------------------------------


def _session(onx: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(
        onx.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )


def _ops(onx: onnx.ModelProto) -> set[tuple[str, str]]:
    return {(n.domain, n.op_type) for n in onx.graph.node}


def _opsets(onx: onnx.ModelProto) -> dict[str, int]:
    return {o.domain: o.version for o in onx.opset_import}


def _out_types(onx: onnx.ModelProto) -> dict[str, str]:
    return {o.name: onnx.helper.printable_type(o.type) for o in onx.graph.output}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(2000, N_FEATURES)).astype(np.float32)
    x[rng.random(size=x.shape) < 0.05] = np.nan  # missing values, as in real fleet data
    x0, x1, x2 = (np.nan_to_num(x[:, i]) for i in range(3))
    y_reg = 3.0 * x0 + np.sin(x1) - 0.5 * x2 * x0 + rng.normal(scale=0.1, size=len(x))
    y_clf = (x0 + 0.5 * x2 + rng.normal(scale=0.3, size=len(x)) > 0).astype(np.int64)
    x_test = rng.normal(size=(1000, N_FEATURES)).astype(np.float32)
    x_test[rng.random(size=x_test.shape) < 0.05] = np.nan
    # Include training rows too: their values sit exactly next to split thresholds.
    return x, y_reg, y_clf, np.vstack([x_test, x[:500]])


@pytest.fixture(scope="module")
def regressor(data):
    x, y_reg, _, _ = data
    return lgb.LGBMRegressor(n_estimators=50, num_leaves=15, n_jobs=1, verbose=-1).fit(x, y_reg)


@pytest.fixture(scope="module")
def classifier(data):
    x, _, y_clf, _ = data
    return lgb.LGBMClassifier(n_estimators=50, num_leaves=15, n_jobs=1, verbose=-1).fit(x, y_clf)


# --- tests ---------------------------------------------------------------------------------


def test_regressor_matches_lightgbm(data, regressor, capfd):
    *_, x_test = data
    onx = export_lightgbm(regressor, N_FEATURES)

    assert _ops(onx) == {("ai.onnx.ml", "TreeEnsembleRegressor"), ("", "Identity")}
    assert _opsets(onx) == {"": 8, "ai.onnx.ml": 1}
    assert [i.name for i in onx.graph.input] == ["input"]
    assert _out_types(onx) == {"variable": "FLOAT, Nx1"}

    sess = _session(onx)
    (pred,) = sess.run(None, {"input": x_test})
    assert pred.dtype == np.float32 and pred.shape == (len(x_test), 1)
    np.testing.assert_allclose(pred[:, 0], regressor.predict(x_test), rtol=0, atol=TOL)
    assert "VerifyOutputSizes" not in capfd.readouterr().err


def test_classifier_without_zipmap_gives_float_probabilities(data, classifier, capfd):
    *_, x_test = data
    onx = export_lightgbm(classifier, N_FEATURES)

    ops = _ops(onx)
    assert ("ai.onnx.ml", "TreeEnsembleClassifier") in ops
    assert ("ai.onnx.ml", "ZipMap") not in ops
    assert {op for _, op in ops} == {"TreeEnsembleClassifier", "Identity", "Cast", "Mul"}
    assert _opsets(onx) == {"": 9, "ai.onnx.ml": 1}
    tree = next(n for n in onx.graph.node if n.op_type == "TreeEnsembleClassifier")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in tree.attribute}
    assert attrs["post_transform"] == b"LOGISTIC"
    assert list(attrs["classlabels_int64s"]) == [0, 1]
    assert _out_types(onx) == {"label": "INT64, N", "probabilities": "FLOAT, Nx2"}

    sess = _session(onx)
    label, proba = sess.run(None, {"input": x_test})
    assert label.dtype == np.int64 and label.shape == (len(x_test),)
    assert proba.dtype == np.float32 and proba.shape == (len(x_test), 2)
    np.testing.assert_allclose(proba, classifier.predict_proba(x_test), rtol=0, atol=TOL)
    np.testing.assert_array_equal(label, classifier.predict(x_test))
    # Only the positive-class column, as the service would read it.
    (p1,) = sess.run(["probabilities"], {"input": x_test[:3]})
    np.testing.assert_allclose(p1[:, 1], classifier.predict_proba(x_test[:3])[:, 1], atol=TOL)
    assert "VerifyOutputSizes" not in capfd.readouterr().err


def test_classifier_default_export_uses_zipmap(classifier):
    """Documents the default (not what we ship): probabilities become seq(map(int64, float))."""
    onx = onnxmltools.convert_lightgbm(
        classifier, initial_types=[("input", FloatTensorType([None, N_FEATURES]))]
    )
    assert ("ai.onnx.ml", "ZipMap") in _ops(onx)
    proba_type = next(o.type for o in onx.graph.output if o.name == "probabilities")
    assert proba_type.sequence_type.elem_type.map_type.value_type.tensor_type.elem_type == (
        onnx.TensorProto.FLOAT
    )
    _, proba = _session(onx).run(None, {"input": np.zeros((2, N_FEATURES), np.float32)})
    assert isinstance(proba, list) and set(proba[0]) == {0, 1}


class _OrtApiBase(ctypes.Structure):
    _fields_ = [
        ("GetApi", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)),
        ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p)),
    ]


def _ort_dylib() -> Path:
    capi = Path(ort.__file__).parent / "capi"
    libs = sorted(capi.glob("libonnxruntime.so*"))
    assert len(libs) == 1, libs
    return libs[0]


def test_wheel_ships_loadable_ort_dylib():
    lib = _ort_dylib()
    assert lib.name == f"libonnxruntime.so.{ort.__version__}"
    assert not lib.is_symlink()
    handle = ctypes.CDLL(str(lib))
    handle.OrtGetApiBase.restype = ctypes.POINTER(_OrtApiBase)
    base = handle.OrtGetApiBase().contents
    assert base.GetVersionString().decode() == ort.__version__
    # ORT serves every C API version from 1 up to its own minor version (1.32 -> API 32);
    # a Rust `ort` crate built for API <= that can load this library.
    api_version = int(ort.__version__.split(".")[1])
    assert base.GetApi(1) and base.GetApi(api_version)


def test_python_env_print_points_at_this_venv():
    """`scripts/python-env.sh --print` (fast path) exports paths inside the running venv."""
    stamp = Path(sys.prefix) / ".requirements.sha256"  # written by scripts/venv.sh
    want = hashlib.sha256((REPO / "training" / "requirements.txt").read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text().strip() != want:
        pytest.skip("not running inside an up-to-date venv made by scripts/python-env.sh")
    env = dict(os.environ, FLEETSCORE_VENV=sys.prefix)
    out = subprocess.run(
        [str(REPO / "scripts" / "python-env.sh"), "--print"],
        env=env, capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    exports = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        (exports[key],) = shlex.split(value)
    assert set(exports) == {"FLEETSCORE_PYTHON", "ORT_DYLIB_PATH", "NYCFLIGHTS_DIR"}
    assert Path(exports["FLEETSCORE_PYTHON"]) == Path(sys.prefix) / "bin" / "python"
    assert Path(exports["ORT_DYLIB_PATH"]).resolve() == _ort_dylib().resolve()
    data_dir = Path(exports["NYCFLIGHTS_DIR"])
    assert (data_dir / "flights.csv.zip").is_file() and (data_dir / "airports.csv").is_file()
