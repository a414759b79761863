"""The original VMTL's metric set (``calculate_metrics`` of aaalzh/VMTL), without torch.

Weighted precision / recall / F1 (weighted recall equals accuracy), specificity TN / (TN + FP) with
the non-stable class as positive, AUC on P(non-stable), accuracy and the selection score P*S*R.
Used to choose the original variant's checkpoint on the inner validation split and reported beside
fit's metrics in every VMTL run's ``metrics.json``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

PUBLISHED = {"precision": 0.910, "specificity": 0.934, "recall": 0.909}
PROTOCOL_NOTE = (
    "The published P 0.910 / S 0.934 / R 0.909 (aaalzh/VMTL, V6 checkpoint file name) were chosen AND "
    "reported on one 121-pair validation split (stratified 80/20, seed 42) of a private 605-pair set, "
    "continuing from an earlier checkpoint. Here every case is predicted once by a model that never saw "
    "it (fit's outer folds; checkpoints chosen on an inner split of the training part), pooled over "
    "folds. The figures are comparable in definition, not in protocol or data.")


def original_metrics(y_true: np.ndarray, y_pred: np.ndarray, p_positive: np.ndarray | None,
                     positive: int | str) -> dict[str, float]:
    """The original's metrics for a binary target.

    Parameters
    ----------
    y_true, y_pred : array-like
        True and predicted labels (indices or names).
    p_positive : array-like or None
        Predicted probability of the positive (non-stable) class; None leaves AUC out.
    positive : int or str
        The positive label, in the same coding as ``y_true``.

    Returns
    -------
    dict
        precision, recall, f1 (weighted), specificity, accuracy, auc, psr (= P * S * R).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {"precision": float(precision_score(y_true, y_pred, average="weighted", zero_division=0)),
           "recall": float(recall_score(y_true, y_pred, average="weighted", zero_division=0)),
           "f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
           "accuracy": float(accuracy_score(y_true, y_pred))}
    true_pos, pred_pos = y_true == positive, y_pred == positive
    tn, fp = int(np.sum(~true_pos & ~pred_pos)), int(np.sum(~true_pos & pred_pos))
    out["specificity"] = tn / (tn + fp) if tn + fp else 0.0
    out["auc"] = (float(roc_auc_score(true_pos, p_positive))
                  if p_positive is not None and 0 < true_pos.sum() < len(y_true)
                  else float("nan"))
    out["psr"] = out["precision"] * out["specificity"] * out["recall"]
    return out


def original_metric_block(oof, classes: list[str], positive: str | None) -> dict | None:
    """``metrics.json``'s ``original_metrics`` entry for one target's OOF rows (None unless binary).

    Parameters
    ----------
    oof : pandas.DataFrame
        Out-of-fold rows of one target.
    classes : list of str
        Its classes.
    positive : str or None
        The non-stable class.

    Returns
    -------
    dict or None
    """
    if len(classes) != 2 or positive is None:
        return None
    y = oof["y_true"].astype(str).to_numpy()
    pooled = original_metrics(y, oof["y_pred"].astype(str).to_numpy(), oof[f"proba_{positive}"].to_numpy(), positive)
    per_fold = []
    for (repeat, fold), part in oof.groupby(["repeat", "fold"]):
        row = original_metrics(part["y_true"].astype(str).to_numpy(), part["y_pred"].astype(str).to_numpy(),
                               part[f"proba_{positive}"].to_numpy(), positive)
        per_fold.append({"repeat": int(repeat), "fold": int(fold), **row})
    return {"positive": positive, "pooled": pooled, "per_fold": per_fold, "published": PUBLISHED,
            "protocol": PROTOCOL_NOTE}
