"""engine-anomaly: an unsupervised health score of a C-MAPSS FD001 engine, on the
``engine-health`` feature vector (the one ``engine-rul`` scores).

Model: a Mahalanobis distance fitted on **healthy** cycles only (true RUL > :data:`HEALTHY_RUL`,
where the piecewise-linear RUL label assumes no degradation yet). The chosen features are
standardised with the healthy mean and std, projected on their top ``k`` principal
components (of the healthy covariance) and whitened; the score is the mean of the squared
whitened components, so a typical healthy cycle scores about 1 and the score grows as the
engine drifts away from its healthy state. Exported as a four-node ONNX graph (Sub, MatMul,
Mul, MatMul) over the full 100-feature input: the unused features get zero weights.

Candidates (:data:`CANDIDATES`) differ in the features (the ``_drift`` features, i.e. the
sensor EWMA minus the engine's own first-cycles baseline, which removes engine-to-engine
offsets; or also the window means; or every sensor statistic) and in ``k``. Isolation
forests (the issue's suggestion) are evaluated the same way as references, but not selectable
(no exporter is wired for them, and they lose; see the report).

Alert rule: one ``above`` level. The threshold is the :data:`THRESHOLD_QUANTILE` quantile of
**out-of-fold** healthy scores (so it reflects engines the scorer has not seen), and the
episode clears once the score is back below the :data:`CLEAR_QUANTILE` quantile (hysteresis
= threshold - that quantile).

The procedure (:func:`fit_procedure`), applied to a set of training engines: an inner grouped
CV over those engines scores every candidate out-of-fold, derives its threshold from the
held-out healthy scores, and measures the median warning cycles of the inner held-out engines
(misses count 0); the best selectable candidate is refit on every healthy cycle of the
training engines and keeps the threshold from its inner CV. Evaluation (:func:`train`): grouped
5-fold CV over engines, the procedure run on each fold's 80 training engines and judged on the
20 held-out engines, whose rows never inform the model, the choice or the threshold. The
published model is the procedure run on all 100 engines (5-fold inner CV).

Metrics (:mod:`fleet_training.alert_evaluation` defines warned / warning cycles / first
crossing / false episodes; here ``horizon`` = :data:`HEALTHY_RUL`: an episode raised while
the engine is still healthy is false):

* ``false_alarm_rate_cycles``: share of held-out healthy cycles whose score is above their
  fold's threshold (cycle level, no hysteresis);
* ``false_per_1000_cycles``: false episodes per 1,000 held-out healthy engine-cycles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from .alert_evaluation import engine_outcomes, summarize, warning_cycles_or_zero
from .data import RUL_CAP, features_matrix
from .episodes import Rule
from .evaluation import grouped_folds
from .engine_rul import pick_golden

SEED = 20261124
NAME = "engine-anomaly"
FEATURE_SET = "engine-health"
OUTPUT = "score"
HEALTHY_RUL = RUL_CAP          # healthy: true RUL > 125 (the engine-rul label's flat part)
THRESHOLD_QUANTILE = 0.99      # alert: above the 99th percentile of held-out healthy scores
CLEAR_QUANTILE = 0.95          # cleared: back below the 95th percentile
SWEEP_QUANTILES = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
ONNX_OPSET = 13
ONNX_IR_VERSION = 8


@dataclass(frozen=True)
class Candidate:
    name: str
    kind: str                        # "mahalanobis" or "iforest"
    suffixes: tuple[str, ...]        # feature-name endings used; () = every sensor statistic
    components: int | None = None    # mahalanobis: top-k principal components (None: all)
    selectable: bool = True

    def columns(self, features: list[str]) -> list[int]:
        sensor = [i for i, f in enumerate(features) if f not in ("cycle", "window_len")]
        if not self.suffixes:
            return sensor
        return [i for i in sensor if features[i].endswith(self.suffixes)]


CANDIDATES = (
    Candidate("drift-pca5", "mahalanobis", ("_drift",), 5),
    Candidate("drift-pca10", "mahalanobis", ("_drift",), 10),
    Candidate("drift-full", "mahalanobis", ("_drift",), None),
    Candidate("mean+drift-pca5", "mahalanobis", ("_mean", "_drift"), 5),
    Candidate("sensors-pca5", "mahalanobis", (), 5),
    Candidate("iforest-drift", "iforest", ("_drift",), selectable=False),
    Candidate("iforest-sensors", "iforest", (), selectable=False),
)
QUICK_CANDIDATES = CANDIDATES[:2]


@dataclass(frozen=True)
class Plan:
    candidates: tuple[Candidate, ...]
    n_folds: int = 5
    inner_folds: int = 4
    description: str = ""


FULL_PLAN = Plan(CANDIDATES, description=(
    f"{len(CANDIDATES)} candidates ({sum(c.selectable for c in CANDIDATES)} selectable), nested "
    "grouped CV (choice and threshold inside each outer fold)"))
QUICK_PLAN = Plan(QUICK_CANDIDATES, inner_folds=2,
                  description="quick: 2 candidates, inner 2-fold CV")


# --- scorers -----------------------------------------------------------------------------


@dataclass
class Mahalanobis:
    """score(x) = mean over k of ((x - mean) @ weights)^2; zero weights for unused features."""

    mean: np.ndarray     # [n_features]
    weights: np.ndarray  # [n_features, k]

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) @ self.weights
        return np.mean(z * z, axis=1)


def fit_mahalanobis(x: np.ndarray, cols: list[int], k: int | None) -> Mahalanobis:
    """Fit on healthy rows ``x`` (all features); only ``cols`` get weights."""
    sub = np.asarray(x, np.float64)[:, cols]
    mu = sub.mean(axis=0)
    sd = sub.std(axis=0)
    sd[sd == 0] = 1.0
    eigval, eigvec = np.linalg.eigh(np.cov((sub - mu) / sd, rowvar=False))
    top = np.argsort(eigval)[::-1][: k or len(eigval)]
    # eigh's eigenvector signs are arbitrary but the score squares them away.
    w_sub = eigvec[:, top] / np.sqrt(np.maximum(eigval[top], 1e-12)) / sd[:, None]
    mean = np.zeros(x.shape[1])
    mean[cols] = mu
    weights = np.zeros((x.shape[1], len(top)))
    weights[cols] = w_sub
    return Mahalanobis(mean, weights)


@dataclass
class IForest:
    model: object
    cols: list[int]

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(np.asarray(x)[:, self.cols])


def fit_scorer(cand: Candidate, x: np.ndarray, features: list[str]):
    cols = cand.columns(features)
    if cand.kind == "mahalanobis":
        return fit_mahalanobis(x, cols, cand.components)
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=200, random_state=SEED, n_jobs=1).fit(x[:, cols])
    return IForest(model, cols)


def make_rule(healthy_scores: np.ndarray, q: float = THRESHOLD_QUANTILE) -> Rule:
    """The alert rule from held-out healthy scores: warning above their ``q`` quantile,
    cleared below their :data:`CLEAR_QUANTILE` quantile (never a negative margin)."""
    thr = float(np.float32(np.quantile(healthy_scores, q)))
    clear = float(np.quantile(healthy_scores, min(CLEAR_QUANTILE, q)))
    return Rule(NAME, "above", {"warning": thr}, hysteresis=max(thr - clear, 0.0))


# --- the procedure -----------------------------------------------------------------------


@dataclass
class Fitted:
    """The procedure's output on one set of training engines."""

    candidate: Candidate
    scorer: object
    rule: Rule
    inner_table: pd.DataFrame            # candidate, inner median warning cycles, threshold
    inner_healthy: dict[str, np.ndarray]  # candidate -> out-of-fold healthy scores


