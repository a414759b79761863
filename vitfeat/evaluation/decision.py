"""Decision-curve analysis (Vickers & Elkin 2006): net benefit against threshold probability.

Net benefit of "treat when p >= t" is TP/n - FP/n * t / (1 - t): true positives gained, less false
positives weighted by the odds of the threshold (the harm-to-benefit ratio a clinician accepts at
t). "Treat all" calls everyone positive; "treat none" has net benefit 0. Bands come from a
bootstrap that resamples patients, as the other scores of the project.

The maintained package ``dcurves`` (MSKCC) computes the same curve; it is not used here because the
bands must resample patients, not cases, which needs the row-level formula anyway.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def net_benefit(y_positive, score, thresholds=THRESHOLDS) -> np.ndarray:
    """Net benefit of calling ``score >= t`` positive, for each threshold ``t`` in (0, 1).

    Parameters
    ----------
    y_positive : array-like of bool
        Whether each case is positive.
    score : array-like of float
        The positive-class probability.
    thresholds : array-like of float
        Probability thresholds, strictly between 0 and 1.

    Returns
    -------
    numpy.ndarray
    """
    y = np.asarray(y_positive).astype(bool)
    s = np.asarray(score, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("decision-curve thresholds must lie strictly between 0 and 1")
    called = s[None, :] >= t[:, None]
    tp = (called & y[None, :]).sum(1)
    fp = (called & ~y[None, :]).sum(1)
    return tp / len(y) - fp / len(y) * t / (1 - t)


def treat_all(y_positive, thresholds=THRESHOLDS) -> np.ndarray:
    """Net benefit of treating everyone: prevalence - (1 - prevalence) * t / (1 - t).

    Parameters
    ----------
    y_positive : array-like of bool
        Whether each case is positive.
    thresholds : array-like of float
        Probability thresholds, strictly between 0 and 1.

    Returns
    -------
    numpy.ndarray
    """
    prevalence = float(np.mean(np.asarray(y_positive).astype(bool)))
    t = np.asarray(thresholds, dtype=float)
    return prevalence - (1 - prevalence) * t / (1 - t)


def decision_curve(y_positive, score, patient_ids, thresholds=THRESHOLDS, n_boot: int = 200,
                   seed: int = 0) -> pd.DataFrame:
    """One row per threshold: ``net_benefit`` with its patient-bootstrap 95 % band
    (``nb_low``, ``nb_high``), ``treat_all`` and ``treat_none``.

    Parameters
    ----------
    y_positive : array-like of bool
        Whether each case is positive.
    score : array-like of float
        The positive-class probability.
    patient_ids : array-like
        The bootstrap resamples patients.
    thresholds : array-like of float
        Probability thresholds, strictly between 0 and 1.
    n_boot : int, default 200
        Bootstrap resamples.
    seed : int, default 0
        Bootstrap seed.

    Returns
    -------
    pandas.DataFrame
    """
    y = np.asarray(y_positive).astype(bool)
    s = np.asarray(score, dtype=float)
    rows_of = list(pd.Series(np.arange(len(y))).groupby(np.asarray(patient_ids).astype(str)).indices.values())
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of), len(rows_of))])
        boots.append(net_benefit(y[idx], s[idx], thresholds))
    boots = np.array(boots) if boots else np.full((1, len(thresholds)), np.nan)
    return pd.DataFrame({"threshold": thresholds, "net_benefit": net_benefit(y, s, thresholds),
                         "nb_low": np.percentile(boots, 2.5, axis=0), "nb_high": np.percentile(boots, 97.5, axis=0),
                         "treat_all": treat_all(y, thresholds), "treat_none": 0.0})
