"""Paired comparisons of the best pipeline with every other one: ``comparisons.csv``.

Columns ``pipeline_a,pipeline_b,metric,difference,ci_low,ci_high,p_value,test`` plus ``p_holm`` (Holm's
adjustment within each (metric, test) family, i.e. over the comparisons with the best) and ``target``.

* AUROC of a binary target: DeLong's paired test on the same out-of-fold predictions (every case is
  predicted by both pipelines, in each repeat; :func:`vitfeat.evaluation.intervals.delong_paired`).
* The selection metric (``fit --metric``) and AUROC from the fold scores: the Nadeau–Bengio corrected
  resampled t-test on the per-(repeat, fold) differences (both pipelines are fitted on the same
  training part of each fold).

A pipeline is "not significantly worse than the best" when the Holm-adjusted p-value of the selection
metric's corrected t-test is at least 0.05 (:func:`not_worse`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitfeat.evaluation.intervals import delong_paired, holm, nadeau_bengio

COLUMNS = ["pipeline_a", "pipeline_b", "metric", "difference", "ci_low", "ci_high", "p_value", "test"]
DELONG, NB = "DeLong paired", "Nadeau-Bengio corrected t"


def compare_pipelines(oof: pd.DataFrame, fold_scores: pd.DataFrame, board: pd.DataFrame, *, positive,
                      metric: str = "balanced_accuracy", exclude=()) -> pd.DataFrame:
    """The comparisons of one target (see the module docstring).

    Parameters
    ----------
    oof : pandas.DataFrame
        The target's out-of-fold rows (``oof_predictions.csv``).
    fold_scores : pandas.DataFrame
        The target's per-fold scores (``fold_scores.csv``: pipeline, repeat, fold, metrics).
    board : pandas.DataFrame
        The target's leaderboard, best first.
    positive : str or None
        Positive class of a binary target (DeLong needs it).
    metric : str
        The selection metric.
    exclude : sequence of str
        Rows not compared (nested selection: its folds mix pipelines).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS` + ``p_holm``, ``target``.
    """
    names = [n for n in board["pipeline"] if n not in set(exclude)]
    if len(names) < 2:
        return pd.DataFrame(columns=COLUMNS + ["p_holm", "target"])
    best, others = names[0], names[1:]
    target = str(board["target"].iloc[0]) if "target" in board else ""
    rows = []
    best_rows = oof[oof["pipeline"] == best]
    n_total = float(best_rows.groupby("repeat")["case_id"].nunique().mean()) if len(best_rows) else 0.0
    n_test = float(best_rows.groupby(["repeat", "fold"]).size().mean()) if len(best_rows) else 0.0
    n_train = float(n_total - n_test)
    a_oof = oof[oof["pipeline"] == best].set_index(["repeat", "case_id"]).sort_index()
    a_folds = fold_scores[fold_scores["pipeline"] == best].set_index(["repeat", "fold"]).sort_index()
    for other in others:
        if positive is not None:
            b_oof = oof[oof["pipeline"] == other].set_index(["repeat", "case_id"]).sort_index()
            common = a_oof.index.intersection(b_oof.index)
            if len(common):
                a, b = a_oof.loc[common], b_oof.loc[common]
                repeats = common.get_level_values(0).nunique()
                res = delong_paired(a["y_true"].astype(str).to_numpy() == str(positive),
                                    a[f"proba_{positive}"].to_numpy(float), b[f"proba_{positive}"].to_numpy(float),
                                    repeats=repeats)
                rows.append({"pipeline_a": best, "pipeline_b": other, "metric": "auroc", **res, "test": DELONG})
        b_folds = fold_scores[fold_scores["pipeline"] == other].set_index(["repeat", "fold"]).sort_index()
        common = a_folds.index.intersection(b_folds.index)
        for name in dict.fromkeys([metric, "auroc"]):
            if name not in a_folds or not len(common):
                continue
            diffs = a_folds.loc[common, name].to_numpy(float) - b_folds.loc[common, name].to_numpy(float)
            res = nadeau_bengio(diffs, n_train=n_train, n_test=n_test)
            rows.append({"pipeline_a": best, "pipeline_b": other, "metric": name, **res, "test": NB})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["p_holm"] = np.nan
    for _, idx in table.groupby(["metric", "test"]).groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_value"].to_numpy(float))
    table["target"] = target
    return table


def not_worse(comparisons: pd.DataFrame, metric: str, alpha: float = 0.05) -> set:
    """Pipelines whose Holm-adjusted corrected t-test on ``metric`` against the best has p >= alpha
    (with the best itself).

    Parameters
    ----------
    comparisons : pandas.DataFrame
        The comparison table of the best pipeline against the others (``pipeline_a`` is the best).
    metric : str
        The metric whose Nadeau-Bengio rows are read.
    alpha : float, default 0.05
        Significance level on the Holm-adjusted p-value.

    Returns
    -------
    set of str
        Pipeline names not shown to be worse than the best (empty for an empty table).
    """
    if not len(comparisons):
        return set()
    rows = comparisons[(comparisons["metric"] == metric) & (comparisons["test"] == NB)]
    keep = set(rows.loc[~(rows["p_holm"] < alpha), "pipeline_b"])
    return keep | set(comparisons["pipeline_a"])