def _inner_oof(df: pd.DataFrame, x: np.ndarray, features: list[str], cand: Candidate,
               folds) -> np.ndarray:
    healthy = df["rul_uncapped"].to_numpy() > HEALTHY_RUL
    oof = np.full(len(df), np.nan)
    for tr, va in folds:
        scorer = fit_scorer(cand, x[tr[healthy[tr]]], features)
        oof[va] = scorer.score(x[va])
    return oof


def fit_procedure(df: pd.DataFrame, x: np.ndarray, features: list[str], plan: Plan,
                  n_inner: int) -> Fitted:
    """Choose the candidate and the threshold by an ``n_inner``-fold grouped CV over the
    engines of ``df`` only, then refit the choice on all their healthy rows."""
    df = df.reset_index(drop=True)
    healthy = df["rul_uncapped"].to_numpy() > HEALTHY_RUL
    folds = grouped_folds(df["unit"].to_numpy(), n_inner)
    table, inner_healthy, rules = [], {}, {}
    for cand in plan.candidates:
        oof = _inner_oof(df, x, features, cand, folds)
        rule = make_rule(oof[healthy])
        scored = df[["unit", "cycle", "rul_uncapped"]].assign(score=oof)
        lead = np.median(warning_cycles_or_zero(engine_outcomes(scored, "score", rule,
                                                                HEALTHY_RUL)))
        table.append({"candidate": cand.name, "inner_median_warning": float(lead),
                      "threshold": rule.levels["warning"], "selectable": cand.selectable})
        inner_healthy[cand.name], rules[cand.name] = oof[healthy], rule
    inner_table = pd.DataFrame(table)
    pick = inner_table[inner_table["selectable"]]
    best = pick.loc[pick["inner_median_warning"].idxmax(), "candidate"]  # first on ties
    cand = next(c for c in plan.candidates if c.name == best)
    scorer = fit_scorer(cand, x[healthy], features)
    return Fitted(cand, scorer, rules[best], inner_table, inner_healthy)


