"""Patient-grouped fold plans and splits: made once, written to ``folds.csv``, reused by every model.

Every patient-grouped split in vitfeat goes through scikit-learn's splitters here: :func:`make_folds`
(outer CV plans, StratifiedGroupKFold), :func:`grouped_kfold` (inner CV of hyperparameter search) and
:func:`grouped_split` (one train/validation[/test] split: VMTL's inner validation part, YOLO's val split,
the segmenters' train/val/test split).

``folds.csv`` has one row per (case, repeat): ``case_id, patient_id, repeat, fold``; the case is
in the TEST part of ``fold`` in that ``repeat``.
"""

from __future__ import annotations

from pathlib import Path

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from vitfeat.atomic import write_csv
from vitfeat.dataset import same_id

FOLD_COLUMNS = ["case_id", "patient_id", "repeat", "fold"]


def make_folds(frame: pd.DataFrame, stratify_by, n_splits: int = 5, repeats: int = 1,
               seed: int = 0) -> pd.DataFrame:
    """StratifiedGroupKFold by ``patient_id``, stratified on the ``stratify_by`` column(s).

    With several targets the strata are their joint values, so every label keeps its balance.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cases with ``case_id``, ``patient_id`` and the stratification column(s).
    stratify_by : str or list of str
        Target column(s).
    n_splits : int, default 5
        Folds.
    repeats : int, default 1
        Repetitions with reshuffled folds (seeds ``seed``, ``seed + 1``, ...).
    seed : int, default 0
        Shuffling seed.

    Returns
    -------
    pandas.DataFrame
        The plan: ``case_id, patient_id, repeat, fold``.
    """
    cols = [stratify_by] if isinstance(stratify_by, str) else list(stratify_by)
    strata = frame[cols].astype(str).agg("|".join, axis=1).to_numpy()
    groups = frame["patient_id"].astype(str).to_numpy()
    n_patients = len(np.unique(groups))
    if n_splits < 2:
        raise ValueError("at least 2 folds are needed")
    if n_patients < n_splits:
        raise ValueError(f"{n_splits} folds need at least {n_splits} patients; the table has {n_patients}")
    parts = []
    for repeat in range(repeats):
        cv = grouped_kfold(n_splits, seed + repeat)
        fold_of = np.empty(len(frame), dtype=int)
        for fold, (_, test) in enumerate(cv.split(np.zeros(len(frame)), strata, groups)):
            fold_of[test] = fold
        parts.append(pd.DataFrame({"case_id": frame["case_id"].astype(str).to_numpy(),
                                   "patient_id": groups, "repeat": repeat, "fold": fold_of}))
    plan = pd.concat(parts, ignore_index=True)
    check_folds(plan)
    return plan


def grouped_kfold(n_splits: int, seed: int = 0) -> StratifiedGroupKFold:
    """The shuffled StratifiedGroupKFold every patient-grouped CV uses (pass ``groups`` to ``split``).

    Parameters
    ----------
    n_splits : int
        Number of folds.
    seed : int, default 0
        Shuffling seed.

    Returns
    -------
    sklearn.model_selection.StratifiedGroupKFold
    """
    return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def grouped_split(groups, y=None, *, val_fraction: float = 0.2, seed: int = 0,
                  test_fraction: float = 0.0) -> tuple[np.ndarray, ...]:
    """One patient-grouped (train, validation[, test]) split: whole patients on one side.

    The project's one patient-split function: VMTL's inner validation part, YOLO's val split and
    the segmenters' train/val/test split all call it. With labels ``y`` the split is stratified:
    the first fold of a StratifiedGroupKFold with ``round(1 / val_fraction)`` folds; when the
    classes have too few patients for that, or without ``y``, a GroupShuffleSplit with
    ``test_size=val_fraction``. With ``test_fraction > 0`` the test part is drawn first the same
    way (``test_fraction`` of the patients), then the validation part from the rest
    (``val_fraction / (1 - test_fraction)`` of it, so both shares refer to the whole table);
    with fewer than three patients the test part is empty (and the validation share is taken of
    all), with ``val_fraction=0`` the validation part.

    Parameters
    ----------
    groups : array-like
        Patient id per row.
    y : array-like, optional
        Label per row, to stratify on.
    val_fraction : float, default 0.2
        Share of the rows (patients, for the unstratified split) put in the validation part.
    seed : int, default 0
        Random seed.
    test_fraction : float, default 0.0
        Share put in a third, test part (0: no test part, two arrays are returned).

    Returns
    -------
    train_idx, val_idx[, test_idx] : numpy.ndarray
        Row positions of the parts (``test_idx`` only when ``test_fraction > 0``).

    Raises
    ------
    ValueError
        With fewer than two patients.
    """
    groups = np.asarray([str(g) for g in groups])
    if len(np.unique(groups)) < 2:
        raise ValueError("a patient-grouped train/validation split needs cases from at least 2 patients")
    idx = np.arange(len(groups))
    if test_fraction > 0:
        if not 0 <= val_fraction < 1 - test_fraction:
            raise ValueError(f"val_fraction {val_fraction} and test_fraction {test_fraction} leave no training part")
        test = np.array([], dtype=int)
        rest = idx
        if len(np.unique(groups)) >= 3:
            rest, test = grouped_split(groups, y, val_fraction=test_fraction, seed=seed)
        if val_fraction <= 0:
            return rest, np.array([], dtype=int), test
        tr, va = grouped_split(groups[rest], None if y is None else np.asarray(y)[rest],
                               val_fraction=val_fraction / (1 - test_fraction) if len(test) else val_fraction,
                               seed=seed)
        return rest[tr], rest[va], test
    if y is not None:
        try:
            with warnings.catch_warnings():  # small classes are expected in small studies
                warnings.simplefilter("ignore", UserWarning)
                splitter = grouped_kfold(max(2, round(1 / val_fraction)), seed)
                train, val = next(splitter.split(idx, np.asarray(y), groups))
            return train, val
        except ValueError:  # too few patients per class to stratify
            pass
    return next(GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed).split(idx, groups=groups))


