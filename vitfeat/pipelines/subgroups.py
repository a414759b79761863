"""Results per subgroup (``fit --subgroup COLUMN``, repeatable): ``subgroup_metrics.csv``.

Columns ``subgroup_column,subgroup,n,n_positive,metric,value,ci_low,ci_high`` plus ``target``,
``pipeline``, ``source`` (``cv``: the chosen pipeline's out-of-fold predictions; ``test``: the held-out
test split) and ``note``. Binary targets: AUROC (DeLong interval), sensitivity and specificity
(Wilson), balanced accuracy; more classes: balanced accuracy and macro-F1 (no interval). Pooled repeats
count each case once.

fairlearn's ``MetricFrame`` was considered: it takes one ``y_pred`` for all metrics (AUROC needs the
scores, sensitivity the calls) and its bootstrap resamples cases, not patients, so the per-group
loop below with the project's own intervals is used instead.

A subgroup with fewer than :data:`MIN_CASES` cases or fewer than :data:`MIN_PER_CLASS` cases of a class
is listed with its counts but not scored, with a warning.

The column is read from the feature table when it is there, else from the manifest recorded in the
table's provenance (``vitfeat extract`` keeps only ids, targets and features), matched on ``case_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, f1_score

from vitfeat.evaluation.analytic import proportion_counts
from vitfeat.evaluation.intervals import delong, wilson

MIN_CASES = 10
MIN_PER_CLASS = 3


def case_columns(table: pd.DataFrame, provenance: dict | None, columns, source: str = "the feature table"):
    """``table`` with ``columns`` added from the manifest of its provenance when it lacks them.

    Parameters
    ----------
    table : pandas.DataFrame
        The feature table (``case_id``).
    provenance : dict or None
        The table's provenance (``manifest``: the manifest path ``vitfeat extract`` read).
    columns : sequence of str
        Columns needed (subgroups, the test split).
    source : str
        Name of the table, for the messages.

    Returns
    -------
    pandas.DataFrame
        ``table`` with every column of ``columns``.

    Raises
    ------
    ValueError
        A column in neither the table nor its manifest.
    """
    missing = [c for c in dict.fromkeys(columns) if c and c not in table.columns]
    if not missing:
        return table
    manifest = (provenance or {}).get("manifest")
    if manifest and Path(manifest).is_file():
        extra = pd.read_csv(manifest, dtype=str)
        have = [c for c in missing if c in extra.columns]
        if have and "case_id" in extra.columns:
            extra = extra.drop_duplicates("case_id").set_index("case_id")
            table = table.copy()
            for c in have:
                table[c] = table["case_id"].astype(str).map(extra[c])
        missing = [c for c in missing if c not in table.columns]
    if missing:
        where = f"{source} or its manifest ({manifest})" if manifest else source
        raise ValueError(f"column(s) {', '.join(missing)} not found in {where}")
    return table


def check_subgroup_columns(frame: pd.DataFrame, columns) -> None:
    """Refuse a subgroup column that holds a single value (nothing to compare).

    Parameters
    ----------
    frame : pandas.DataFrame
        The cases, with the subgroup columns.
    columns : iterable of str
        The ``--subgroup`` columns.

    Raises
    ------
    ValueError
        Naming the first column with fewer than two distinct values.
    """
    for c in columns:
        values = frame[c].dropna().astype(str).unique()
        if len(values) < 2:
            raise ValueError(f"--subgroup '{c}' has a single value ({values[0] if len(values) else 'none'}); "
                             "subgroups need at least two")


def _binary_rows(part: pd.DataFrame, positive: str, repeats: int) -> list[tuple]:
    y = part["y_true"].astype(str).to_numpy() == positive
    called = part["y_pred"].astype(str).to_numpy() == positive
    counts = proportion_counts(y, called)
    d = delong(y, part[f"proba_{positive}"].to_numpy(float), repeats=repeats)
    rows = [("auroc", d["auc"], d["ci_low"], d["ci_high"])]
    for name in ("sensitivity", "specificity"):
        k, n = counts[name]
        rows.append((name, k / n if n else np.nan, *wilson(k / repeats, n / repeats)))
    rows.append(("balanced_accuracy", balanced_accuracy_score(y, called), np.nan, np.nan))
    return rows


def subgroup_metrics(predictions: pd.DataFrame, groups: pd.DataFrame, columns, classes, positive,
                     source: str = "cv") -> tuple[pd.DataFrame, list[str]]:
    """Metrics of one pipeline's predictions per value of each subgroup column.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Rows of ``oof_predictions.csv`` (or ``test_predictions.csv``) of ONE pipeline and target.
    groups : pandas.DataFrame
        ``case_id`` and the subgroup columns.
    columns : sequence of str
        Subgroup columns.
    classes : list of str
        The target's classes.
    positive : str or None
        Positive class of a binary target.
    source : str
        ``cv`` or ``test``.

    Returns
    -------
    tuple
        ``(table, warnings)``.
    """
    lookup = groups.drop_duplicates("case_id").set_index(groups["case_id"].astype(str).drop_duplicates())
    repeats = int(predictions["repeat"].nunique()) if "repeat" in predictions else 1
    rows, warned = [], []
    for column in columns:
        small_groups = []
        values = predictions["case_id"].astype(str).map(lookup[column]).fillna("(missing)").astype(str)
        for value, part in predictions.groupby(values.to_numpy(), sort=True):
            n = int(part["case_id"].nunique())
            y_true = part["y_true"].astype(str)
            n_pos = int((y_true == positive).sum() / repeats) if positive is not None else -1
            base = {"subgroup_column": column, "subgroup": value, "n": n,
                    "n_positive": n_pos if positive is not None else np.nan,
                    "target": str(part["target"].iloc[0]), "pipeline": str(part["pipeline"].iloc[0]),
                    "source": source, "note": ""}
            per_class = y_true.value_counts() / repeats
            small = n < MIN_CASES or any(per_class.reindex(classes, fill_value=0) < MIN_PER_CLASS)
            if small:
                note = (f"not scored: {n} case(s), per class "
                        + ", ".join(f"{c} {int(per_class.get(c, 0))}" for c in classes)
                        + f" (needs {MIN_CASES} cases and {MIN_PER_CLASS} per class)")
                small_groups.append(f"{value} ({note[12:]})")
                rows.append(dict(base, metric="", value=np.nan, ci_low=np.nan, ci_high=np.nan, note=note))
                continue
            if positive is not None:
                scored = _binary_rows(part, positive, repeats)
            else:
                scored = [("balanced_accuracy", balanced_accuracy_score(y_true, part["y_pred"].astype(str)),
                           np.nan, np.nan),
                          ("macro_f1", f1_score(y_true, part["y_pred"].astype(str), labels=classes,
                                                average="macro", zero_division=0), np.nan, np.nan)]
            for metric, value_, low, high in scored:
                rows.append(dict(base, metric=metric, value=float(value_), ci_low=low, ci_high=high))
        if small_groups:
            warned.append(f"Subgroup column '{column}' ({source}): {len(small_groups)} group(s) too small to score "
                          f"(needs {MIN_CASES} cases and {MIN_PER_CLASS} per class): "
                          + "; ".join(g.replace(f" (needs {MIN_CASES} cases and {MIN_PER_CLASS} per class)", "")
                                      for g in small_groups) + ".")
    cols = ["subgroup_column", "subgroup", "n", "n_positive", "metric", "value", "ci_low", "ci_high",
            "target", "pipeline", "source", "note"]
    return pd.DataFrame(rows, columns=cols), warned
