"""Operating points: a decision threshold on the positive-class probability, chosen inside the
training data only.

``fit --operating-point`` rules: ``sensitivity=0.90`` (the highest threshold whose sensitivity is at
least 0.90), ``specificity=0.90`` (the lowest threshold whose specificity is at least 0.90) or
``youden`` (the threshold maximising sensitivity + specificity - 1). The threshold for an outer
test fold is read off *inner* out-of-fold probabilities of that fold's training part (inner folds
grouped by patient), so the test fold never takes part in choosing it (tests/test_operating.py
changes a test fold and shows the threshold does not move).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_curve
from sklearn.model_selection import StratifiedGroupKFold


def parse_rule(text: str) -> tuple[str, float | None]:
    """``"sensitivity=0.90"`` -> ``("sensitivity", 0.9)``; ``"youden"`` -> ``("youden", None)``.

    Parameters
    ----------
    text : str
        ``sensitivity=T``, ``specificity=T`` (``0 < T < 1``) or ``youden``, any case.

    Returns
    -------
    tuple
        ``(rule name, target or None)``.

    Raises
    ------
    ValueError
        For any other text or a target outside (0, 1).
    """
    name, _, value = str(text).strip().lower().partition("=")
    if name == "youden" and not value:
        return "youden", None
    if name in ("sensitivity", "specificity") and value:
        target = float(value)
        if not 0 < target < 1:
            raise ValueError(f"operating point {text!r}: the target must lie strictly between 0 and 1")
        return name, target
    raise ValueError(f"operating point {text!r}: use sensitivity=0.90, specificity=0.90 or youden")


def threshold_from_scores(y_positive: np.ndarray, score: np.ndarray, rule: str) -> float:
    """The threshold (predict positive when ``score >= threshold``) that meets ``rule`` on these
    scores, from the points of :func:`sklearn.metrics.roc_curve`.

    Parameters
    ----------
    y_positive : numpy.ndarray
        True where the case belongs to the positive class.
    score : numpy.ndarray
        The positive-class probability (or any score, larger meaning more positive).
    rule : str
        An operating-point rule (see :func:`parse_rule`).

    Returns
    -------
    float
        The threshold, at most 1.

    Raises
    ------
    ValueError
        When ``y_positive`` holds only one class.
    """
    name, target = parse_rule(rule)
    y_positive = np.asarray(y_positive).astype(int)
    if y_positive.min() == y_positive.max():
        raise ValueError("choosing an operating point needs both classes in the training part")
    fpr, tpr, thresholds = roc_curve(y_positive, score, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # roc_curve's first threshold is +inf (nothing positive)
    if name == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if name == "sensitivity":
        return float(thresholds[int(np.flatnonzero(tpr >= target - 1e-12)[0])])
    return float(thresholds[int(np.flatnonzero(1 - fpr >= target - 1e-12)[-1])])


def choose_threshold(estimator, X, y, groups, positive: str, rule: str, *, n_splits: int = 3,
                     seed: int = 0, fit_model=None) -> float:
    """Threshold for ``rule`` from patient-grouped inner out-of-fold probabilities of ``estimator``
    fitted on (``X``, ``y``) only — call it with a training part, never with the test fold.

    ``fit_model(X, y, groups) -> fitted estimator``, when given, replaces ``clone(estimator).fit``
    (so the inner fits are made exactly like the outer ones: search, calibration with groups).

    Parameters
    ----------
    estimator : classifier
        An unfitted classifier with ``predict_proba`` (cloned for each inner fold).
    X, y : array-like
        Features and labels of the training part.
    groups : array-like
        Patient ids of the training part (inner folds never split a patient).
    positive : str
        The positive class.
    rule : str
        An operating-point rule (see :func:`parse_rule`).
    n_splits : int, default 3
        Inner folds.
    seed : int, default 0
        Seed of the inner fold split.
    fit_model : callable, optional
        ``fit_model(X, y, groups)`` returning a fitted estimator.

    Returns
    -------
    float
        The threshold on the positive-class probability.
    """
    X, y, groups = np.asarray(X), np.asarray(y), np.asarray(groups)
    positive = str(positive)
    score = np.full(len(y), np.nan)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, y.astype(str), groups):
        if fit_model is None:
            model = clone(estimator).fit(X[train], y[train])
        else:
            model = fit_model(X[train], y[train], groups[train])
        pos = [str(c) for c in model.classes_].index(positive)
        score[test] = model.predict_proba(X[test])[:, pos]
    return threshold_from_scores(y.astype(str) == positive, score, rule)


def operating_metrics(y_true, score, threshold: float, positive: str) -> dict[str, float]:
    """Sensitivity, specificity, PPV and NPV of ``score >= threshold`` (NaN where undefined).

    Parameters
    ----------
    y_true : array-like
        True labels (compared as strings with ``positive``).
    score : array-like
        Positive-class probabilities.
    threshold : float
        Cases with ``score >= threshold`` are called positive.
    positive : str
        The positive class.

    Returns
    -------
    dict of str to float
        ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and ``threshold``.
    """
    truth = np.asarray(y_true).astype(str) == positive
    called = np.asarray(score) >= threshold
    return dict(_rates(truth, called), threshold=float(threshold))


def out_of_fold_operating_point(estimator, X, y, groups, positive: str, rule: str, outer_splits,
                                *, inner_splits: int = 3, seed: int = 0):
    """For each outer (train, test) split: threshold chosen on the training part by
    :func:`choose_threshold`, model refitted on the training part, test fold scored. Returns
    ``(thresholds per fold, out-of-fold score, out-of-fold positive call)``.

    Parameters
    ----------
    estimator : classifier
        An unfitted classifier with ``predict_proba``.
    X, y : array-like
        All features and labels.
    groups : array-like
        Patient ids (inner folds are grouped by them).
    positive : str
        The positive class.
    rule : str
        An operating-point rule (see :func:`parse_rule`).
    outer_splits : iterable of (array, array)
        Outer (train, test) index pairs.
    inner_splits : int, default 3
        Inner folds per training part.
    seed : int, default 0
        Seed of the inner splits.

    Returns
    -------
    tuple
        ``(list of float, numpy.ndarray, numpy.ndarray)``: thresholds, scores, calls.
    """
    X, y, groups = np.asarray(X), np.asarray(y).astype(str), np.asarray(groups)
    score, called, thresholds = np.full(len(y), np.nan), np.zeros(len(y), bool), []
    for train, test in outer_splits:
        threshold = choose_threshold(estimator, X[train], y[train], groups[train], positive, rule,
                                     n_splits=inner_splits, seed=seed)
        model = clone(estimator).fit(X[train], y[train])
        score[test] = model.predict_proba(X[test])[:, list(model.classes_).index(positive)]
        called[test] = score[test] >= threshold
        thresholds.append(threshold)
    return thresholds, score, called


#: ``fit --calibrate sigmoid`` means ``sigmoid:<this>``: one calibrator on the pooled inner out-of-fold
#: predictions of a model refitted on the whole training part (``single``), or one (model, calibrator) pair
#: per inner fold, averaged (``ensemble``, scikit-learn's default). Chosen by
#: benchmarks/bench_calibration_mode.py (numbers in docs/fit.md).
DEFAULT_CALIBRATION_MODE = "single"
CALIBRATION_MODES = ("single", "ensemble")


def parse_calibrate(text: str | None) -> str | None:
    """``sigmoid`` -> ``sigmoid:single`` (the default mode), ``isotonic:ensemble`` kept; None kept.

    Parameters
    ----------
    text : str or None
        ``METHOD`` or ``METHOD:MODE`` (method sigmoid or isotonic, mode single or ensemble).

    Returns
    -------
    str or None
        ``METHOD:MODE``.
    """
    if text is None:
        return None
    method, _, mode = str(text).partition(":")
    mode = mode or DEFAULT_CALIBRATION_MODE
    if method not in ("sigmoid", "isotonic") or mode not in CALIBRATION_MODES:
        raise ValueError(f"calibrate {text!r}: use sigmoid or isotonic, optionally with :single or :ensemble")
    return f"{method}:{mode}"


class GroupedCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV` with its internal folds
    grouped by patient (``fit --calibrate sigmoid|isotonic``, optionally ``:single`` or ``:ensemble``,
    see :data:`DEFAULT_CALIBRATION_MODE`).

    ``fit(X, y, groups=...)`` builds :class:`~sklearn.model_selection.StratifiedGroupKFold` splits of
    the data it is given (a training part) and hands them to ``CalibratedClassifierCV`` as an explicit
    ``cv`` list, so no calibrator is fitted on a case whose patient was in its model's training
    data. Without ``groups`` each case counts as its own patient, with a warning.

    Parameters
    ----------
    estimator : classifier
        The unfitted classifier to calibrate.
    method : str, default "sigmoid"
        ``sigmoid`` or ``isotonic``, optionally ``:single`` or ``:ensemble`` (see :func:`parse_calibrate`).
    n_splits : int, default 3
        Patient-grouped calibration folds.
    seed : int, default 0
        Seed of the fold split.
    """

    def __init__(self, estimator, method: str = "sigmoid", n_splits: int = 3, seed: int = 0):
        self.estimator = estimator
        self.method = method
        self.n_splits = n_splits
        self.seed = seed

    def fit(self, X, y, groups=None):
        """Fit the calibrated ensemble on (``X``, ``y``); ``groups`` are patient ids.

        Parameters
        ----------
        X : array-like
            Features of the training part.
        y : array-like
            Labels.
        groups : array-like, optional
            Patient ids; without them each case is its own patient (with a warning).

        Returns
        -------
        GroupedCalibratedClassifier
            ``self``, with ``splits_``, ``calibrated_`` and ``classes_`` set.
        """
        method, mode = parse_calibrate(self.method).split(":")
        y = np.asarray(y)
        if groups is None:
            warnings.warn("calibration folds without patient ids: each case treated as its own patient",
                          stacklevel=2)
            groups = np.arange(len(y))
        splitter = StratifiedGroupKFold(n_splits=self.n_splits, shuffle=True, random_state=self.seed)
        self.splits_ = list(splitter.split(X, y, np.asarray(groups)))
        self.calibrated_ = CalibratedClassifierCV(clone(self.estimator), method=method, cv=self.splits_,
                                                  ensemble=mode == "ensemble").fit(X, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X):
        """Calibrated class probabilities (mean over the fold calibrators).

        Parameters
        ----------
        X : array-like
            Features.

        Returns
        -------
        numpy.ndarray
            ``(n_cases, n_classes)`` probabilities, columns in ``classes_`` order.
        """
        return self.calibrated_.predict_proba(X)

    def predict(self, X):
        """Most probable class.

        Parameters
        ----------
        X : array-like
            Features.

        Returns
        -------
        numpy.ndarray
            One label of ``classes_`` per case.
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def operating_point_table(oof, positive: str, rule: str, *, n_boot: int = 500, seed: int = 0):
    """Per pipeline: sensitivity, specificity, PPV and NPV of the out-of-fold calls at each fold's
    own threshold (column ``threshold`` of ``oof``, chosen inside that fold's training part), pooled
    over folds and repeats, with a patient-bootstrap 95 % CI; plus the thresholds' range.

    Parameters
    ----------
    oof : pandas.DataFrame
        Out-of-fold predictions with ``pipeline``, ``y_true``, ``patient_id``, ``threshold`` and
        ``proba_<positive>`` (rows without a threshold are left out).
    positive : str
        The positive class.
    rule : str
        The operating-point rule (copied to the table).
    n_boot : int, default 500
        Patient-bootstrap resamples.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per pipeline: each rate with ``_ci_low``/``_ci_high``, ``threshold_min``/``_max``.
    """
    import pandas as pd

    score_col = f"proba_{positive}"
    rows = []
    rng = np.random.default_rng(seed)
    for name, part in oof.dropna(subset=["threshold"]).groupby("pipeline", sort=False):
        truth = part["y_true"].astype(str).to_numpy() == str(positive)
        called = part[score_col].to_numpy() >= part["threshold"].to_numpy()
        patients = part["patient_id"].astype(str).to_numpy()
        by_patient = [np.flatnonzero(patients == p) for p in np.unique(patients)]
        point = _rates(truth, called)
        boot = []
        for _ in range(n_boot):
            idx = np.concatenate([by_patient[i] for i in rng.integers(len(by_patient), size=len(by_patient))])
            boot.append(_rates(truth[idx], called[idx]))
        row = {"pipeline": name, "rule": rule, "positive": str(positive),
               "threshold_min": float(part["threshold"].min()), "threshold_max": float(part["threshold"].max())}
        for key, value in point.items():
            samples = np.array([b[key] for b in boot], dtype=float)
            samples = samples[np.isfinite(samples)]
            row[key] = value
            row[f"{key}_ci_low"] = float(np.quantile(samples, 0.025)) if len(samples) else np.nan
            row[f"{key}_ci_high"] = float(np.quantile(samples, 0.975)) if len(samples) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _rates(truth: np.ndarray, called: np.ndarray) -> dict[str, float]:
    tp, fp = np.sum(truth & called), np.sum(~truth & called)
    fn, tn = np.sum(truth & ~called), np.sum(~truth & ~called)

    def ratio(a, b):
        return float(a / (a + b)) if a + b else np.nan

    return {"sensitivity": ratio(tp, fn), "specificity": ratio(tn, fp), "ppv": ratio(tp, fp), "npv": ratio(tn, fn)}


def operating_point_summary(run_dir, meta: dict) -> str:
    """One plain sentence per target on the decision rule of a run (``model_card.md``): argmax, or
    the saved threshold with its out-of-fold sensitivity, specificity, PPV and NPV (95 % CI) from
    ``operating_point.csv``.

    Parameters
    ----------
    run_dir : path-like
        The run directory (its ``operating_point.csv`` is read when present).
    meta : dict
        The run's ``meta.json`` (``operating_point`` and per-target ``threshold``/``positive``).

    Returns
    -------
    str
        Markdown bullet lines, or one argmax sentence when no operating point was chosen.
    """
    import pandas as pd

    rule = meta.get("operating_point")
    if not rule:
        return "argmax of the predicted probabilities (no operating point chosen)"
    path = Path(run_dir) / "operating_point.csv"
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    lines = []
    for target, entry in (meta.get("targets") or {}).items():
        if entry.get("threshold") is None:
            lines.append(f"{target}: argmax (not a binary target, so no operating point)")
            continue
        text = (f"{target}: '{entry['positive']}' when its probability is at least {entry['threshold']:.3f} "
                f"({rule}, chosen on patient-grouped inner folds of all cases)")
        row = table[(table.get("target") == target) & (table.get("pipeline") == entry.get("pipeline"))] \
            if len(table) else table
        if len(row):
            r = row.iloc[0]
            text += "; out of fold, each fold's own threshold: " + ", ".join(
                f"{k} {r[k]:.2f} [{r[k + '_ci_low']:.2f}-{r[k + '_ci_high']:.2f}]"
                for k in ("sensitivity", "specificity", "ppv", "npv"))
        lines.append(text)
    return "\n".join(f"- {line}" for line in lines)