# --- training and evaluation ---------------------------------------------------------------


@dataclass
class Result:
    df: pd.DataFrame                # rows + score, threshold, candidate of the outer fold
    features: list[str]
    plan: Plan
    metrics: dict[str, float | int]
    outcomes: pd.DataFrame          # per held-out engine (nested procedure)
    candidate_table: pd.DataFrame   # each candidate's own procedure, outer CV
    fold_choices: list[dict]
    sweep: pd.DataFrame             # threshold quantile -> false alarms / warning cycles
    final: Fitted
    onnx_model: onnx.ModelProto
    golden: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def _evaluate(df: pd.DataFrame, scores: np.ndarray,
              fold_rules: list[tuple[np.ndarray, Rule]]) -> tuple[pd.DataFrame, dict]:
    """Per-engine outcomes and headline numbers of held-out ``scores``: the rows ``va`` of
    each fold are judged by that fold's rule."""
    healthy = df["rul_uncapped"].to_numpy() > HEALTHY_RUL
    above = np.zeros(len(df), bool)
    outs = []
    for va, rule in fold_rules:
        part = df.iloc[va][["unit", "cycle", "rul_uncapped"]].assign(score=scores[va])
        outs.append(engine_outcomes(part, "score", rule, HEALTHY_RUL))
        above[va] = scores[va] > rule.levels["warning"]
    outcomes = pd.concat(outs, ignore_index=True).sort_values("unit", ignore_index=True)
    return outcomes, {**summarize(outcomes),
                      "false_alarm_rate_cycles": float(above[healthy].mean()),
                      "healthy_cycles": int(healthy.sum())}


_SHOWN = ("share_warned", "median_warning_cycles", "p10_warning_cycles",
          "false_alarm_rate_cycles", "false_per_1000_cycles")


