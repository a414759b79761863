"""Calibration of predicted probabilities: Brier score, log loss, expected calibration error
(ECE) and calibration slope/intercept.

All functions take the true labels, the probability matrix (one column per class, in ``classes``
order) and, for two classes, the positive class. They are plain numpy so the patient bootstrap of
:func:`vitfeat.evaluation.metrics.score_oof` can call them hundreds of times; tests check each one
against scikit-learn (``brier_score_loss``, ``log_loss``, ``calibration_curve``,
``LogisticRegression``) or a hand computation.
"""

from __future__ import annotations

import numpy as np

CALIBRATION = ["brier", "log_loss", "ece", "calibration_slope", "calibration_intercept"]
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] before logs, as scikit-learn's log_loss


def _one_hot(y_true: np.ndarray, classes: list[str]) -> np.ndarray:
    return (np.asarray(y_true)[:, None] == np.asarray(classes)[None, :]).astype(float)


def brier(y_true, proba, classes, positive=None) -> float:
    """Brier score: mean squared error of the positive-class probability (two classes, as
    ``sklearn.metrics.brier_score_loss``); for more classes the mean over cases of the summed
    squared error over classes (Brier's original multi-class score).

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).

    Returns
    -------
    float
    """
    onehot = _one_hot(y_true, classes)
    if len(classes) == 2:
        pos = classes.index(positive)
        return float(np.mean((proba[:, pos] - onehot[:, pos]) ** 2))
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def log_loss(y_true, proba, classes, positive=None) -> float:
    """Mean negative log-likelihood of the true class (``sklearn.metrics.log_loss``; rows are
    renormalised and clipped the same way).

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).

    Returns
    -------
    float
    """
    p = np.clip(proba / proba.sum(axis=1, keepdims=True), EPS, 1 - EPS)
    onehot = _one_hot(y_true, classes)
    return float(-np.mean(np.sum(onehot * np.log(p), axis=1)))


def ece(y_true, proba, classes, positive=None, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins: sum over bins of
    (bin share of cases) x |observed rate - mean predicted probability|. Two classes: of the
    positive-class probability (the bins of ``sklearn.calibration.calibration_curve``); more
    classes: of the top-label confidence against top-label accuracy.

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).
    n_bins : int, default 10
        Equal-width bins.

    Returns
    -------
    float
    """
    onehot = _one_hot(y_true, classes)
    if len(classes) == 2:
        pos = classes.index(positive)
        prob, hit = proba[:, pos], onehot[:, pos]
    else:
        top = np.argmax(proba, axis=1)
        prob, hit = proba[np.arange(len(top)), top], onehot[np.arange(len(top)), top]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], prob, side="right")
    counts = np.bincount(bins, minlength=n_bins).astype(float)
    gap = np.abs(np.bincount(bins, hit, n_bins) - np.bincount(bins, prob, n_bins))
    return float(gap.sum() / counts.sum())


def slope_intercept(y_true, proba, classes, positive=None, max_iter: int = 50) -> tuple[float, float]:
    """Calibration slope and intercept: the unpenalised logistic regression of the outcome on
    logit(p) (Cox 1958). Slope 1 and intercept 0 are perfect; slope < 1 means predictions too
    extreme (overfitting). Newton-Raphson on two parameters (matches scikit-learn's
    ``LogisticRegression(penalty=None)``, tested). NaN for more than two classes, for one class
    only, or when the fit does not converge (perfect separation).

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).
    max_iter : int, default 50
        Newton-Raphson iterations.

    Returns
    -------
    tuple of float
        ``(slope, intercept)``.
    """
    if len(classes) != 2:
        return np.nan, np.nan
    pos = classes.index(positive)
    y = (np.asarray(y_true) == positive).astype(float)
    if y.min() == y.max():
        return np.nan, np.nan
    p = np.clip(proba[:, pos], 1e-6, 1 - 1e-6)
    x = np.column_stack([np.ones_like(p), np.log(p / (1 - p))])
    beta = np.array([0.0, 1.0])
    for _ in range(max_iter):
        mu = 1 / (1 + np.exp(-np.clip(x @ beta, -35, 35)))
        w = mu * (1 - mu)
        hess = x.T @ (x * w[:, None])
        try:
            step = np.linalg.solve(hess, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return np.nan, np.nan
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            return float(beta[1]), float(beta[0])
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e6:
            break
    return np.nan, np.nan


def calibration_metrics(y_true, proba, classes, positive=None) -> dict[str, float]:
    """All of :data:`CALIBRATION` for one set of predictions.

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).

    Returns
    -------
    dict
    """
    slope, intercept = slope_intercept(y_true, proba, classes, positive)
    return {"brier": brier(y_true, proba, classes, positive),
            "log_loss": log_loss(y_true, proba, classes, positive),
            "ece": ece(y_true, proba, classes, positive),
            "calibration_slope": slope, "calibration_intercept": intercept}


def reliability_points(y_true, proba, classes, positive, n_bins: int = 10):
    """(mean predicted, observed rate, count) per non-empty bin of the positive-class
    probability, for a reliability diagram (``calibration_curve``'s uniform bins plus counts).

    Parameters
    ----------
    y_true : array-like of str
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).
    n_bins : int, default 10
        Equal-width bins.

    Returns
    -------
    tuple of numpy.ndarray
    """
    pos = classes.index(positive)
    prob = proba[:, pos]
    hit = (np.asarray(y_true) == positive).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], prob, side="right")
    counts = np.bincount(bins, minlength=n_bins)
    keep = counts > 0
    mean_p = np.bincount(bins, prob, n_bins)[keep] / counts[keep]
    observed = np.bincount(bins, hit, n_bins)[keep] / counts[keep]
    return mean_p, observed, counts[keep]