def check_folds(plan: pd.DataFrame) -> None:
    """Raise if a patient's cases sit in the test parts of two folds of one repeat, or a case is
    missing/duplicated in a repeat.

    Parameters
    ----------
    plan : pandas.DataFrame
        A fold plan (:data:`FOLD_COLUMNS`).

    Raises
    ------
    ValueError
        Naming the patient or case.
    """
    missing = [c for c in FOLD_COLUMNS if c not in plan.columns]
    if missing:
        raise ValueError(f"fold plan lacks column(s) {', '.join(missing)} (needs {', '.join(FOLD_COLUMNS)})")
    per_patient = plan.groupby(["repeat", "patient_id"])["fold"].nunique()
    split = per_patient[per_patient > 1]
    if len(split):
        (repeat, patient), n = next(iter(split.items()))
        raise ValueError(f"fold plan puts patient '{patient}' in {n} different test folds "
                         f"in repeat {repeat} ({len(split)} patient(s) affected): that leaks patients")
    dup = plan.duplicated(["repeat", "case_id"])
    if dup.any():
        row = plan[dup].iloc[0]
        raise ValueError(f"fold plan lists case '{row.case_id}' twice in repeat {row.repeat}")


def write_folds(plan: pd.DataFrame, path) -> Path:
    """Write a fold plan to ``path`` (atomically) with the columns of :data:`FOLD_COLUMNS`.

    Parameters
    ----------
    plan : pandas.DataFrame
        A fold plan (:data:`FOLD_COLUMNS`).
    path : path-like
        ``folds.csv``.

    Returns
    -------
    pathlib.Path
    """
    return write_csv(path, plan[FOLD_COLUMNS])


def read_folds(path, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read ``folds.csv``; with ``frame``, check it covers exactly the frame's cases and patients.

    Parameters
    ----------
    path : path-like
        ``folds.csv`` of a run.
    frame : pandas.DataFrame, optional
        The table it must cover (``case_id``, ``patient_id``).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError, ValueError
        Named with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fold plan not found")
    plan = pd.read_csv(path, dtype={"case_id": str, "patient_id": str})
    try:
        check_folds(plan)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    plan = plan[FOLD_COLUMNS].astype({"repeat": int, "fold": int})
    if frame is not None:
        ids = set(frame["case_id"].astype(str))
        for repeat, part in plan.groupby("repeat"):
            planned = set(part["case_id"])
            extra, lacking = planned - ids, ids - planned
            if lacking:
                raise ValueError(f"{path}: repeat {repeat} has no fold for {len(lacking)} case(s) of the "
                                 f"table, e.g. '{sorted(lacking)[0]}'")
            if extra:
                raise ValueError(f"{path}: repeat {repeat} lists {len(extra)} case(s) absent from the "
                                 f"table, e.g. '{sorted(extra)[0]}'")
        pid = dict(zip(frame["case_id"].astype(str), frame["patient_id"].astype(str)))
        # matched by value: a plan written as text ("7") and a table read as numbers ("7.0") agree
        wrong = plan[[not same_id(pid[c], p) for c, p in zip(plan["case_id"], plan["patient_id"])]]
        if len(wrong):
            row = wrong.iloc[0]
            raise ValueError(f"{path}: case '{row.case_id}' has patient '{row.patient_id}' in the fold plan "
                             f"but '{pid[row.case_id]}' in the table")
    return plan


def same_folds(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """True when two plans assign every (case, repeat) to the same fold.

    Parameters
    ----------
    a, b : pandas.DataFrame
        Fold plans.

    Returns
    -------
    bool
    """
    key = ["repeat", "case_id"]
    left = a[key + ["fold"]].astype({"repeat": int, "fold": int}).sort_values(key).reset_index(drop=True)
    right = b[key + ["fold"]].astype({"repeat": int, "fold": int}).sort_values(key).reset_index(drop=True)
    return left.equals(right)
