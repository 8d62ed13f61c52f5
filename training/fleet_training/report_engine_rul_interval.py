"""The engine-rul interval report: ``<reports>/engine-rul-interval-<version>/`` (report.md,
plots, metrics.json); it also carries the default engine-rul alert rule's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import engine_rul_interval as eri
from .data import RUL_CAP
from .report import Context, _header, _life_units, _save, _table, json_default, plt


def _life_plot(df: pd.DataFrame, path: Path) -> str:
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharey=True, layout="constrained")
    for ax, unit in zip(axes.flat, _life_units(df)):
        u = df[df["unit"] == unit].sort_values("cycle")
        ax.fill_between(u["cycle"], u["lower"], u["upper"], color="#4477aa", alpha=0.25,
                        label="80% interval (fixed up)")
        ax.plot(u["cycle"], u["rul_uncapped"], color="0.7", ls="--", lw=1, label="true RUL")
        ax.plot(u["cycle"], u["rul"], color="black", lw=1.2, label=f"label (cap {RUL_CAP})")
        ax.plot(u["cycle"], u["point"], color="#4477aa", lw=1.2, label="engine-rul (CV)")
        ax.set_title(f"engine {unit} ({len(u)} cycles)")
        ax.set_xlabel("cycle")
        ax.set_ylim(-10, 160)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("RUL (cycles)")
    axes[1, 0].set_ylabel("RUL (cycles)")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle("Held-out engines: intervals from the CV models that never saw the engine",
                 fontsize=11)
    return _save(fig, path)


def _coverage_plot(df: pd.DataFrame, path: Path) -> str:
    d = df[df["rul_uncapped"] <= RUL_CAP].assign(bin=(df["rul_uncapped"] // 10) * 10)
    y = d["rul"]
    series = {
        "uncalibrated quantile models": (d["raw_lower"], d["raw_upper"], "#ee6677"),
        "calibrated": (d["cal_lower"], d["cal_upper"], "#ccbb44"),
        "calibrated + ordering fix-up (served)": (d["lower"], d["upper"], "#4477aa"),
    }
    fig, (ax, axw) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True, layout="constrained")
    ax.axhspan(100 * eri.COVERAGE_TARGET[0], 100 * eri.COVERAGE_TARGET[1], color="green",
               alpha=0.1, label="target 75-85%")
    for label, (lo, hi, color) in series.items():
        inside = ((lo <= y) & (y <= hi)).groupby(d["bin"]).mean()
        ax.plot(inside.index + 5, 100 * inside, marker="o", color=color, label=label)
        width = (hi - lo).groupby(d["bin"]).mean()
        axw.plot(width.index + 5, width, marker="o", color=color)
    ax.set_ylabel("coverage (%)")
    ax.set_title(f"80% interval on held-out engines (true RUL <= {RUL_CAP}), by true RUL")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    axw.set_ylabel("mean width (cycles)")
    axw.set_xlabel("true RUL (cycles, bins of 10)")
    axw.grid(alpha=0.3)
    return _save(fig, path)


def _rules_plot(df: pd.DataFrame, path: Path) -> str:
    from .alert_evaluation import engine_outcomes, warning_cycles_or_zero

    fig, ax = plt.subplots(figsize=(7, 4))
    data, labels = [], []
    for name, (col, rule) in eri.RULES.items():
        data.append(warning_cycles_or_zero(engine_outcomes(df, col, rule, eri.HORIZON)))
        labels.append(name)
    ax.boxplot(data, orientation="horizontal", tick_labels=labels)
    ax.axvline(eri.HORIZON, color="red", lw=1, ls="--", label=f"horizon {eri.HORIZON}")
    ax.set_xlabel("cycles of standing alert before failure, per held-out engine")
    ax.set_title("engine-rul alert rule candidates")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def engine_rul_interval_report(res: "eri.Result", out: Path, ctx: Context) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    m = res.metrics
    plots = {"life": _life_plot(res.df, out / "interval_life.png"),
             "coverage": _coverage_plot(res.df, out / "coverage_by_rul.png"),
             "rules": _rules_plot(res.df, out / "alert_rules.png")}
    n_le = int((res.df["rul_uncapped"] <= RUL_CAP).sum())
    buckets = res.buckets.rename(columns={"true_rul": "true RUL"})
    for c in ("coverage", "below_lower", "above_upper"):
        buckets[c] = buckets[c].map("{:.1%}".format)
    shifts = res.shifts.pivot(index="fold", columns="side", values="shift").reset_index()
    rules = res.rules.drop(columns=["watches"]).copy()
    rules["share_warned"] = rules["share_warned"].map("{:.0%}".format)
    fx = res.fixup
    d = eri.RULES[eri.DEFAULT_RULE]
    lines = _header("engine-rul-interval", ctx, res.plan.description)
    lines += [
        f"Two LightGBM quantile models, `{eri.NAMES['lower']}` (10th percentile) and "
        f"`{eri.NAMES['upper']}` (90th), give an 80 % interval around `engine-rul`, on the "
        "same `engine-health` features and the same label (true RUL capped at "
        f"{RUL_CAP}). The report also measures the default `engine-rul` alert rule.",
        "",
        "**Published:** both packages are written to `models/`. The service gives "
        f"`engine-rul` its 80 % interval from `{eri.NAMES['lower']}` / `{eri.NAMES['upper']}` "
        "by default (service config `[models.intervals]`), with the bounds fixed up around "
        "the point: `lower = min(p10, point)`, `upper = max(p90, point)`.",
        "",
        f"## Interval (held-out engines, grouped 5-fold CV; {n_le:,} rows with true RUL <= "
        f"{RUL_CAP})",
        "",
        "| metric | value |",
        "|---|---|",
        f"| **coverage** (label inside [lower, upper]), target 75-85 % | "
        f"**{m['cv_coverage_rul_le_125']:.1%}** |",
        f"| below the lower bound / above the upper | {m['cv_below_lower_rul_le_125']:.1%} / "
        f"{m['cv_above_upper_rul_le_125']:.1%} |",
        f"| **width** (upper - lower): mean / median, cycles | "
        f"**{m['cv_mean_width_rul_le_125']:.1f}** / {m['cv_median_width_rul_le_125']:.1f} |",
        f"| coverage before the ordering fix-up | "
        f"{m['cv_coverage_before_fixup_rul_le_125']:.1%} |",
        f"| coverage of the uncalibrated quantile models | "
        f"{m['cv_coverage_uncalibrated_rul_le_125']:.1%} |",
        "",
        "**Calibration.** Trained as they are, the quantile models' held-out intervals are "
        "too narrow (the quantile objective fits the training engines' residuals, smaller "
        "than an unseen engine's). Each bound is shifted by a constant from an inner grouped "
        "CV over the *training* engines only (conformalised quantile regression, one side at "
        "a time: the shift leaves 10 % of their out-of-fold rows with true RUL <= "
        f"{RUL_CAP} beyond the bound *after* the ordering fix-up below, computed with their "
        "out-of-fold point estimates). Shifts per outer fold (cycles):",
        "",
        _table(shifts, "{:+.2f}"),
        "",
        f"The published bounds carry the shift of a 5-fold CV over all 100 engines (lower "
        f"{m['shift_lower']:+.2f}, upper {m['shift_upper']:+.2f} cycles), added to every leaf "
        "of the first tree, so the ONNX graph outputs the calibrated bound (ONNX vs LightGBM: "
        f"max |difference| {m['max_abs_onnx_vs_lightgbm']:.2g} cycles).",
        "",
        "**Ordering fix-up.** The served interval is `lower = min(p10, engine-rul)`, "
        "`upper = max(p90, engine-rul)`: a clamp against the point estimate, which is never "
        "moved; the interval only widens. On the held-out predictions it was needed on "
        f"{fx['either']:,} of {fx['rows']:,} rows ({m['fixup_share_all_rows']:.1%}): the lower "
        f"bound above the point on {fx['lower_above_point']:,}, the upper below it on "
        f"{fx['upper_below_point']:,}. The separate models are not forced to agree; whoever "
        "serves the interval (the service's alert code) must apply this clamp.",
        "",
        "By true RUL (after calibration and fix-up):",
        "",
        _table(buckets, "{:.1f}"),
        "",
        f"Rows with true RUL > {RUL_CAP} are outside the target: their label is the constant "
        f"{RUL_CAP} (the cap), which sits on or just above the calibrated upper bound; the "
        f"interval says \"about {RUL_CAP} or more\" there (all-rows coverage "
        f"{m['cv_coverage_all_rows']:.1%}).",
        "",
        "## Default engine-rul alert rule",
        "",
        "Candidates run with the service's episode semantics (`service/src/alerts/episode.rs`, "
        "mirrored in `fleet_training/episodes.py`) on the held-out values: raised when the "
        "value first crosses a level, escalated to critical, cleared when back above the "
        "warning level plus the hysteresis. Definitions: an engine is *warned* when an "
        "episode is standing at its last cycle and was raised at true RUL >= 1; *warning "
        "cycles* = true RUL at that raise; a *false* episode is one raised while the true "
        f"RUL is > {eri.HORIZON} (the horizon), counted per 1,000 engine-cycles with true "
        f"RUL > {eri.HORIZON} (the cycles where a raise would be false); *spurious* episodes "
        "are the false ones that cleared again before the failure (the others were early and "
        "stood until the failure).",
        "",
        _table(rules, "{:.2f}"),
        "",
        f"**Proposed default: `{eri.DEFAULT_RULE}`** (watches `{d[0]}`: "
        f"{d[1].describe()}): share of engines warned before failure "
        f"**{m['default_rule_share_warned']:.0%}**, median **"
        f"{m['default_rule_median_warning_cycles']:.0f}** cycles of warning, "
        f"**{m['default_rule_false_per_1000_cycles']:.2f}** false alerts per 1,000 "
        "engine-cycles.",
        "",
        "Why: every candidate warns every held-out engine before it fails; they differ in how "
        "early and in how many alerts come too early. On the point estimate, 50/20 gives a "
        "median of about 50 cycles of warning (the 10th percentile of engines still gets about "
        "40, enough to plan an engine change) with the fewest false episodes. Watching the "
        "10th-percentile bound instead raises earlier (more warning cycles) but, by "
        f"construction, often while the true RUL is still above the {eri.HORIZON}-cycle "
        "horizon: many more false episodes (see the spurious column for how many of them "
        "cleared again). A fleet that wants more lead time should lower the horizon it "
        "tolerates and pick `p10 50/20`; the rule is configuration, not code.",
        "",
        "## Plots",
        "",
        f"![intervals on held-out engines]({plots['life']})",
        "",
        f"![coverage and width by true RUL]({plots['coverage']})",
        "",
        f"![alert rules: warning cycles]({plots['rules']})",
        "",
        f"Timings: CV with calibration {res.timings['cv_s']:.0f} s, final fits + export "
        f"{res.timings['final_fit_s']:.0f} s (one thread).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    (out / "metrics.json").write_text(json.dumps({
        "metrics": m,
        "shifts": res.shifts.to_dict(orient="records"),
        "fixup": fx,
        "coverage_by_true_rul": res.buckets.to_dict(orient="records"),
        "alert_rules": res.rules.to_dict(orient="records"),
        "default_rule": eri.DEFAULT_RULE,
        "timings_s": res.timings,
    }, indent=2, default=json_default) + "\n")
    return out

