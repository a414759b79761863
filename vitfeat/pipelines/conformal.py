"""Conformal prediction sets from out-of-fold probabilities (LAC score, cross-conformal).

The score of a case is ``1 - p(true class)`` (the LAC / "score" method of Sadinle, Lei & Wasserman
2019, MAPIE's ``LACConformityScore``). Its conformal quantile ``q`` over ``n`` calibration scores
is the ``ceil((n + 1) * coverage) / n`` empirical quantile ("higher" interpolation); a new case's
set holds every class whose probability is at least ``1 - q``. When the calibration scores are
exchangeable with the new case's, the set holds the true class with probability >= ``coverage``.

Calibration uses the out-of-fold predictions ``fit`` already made, so nothing is refitted (MAPIE's
cross-conformal classifier would refit every pipeline once more per fold; the formula is a line):

* the saved model's ``q`` comes from all out-of-fold scores of the chosen pipeline (each made by a
  model that did not see that case — the cross-conformal / CV+ construction of Vovk 2015 and
  Barber et al. 2021);
* the reported out-of-fold coverage is honest: the sets of fold ``k`` use a ``q`` computed from the
  other folds' scores only.

A set is never empty: the most probable class is always in it (this can only raise coverage).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Coverage recorded in run.json when the run asks for none.
DEFAULT_COVERAGE = 0.9


def lac_scores(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Non-conformity scores ``1 - p(true class)``.

    Parameters
    ----------
    proba : numpy.ndarray
        ``(n, n_classes)`` probabilities.
    y_index : numpy.ndarray
        ``(n,)`` index of each case's true class in the columns of ``proba``.
    """
    proba = np.asarray(proba, dtype=float)
    return 1.0 - proba[np.arange(len(proba)), np.asarray(y_index, dtype=int)]


def conformal_quantile(scores: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> float:
    """The conformal quantile of calibration ``scores`` at ``coverage`` (inf when too few scores).

    Parameters
    ----------
    scores : numpy.ndarray
        Calibration scores (NaN ignored).
    coverage : float
        Target coverage in (0, 1).
    """
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie between 0 and 1 (got {coverage})")
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    n = len(s)
    rank = math.ceil((n + 1) * coverage)
    if n == 0 or rank > n:
        return math.inf
    return float(np.sort(s)[rank - 1])


def prediction_sets(proba: np.ndarray, q: float) -> np.ndarray:
    """``(n, n_classes)`` bool membership: classes with probability >= ``1 - q``, plus the most
    probable class (rows of NaN probabilities get no class).

    Parameters
    ----------
    proba : numpy.ndarray
        ``(n, n_classes)`` probabilities.
    q : float
        From :func:`conformal_quantile`.
    """
    proba = np.asarray(proba, dtype=float)
    ok = np.isfinite(proba).all(axis=1)
    member = np.zeros(proba.shape, dtype=bool)
    if not ok.any():
        return member
    p = proba[ok]
    m = p >= 1.0 - q - 1e-12
    m[np.arange(len(p)), p.argmax(1)] = True
    member[ok] = m
    return member


def format_set(member_row, classes) -> str:
    """``{a, b}`` text of one membership row (empty text for no class).

    Parameters
    ----------
    member_row : array-like of bool
        Whether each class is in the prediction set.
    classes : list
        Class names in the same order.

    Returns
    -------
    str
    """
    names = [str(c) for c, m in zip(classes, member_row) if m]
    return "{" + ", ".join(names) + "}" if names else ""


def cross_conformal(oof: pd.DataFrame, classes, coverage: float = DEFAULT_COVERAGE) -> dict:
    """Calibrate on one pipeline's out-of-fold predictions and score the sets out of fold.

    Parameters
    ----------
    oof : pandas.DataFrame
        One pipeline's rows of ``oof_predictions.csv`` (``repeat``, ``fold``, ``y_true``,
        ``proba_<class>``); the first repeat is used.
    classes : list
        Class names in the order of the probability columns.
    coverage : float
        Target coverage.

    Returns
    -------
    dict
        ``coverage`` (target), ``q`` (for the saved model), ``n_calibration``,
        ``empirical_coverage`` and ``two_class_share`` (sets of size >= 2) out of fold, and
        ``sets`` (a frame: ``case_id``, ``fold``, ``prediction_set``, ``covered``).
    """
    part = oof[oof["repeat"] == oof["repeat"].min()] if "repeat" in oof.columns else oof
    classes = [str(c) for c in classes]
    proba = part[[f"proba_{c}" for c in classes]].to_numpy(dtype=float)
    y = part["y_true"].astype(str).to_numpy()
    known = np.isin(y, classes) & np.isfinite(proba).all(axis=1)
    part, proba, y = part[known], proba[known], y[known]
    y_index = np.searchsorted(classes, y) if classes == sorted(classes) else np.array([classes.index(v) for v in y])
    scores = lac_scores(proba, y_index)
    folds = part["fold"].to_numpy()
    member = np.zeros(proba.shape, dtype=bool)
    for k in np.unique(folds):
        test = folds == k
        member[test] = prediction_sets(proba[test], conformal_quantile(scores[~test], coverage))
    covered = member[np.arange(len(y)), y_index]
    sizes = member.sum(1)
    sets = pd.DataFrame({"case_id": part["case_id"].astype(str).to_numpy(), "fold": folds,
                         "prediction_set": [format_set(r, classes) for r in member], "covered": covered})
    q = conformal_quantile(scores, coverage)
    return {"coverage": float(coverage), "q": None if not np.isfinite(q) else float(q),
            "n_calibration": int(len(scores)),
            "empirical_coverage": float(covered.mean()) if len(covered) else None,
            "two_class_share": float((sizes >= 2).mean()) if len(sizes) else None, "sets": sets}
