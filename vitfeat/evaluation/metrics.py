"""Scores of out-of-fold predictions: point value, fold mean and SD, patient-bootstrap 95 % CI.

``score_oof(oof_frame, classes)`` takes the OOF rows of ONE pipeline and ONE target (columns of
``oof_predictions.csv``) and returns ``{metric: {"value", "mean", "sd", "ci_low", "ci_high"}}``:
``value`` is computed on all pooled OOF predictions, ``mean``/``sd`` over the (repeat, fold) test
parts, and the CI from a bootstrap that resamples *patients* (cases of one patient are correlated).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from vitfeat.evaluation.calibration import CALIBRATION, calibration_metrics  # noqa: F401
from vitfeat.evaluation.intervals import bootstrap_ci
from vitfeat.evaluation.positive import POSITIVE_NAMES, positive_class  # noqa: F401  (re-exported)

HEADLINE = ["balanced_accuracy", "macro_f1", "auroc", "pr_auc", "sensitivity", "specificity"]


def proba_columns(classes) -> list[str]:
    """The probability column names of ``oof_predictions.csv``, in class order.

    Parameters
    ----------
    classes : sequence
        The classes.

    Returns
    -------
    list of str
        ``proba_<class>`` for each.
    """
    return [f"proba_{c}" for c in classes]


def _metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: list[str],
             positive: str | None) -> dict[str, float]:
    out = {"balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
           "macro_f1": f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)}
    present = np.isin(classes, y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if len(classes) == 2:
            pos = classes.index(positive)
            y_bin = (y_true == positive).astype(int)
            ok = 0 < y_bin.sum() < len(y_bin)
            out["auroc"] = roc_auc_score(y_bin, proba[:, pos]) if ok else np.nan
            out["pr_auc"] = average_precision_score(y_bin, proba[:, pos]) if ok else np.nan
        else:
            y_bin = label_binarize(y_true, classes=classes)
            cols = present & (y_bin.sum(0) < len(y_true))
            out["auroc"] = (roc_auc_score(y_bin[:, cols], proba[:, cols], average="macro")
                            if cols.sum() >= 2 else np.nan)
            out["pr_auc"] = (average_precision_score(y_bin[:, cols], proba[:, cols], average="macro")
                             if cols.any() else np.nan)
    cm = confusion_matrix(y_true, y_pred, labels=classes).astype(float)
    tp = np.diag(cm)
    fn = cm.sum(1) - tp
    fp = cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall, spec = tp / (tp + fn), tn / (tn + fp)
    if len(classes) == 2:
        pos = classes.index(positive)
        out["sensitivity"], out["specificity"] = recall[pos], spec[pos]
    else:
        out["sensitivity"], out["specificity"] = np.nanmean(recall), np.nanmean(spec)
    out.update(calibration_metrics(y_true, proba, classes, positive))
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    for c, f in zip(classes, per_class):
        out[f"f1_{c}"] = f
    return out


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan
    ranks = rankdata(score)  # average ranks for ties, as the Mann-Whitney U statistic
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_ap(y: np.ndarray, score: np.ndarray) -> float:
    n_pos = y.sum()
    if n_pos == 0:
        return np.nan
    order = np.argsort(-score, kind="mergesort")
    y, score = y[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(y) - 1]  # one point per distinct threshold
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fast_metrics(y_true, y_pred, proba, classes, positive) -> dict[str, float]:
    """Same numbers as :func:`_metrics` (a test checks it) at a fraction of the cost of
    scikit-learn's validated functions; the bootstrap calls it hundreds of times.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray of str
        True and predicted classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Class probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes, sorted.
    positive : str or None
        The positive class of a binary target (sensitivity, AUROC and PR-AUC refer to it).

    Returns
    -------
    dict
        ``{metric: value}``.
    """
    k = len(classes)
    t = np.searchsorted(classes, y_true)
    p = np.searchsorted(classes, y_pred)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    fn, fp = support - tp, predicted - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        spec = tn / (tn + fp)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    out = {"balanced_accuracy": float(np.nanmean(recall[support > 0])), "macro_f1": float(f1.mean())}
    if k == 2:
        pos = classes.index(positive)
        y_bin = (t == pos).astype(int)
        out["auroc"], out["pr_auc"] = _binary_auc(y_bin, proba[:, pos]), _binary_ap(y_bin, proba[:, pos])
        out["sensitivity"], out["specificity"] = recall[pos], spec[pos]
    else:
        usable = [j for j in range(k) if 0 < support[j] < len(t)]
        aucs = [_binary_auc((t == j).astype(int), proba[:, j]) for j in usable]
        aps = [_binary_ap((t == j).astype(int), proba[:, j]) for j in usable]
        out["auroc"] = float(np.mean(aucs)) if len(usable) >= 2 else np.nan
        out["pr_auc"] = float(np.mean(aps)) if usable else np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["sensitivity"], out["specificity"] = float(np.nanmean(recall)), float(np.nanmean(spec))
    out.update(calibration_metrics(y_true, proba, classes, positive))
    for c, f in zip(classes, f1):
        out[f"f1_{c}"] = float(f)
    return out


def score_oof(oof_frame: pd.DataFrame, classes, *, positive: str | None = None, n_boot: int = 500,
              seed: int = 0, ci: str = "auto") -> dict:
    """Score one pipeline's OOF predictions for one target (see module docstring).

    Every metric gets ``n_boot_valid`` (resamples that gave a value) and ``ci_note`` (why an interval
    is withheld: fewer than 95 % valid resamples, :func:`vitfeat.evaluation.intervals.bootstrap_ci`).
    ``ci``: ``bootstrap`` (patient bootstrap for every metric), ``analytic`` (binary targets: DeLong
    for AUROC, Wilson for sensitivity, specificity, PPV and NPV; :mod:`vitfeat.evaluation.analytic`)
    or ``auto`` (analytic when each patient has one case, else the patient bootstrap).

    Parameters
    ----------
    oof_frame : pandas.DataFrame
        Rows of ``oof_predictions.csv`` of one pipeline and target (``y_true``, ``y_pred``,
        ``proba_<class>``, ``repeat``, ``fold``, ``patient_id``).
    classes : sequence
        The target's classes.
    positive : str, optional
        Positive class of a binary target (default: :func:`vitfeat.evaluation.positive.positive_class`).
    n_boot : int, default 500
        Patient-bootstrap resamples for the CIs (0: none).
    seed : int, default 0
        Bootstrap seed.
    ci : {"auto", "analytic", "bootstrap"}, default "auto"
        How intervals are computed (see above).

    Returns
    -------
    dict
        ``{metric: {"value", "mean", "sd", "ci_low", "ci_high", "n_boot_valid", "ci_note"}}``, plus
        ``_per_fold`` (a DataFrame) and ``_positive``.
    """
    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise ValueError("scoring needs at least two classes")
    frame = oof_frame.reset_index(drop=True)
    y_true = frame["y_true"].astype(str).to_numpy()
    y_pred = frame["y_pred"].astype(str).to_numpy()
    proba = frame[proba_columns(classes)].to_numpy(dtype=float)
    if len(classes) == 2 and positive is None:
        positive = positive_class(classes, y_true)

    pooled = _metrics(y_true, y_pred, proba, classes, positive)
    per_fold = []
    for _, idx in frame.groupby(["repeat", "fold"]).indices.items():
        per_fold.append(_metrics(y_true[idx], y_pred[idx], proba[idx], classes, positive))
    per_fold = pd.DataFrame(per_fold)

    boots = []
    if n_boot:
        rng = np.random.default_rng(seed)
        rows_of = list(frame.groupby(frame["patient_id"].astype(str)).indices.values())
        for _ in range(n_boot):
            pick = rng.integers(0, len(rows_of), len(rows_of))
            idx = np.concatenate([rows_of[i] for i in pick])
            if len(np.unique(y_true[idx])) < 2:
                continue
            boots.append(fast_metrics(y_true[idx], y_pred[idx], proba[idx], classes, positive))
    boots = pd.DataFrame(boots)

    result = {}
    for name, value in pooled.items():
        fold_values = per_fold[name].to_numpy(dtype=float)
        boot_values = boots[name].to_numpy(dtype=float) if name in boots else np.array([])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result[name] = {
                "value": float(value),
                "mean": float(np.nanmean(fold_values)) if np.isfinite(fold_values).any() else np.nan,
                "sd": float(np.nanstd(fold_values, ddof=1)) if np.isfinite(fold_values).sum() > 1 else np.nan,
                **{k: v for k, v in bootstrap_ci(boot_values, n_boot).items()},
                "ci_method": "patient bootstrap" if n_boot else "",
            }
    from vitfeat.evaluation.analytic import add_analytic_intervals

    add_analytic_intervals(result, frame, classes, positive, ci)
    result["_per_fold"] = per_fold
    result["_positive"] = positive
    return result


def flatten(scores: dict) -> dict:
    """``{"auroc_value": .., "auroc_mean": .., ...}`` for one leaderboard row.

    Parameters
    ----------
    scores : dict
        :func:`score_oof`'s result.

    Returns
    -------
    dict
    """
    row = {}
    for name, stats in scores.items():
        if name.startswith("_"):
            continue
        for key, v in stats.items():
            row[f"{name}_{key}"] = v
    return row
