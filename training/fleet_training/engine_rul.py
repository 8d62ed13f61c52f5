"""engine-rul: remaining useful life of a C-MAPSS FD001 engine (LightGBM regressor).

Validation is by whole engines: :func:`fleet_training.evaluation.grouped_folds` (5 folds over
units, never random rows: the rows of one engine are strongly correlated).

Hyper-parameters: a handful of LightGBM configurations (:data:`FULL_PLAN`), each evaluated at
several tree counts (the predictions of one fit at 250, 500, ... trees), compared by the
grouped 5-fold CV RMSE over all rows. The winner is refit on all 100 units and exported.
Because choosing the best of ~20 (config, trees) pairs on the same folds flatters its CV
score a little, the whole choice is also repeated inside each outer fold (nested CV: an inner
grouped 4-fold CV on the outer training units picks the pair, which then predicts the outer
validation units); that nested RMSE is the honest estimate of the procedure.

Metrics (out-of-fold predictions, labels capped at 125):

* ``cv_rmse``                  every row of the 100 engines;
* ``cv_rmse_rul_le_125``       rows whose true (uncapped) RUL is <= 125, i.e. where the cap
                               does not bind and the engine is degrading;
* ``cv_rmse_last_cycle``       the last cycle of each engine (true RUL 0; one row per engine);
* ``nested_cv_rmse[_rul_le_125]`` the same over the nested-CV predictions.

The official FD001 test set scores one row per engine at the end of a trajectory truncated at
a random point (true RUL 7-145). Features here are computed online, so the row of cycle c of
a full trajectory is exactly the last row of the trajectory truncated at c: the
``rul_le_125`` rows are the closest stand-in for that test in this file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd

from .data import RUL_CAP, features_matrix
from .evaluation import grouped_folds, mae, rmse
from .package import export_lightgbm, predict_column

SEED = 20261124
NAME = "engine-rul"
FEATURE_SET = "engine-health"
OUTPUT = "variable"
GOLDEN_ROWS = 32
RUL_BUCKETS = (0, 25, 50, 75, 100, 125, np.inf)  # of the uncapped true RUL


@dataclass(frozen=True)
class Plan:
    """What to try: LightGBM configurations x tree counts, and the CV layout."""

    configs: dict[str, dict]
    tree_grid: tuple[int, ...]
    n_folds: int = 5
    inner_folds: int = 4  # 0: no nested CV
    description: str = ""


_COMMON = dict(learning_rate=0.05, subsample=0.8, subsample_freq=1)

FULL_PLAN = Plan(
    configs={
        "leaves7": dict(num_leaves=7, min_child_samples=200, colsample_bytree=0.5, **_COMMON),
        "leaves15": dict(num_leaves=15, min_child_samples=100, colsample_bytree=0.5, **_COMMON),
        "leaves31": dict(num_leaves=31, min_child_samples=50, colsample_bytree=0.5, **_COMMON),
        "leaves7-reg": dict(num_leaves=7, min_child_samples=400, colsample_bytree=0.3,
                            reg_lambda=10.0, **_COMMON),
    },
    tree_grid=(250, 500, 750, 1000, 1500),
    description="4 configurations x 5 tree counts, nested grouped CV",
)

QUICK_PLAN = Plan(
    configs={"quick": dict(num_leaves=7, min_child_samples=100, colsample_bytree=0.5,
                           learning_rate=0.3, subsample=0.5, subsample_freq=1)},
    tree_grid=(10, 20),
    inner_folds=0,
    description="quick: 1 configuration, 10/20 trees, 50% row subsample, no nested CV",
)


def lgbm_params(params: dict) -> dict:
    """Deterministic, single-threaded LightGBM (the machine is shared; one thread gives the
    same model on every run)."""
    return dict(objective="regression", n_jobs=1, deterministic=True, force_row_wise=True,
                random_state=SEED, verbose=-1, **params)


def cv_predict(x: np.ndarray, y: np.ndarray, folds, params: dict,
               tree_grid: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Out-of-fold predictions of one configuration at every tree count of ``tree_grid``
    (one fit of ``max(tree_grid)`` trees per fold; fewer trees = a prefix of the ensemble)."""
    preds = {n: np.full(len(y), np.nan) for n in tree_grid}
    for train_idx, val_idx in folds:
        model = lgb.LGBMRegressor(n_estimators=max(tree_grid), **lgbm_params(params))
        model.fit(x[train_idx], y[train_idx])
        for n in tree_grid:
            preds[n][val_idx] = model.predict(x[val_idx], num_iteration=n)
    return preds


