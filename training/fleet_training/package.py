"""Model packages for the fleetscore service (the contract is ``models/README.md``).

A package is one directory ``<models_dir>/<name>/<version>/`` holding

* ``model.onnx``    the ONNX graph (float32 input ``[N, len(features)]``, N dynamic);
* ``golden.json``   ``{"inputs": [[...], ...], "outputs": [...]}``: rows and the prediction
  (the selected output column) onnxruntime computed for each when the package was written;
* ``profile.json``  (optional) the reference profile of the training rows and of the model's
  output on them, for drift monitoring (:mod:`fleet_training.profile`); the manifest names it
  with its sha256;
* ``manifest.json`` format 1, written LAST (``manifest.json.tmp`` then ``os.replace``): its
  presence is what marks the version as published, so the service never sees a half-written
  version.

The service parses the manifest with unknown fields rejected, so :func:`write_package` writes
exactly the documented fields and checks what it can before anything is written: the names
and versions are valid, the graph has the named float32 input ``[N, k]`` and output, the golden
rows have ``k`` finite values and the selected output column is finite for each of them.

Functions:

* :func:`feature_sets`      the service's feature sets, from ``fleetscore feature-sets``;
* :func:`export_lightgbm`   LightGBM -> ONNX, the recipe proven in
  ``training/tests/test_onnx_export_smoke.py`` plus float32-exact split thresholds;
* :func:`predict_column`    run a graph with onnxruntime and select the prediction column;
* :func:`write_package`     write a package.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from .profile import PROFILE_FILE, compute_profile

MANIFEST_FORMAT = 1
MODEL_FILE = "model.onnx"
GOLDEN_FILE = "golden.json"
MANIFEST_FILE = "manifest.json"
MAX_GOLDEN_ROWS = 1000

# As the service checks them: 1-64 characters; a version never starts with "." (no ".", "..").
_NAME_RE = re.compile(r"[a-z0-9-]{1,64}")
_VERSION_RE = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
_BACKENDS = (None, "ort", "tract", "trees")
_STAGES = ("serving", "shadow")

REPO = Path(__file__).resolve().parents[2]


# --- feature sets ------------------------------------------------------------------------


def default_fleetscore_bin(fleetscore_bin: str | os.PathLike | None = None) -> Path:
    """Path of the ``fleetscore`` binary: the argument, else ``$FLEETSCORE_BIN``, else
    ``<repo>/target/release/fleetscore``. Not checked for existence."""
    if fleetscore_bin is not None:
        return Path(fleetscore_bin)
    env = os.environ.get("FLEETSCORE_BIN")
    if env:
        return Path(env)
    return REPO / "target" / "release" / "fleetscore"


def feature_sets(fleetscore_bin: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The service's feature sets, by running ``fleetscore feature-sets``.

    Returns ``{name: {"version": str, "features": [feature names in input order]}}``.
    Raises ``FileNotFoundError`` if the binary is missing and ``subprocess.CalledProcessError``
    if it fails.
    """
    exe = default_fleetscore_bin(fleetscore_bin)
    if not exe.is_file():
        raise FileNotFoundError(
            f"fleetscore binary not found at {exe} (build it with `cargo build --release`, "
            "or pass its path / set FLEETSCORE_BIN)"
        )
    out = subprocess.run(
        [str(exe), "feature-sets"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    sets = {}
    for fs in json.loads(out):
        sets[fs["name"]] = {
            "version": fs["version"],
            "features": [f["name"] for f in fs["features"]],
        }
    return sets


# --- ONNX export -------------------------------------------------------------------------


def make_batch_dims_dynamic(model: onnx.ModelProto, dim_param: str = "N") -> onnx.ModelProto:
    """Declare the first dimension of every graph output as the symbolic batch size (in place).

    onnxmltools declares a classifier's ``label`` output as shape ``[1]`` even for a
    ``[None, F]`` input, which makes onnxruntime warn (VerifyOutputSizes) on every batch > 1.
    """
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = dim_param
    return model


def _floor_float32(t: float) -> float:
    """The largest float32 <= ``t`` (as a Python float)."""
    with np.errstate(over="ignore"):
        f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def float32_exact_booster(booster) -> "lightgbm.Booster":
    """A copy of ``booster`` whose numerical split thresholds are rounded DOWN to float32.

    LightGBM compares features with double thresholds; ONNX TreeEnsemble* stores float32
    thresholds, and onnxmltools rounds them to the nearest float32. When a threshold lies
    between two adjacent float32 values and rounds up onto the upper one, an input equal to
    that value goes left in ONNX but right in LightGBM. This happens on real fleet data
    (e.g. C-MAPSS ``NRf_mean`` ~ 2388.13, where float32 values are 0.00024 apart).
    For every float32 ``x``: ``x <= t`` exactly when ``x <= floor32(t)``, so after this the
    ONNX graph routes every float32 input exactly as LightGBM does, and LightGBM's own
    predictions on float32 inputs are unchanged. Categorical splits are left alone.
    """
    import lightgbm as lgb

    lines = booster.model_to_string().split("\n")
    block_start = None  # index of the current tree's first line
    for i, line in enumerate(lines + ["Tree="]):
        if line.startswith("Tree=") or line == "end of trees":
            if block_start is not None:
                _patch_tree(lines, block_start, i)
            block_start = i if line.startswith("Tree=") else None
    # tree_sizes gives each tree's length in bytes, for parallel loading; the patched trees
    # have other lengths, and without the line LightGBM parses the trees one after another.
    lines = [line for line in lines if not line.startswith("tree_sizes=")]
    return lgb.Booster(model_str="\n".join(lines))


def _patch_tree(lines: list[str], start: int, end: int) -> None:
    keys = {lines[j].split("=", 1)[0]: j for j in range(start, min(end, len(lines)))
            if "=" in lines[j]}
    if "threshold" not in keys:  # a single-leaf tree has no splits
        return
    j = keys["threshold"]
    thresholds = lines[j].split("=", 1)[1].split()
    decision = [int(v) for v in lines[keys["decision_type"]].split("=", 1)[1].split()]
    if len(decision) != len(thresholds):
        raise ValueError("unexpected LightGBM model string: threshold/decision_type lengths differ")
    patched = [
        t if d & 1 else repr(_floor_float32(float(t)))  # bit 0 set: categorical split
        for t, d in zip(thresholds, decision)
    ]
    lines[j] = "threshold=" + " ".join(patched)


def export_lightgbm(model, n_features: int, input_name: str = "input") -> onnx.ModelProto:
    """LightGBM model (sklearn API, or a ``Booster``) -> ONNX with one float32 input
    ``input_name`` ``[N, n_features]`` (N dynamic). The recipe proven in
    ``training/tests/test_onnx_export_smoke.py``, plus float32-exact thresholds:

    * regressor  -> output ``variable``: float32 ``[N, 1]``;
    * binary classifier -> outputs ``label``: int64 ``[N]`` and ``probabilities``: float32
      ``[N, 2]``, column 1 = P(positive) (``zipmap=False``: a plain tensor, not a sequence of
      maps, which the Rust side could not use).

    The split thresholds are first rounded down to float32 (:func:`float32_exact_booster`),
    so onnxruntime routes every float32 row exactly as LightGBM does (the plain recipe is off
    by whole leaves on a few real rows). NaN inputs mean "missing" and are routed as LightGBM
    routes them. The graph uses ai.onnx.ml TreeEnsemble* (opset 1) and default-domain ops
    (opset 8/9); it is checked with ``onnx.checker`` (full check) before it is returned.
    Sklearn classifiers must have classes ``0..K-1`` (the graph's labels are the indices).
    """
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if isinstance(model, lgb.LGBMModel):
        booster = model.booster_
        is_classifier = isinstance(model, lgb.LGBMClassifier)
        if is_classifier and list(model.classes_) != list(range(len(model.classes_))):
            raise ValueError(f"classifier classes must be 0..K-1, got {list(model.classes_)}")
        name = type(model).__name__
    elif isinstance(model, lgb.Booster):
        booster = model
        objective = booster.dump_model().get("objective", "")
        is_classifier = objective.startswith(("binary", "multiclass"))
        name = "LGBMClassifier" if is_classifier else "LGBMRegressor"
    else:
        raise TypeError(f"not a LightGBM model: {type(model)}")

    onx = onnxmltools.convert_lightgbm(
        float32_exact_booster(booster),
        name=name,
        initial_types=[(input_name, FloatTensorType([None, int(n_features)]))],
        **({"zipmap": False} if is_classifier else {}),
    )
    onx = make_batch_dims_dynamic(onx)
    sort_opset_imports(onx)
    onnx.checker.check_model(onx, full_check=True)
    return onx


def sort_opset_imports(model: onnx.ModelProto) -> onnx.ModelProto:
    """Put ``opset_import`` in a fixed order (by domain, the default domain first), in place.

    skl2onnx collects the (domain, version) pairs in a ``set`` of tuples, whose iteration order
    depends on Python's per-process string hashing: in about 1 process in 13 the two entries
    come out reversed, which changes the file's bytes (and its sha256) but nothing else.
    Sorting makes the export byte-for-byte reproducible.
    """
    pairs = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in pairs:
        model.opset_import.add(domain=domain, version=version)
    return model


# --- running a graph ---------------------------------------------------------------------


def _model_bytes(onnx_model: onnx.ModelProto | bytes | bytearray) -> bytes:
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model.SerializeToString()
    if isinstance(onnx_model, (bytes, bytearray)):
        return bytes(onnx_model)
    raise TypeError(f"onnx_model must be an onnx.ModelProto or bytes, not {type(onnx_model)}")


def predict_column(
    onnx_model: onnx.ModelProto | bytes,
    inputs: np.ndarray,
    *,
    input_name: str,
    output_name: str,
    output_column: int = 0,
) -> np.ndarray:
    """Run ``inputs`` (float32 ``[n, k]``) through the graph with onnxruntime (CPU, one thread)
    and return the prediction, float32 ``[n]``, as the service reads it.

    The output must be float32 ``[n]`` (``output_column`` must then be 0), ``[n, 1]`` or
    ``[n, K]`` (``output_column`` < K is selected).
    """
    import onnxruntime as ort

    x = np.ascontiguousarray(inputs, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"inputs must be 2-D [n, k], got shape {x.shape}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        _model_bytes(onnx_model), opts, providers=["CPUExecutionProvider"]
    )
    (y,) = sess.run([output_name], {input_name: x})
    y = np.asarray(y)
    if y.dtype != np.float32:
        raise ValueError(f"output {output_name!r} is {y.dtype}, the service needs float32")
    n = x.shape[0]
    if y.ndim == 1:
        if output_column != 0:
            raise ValueError(f"output {output_name!r} is [N]; output_column must be 0")
        col = y
    elif y.ndim == 2:
        if not 0 <= output_column < y.shape[1]:
            raise ValueError(
                f"output_column {output_column} out of range for {output_name!r} "
                f"of shape {list(y.shape)}"
            )
        col = y[:, output_column]
    else:
        raise ValueError(
            f"output {output_name!r} has shape {list(y.shape)}; expected [N], [N, 1] or [N, K]"
        )
    if col.shape != (n,):
        raise ValueError(f"output {output_name!r} has {col.shape[0]} rows for {n} input rows")
    return col


# --- checks ------------------------------------------------------------------------------


def _check_graph(
    model: onnx.ModelProto, input_name: str, n_features: int, output_name: str
) -> None:
    """The graph takes exactly one float32 input ``input_name`` ``[N, n_features]`` (N not a
    fixed number) and has a float32 output ``output_name``."""
    init_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    names = [i.name for i in inputs]
    if names != [input_name]:
        raise ValueError(f"graph inputs are {names}; expected exactly [{input_name!r}]")
    ttype = inputs[0].type.tensor_type
    if ttype.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"input {input_name!r} is not float32")
    dims = ttype.shape.dim
    if len(dims) != 2:
        raise ValueError(f"input {input_name!r} has rank {len(dims)}; expected [N, {n_features}]")
    if dims[0].HasField("dim_value"):
        raise ValueError(f"input {input_name!r} has a fixed batch size {dims[0].dim_value}")
    if not dims[1].HasField("dim_value") or dims[1].dim_value != n_features:
        raise ValueError(
            f"input {input_name!r} is {onnx.helper.printable_type(inputs[0].type)}; "
            f"expected [N, {n_features}]"
        )
    outputs = {o.name: o for o in model.graph.output}
    if output_name not in outputs:
        raise ValueError(f"graph has no output {output_name!r} (outputs: {sorted(outputs)})")
    if outputs[output_name].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"output {output_name!r} is not a float32 tensor")


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"metric names must be strings, got {key!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"metric {key!r} must be a number, got {value!r}")
        if isinstance(value, (int, np.integer)):
            out[key] = int(value)
        else:
            if not math.isfinite(float(value)):
                raise ValueError(f"metric {key!r} is not finite: {value!r}")
            out[key] = float(value)
    return out


