"""The engine-anomaly report: ``<reports>/engine-anomaly-<version>/`` (report.md, plots,
metrics.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import engine_anomaly
from .report import Context, _header, _life_units, _save, _table, json_default, plt

PCT = "{:.1%}"


def _ratio(df: pd.DataFrame) -> np.ndarray:
    return (df["score"] / df["threshold"]).to_numpy()


def _score_vs_rul_plot(df: pd.DataFrame, path: Path) -> str:
    d = df.assign(ratio=_ratio(df), bin=(df["rul_uncapped"] // 5) * 5)
    g = d[d["bin"] <= 250].groupby("bin")["ratio"]
    q = pd.DataFrame({"p10": g.quantile(0.1), "p50": g.median(), "p90": g.quantile(0.9)})
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for unit, u in d.groupby("unit"):
        if unit % 10 == 1:
            ax.plot(u["rul_uncapped"], u["ratio"], color="0.75", lw=0.6)
    ax.fill_between(q.index, q["p10"], q["p90"], color="#4477aa", alpha=0.3,
                    label="10th-90th percentile")
    ax.plot(q.index, q["p50"], color="#4477aa", lw=2, label="median")
    ax.axhline(1, color="red", lw=1, label="alert threshold")
    ax.axvline(engine_anomaly.HEALTHY_RUL, color="0.4", ls="--", lw=1)
    ax.text(engine_anomaly.HEALTHY_RUL + 3, 0.02, "healthy (RUL > 125)", fontsize=8, ha="right")
    ax.set_yscale("log")
    ax.set_xlim(250, 0)
    ax.set_xlabel("true cycles to failure (time runs left to right)")
    ax.set_ylabel("score / fold's threshold (log)")
    ax.set_title("engine-anomaly on held-out engines (grouped 5-fold CV; grey: 10 engines)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _traces_plot(df: pd.DataFrame, outcomes: pd.DataFrame, path: Path) -> str:
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), layout="constrained")
    oc = outcomes.set_index("unit")
    for ax, unit in zip(axes.flat, _life_units(df)):
        u = df[df["unit"] == unit].sort_values("cycle")
        ax.plot(u["cycle"], u["score"], color="#4477aa", lw=1.2, label="score")
        ax.plot(u["cycle"], u["threshold"], color="red", lw=1, label="threshold")
        w = oc.loc[unit, "warning_cycles"]
        if np.isfinite(w):
            ax.axvspan(u["cycle"].max() - w, u["cycle"].max(), color="orange", alpha=0.2,
                       label="standing alert")
        ax.set_yscale("log")
        ax.set_title(f"engine {unit}: {len(u)} cycles, warned "
                     + (f"{w:.0f} before failure" if np.isfinite(w) else "not at all"),
                     fontsize=10)
        ax.set_xlabel("cycle")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("engine-anomaly on held-out engines", fontsize=11)
    return _save(fig, path)


def _lead_time_plot(outcomes: pd.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    w = outcomes["warning_cycles"].fillna(0)
    ax.hist(w, bins=np.arange(0, w.max() + 10, 5), color="#4477aa")
    ax.axvline(np.median(w), color="red", lw=1, label=f"median {np.median(w):.0f}")
    ax.set_xlabel("cycles of standing alert before failure (0: not warned)")
    ax.set_ylabel("held-out engines")
    ax.set_title("engine-anomaly lead time, 100 held-out engines")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _tradeoff_plot(sweep: pd.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(100 * sweep["false_alarm_rate_cycles"], sweep["median_warning_cycles"],
            marker="o", color="#4477aa")
    for _, r in sweep.iterrows():
        ax.annotate(f"q{r['quantile']:g}", (100 * r["false_alarm_rate_cycles"],
                                             r["median_warning_cycles"]),
                    fontsize=8, xytext=(4, -10), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("held-out healthy cycles above the threshold (%)")
    ax.set_ylabel("median cycles of warning before failure")
    ax.set_title("threshold = quantile q of training engines' held-out healthy scores")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def engine_anomaly_report(res: "engine_anomaly.Result", out: Path, ctx: Context) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    m = res.metrics
    f = res.final
    plots = {
        "score": _score_vs_rul_plot(res.df, out / "score_vs_rul.png"),
        "traces": _traces_plot(res.df, res.outcomes, out / "engine_traces.png"),
        "lead": _lead_time_plot(res.outcomes, out / "lead_time.png"),
        "tradeoff": _tradeoff_plot(res.sweep, out / "threshold_tradeoff.png"),
    }
    cands = res.candidate_table.copy()
    cands["selectable"] = cands["selectable"].map({True: "yes", False: "no (reference)"})
    for c in ("share_warned", "false_alarm_rate_cycles"):
        cands[c] = cands[c].map(PCT.format)
    sweep = res.sweep.copy()
    for c in ("share_warned", "false_alarm_rate_cycles"):
        sweep[c] = sweep[c].map(PCT.format)
    choices = ", ".join(f"{c['candidate']} (threshold {c['threshold']:.3g})"
                        for c in res.fold_choices)
    n_warned = int(round(m["share_warned"] * len(res.outcomes)))
    lines = _header("engine-anomaly", ctx, res.plan.description)
    lines += [
        "Unsupervised health score of a C-MAPSS FD001 engine on the `engine-health` feature "
        "vector (the one `engine-rul` scores), fitted on healthy cycles only (true RUL > "
        f"{engine_anomaly.HEALTHY_RUL}, where the `engine-rul` label assumes no degradation "
        "yet). The model is a Mahalanobis distance: the chosen features are standardised, "
        "projected on the top principal components of the healthy cycles and whitened; the "
        "score is the mean squared whitened component (about 1 for a healthy cycle). It is "
        "a four-node ONNX graph (Sub, MatMul, Mul, MatMul), with zero weights for the "
        "features it does not use.",
        "",
        "**Published:** the package is written to `models/`. The service scores it when "
        "routed: `[models.routes] \"engine-health\" = [\"engine-rul\", \"engine-anomaly\"]` "
        "in its config. It is not in the default route because every routed model adds one "
        "prediction record per engine event to the predictions topic.",
        "",
        "## Results (held-out engines, grouped 5-fold CV; nested: the model choice and the "
        "threshold come from the training engines only)",
        "",
        f"Alert rule (as the service runs it, episodes with hysteresis): **raise when the "
        f"score is above the {engine_anomaly.THRESHOLD_QUANTILE:.0%} quantile of healthy "
        f"scores, clear when back below the {engine_anomaly.CLEAR_QUANTILE:.0%} quantile**; "
        "both quantiles are of *out-of-fold* healthy scores of the training engines (an inner "
        "grouped CV), so they reflect engines the scorer has not seen.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| engines warned before failure (alert standing at the last cycle) | "
        f"**{m['share_warned']:.0%}** ({n_warned} of {len(res.outcomes)}) |",
        f"| lead time: median cycles of standing alert before failure | "
        f"**{m['median_warning_cycles']:.0f}** (10th percentile "
        f"{m['p10_warning_cycles']:.0f}) |",
        f"| first crossing: median true RUL at the first raise of any episode | "
        f"{m['median_first_crossing']:.0f} |",
        f"| false-alarm rate: healthy cycles above the threshold | "
        f"**{m['false_alarm_rate_cycles']:.2%}** of {m['healthy_cycles']:,} |",
        f"| false episodes (raised while true RUL > {engine_anomaly.HEALTHY_RUL}) | "
        f"{m['false_episodes']} = **{m['false_per_1000_cycles']:.2f} per 1,000 healthy "
        "engine-cycles** |",
        "",
        "Definitions (`fleet_training/alert_evaluation.py`): an engine is *warned* when an "
        "episode is open at its last cycle (its failure) and was raised at true RUL >= 1; "
        "the *lead time* is the true RUL at that episode's raise. A *false* episode is one "
        f"raised while the engine is still healthy (true RUL > {engine_anomaly.HEALTHY_RUL}); "
        "the cycle-level false-alarm rate counts healthy cycles above the threshold without "
        "hysteresis. Each held-out engine is judged with its fold's threshold. The data are "
        "run-to-failure training engines, so every engine does fail: the share warned says "
        "nothing about engines that never fail.",
        "",
        "**Model choice (numbers).** Each candidate's own procedure (its threshold from its "
        "inner CV), judged on the held-out engines. The isolation forests are the issue's "
        "suggestion, kept as references (not selectable: no exporter is wired for them):",
        "",
        _table(cands, "{:.3g}"),
        "",
        "The `_drift` features (sensor EWMA minus the engine's own mean over its first 10 "
        "cycles) remove the engine-to-engine offsets that dominate the raw levels, which is "
        "why the candidates built on them lead; keeping the top 5 principal components drops "
        "noisy low-variance directions (compare the 10-component and full distances). The "
        "lead times are compared at (nearly) the same false-alarm rate, since every "
        "threshold is the same quantile of held-out healthy scores. Inside each outer fold "
        "the inner CV chose: "
        f"{choices}. The published model is the same procedure on all 100 engines: "
        f"**{f.candidate.name}**, alert threshold **{m['alert_threshold']:.4g}**, hysteresis "
        f"{m['alert_hysteresis']:.4g} (clears at "
        f"{m['alert_threshold'] - m['alert_hysteresis']:.4g}).",
        "",
        "**Threshold trade-off** (the nested procedure with other quantiles; descriptive, "
        "not used for any choice):",
        "",
        _table(sweep, "{:.3g}"),
        "",
        "## Plots",
        "",
        f"![score against cycles to failure]({plots['score']})",
        "",
        f"![held-out engines]({plots['traces']})",
        "",
        f"![lead time]({plots['lead']})",
        "",
        f"![threshold trade-off]({plots['tradeoff']})",
        "",
        "For the service: an `above` alert rule on `engine-anomaly` with one level at the "
        "threshold above and `hysteresis` as above. The score is unitless; retrain (and "
        "re-derive the threshold) whenever the feature set changes.",
        "",
        f"Timings: nested CV {res.timings['cv_s']:.0f} s, final procedure + export "
        f"{res.timings['final_fit_s']:.0f} s (one thread).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    (out / "metrics.json").write_text(json.dumps({
        "metrics": m,
        "chosen": {"candidate": f.candidate.name, "threshold": f.rule.levels["warning"],
                   "hysteresis": f.rule.hysteresis},
        "final_inner_table": f.inner_table.to_dict(orient="records"),
        "fold_choices": res.fold_choices,
        "candidates": res.candidate_table.to_dict(orient="records"),
        "threshold_sweep": res.sweep.to_dict(orient="records"),
        "outcomes": res.outcomes.to_dict(orient="records"),
        "timings_s": res.timings,
    }, indent=2, default=json_default) + "\n")
    return out

