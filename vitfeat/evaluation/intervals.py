"""Confidence intervals and paired tests that a reviewer expects, as pure functions on arrays.

* :func:`wilson` — Wilson score interval of a proportion (sensitivity, specificity, PPV, NPV), by
  :func:`statsmodels.stats.proportion.proportion_confint`.
* :func:`delong` — AUROC with DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837),
  computed with the mid-rank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389);
  :func:`delong_paired` compares two scores of the same cases (the correlated-ROC test of the 1988 paper).
* :func:`nadeau_bengio` — the corrected resampled t-test (Nadeau & Bengio 2003, Machine Learning 52:239) for
  a difference of fold metrics, whose variance is inflated by ``n_test / n_train`` because the training
  sets of the folds overlap.
* :func:`holm` — Holm's step-down adjustment of p-values (:func:`statsmodels.stats.multitest.multipletests`).
* :func:`bootstrap_ci` — a percentile interval that states how many resamples gave a finite value and
  is withheld below :data:`MIN_VALID_SHARE` of them.

Repeated cross-validation predicts every case once per repeat; pooling the repeats counts each case
``repeats`` times. The analytic intervals here take the number of repeats and divide the counts (Wilson)
or multiply the variance (DeLong) by it, so the interval reflects the number of cases, not of rows.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.stats import rankdata

#: A bootstrap interval is shown only when at least this share of the resamples gave a finite value.
MIN_VALID_SHARE = 0.95


def wilson(successes: float, total: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of ``successes / total``.

    Parameters
    ----------
    successes, total : float
        Counts (may be fractional when pooled repeats are divided by their number).
    alpha : float, default 0.05
        One minus the confidence level.

    Returns
    -------
    tuple of float
        ``(low, high)``; NaN when ``total`` is 0.
    """
    from statsmodels.stats.proportion import proportion_confint

    if total <= 0:
        return np.nan, np.nan
    low, high = proportion_confint(successes, total, alpha=alpha, method="wilson")
    return float(low), float(high)


