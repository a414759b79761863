"""Checks of a feature table before fitting on it or predicting from it (issue #25).

``fit`` must never fit a model on nothing or on a silently broken table: a duplicated case,
feature columns that carry no information, a class too small to be learned, or a table too small
to be split are named (with the file, the column, the class) before any fit. ``predict`` must
not apply a model to a table whose columns have the same names but another meaning: a family of
another version, other family options, or another ``max_side``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: How many names a message lists before "..."
_SHOWN = 8


def _listed(names) -> str:
    names = list(names)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(str(n) for n in names[:_SHOWN]) + more


def check_fit_table(table: pd.DataFrame, frame: pd.DataFrame, features_path, targets, feature_cols,
                    folds: int | None = None) -> list[str]:
    """Refuse a table nothing can be learned from; return warnings about degenerate parts of it.

    Parameters
    ----------
    table : pandas.DataFrame
        The whole table as read (its row numbers are those named).
    frame : pandas.DataFrame
        The usable rows of the table (no extraction error, at least one target value).
    features_path : path-like
        The table's file, named in every message.
    targets : list of str
        The target columns.
    feature_cols : list of str
        The feature columns.
    folds : int, optional
        The number of folds, for the warning about classes smaller than a fold count.

    Returns
    -------
    list of str
        Warnings (also logged): classes with fewer cases than folds, constant and empty columns.

    Raises
    ------
    ValueError
        Duplicated case ids, no feature column, every feature column constant or empty, fewer than
        two usable cases.
    """
    path = Path(features_path)
    warnings: list[str] = []
    dup = table["case_id"].duplicated(keep=False)
    if dup.any():
        problems = []
        for cid, part in table[dup].groupby("case_id", sort=False):
            patients = sorted(set(part["patient_id"].astype(str)))
            rows = ", ".join(str(i + 1) for i in part.index[:5])
            who = f"patients {', '.join(patients)}" if len(patients) > 1 else f"patient {patients[0]}"
            problems.append(f"'{cid}' (rows {rows}; {who})")
        raise ValueError(f"{path}: {len(problems)} case_id(s) appear in more than one row: {_listed(problems)}; "
                         "a case is one row (two patients sharing an id would leak across folds)")
    if len(frame) < 2:
        raise ValueError(f"{path}: {len(frame)} usable case(s) (no extraction error, a target value); fitting "
                         "needs at least two per class")
    if not feature_cols:
        raise ValueError(f"{path}: no feature column (names start with clinical_, wood_ or pair_)")
    X = frame[feature_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    empty = np.isnan(X).all(axis=0)
    with np.errstate(invalid="ignore"):
        spread = np.nanmax(np.where(empty[None, :], 0.0, X), axis=0) - np.nanmin(np.where(empty[None, :], 0.0, X),
                                                                                  axis=0)
    constant = ~empty & (spread == 0)
    if (empty | constant).all():
        raise ValueError(f"{path}: every one of the {len(feature_cols)} feature column(s) is constant or empty "
                         f"({int(constant.sum())} constant, {int(empty.sum())} empty) over {len(frame)} case(s); "
                         "nothing to learn from (were the features extracted from the right images?)")
    if empty.any():
        warnings.append(f"{path}: {int(empty.sum())} feature column(s) empty in every case, left out by the "
                        f"models: {_listed(np.asarray(feature_cols)[empty])}")
    for target in targets:
        counts = frame[target].dropna().astype(str).value_counts()
        lonely = counts[counts < 2]
        if len(lonely):
            listed = _listed(f"{c!r} ({n} case)" for c, n in lonely.items())
            warnings.append(f"{path}: target '{target}': class(es) {listed} too small to learn or to score: "
                            "a test fold holding it has no training case of it")
        small = counts[(counts >= 2) & (counts < (folds or 0))]
        if len(small):
            listed = _listed(f"{c!r} ({n})" for c, n in small.items())
            warnings.append(f"{path}: target '{target}': class(es) {listed} have fewer cases than {folds} folds; "
                            "some test folds miss them")
    for message in warnings:
        log.warning(message)
    return warnings


def check_table_matches_run(provenance: dict, extraction: dict, features_path, run_dir) -> list[str]:
    """Refuse a feature table whose columns mean something else than those the run was fitted on.

    Compared, for every family both record: the family version and its options; and the
    ``max_side`` photos were shrunk to. A table without provenance (written by hand) cannot be
    checked: a warning says so. Another vitfeat version alone (same family versions) is a warning.

    Parameters
    ----------
    provenance : dict
        The table's provenance (Parquet metadata ``vitfeat``, or the CSV's sidecar).
    extraction : dict
        The provenance of the table the run was fitted on (``run.json`` ``extraction``).
    features_path, run_dir : path-like
        Named in the messages.

    Returns
    -------
    list of str
        Warnings (also logged).

    Raises
    ------
    ValueError
        Naming the family or option and both versions or values.
    """
    if not extraction:
        return []
    if not provenance:
        message = (f"{features_path}: no extraction record (a hand-made table?): cannot check that its features "
                   f"were extracted like those {run_dir} was fitted on")
        log.warning(message)
        return [message]
    then_v, now_v = extraction.get("vitfeat_version"), provenance.get("vitfeat_version")
    versions = f"vitfeat {now_v} wrote the table, vitfeat {then_v} the run's"
    problems = []
    then_f, now_f = extraction.get("families") or {}, provenance.get("families") or {}
    for name in sorted(set(then_f) & set(now_f)):
        a, b = then_f[name] or {}, now_f[name] or {}
        if str(a.get("version")) != str(b.get("version")):
            problems.append(f"family '{name}' is version {b.get('version')} in the table but was version "
                            f"{a.get('version')} when the run was fitted")
        elif _canonical(a.get("config")) != _canonical(b.get("config")):
            run_cfg, table_cfg = a.get("config") or {}, b.get("config") or {}
            changed = sorted(k for k in set(run_cfg) | set(table_cfg)
                             if _canonical(run_cfg.get(k)) != _canonical(table_cfg.get(k)))
            shown = "; ".join(f"{k}={table_cfg.get(k)!r} in the table, {run_cfg.get(k)!r} in the run"
                              for k in changed)
            problems.append(f"family '{name}' was extracted with other options ({shown})")
    both = "max_side" in extraction and "max_side" in provenance  # a stub record (hand-made) has no such key
    if both and (extraction.get("max_side") or None) != (provenance.get("max_side") or None):
        problems.append(f"max_side is {provenance.get('max_side')} in the table but was "
                        f"{extraction.get('max_side')} when the run was fitted")
    if problems:
        raise ValueError(f"{features_path}: its features have the run's column names but another meaning: "
                         f"{'; '.join(problems)} ({versions}). Extract the table again with the run's settings "
                         f"(or predict from the manifest, which does so), or fit a new run")
    if then_v and now_v and str(then_v) != str(now_v):
        message = f"{features_path}: {versions}; the feature families are the same versions"
        log.warning(message)
        return [message]
    return []


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
