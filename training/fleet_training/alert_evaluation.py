"""What an alert rule would have done on run-to-failure engines: lead time, warned engines,
false alerts. Episodes are counted, never cycles (:mod:`fleet_training.episodes`, the
service's semantics).

Definitions, per engine (its rows in cycle order, ``true RUL`` = cycles to its last cycle, the
failure; a value is the held-out prediction or score of that cycle):

* **warned before failure**: an episode is still open at the engine's last cycle and was
  raised at a true RUL >= 1 (the alert was standing, uninterrupted, when the engine failed);
* **warning cycles** (lead time): the true RUL at the raise of that episode;
* **first crossing**: the true RUL of the first raise of any episode (the literal "cycles
  before failure at which a threshold is first crossed"; it includes early false alarms);
* **false episode**: an episode raised while the true RUL is > ``horizon``; its
  **exposure** is the engine's cycles with true RUL > ``horizon``. False alerts are reported
  per 1,000 such engine-cycles. A false episode that is cleared again before the failure is
  also counted as **spurious** (the others are early: they stand until the failure).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .episodes import Rule, episodes


def engine_outcomes(df: pd.DataFrame, value_col: str, rule: Rule, horizon: float,
                    rul_col: str = "rul_uncapped") -> pd.DataFrame:
    """One row per engine (``unit``): ``warned``, ``warning_cycles`` (NaN when not warned),
    ``first_crossing`` (NaN: never raised), ``episodes``, ``false_episodes``,
    ``spurious_episodes``, ``exposure_cycles``, ``cycles``."""
    rows = []
    for unit, u in df.sort_values(["unit", "cycle"]).groupby("unit", sort=True):
        rul = u[rul_col].to_numpy(np.float64)
        eps = episodes(rule, u[value_col].to_numpy())
        last_open = eps[-1] if eps and eps[-1].end is None else None
        warned = last_open is not None and rul[last_open.start] >= 1
        rows.append({
            "unit": unit,
            "cycles": len(u),
            "warned": bool(warned),
            "warning_cycles": float(rul[last_open.start]) if warned else np.nan,
            "first_crossing": float(rul[eps[0].start]) if eps else np.nan,
            "episodes": len(eps),
            "false_episodes": sum(rul[e.start] > horizon for e in eps),
            "spurious_episodes": sum(rul[e.start] > horizon and e.end is not None for e in eps),
            "exposure_cycles": int((rul > horizon).sum()),
        })
    return pd.DataFrame(rows)


def summarize(outcomes: pd.DataFrame) -> dict[str, float | int]:
    """The headline numbers of :func:`engine_outcomes`."""
    warned = outcomes["warning_cycles"].dropna()
    exposure = int(outcomes["exposure_cycles"].sum())
    false = int(outcomes["false_episodes"].sum())
    return {
        "engines": len(outcomes),
        "share_warned": float(outcomes["warned"].mean()),
        "median_warning_cycles": float(warned.median()) if len(warned) else 0.0,
        "p10_warning_cycles": float(warned.quantile(0.1)) if len(warned) else 0.0,
        "median_first_crossing": float(outcomes["first_crossing"].median()),
        "episodes": int(outcomes["episodes"].sum()),
        "false_episodes": false,
        "spurious_episodes": int(outcomes["spurious_episodes"].sum()),
        "engines_with_false_episode": int((outcomes["false_episodes"] > 0).sum()),
        "exposure_cycles": exposure,
        "false_per_1000_cycles": 1000.0 * false / exposure if exposure else 0.0,
    }


def warning_cycles_or_zero(outcomes: pd.DataFrame) -> np.ndarray:
    """Warning cycles per engine, 0 for an engine that was not warned (a miss)."""
    return outcomes["warning_cycles"].fillna(0.0).to_numpy()