def _rfc3339_utc(created_at: datetime | str | None) -> str:
    if created_at is None:
        created_at = datetime.now(timezone.utc)
    if isinstance(created_at, str):
        # Accept an already formatted timestamp, but only the form this module writes.
        datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ")
        return created_at
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- writing -----------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` via ``<path>.tmp`` + fsync + ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_package(
    models_dir: str | os.PathLike,
    *,
    name: str,
    version: str,
    onnx_model: onnx.ModelProto | bytes,
    feature_set_name: str,
    feature_set_version: str,
    feature_names: Sequence[str],
    input_name: str,
    output_name: str,
    output_column: int,
    meaning: str,
    unit: str,
    golden_inputs: np.ndarray,
    tolerance: float = 1e-4,
    stage: str = "serving",
    backend: str | None = None,
    metrics: Mapping[str, float | int] | None = None,
    description: str = "",
    golden_outputs: Sequence[float] | np.ndarray | None = None,
    created_at: datetime | str | None = None,
    overwrite: bool = False,
    profile_rows: np.ndarray | None = None,
) -> Path:
    """Write the package ``<models_dir>/<name>/<version>/`` and return that directory.

    ``golden_inputs`` (float32 ``[n, len(feature_names)]``, 1 <= n <= 1000, finite) are run
    through the graph with onnxruntime and the ``output_column`` of ``output_name`` becomes
    the golden outputs. ``golden_outputs`` overrides them (the graph is still run, to prove
    it loads and has that output); this exists to build deliberately broken test packages.

    ``profile_rows`` (float32 ``[n, len(feature_names)]``, the reference rows: the training
    rows): their profile and the profile of the graph's prediction on them are written to
    ``profile.json`` (:func:`fleet_training.profile.compute_profile`), which the manifest names
    with its sha256 (``"profile": {"file": ..., "sha256": ...}``). Without them the package
    has no profile (and no ``profile`` field): the service then reports no drift for it.

    Order: ``model.onnx``, ``golden.json``, ``profile.json`` (if any), then ``manifest.json``
    via ``manifest.json.tmp`` +
    ``os.replace``. A version directory that already has a ``manifest.json`` is published:
    ``FileExistsError`` unless ``overwrite=True``, in which case the manifest is removed
    first (the version is unpublished while its files change) and rewritten last.

    ``backend``: ``"ort"``, ``"tract"``, ``"trees"`` or ``None`` (written as ``null``: the service
    picks its native trees for a tree ensemble, tract when it supports every op, else ort). ``stage``: ``"serving"`` or ``"shadow"``.
    ``metrics``: free-form numbers. ``created_at``: defaults to now (UTC, RFC 3339 with ``Z``).
    """
    # -- validate everything before touching the file system
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid model name {name!r} (must be 1-64 of [a-z0-9-])")
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(
            f"invalid version {version!r} (must be 1-64 of [A-Za-z0-9._-], not starting with .)"
        )
    if stage not in _STAGES:
        raise ValueError(f"stage must be one of {_STAGES}, got {stage!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    tolerance = float(tolerance)
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be finite and > 0, got {tolerance}")
    if isinstance(output_column, bool) or int(output_column) != output_column or output_column < 0:
        raise ValueError(f"output_column must be an integer >= 0, got {output_column!r}")
    output_column = int(output_column)
    feature_names = [str(f) for f in feature_names]
    if not feature_names or len(set(feature_names)) != len(feature_names):
        raise ValueError("feature_names must be non-empty and unique")
    metrics_out = _check_metrics(metrics)
    created = _rfc3339_utc(created_at)

    model_bytes = _model_bytes(onnx_model)
    model_proto = onnx.load_from_string(model_bytes)
    _check_graph(model_proto, input_name, len(feature_names), output_name)

    x = np.asarray(golden_inputs)
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise ValueError(
            f"golden_inputs must be [n, {len(feature_names)}], got shape {list(x.shape)}"
        )
    if not 1 <= x.shape[0] <= MAX_GOLDEN_ROWS:
        raise ValueError(f"golden set needs 1..{MAX_GOLDEN_ROWS} rows, got {x.shape[0]}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("golden_inputs must be finite (JSON has no NaN/inf)")

    computed = predict_column(
        model_bytes, x, input_name=input_name, output_name=output_name,
        output_column=output_column,
    )
    if golden_outputs is None:
        y = computed
    else:
        y = np.asarray(golden_outputs, dtype=np.float32)
        if y.shape != (x.shape[0],):
            raise ValueError(f"golden_outputs must have {x.shape[0]} values, got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(
            f"golden outputs are not all finite: {y.tolist()} (pass golden_outputs= to "
            "write a deliberately broken package)"
        )

    # float(np.float32) is the exact value of the float32, so it parses back to the same
    # float32 whether the reader parses as f32 or as f64 and then narrows.
    golden = {
        "inputs": [[float(v) for v in row] for row in x],
        "outputs": [float(v) for v in y],
    }
    golden_bytes = (json.dumps(golden, allow_nan=False) + "\n").encode()

    profile_bytes = None
    if profile_rows is not None:
        p = np.asarray(profile_rows)
        if p.ndim != 2 or p.shape[1] != len(feature_names):
            raise ValueError(
                f"profile_rows must be [n, {len(feature_names)}], got shape {list(p.shape)}"
            )
        p = np.ascontiguousarray(p, dtype=np.float32)
        outputs = predict_column(
            model_bytes, p, input_name=input_name, output_name=output_name,
            output_column=output_column,
        )
        profile = compute_profile(p, feature_names, outputs)
        profile_bytes = (json.dumps(profile, allow_nan=False) + "\n").encode()

    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "model_file": MODEL_FILE,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "backend": backend,
        "stage": stage,
        "feature_set": {"name": feature_set_name, "version": feature_set_version},
        "input": {"name": input_name, "features": feature_names},
        "output": {
            "name": output_name,
            "column": output_column,
            "meaning": meaning,
            "unit": unit,
        },
        "golden": {"file": GOLDEN_FILE, "tolerance": tolerance},
        **({"profile": {"file": PROFILE_FILE,
                        "sha256": hashlib.sha256(profile_bytes).hexdigest()}}
           if profile_bytes is not None else {}),
        "metrics": metrics_out,
        "created_at": created,
        "description": description,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode()

    # -- write: model, golden, then the manifest last
    version_dir = Path(models_dir) / name / version
    manifest_path = version_dir / MANIFEST_FILE
    if manifest_path.exists():
        if not overwrite:
            raise FileExistsError(
                f"{version_dir} is already published (has {MANIFEST_FILE}); "
                "pick a new version or pass overwrite=True"
            )
        manifest_path.unlink()  # unpublish before changing the files
        _fsync_dir(version_dir)
    version_dir.mkdir(parents=True, exist_ok=True)

    _write_atomic(version_dir / MODEL_FILE, model_bytes)
    _write_atomic(version_dir / GOLDEN_FILE, golden_bytes)
    if profile_bytes is not None:
        _write_atomic(version_dir / PROFILE_FILE, profile_bytes)
    elif (version_dir / PROFILE_FILE).exists():  # overwrite: no stale profile left behind
        (version_dir / PROFILE_FILE).unlink()
    _fsync_dir(version_dir)
    _write_atomic(manifest_path, manifest_bytes)  # manifest.json.tmp -> manifest.json
    _fsync_dir(version_dir)
    return version_dir
