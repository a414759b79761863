"""Intraclass correlation ICC(1,1): how much of a feature's spread lies between cases rather than
between repeated measurements (perturbed versions) of the same case.

ICC(1,1) is McGraw & Wong's (1996) one-way random-effects, single-measurement form (Shrout &
Fleiss' ICC(1)): every case is measured ``k`` times by interchangeable "raters" (here: image
perturbations) and nothing is assumed about a rater being the same across cases. From the one-way
ANOVA mean squares between cases (``MSB``, ``n - 1`` degrees of freedom) and within cases (``MSW``,
``n (k - 1)`` degrees of freedom):

    ICC = (MSB - MSW) / (MSB + (k - 1) MSW)

and its exact F-based 95 % interval, with ``F = MSB / MSW``:

    F_L = F / F_{1 - a/2}(n - 1, n (k - 1)),   F_U = F * F_{1 - a/2}(n (k - 1), n - 1)
    low = (F_L - 1) / (F_L + k - 1),           high = (F_U - 1) / (F_U + k - 1)

the formulas of ``pingouin.intraclass_corr`` (row ``ICC1``), which the tests match to 1e-6. This
implementation is vectorised over many features at once (pingouin runs a two-way ANOVA per call).
Koo & Li (2016) read ICC >= 0.75 as good and >= 0.9 as excellent reliability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist

#: Koo & Li (2016): ICC below 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good, above 0.9 excellent.
GOOD, EXCELLENT = 0.75, 0.9


@dataclass(frozen=True)
class ICCResult:
    """ICC(1,1) of one measurement matrix with its F test and confidence interval.

    Attributes
    ----------
    icc : float
        The ICC (NaN when every value is equal).
    low, high : float
        Bounds of its confidence interval.
    F : float
        The one-way ANOVA F statistic (between-case over within-case mean square).
    df1, df2 : int
        Its degrees of freedom, ``n - 1`` and ``n * (k - 1)``.
    n, k : int
        Cases and measurements per case.
    """

    icc: float
    low: float
    high: float
    F: float
    df1: int
    df2: int
    n: int
    k: int


def icc_1_1(ratings, alpha: float = 0.05) -> ICCResult:
    """ICC(1,1) (one-way random effects, single measurement) of an ``n x k`` matrix.

    Parameters
    ----------
    ratings : array-like, shape (n_cases, k_measurements)
        One row per case (target), one column per repeated measurement; no missing values.
    alpha : float, default 0.05
        1 - confidence level of the interval.

    Returns
    -------
    ICCResult
        ``icc``, ``low``, ``high`` (NaN when every value is equal: the ICC is undefined), ``F``,
        the degrees of freedom, ``n`` and ``k``.

    Raises
    ------
    ValueError
        Fewer than 2 cases or 2 measurements, or missing values.
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"ICC needs at least 2 cases x 2 measurements (got shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError("ICC input has missing or infinite values; drop those cases first")
    icc, low, high, F = icc_1_1_many(x[:, :, None], alpha)
    n, k = x.shape
    return ICCResult(float(icc[0]), float(low[0]), float(high[0]), float(F[0]), n - 1, n * (k - 1), n, k)


def icc_1_1_many(x: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ICC(1,1), its interval and F for many features at once.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_cases, k_measurements, n_features)
        Finite values.
    alpha : float, default 0.05
        1 - confidence level.

    Returns
    -------
    icc, low, high, F : numpy.ndarray, shape (n_features,)
        NaN for a feature whose values are all equal (MSB = MSW = 0). A feature with no spread
        within cases but some between them has ICC 1 and interval [1, 1].
    """
    n, k = x.shape[:2]
    df1, df2 = n - 1, n * (k - 1)
    case_means = x.mean(axis=1)  # (n, f)
    grand = case_means.mean(axis=0)  # (f,)
    msb = k * ((case_means - grand) ** 2).sum(axis=0) / df1
    msw = ((x - case_means[:, None, :]) ** 2).sum(axis=(0, 1)) / df2
    # Relative tolerance: a within-case spread at float rounding level counts as none.
    scale = np.maximum(np.abs(x).max(axis=(0, 1)), 1e-300) ** 2
    msw = np.where(msw <= 1e-24 * scale, 0.0, msw)
    with np.errstate(divide="ignore", invalid="ignore"):
        icc = (msb - msw) / (msb + (k - 1) * msw)
        F = msb / msw
        f_lo = F / f_dist.ppf(1 - alpha / 2, df1, df2)
        f_hi = F * f_dist.ppf(1 - alpha / 2, df2, df1)
        low = (f_lo - 1) / (f_lo + k - 1)
        high = (f_hi - 1) / (f_hi + k - 1)
    perfect = (msw == 0) & (msb > 0)
    low, high = np.where(perfect, 1.0, low), np.where(perfect, 1.0, high)
    undefined = (msw == 0) & (msb == 0)
    for arr in (icc, low, high, F):
        arr[undefined] = np.nan
    return icc, low, high, F


__all__ = ["EXCELLENT", "GOOD", "ICCResult", "icc_1_1", "icc_1_1_many"]
