"""The selection metric of ``fit --metric``: what ranks the leaderboard and what nested selection
maximises in each outer fold's inner CV.

Each metric is a column of the leaderboard (fold mean) and a function of OOF rows; ``log_loss`` and
``brier`` are better when lower. ``auroc`` of a target with more than two classes is the macro
one-vs-rest AUROC; ``brier`` there is the multi-class Brier score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitfeat.evaluation.metrics import fast_metrics, proba_columns

#: name -> (higher is better, words for the report)
METRICS = {
    "balanced_accuracy": (True, "balanced accuracy (mean of per-class recall)"),
    "auroc": (True, "AUROC (area under the ROC curve; macro one-vs-rest for more than two classes)"),
    "macro_f1": (True, "macro-F1"),
    "log_loss": (False, "log loss (lower is better)"),
    "brier": (False, "Brier score (lower is better)"),
}
DEFAULT = "balanced_accuracy"


def check_metric(metric: str) -> str:
    """Return ``metric`` when it is a known selection metric (each fits any target of two or more
    classes; :func:`vitfeat.pipelines.fit_extras.prepare` refuses targets that look continuous).

    Parameters
    ----------
    metric : str
        One of :data:`METRICS`.

    Returns
    -------
    str
        The metric.

    Raises
    ------
    ValueError
        Unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"--metric {metric!r}: use one of {', '.join(METRICS)}")
    return metric


def leaderboard_order(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``board`` sorted by the fold mean of ``metric`` (best first), ties by mean AUROC, with ``rank``.

    Parameters
    ----------
    board : pandas.DataFrame
        A leaderboard with ``<metric>_mean`` and ``auroc_mean`` columns.
    metric : str
        A key of :data:`METRICS` (its direction decides what is best).

    Returns
    -------
    pandas.DataFrame
        A sorted copy with ``rank`` (from 1) as its first column.
    """
    higher, _ = METRICS[metric]
    board = board.copy()
    key = board[f"{metric}_mean"] if higher else -board[f"{metric}_mean"]
    board = board.assign(_key=key).sort_values(["_key", "auroc_mean"], ascending=False,
                                               na_position="last").drop(columns="_key")
    if "rank" in board:
        board = board.drop(columns="rank")
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


def score_rows(rows: pd.DataFrame, metric: str, classes, positive) -> float:
    """``metric`` of OOF rows, oriented so that higher is better (loss metrics negated).

    Parameters
    ----------
    rows : pandas.DataFrame
        Out-of-fold rows (``y_true``, ``y_pred`` and ``proba_<class>``).
    metric : str
        A key of :data:`METRICS`.
    classes : list
        The target's classes, in the order of the probability columns.
    positive : str or None
        The positive class (used for binary targets only).

    Returns
    -------
    float
        The oriented value; ``-inf`` where the metric is undefined.
    """
    classes = [str(c) for c in classes]
    y_true = rows["y_true"].astype(str).to_numpy()
    y_pred = rows["y_pred"].astype(str).to_numpy()
    proba = rows[proba_columns(classes)].to_numpy(dtype=float)
    value = fast_metrics(y_true, y_pred, proba, classes, positive if len(classes) == 2 else None)[metric]
    higher, _ = METRICS[metric]
    value = float(value) if np.isfinite(value) else -np.inf
    return value if higher else -value