@dataclass
class Result:
    df: pd.DataFrame                 # rows with unit, rul, rul_uncapped, cv_pred, nested_pred
    features: list[str]
    plan: Plan
    cv_table: pd.DataFrame           # config, trees, cv_rmse, cv_rmse_rul_le_125, last cycle
    config: str
    n_trees: int
    params: dict
    nested_choices: list[tuple[str, int]]
    model: lgb.LGBMRegressor
    onnx_model: onnx.ModelProto
    metrics: dict[str, float | int]
    buckets: pd.DataFrame            # RMSE by true-RUL bucket
    golden: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def _scores(pred, df) -> dict[str, float]:
    y = df["rul"].to_numpy()
    return {
        "cv_rmse": rmse(pred, y),
        "cv_rmse_rul_le_125": rmse(pred, y, df["rul_uncapped"].to_numpy() <= RUL_CAP),
        "cv_rmse_last_cycle": rmse(pred, y, df["rul_uncapped"].to_numpy() == 0),
    }


def bucket_table(df: pd.DataFrame, pred_col: str = "cv_pred") -> pd.DataFrame:
    """RMSE, bias (mean prediction - truth) and row count by bucket of the uncapped true RUL."""
    rows = []
    edges = RUL_BUCKETS
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (df["rul_uncapped"] >= lo) & (df["rul_uncapped"] < hi)
        d = df.loc[m, pred_col] - df.loc[m, "rul"]
        label = f"{lo}-{hi - 1}" if np.isfinite(hi) else f">= {lo}"
        rows.append({"true_rul": label, "rows": int(m.sum()),
                     "rmse": float(np.sqrt(np.mean(d ** 2))), "bias": float(d.mean())})
    return pd.DataFrame(rows)


def pick_golden(df: pd.DataFrame, n: int = GOLDEN_ROWS) -> pd.DataFrame:
    """``n`` real rows of ``n`` different engines spread over life: the i-th picked engine
    (units evenly spaced over 1..100) contributes its row at life fraction i/(n-1), so the set
    runs from a first cycle (window of 1, zero std and slope) to a failure cycle."""
    units = np.sort(df["unit"].unique())
    picked_units = units[np.round(np.linspace(0, len(units) - 1, n)).astype(int)]
    rows = []
    for i, unit in enumerate(picked_units):
        u = df[df["unit"] == unit].sort_values("cycle")
        rows.append(u.index[int(round(i / max(n - 1, 1) * (len(u) - 1)))])
    return df.loc[rows]


