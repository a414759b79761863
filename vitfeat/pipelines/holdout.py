"""A held-out test split, scored once (``fit --test-split COLUMN`` / ``fit --test-fraction F``).

Everything (cross-validation, selection, nested selection, calibration, thresholds, the refit of the
chosen pipeline) uses the training rows only; the chosen model then predicts the test rows once:
``test_predictions.csv`` (the columns of ``oof_predictions.csv``; ``fold`` is -1) and
``test_metrics.csv`` (``metric,value,ci_low,ci_high`` and the target, interval method and note).

``--test-split COLUMN`` reads a column with ``train``/``test`` values (the importers write
``original_split`` when a data set ships its own split); ``--test-fraction F`` draws a patient-grouped
split stratified on the first target (:class:`~sklearn.model_selection.StratifiedGroupKFold`, the
seed of the run), recorded per case in ``test_split.csv``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from vitfeat.evaluation.metrics import proba_columns, score_oof

TRAIN, TEST = "train", "test"


def split_frame(frame: pd.DataFrame, targets, *, column: str | None = None, fraction: float | None = None,
                seed: int = 0, source: str = "the feature table"):
    """Split the cases of ``frame`` into training and test rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        The usable cases (``case_id``, ``patient_id``, targets).
    targets : list of str
        Target columns; each part must hold every class of each target.
    column : str, optional
        Column with ``train``/``test`` values (case-insensitive).
    fraction : float, optional
        Share of patients for a drawn test split (0 < F < 1), stratified on the first target.
    seed : int, default 0
        Seed of the drawn split.
    source : str
        Name of the table, for the messages.

    Returns
    -------
    tuple
        ``(train, test, record)``: the two frames (index reset) and a dict describing the split; when
        neither ``column`` nor ``fraction`` is given, ``(frame, None, None)``.

    Raises
    ------
    ValueError
        Both options, an unknown column, values other than train/test, a fraction outside (0, 1), or a
        part that lacks a class of a target.
    """
    if column is None and fraction is None:
        return frame, None, None
    if column is not None and fraction is not None:
        raise ValueError("use --test-split COLUMN or --test-fraction F, not both")
    if column is not None:
        if column not in frame.columns:
            raise ValueError(f"{source}: --test-split column '{column}' not found")
        values = frame[column].astype(str).str.strip().str.lower()
        bad = sorted(set(values) - {TRAIN, TEST})
        if bad:
            first = int(np.flatnonzero(~values.isin([TRAIN, TEST]))[0])
            raise ValueError(f"{source}: column '{column}' must hold 'train' or 'test'; case "
                             f"'{frame['case_id'].iloc[first]}' has {frame[column].iloc[first]!r} "
                             f"(other values: {', '.join(bad[:5])})")
        is_test = (values == TEST).to_numpy()
        record = {"source": f"column '{column}'"}
    else:
        if not 0 < float(fraction) < 1:
            raise ValueError(f"--test-fraction {fraction}: use a share strictly between 0 and 1")
        n_splits = max(2, int(round(1 / float(fraction))))
        y = frame[targets[0]].astype(str).to_numpy()
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, test_idx = next(splitter.split(np.zeros(len(frame)), y, frame["patient_id"].astype(str)))
        is_test = np.zeros(len(frame), bool)
        is_test[test_idx] = True
        record = {"source": f"drawn: fraction {float(fraction)} of patients (1 of {n_splits} patient-grouped, "
                            f"stratified folds on '{targets[0]}', seed {seed})"}
    train, test = frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)
    for target in targets:
        classes = set(frame[target].dropna().astype(str))
        for name, part in ((TRAIN, train), (TEST, test)):
            missing = classes - set(part[target].dropna().astype(str))
            if missing:
                raise ValueError(f"{source}: the {name} split ({record['source']}) has no case of class "
                                 f"{', '.join(sorted(missing))} of target '{target}'; both parts need every class")
    shared = set(train["patient_id"].astype(str)) & set(test["patient_id"].astype(str))
    if shared:
        warnings.warn(f"{len(shared)} patient(s) have cases in both the train and the test split "
                      f"({record['source']}), e.g. {sorted(shared)[0]}; the test score is optimistic", stacklevel=2)
    record.update(n_train=int(len(train)), n_test=int(len(test)),
                  n_train_patients=int(train["patient_id"].nunique()),
                  n_test_patients=int(test["patient_id"].nunique()), shared_patients=len(shared))
    return train, test, record


def split_table(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """``test_split.csv``: ``case_id, patient_id, split`` for every case.

    Parameters
    ----------
    train, test : pandas.DataFrame
        The training and the held-out cases (with ``case_id`` and ``patient_id``).

    Returns
    -------
    pandas.DataFrame
        The training rows then the test rows, ``split`` naming each side.
    """
    return pd.concat([train[["case_id", "patient_id"]].assign(split=TRAIN),
                      test[["case_id", "patient_id"]].assign(split=TEST)], ignore_index=True)


def score_test(models: dict, test: pd.DataFrame, features: list[str], *, n_boot: int = 500, seed: int = 0,
               ci: str = "auto"):
    """Predict the test rows once with each target's chosen model and score them.

    Parameters
    ----------
    models : dict
        ``{target: {"pipeline", "classes", "positive", "model", "threshold"?}}`` as in ``model.skops``.
    test : pandas.DataFrame
        The held-out cases.
    features : list of str
        The model's feature columns, in order.
    n_boot, seed, ci
        As for :func:`vitfeat.evaluation.metrics.score_oof`.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(test_predictions, test_metrics)``.
    """
    X = test[features].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    predictions, metrics = [], []
    for target, entry in models.items():
        has = test[target].notna().to_numpy()
        classes = [str(c) for c in entry["classes"]]
        raw = entry["model"].predict_proba(X[has])
        proba = np.zeros((int(has.sum()), len(classes)))
        proba[:, np.asarray(entry["model"].classes_, dtype=int)] = raw
        positive, threshold = entry.get("positive"), entry.get("threshold")
        y_pred = np.asarray(classes)[proba.argmax(1)]
        if positive is not None and threshold is not None:
            other = next(c for c in classes if c != positive)
            y_pred = np.where(proba[:, classes.index(positive)] >= threshold, positive, other)
        part = pd.DataFrame({"pipeline": entry["pipeline"], "target": target, "repeat": 0, "fold": -1,
                             "case_id": test.loc[has, "case_id"].astype(str).to_numpy(),
                             "patient_id": test.loc[has, "patient_id"].astype(str).to_numpy(),
                             "y_true": test.loc[has, target].astype(str).to_numpy(), "y_pred": y_pred})
        part[proba_columns(classes)] = proba
        predictions.append(part)
        scores = score_oof(part, classes, positive=positive, n_boot=n_boot, seed=seed, ci=ci)
        for name, stats in scores.items():
            if name.startswith("_") or "value" not in stats or name.startswith("calibration_clip"):
                continue
            metrics.append({"metric": name, "value": stats["value"], "ci_low": stats.get("ci_low", np.nan),
                            "ci_high": stats.get("ci_high", np.nan), "target": target,
                            "pipeline": entry["pipeline"], "n_cases": int(has.sum()),
                            "ci_method": stats.get("ci_method", ""), "ci_note": stats.get("ci_note", "")})
    return pd.concat(predictions, ignore_index=True), pd.DataFrame(metrics)