def _placements(y: np.ndarray, scores: np.ndarray):
    """Sun & Xu's structural components: for each score row, the AUC and the placement values of
    positives (V10) and negatives (V01), from mid-ranks (Algorithm 1 = scipy's average ranks)."""
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = np.apply_along_axis(rankdata, 1, pos)
    ty = np.apply_along_axis(rankdata, 1, neg)
    tz = np.apply_along_axis(rankdata, 1, np.concatenate([pos, neg], axis=1))
    auc = (tz[:, :m].sum(1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def delong_covariance(y_positive, scores, repeats: int = 1):
    """AUROCs of one or more score vectors on the same cases and DeLong's covariance matrix.

    Parameters
    ----------
    y_positive : array-like of bool
        True for the positive class.
    scores : array-like, shape (n_cases,) or (k, n_cases)
        Scores, higher meaning more likely positive.
    repeats : int, default 1
        Times each case occurs in the rows (pooled repeats of CV); the covariance is multiplied by it.

    Returns
    -------
    tuple
        ``(aucs, covariance)``: arrays of shape (k,) and (k, k); NaN when a class is missing.
    """
    y = np.asarray(y_positive).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    k = scores.shape[0]
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    auc, v10, v01 = _placements(y, scores)
    cov = (np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n) * max(1, int(repeats))
    return auc, cov


def delong(y_positive, score, alpha: float = 0.05, repeats: int = 1) -> dict:
    """AUROC with DeLong's standard error and a normal interval clipped to [0, 1].

    Parameters
    ----------
    y_positive : array-like of bool
        True for the positive class.
    score : array-like
        Scores of the positive class.
    alpha : float, default 0.05
        One minus the confidence level.
    repeats : int, default 1
        See :func:`delong_covariance`.

    Returns
    -------
    dict
        ``{"auc", "se", "ci_low", "ci_high"}``.
    """
    auc, cov = delong_covariance(y_positive, score, repeats)
    a, se = float(auc[0]), float(np.sqrt(max(cov[0, 0], 0.0))) if np.isfinite(cov[0, 0]) else np.nan
    z = stats.norm.ppf(1 - alpha / 2)
    if not np.isfinite(se):
        return {"auc": a, "se": se, "ci_low": np.nan, "ci_high": np.nan}
    return {"auc": a, "se": se, "ci_low": float(max(0.0, a - z * se)), "ci_high": float(min(1.0, a + z * se))}


def delong_paired(y_positive, score_a, score_b, alpha: float = 0.05, repeats: int = 1) -> dict:
    """DeLong's test of AUROC(a) - AUROC(b) for two scores of the same cases.

    Parameters
    ----------
    y_positive : array-like of bool
        True for the positive class.
    score_a, score_b : array-like
        The two scores, row for row the same cases.
    alpha : float, default 0.05
        One minus the confidence level of the interval of the difference.
    repeats : int, default 1
        See :func:`delong_covariance`.

    Returns
    -------
    dict
        ``{"difference", "ci_low", "ci_high", "p_value"}`` (two-sided).
    """
    auc, cov = delong_covariance(y_positive, np.vstack([score_a, score_b]), repeats)
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if not np.isfinite(var):
        return {"difference": diff, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    se = np.sqrt(max(var, 0.0))
    if se == 0:
        return {"difference": diff, "ci_low": diff, "ci_high": diff, "p_value": 1.0 if diff == 0 else 0.0}
    z = stats.norm.ppf(1 - alpha / 2)
    return {"difference": diff, "ci_low": diff - z * se, "ci_high": diff + z * se,
            "p_value": float(2 * stats.norm.sf(abs(diff / se)))}


def nadeau_bengio(diffs, n_train: float, n_test: float, alpha: float = 0.05) -> dict:
    """Corrected resampled t-test of the mean of per-fold differences (Nadeau & Bengio 2003).

    Parameters
    ----------
    diffs : array-like
        metric(a) - metric(b) on each (repeat, fold) test part, both fitted on the same training part.
    n_train, n_test : float
        Mean size of a training and a test part.
    alpha : float, default 0.05
        One minus the confidence level.

    Returns
    -------
    dict
        ``{"difference", "ci_low", "ci_high", "p_value"}`` with ``J - 1`` degrees of freedom
        and variance ``(1 / J + n_test / n_train) * s**2``.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    J = len(d)
    if J < 2 or n_train <= 0:
        return {"difference": float(d.mean()) if J else np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p_value": np.nan}
    mean, var = float(d.mean()), float(d.var(ddof=1))
    se = np.sqrt((1 / J + n_test / n_train) * var)
    if se == 0:
        return {"difference": mean, "ci_low": mean, "ci_high": mean, "p_value": 1.0 if mean == 0 else 0.0}
    t = stats.t.ppf(1 - alpha / 2, J - 1)
    return {"difference": mean, "ci_low": mean - t * se, "ci_high": mean + t * se,
            "p_value": float(2 * stats.t.sf(abs(mean / se), J - 1))}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN kept as NaN).

    Parameters
    ----------
    p_values : array-like
        Raw p-values of one family of comparisons.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def bootstrap_ci(samples, n_resamples: int, min_share: float = MIN_VALID_SHARE) -> dict:
    """Percentile 95 % interval of bootstrap values that says how many resamples were valid.

    Parameters
    ----------
    samples : array-like
        One value per resample (NaN where the metric was undefined on that resample).
    n_resamples : int
        Resamples drawn (including those skipped before the metric was computed).
    min_share : float, default :data:`MIN_VALID_SHARE`
        Below this share of finite values the interval is withheld.

    Returns
    -------
    dict
        ``{"ci_low", "ci_high", "n_boot_valid", "ci_note"}``; ``ci_note`` is empty when the interval is shown,
        else the reason it is withheld.
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    out = {"ci_low": np.nan, "ci_high": np.nan, "n_boot_valid": int(len(s)), "ci_note": ""}
    if n_resamples <= 0:
        out["ci_note"] = "no bootstrap"
        return out
    if len(s) < min_share * n_resamples:
        out["ci_note"] = (f"CI withheld: only {len(s)} of {n_resamples} bootstrap resamples gave a value "
                          f"(needs {min_share:.0%})")
        return out
    out["ci_low"], out["ci_high"] = float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))
    return out
