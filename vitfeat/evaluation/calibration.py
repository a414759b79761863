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


#: Probabilities are clipped to [CLIP, 1 - CLIP] before logit(p) for the calibration slope and
#: intercept (logit +-13.8). Chosen deliberately: a model that outputs exactly 0 or 1 (trees, boosted
#: models, logistic regression on separable folds) would otherwise put a case at logit +-34.5 (the
#: 1e-15 clip of log loss), where one case can pull the slope far down; a probability closer to 0 or 1
#: than one in a million is beyond what a few hundred cases can check. :func:`clip_sensitivity`
#: recomputes the slope at :data:`ALT_CLIP` and the report flags runs where the two differ by more
#: than :data:`CLIP_TOLERANCE`.
CLIP = 1e-6
ALT_CLIP = EPS
CLIP_TOLERANCE = 0.05


def _logistic_fit(y: np.ndarray, x: np.ndarray, offset: np.ndarray, max_iter: int = 100):
    """Unpenalised logistic regression of ``y`` on the columns of ``x`` with an ``offset``, by Newton's
    method with step halving on the log-likelihood (concave, so it converges whenever the maximum
    exists; :func:`_separated` has ruled out the cases where it does not). Returns the coefficients,
    or None when it did not converge."""
    beta = np.zeros(x.shape[1])

    def loglik(b):
        eta = offset + x @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    current = loglik(beta)
    for _ in range(max_iter):
        eta = offset + x @ beta
        mu = 0.5 * (1 + np.tanh(eta / 2))  # the logistic function without overflow
        w = mu * (1 - mu)
        grad = x.T @ (y - mu)
        hess = x.T @ (x * w[:, None])
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        except np.linalg.LinAlgError:
            return None
        size = 1.0
        while size > 1e-10:
            trial = beta + size * step
            value = loglik(trial)
            if value >= current - 1e-12:
                break
            size /= 2
        else:
            return None
        beta, moved, current = trial, np.max(np.abs(size * step)), value
        if moved < 1e-10 or np.max(np.abs(grad)) < 1e-9:
            return beta
    return beta if np.max(np.abs(x.T @ (y - 0.5 * (1 + np.tanh((offset + x @ beta) / 2))))) < 1e-6 else None


def _separated(y: np.ndarray, z: np.ndarray) -> bool:
    """True when a threshold on ``z`` splits the classes (complete or quasi-complete separation):
    then the slope's maximum likelihood estimate is infinite."""
    pos, neg = z[y == 1], z[y == 0]
    return bool(pos.min() >= neg.max() or pos.max() <= neg.min())


def recalibration(y_positive, p, clip: float = CLIP) -> dict:
    """Calibration slope and calibration-in-the-large of positive-class probabilities ``p``.

    The slope is the coefficient of logit(p) in the logistic regression of the outcome on logit(p)
    with an intercept (Cox 1958); the intercept is that of the same regression with the slope fixed
    at 1 (logit(p) as an offset; "calibration-in-the-large", Van Calster et al. 2016). Slope 1 and
    intercept 0 are perfect; a slope below 1 means predictions too extreme.

    Parameters
    ----------
    y_positive : array-like of bool
        True for the positive class.
    p : array-like
        Predicted probability of the positive class.
    clip : float, default :data:`CLIP`
        ``p`` is clipped to ``[clip, 1 - clip]`` before the logit.

    Returns
    -------
    dict
        ``{"slope", "intercept", "status"}``: status ``ok``, ``one class`` (both NaN),
        ``separated`` (logit(p) splits the classes: the slope is infinite, reported NaN; the
        intercept is still estimated) or ``not converged``.
    """
    y = np.asarray(y_positive).astype(float)
    z = np.log(np.clip(np.asarray(p, dtype=float), clip, 1 - clip))
    z = z - np.log(np.clip(1 - np.asarray(p, dtype=float), clip, 1 - clip))
    out = {"slope": np.nan, "intercept": np.nan, "status": "ok"}
    if len(y) == 0 or y.min() == y.max():
        out["status"] = "one class"
        return out
    ones = np.ones((len(y), 1))
    fixed = _logistic_fit(y, ones, z)
    out["intercept"] = float(fixed[0]) if fixed is not None else np.nan
    if _separated(y, z):
        out["status"] = "separated"
        return out
    if np.ptp(z) == 0:
        out["status"] = "constant prediction"
        return out
    both = _logistic_fit(y, np.column_stack([ones[:, 0], z]), np.zeros(len(y)))
    if both is None or fixed is None:
        out["status"] = "not converged"
    if both is not None:
        out["slope"] = float(both[1])
    return out


def clip_sensitivity(y_positive, p, clip: float = CLIP, alt_clip: float = ALT_CLIP) -> dict:
    """The slope at ``clip`` and at ``alt_clip``, and whether the clip matters.

    Parameters
    ----------
    y_positive : array-like of bool
        True for the positive class.
    p : array-like
        Predicted probability of the positive class.
    clip, alt_clip : float
        The clip used and the one compared.

    Returns
    -------
    dict
        ``{"slope", "slope_alt", "n_clipped", "clip_matters"}``: ``n_clipped`` counts probabilities
        beyond ``clip``; ``clip_matters`` is True when the slopes differ by more than
        :data:`CLIP_TOLERANCE`.
    """
    p = np.asarray(p, dtype=float)
    a, b = recalibration(y_positive, p, clip)["slope"], recalibration(y_positive, p, alt_clip)["slope"]
    matters = bool(np.isfinite(a) and np.isfinite(b) and abs(a - b) > CLIP_TOLERANCE)
    return {"slope": a, "slope_alt": b, "n_clipped": int(np.sum((p < clip) | (p > 1 - clip))),
            "clip_matters": matters}


def slope_intercept(y_true, proba, classes, positive=None) -> tuple[float, float]:
    """Calibration slope and intercept (:func:`recalibration`) of the positive-class column; NaN for
    more than two classes, for one class only, or when the slope is infinite (separation).

    Parameters
    ----------
    y_true : array-like
        True classes.
    proba : numpy.ndarray of shape (n, n_classes)
        Probabilities, columns in the order of ``classes``.
    classes : list of str
        The classes.
    positive : str, optional
        The positive class (needed for two classes).

    Returns
    -------
    tuple of float
        ``(slope, intercept)``.
    """
    if len(classes) != 2:
        return np.nan, np.nan
    pos = classes.index(positive)
    fit = recalibration(np.asarray(y_true) == positive, proba[:, pos])
    return fit["slope"], fit["intercept"]


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