def train(df: pd.DataFrame, features: list[str], plan: Plan = FULL_PLAN,
          log=print) -> Result:
    """Choose the configuration by grouped CV, estimate it by nested grouped CV, refit on all
    rows and export to ONNX. ``df`` has the feature columns plus ``unit``, ``rul``,
    ``rul_uncapped`` (:func:`fleet_training.data.engine_rul_labels`)."""
    t0 = time.monotonic()
    df = df.reset_index(drop=True).copy()
    x = features_matrix(df, features)
    y = df["rul"].to_numpy(np.float64)
    groups = df["unit"].to_numpy()
    folds = grouped_folds(groups, plan.n_folds)

    # -- grouped CV of every (config, trees)
    oof: dict[str, dict[int, np.ndarray]] = {}
    table = []
    for name, params in plan.configs.items():
        t = time.monotonic()
        oof[name] = cv_predict(x, y, folds, params, plan.tree_grid)
        for n_trees, pred in oof[name].items():
            table.append({"config": name, "trees": n_trees, **_scores(pred, df)})
        best = min(r["cv_rmse"] for r in table if r["config"] == name)
        log(f"  engine-rul CV {name}: best RMSE {best:.3f} ({time.monotonic() - t:.0f} s)")
    cv_table = pd.DataFrame(table)
    best_row = cv_table.loc[cv_table["cv_rmse"].idxmin()]
    config, n_trees = str(best_row["config"]), int(best_row["trees"])
    df["cv_pred"] = oof[config][n_trees]
    timings = {"cv_s": time.monotonic() - t0}

    # -- nested CV: repeat the choice inside each outer fold
    nested_choices: list[tuple[str, int]] = []
    if plan.inner_folds:
        t = time.monotonic()
        nested = np.full(len(y), np.nan)
        for k, (train_idx, val_idx) in enumerate(folds):
            inner = grouped_folds(groups[train_idx], plan.inner_folds)
            best_score, choice = np.inf, None
            for name, params in plan.configs.items():
                inner_pred = cv_predict(x[train_idx], y[train_idx], inner, params,
                                        plan.tree_grid)
                for nt, p in inner_pred.items():
                    s = rmse(p, y[train_idx])
                    if s < best_score:
                        best_score, choice = s, (name, nt)
            nested_choices.append(choice)
            # The outer CV already fitted this (config, trees) on exactly these training
            # units, so its out-of-fold prediction is the nested prediction.
            nested[val_idx] = oof[choice[0]][choice[1]][val_idx]
            log(f"  engine-rul nested fold {k + 1}: inner CV chose {choice[0]} x {choice[1]} "
                f"(inner RMSE {best_score:.3f})")
        df["nested_pred"] = nested
        timings["nested_cv_s"] = time.monotonic() - t

    # -- final model on every unit
    t = time.monotonic()
    params = plan.configs[config]
    model = lgb.LGBMRegressor(n_estimators=n_trees, **lgbm_params(params)).fit(x, y)
    onx = export_lightgbm(model, len(features))
    onnx_pred = predict_column(onx, x, input_name="input", output_name=OUTPUT)
    max_diff = float(np.max(np.abs(onnx_pred.astype(np.float64) - model.predict(x))))
    if max_diff > 1e-3:
        raise AssertionError(f"onnxruntime disagrees with LightGBM by {max_diff} cycles")
    timings["final_fit_s"] = time.monotonic() - t

    scores = _scores(df["cv_pred"], df)
    metrics: dict[str, float | int] = {
        **scores,
        "cv_mae": mae(df["cv_pred"], y),
        "cv_folds": plan.n_folds,
    }
    if plan.inner_folds:
        nested_scores = _scores(df["nested_pred"], df)
        metrics["nested_cv_rmse"] = nested_scores["cv_rmse"]
        metrics["nested_cv_rmse_rul_le_125"] = nested_scores["cv_rmse_rul_le_125"]
    metrics.update({
        "train_rmse": rmse(model.predict(x), y),
        "trees": n_trees,
        "num_leaves": int(params["num_leaves"]),
        "train_rows": len(df),
        "train_units": int(df["unit"].nunique()),
        "rul_cap": RUL_CAP,
        "max_abs_onnx_vs_lightgbm": max_diff,
    })
    golden = features_matrix(pick_golden(df), features)
    timings["total_s"] = time.monotonic() - t0
    log(f"  engine-rul: chose {config} x {n_trees} trees, CV RMSE {scores['cv_rmse']:.3f}, "
        f"RUL<=125 {scores['cv_rmse_rul_le_125']:.3f}, last cycle "
        f"{scores['cv_rmse_last_cycle']:.3f}"
        + (f", nested {metrics['nested_cv_rmse']:.3f}" if plan.inner_folds else ""))
    return Result(df=df, features=features, plan=plan, cv_table=cv_table, config=config,
                  n_trees=n_trees, params=params, nested_choices=nested_choices, model=model,
                  onnx_model=onx, metrics=metrics, buckets=bucket_table(df), golden=golden,
                  timings=timings)


def package_kwargs(result: Result) -> dict:
    """The model-specific arguments of :func:`fleet_training.write_package`."""
    p = result.params
    return dict(
        name=NAME, onnx_model=result.onnx_model, input_name="input", output_name=OUTPUT,
        output_column=0, meaning=f"remaining useful life (capped at {RUL_CAP})",
        unit="cycles", golden_inputs=result.golden, backend=None, stage="serving",
        metrics=result.metrics,
        description=(
            f"LightGBM regressor, {result.n_trees} trees, {p['num_leaves']} leaves, learning "
            f"rate {p['learning_rate']} (config {result.config}, chosen by grouped "
            f"{result.plan.n_folds}-fold CV over engines); trained on all "
            f"{result.metrics['train_units']} C-MAPSS FD001 engines, label RUL capped at "
            f"{RUL_CAP}"
        ),
    )