def train(df: pd.DataFrame, features: list[str], plan: Plan = FULL_PLAN, log=print) -> Result:
    """Nested evaluation over whole engines, then the procedure on all engines, exported."""
    t0 = time.monotonic()
    df = df.reset_index(drop=True).copy()
    x = features_matrix(df, features).astype(np.float64)
    healthy = df["rul_uncapped"].to_numpy() > HEALTHY_RUL
    folds = grouped_folds(df["unit"].to_numpy(), plan.n_folds)

    # -- outer CV: the nested procedure, and each candidate on its own (with its own
    #    inner-CV threshold); every number below is about the held-out engines ``va``.
    scores = {c.name: np.full(len(df), np.nan) for c in plan.candidates}
    cand_rules: dict[str, list] = {c.name: [] for c in plan.candidates}
    chosen = np.full(len(df), np.nan)
    nested_rules: list[tuple[np.ndarray, Rule]] = []
    sweep_rules: dict[float, list] = {q: [] for q in SWEEP_QUANTILES}
    fold_choices = []
    for k, (tr, va) in enumerate(folds):
        t = time.monotonic()
        fitted = fit_procedure(df.iloc[tr], x[tr], features, plan, plan.inner_folds)
        for cand in plan.candidates:
            scorer = (fitted.scorer if cand is fitted.candidate
                      else fit_scorer(cand, x[tr[healthy[tr]]], features))
            scores[cand.name][va] = scorer.score(x[va])
            cand_rules[cand.name].append((va, make_rule(fitted.inner_healthy[cand.name])))
        chosen[va] = scores[fitted.candidate.name][va]
        nested_rules.append((va, fitted.rule))
        for q in SWEEP_QUANTILES:
            sweep_rules[q].append((va, make_rule(fitted.inner_healthy[fitted.candidate.name], q)))
        fold_choices.append({"fold": k + 1, "candidate": fitted.candidate.name,
                             "threshold": fitted.rule.levels["warning"],
                             "hysteresis": fitted.rule.hysteresis,
                             "inner": fitted.inner_table.to_dict(orient="records")})
        log(f"  engine-anomaly fold {k + 1}: inner CV chose {fitted.candidate.name} "
            f"(threshold {fitted.rule.levels['warning']:.3g}; {time.monotonic() - t:.0f} s)")
    df["score"] = chosen
    df["threshold"] = np.nan
    for va, rule in nested_rules:
        df.loc[va, "threshold"] = rule.levels["warning"]
    outcomes, m = _evaluate(df, chosen, nested_rules)
    cand_rows = []
    for cand in plan.candidates:
        _, cm = _evaluate(df, scores[cand.name], cand_rules[cand.name])
        cand_rows.append({"candidate": cand.name, "selectable": cand.selectable,
                          **{key: cm[key] for key in _SHOWN}})
    sweep = []
    for q, fold_rules in sweep_rules.items():
        _, sm = _evaluate(df, chosen, fold_rules)
        sweep.append({"quantile": q, **{key: sm[key] for key in _SHOWN}})
    timings = {"cv_s": time.monotonic() - t0}

    # -- the published model: the procedure on every engine
    t = time.monotonic()
    final = fit_procedure(df, x, features, plan, plan.n_folds)
    if not isinstance(final.scorer, Mahalanobis):
        raise AssertionError("only Mahalanobis candidates are selectable")
    onx = export_mahalanobis(final.scorer)
    from .package import predict_column

    x32 = features_matrix(df, features)
    onnx_score = predict_column(onx, x32, input_name="input", output_name=OUTPUT)
    ref = final.scorer.score(x32)
    max_rel = float(np.max(np.abs(onnx_score - ref) / np.maximum(1.0, np.abs(ref))))
    if max_rel > 1e-4:
        raise AssertionError(f"onnxruntime disagrees with numpy by {max_rel} (relative)")
    timings["final_fit_s"] = time.monotonic() - t

    metrics: dict[str, float | int] = {
        **{k: m[k] for k in ("share_warned", "median_warning_cycles", "p10_warning_cycles",
                             "median_first_crossing", "false_alarm_rate_cycles",
                             "false_per_1000_cycles", "false_episodes", "healthy_cycles")},
        "cv_folds": plan.n_folds,
        "alert_threshold": final.rule.levels["warning"],
        "alert_hysteresis": final.rule.hysteresis,
        "threshold_quantile": THRESHOLD_QUANTILE,
        "components": int(final.scorer.weights.shape[1]),
        "train_healthy_rows": int(healthy.sum()),
        "train_units": int(df["unit"].nunique()),
        "max_rel_onnx_vs_numpy": max_rel,
    }
    timings["total_s"] = time.monotonic() - t0
    log(f"  engine-anomaly: chose {final.candidate.name}, threshold "
        f"{final.rule.levels['warning']:.3g}; held-out: warned {m['share_warned']:.0%}, median "
        f"{m['median_warning_cycles']:.0f} cycles, healthy cycles above threshold "
        f"{m['false_alarm_rate_cycles']:.2%}, false episodes/1000 {m['false_per_1000_cycles']:.2f}")
    golden = features_matrix(pick_golden(df), features)
    return Result(df=df, features=features, plan=plan, metrics=metrics, outcomes=outcomes,
                  candidate_table=pd.DataFrame(cand_rows), fold_choices=fold_choices,
                  sweep=pd.DataFrame(sweep), final=final, onnx_model=onx, golden=golden,
                  timings=timings)


# --- export --------------------------------------------------------------------------------


def export_mahalanobis(scorer: Mahalanobis, input_name: str = "input") -> onnx.ModelProto:
    """``score = ((input - mean) @ weights)^2 @ (1/k)``: float32 input ``[N, n]``, output
    ``score`` float32 ``[N, 1]`` (N dynamic). Default-domain ops only (Sub, MatMul, Mul)."""
    n, k = scorer.weights.shape
    inits = [
        numpy_helper.from_array(scorer.mean.astype(np.float32), "mean"),
        numpy_helper.from_array(scorer.weights.astype(np.float32), "weights"),
        numpy_helper.from_array(np.full((k, 1), 1.0 / k, np.float32), "average"),
    ]
    nodes = [
        helper.make_node("Sub", [input_name, "mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "weights"], ["whitened"]),
        helper.make_node("Mul", ["whitened", "whitened"], ["squared"]),
        helper.make_node("MatMul", ["squared", "average"], [OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, NAME,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="fleetscore-training")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def package_kwargs(result: Result) -> dict:
    """The model-specific arguments of :func:`fleet_training.write_package`."""
    f = result.final
    return dict(
        name=NAME, onnx_model=result.onnx_model, input_name="input", output_name=OUTPUT,
        output_column=0,
        meaning=("anomaly score: mean squared whitened principal component of the healthy "
                 "engine's features (about 1 when healthy)"),
        unit="score", golden_inputs=result.golden, backend="ort", stage="serving",
        metrics=result.metrics,
        description=(
            f"Mahalanobis distance, candidate {f.candidate.name} "
            f"({result.metrics['components']} components), fitted on the "
            f"{result.metrics['train_healthy_rows']:,} healthy cycles (true RUL > "
            f"{HEALTHY_RUL}) of {result.metrics['train_units']} C-MAPSS FD001 engines; "
            f"suggested alert: above {f.rule.levels['warning']:.4g}, hysteresis "
            f"{f.rule.hysteresis:.4g}"
        ),
    )
