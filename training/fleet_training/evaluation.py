"""Validation splits and metrics shared by the trainers."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold

# Probabilities are clipped to [EPS, 1 - EPS] for the log loss (a baseline rate of exactly 0
# or 1 would otherwise give an infinite loss).
EPS = 1e-6


def grouped_folds(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` folds over whole groups (C-MAPSS units): every group's rows are in exactly
    one validation fold and never in the training part of that fold. Deterministic
    (``GroupKFold`` without shuffling balances the fold sizes; no randomness)."""
    groups = np.asarray(groups)
    folds = []
    for train_idx, val_idx in GroupKFold(n_splits=n_splits).split(groups, groups=groups):
        if np.intersect1d(groups[train_idx], groups[val_idx]).size:
            raise AssertionError("a group is in both the training and the validation part")
        folds.append((train_idx, val_idx))
    covered = np.sort(np.concatenate([v for _, v in folds]))
    if not np.array_equal(covered, np.arange(len(groups))):
        raise AssertionError("validation folds do not cover every row exactly once")
    return folds


def rmse(pred, true, mask=None) -> float:
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    return float(np.sqrt(np.mean(d * d)))


def mae(pred, true) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64))))


def _clip(p) -> np.ndarray:
    return np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)


def reliability(y, p, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability curve over ``n_bins`` bins of equal count (quantiles of ``p``): per bin the
    mean predicted probability, the observed rate and the row count. Tied predictions are
    never split across bins (a constant prediction gives one bin)."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    order = np.argsort(p, kind="stable")
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bin_of = np.searchsorted(edges, p, side="left")
    mean_p, rate, count = [], [], []
    for b in np.unique(bin_of[order]):
        m = bin_of == b
        mean_p.append(p[m].mean())
        rate.append(y[m].mean())
        count.append(int(m.sum()))
    return {"mean_predicted": np.array(mean_p), "observed": np.array(rate),
            "count": np.array(count)}


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Count-weighted mean |observed rate - mean prediction| over the reliability bins."""
    r = reliability(y, p, n_bins)
    w = r["count"] / r["count"].sum()
    return float(np.sum(w * np.abs(r["observed"] - r["mean_predicted"])))


def binary_metrics(y, p) -> dict[str, float]:
    """ROC AUC, log loss, Brier score, expected calibration error (10 quantile bins), mean
    prediction and observed rate."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    auc = float(roc_auc_score(y, p)) if np.unique(p).size > 1 else 0.5
    return {
        "auc": auc,
        "logloss": float(log_loss(y, _clip(p), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "mean_predicted": float(p.mean()),
        "observed_rate": float(np.mean(y)),
    }


def coverage(lower, upper, truth, mask=None) -> float:
    """Share of rows (of ``mask``) with ``lower <= truth <= upper``."""
    lower, upper, truth = (np.asarray(a, np.float64) for a in (lower, upper, truth))
    inside = (lower <= truth) & (truth <= upper)
    if mask is not None:
        inside = inside[np.asarray(mask, bool)]
    return float(inside.mean())
