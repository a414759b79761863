"""Segmentation metrics from smp's confusion-matrix counts, pooled and per image.

* ``pooled``: one confusion matrix summed over every pixel of every image (how UltraLight VM-UNet
  reports DSC / "mIoU" / Acc / Sens / Spec), then the score; per foreground class, then averaged.
* ``per_image``: the score of each image, then the mean over images (how most clinical papers
  report). An image with no lesion in truth and prediction scores 1 (nothing to find, nothing found).

For a binary task the only class is the lesion; for a multi-class task class 0 (background) is left
out of the average. Dice and F1 are the same quantity for masks; both names are reported because
the two literatures use them.
"""

from __future__ import annotations

import torch

METRICS = ("accuracy", "iou", "dice", "precision", "recall", "specificity", "f1")


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int, threshold: float = 0.5):
    """Per-image, per-class (tp, fp, fn, tn), each (N, C_fg) long.

    ``pred``: probabilities (N, 1, H, W) for binary tasks, or logits/probabilities/class indices
    (N, C, H, W) / (N, H, W) for multi-class ones. ``target``: (N, H, W) class indices or
    (N, 1, H, W) 0/1 (soft truth is thresholded at ``threshold``, as UltraLight does).

    Parameters
    ----------
    pred : torch.Tensor
        Predictions (see above).
    target : torch.Tensor
        Truth (see above).
    num_classes : int
        1 for binary masks.
    threshold : float, default 0.5
        Probability (and soft-truth) threshold.

    Returns
    -------
    tuple of torch.Tensor
    """
    import segmentation_models_pytorch as smp

    if num_classes == 1:
        target = target.reshape(pred.shape[0], 1, *pred.shape[-2:])
        target = (target.float() >= threshold).long()
        return smp.metrics.get_stats(pred.float(), target, mode="binary", threshold=threshold)
    if pred.dim() == 4:
        pred = pred.argmax(1)
    tp, fp, fn, tn = smp.metrics.get_stats(pred.long(), target.long(), mode="multiclass", num_classes=num_classes)
    return tp[:, 1:], fp[:, 1:], fn[:, 1:], tn[:, 1:]


def scores(tp, fp, fn, tn) -> dict:
    """``{"pooled": {metric: value}, "per_image": {...}}`` from per-image counts.

    Parameters
    ----------
    tp, fp, fn, tn : torch.Tensor
        Per-image, per-class counts (:func:`confusion_counts`).

    Returns
    -------
    dict
    """
    import segmentation_models_pytorch as smp

    fns = {
        "accuracy": smp.metrics.accuracy, "iou": smp.metrics.iou_score, "dice": smp.metrics.f1_score,
        "precision": smp.metrics.precision, "recall": smp.metrics.recall,
        "specificity": smp.metrics.specificity, "f1": smp.metrics.f1_score,
    }
    out = {}
    for name, reduction in (("pooled", "macro"), ("per_image", "macro-imagewise")):
        out[name] = {m: float(fn_(tp, fp, fn, tn, reduction=reduction, zero_division=1.0)) for m, fn_ in fns.items()}
    out["n_images"] = int(tp.shape[0])
    return out


class SegmentationMeter:
    """Accumulates per-image counts over batches; ``compute()`` gives both kinds of scores.

    Parameters
    ----------
    num_classes : int
        1 for binary masks.
    threshold : float, default 0.5
        Probability threshold.
    """

    def __init__(self, num_classes: int, threshold: float = 0.5):
        self.num_classes = num_classes
        self.threshold = threshold
        self._counts: list[tuple] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Parameters
        ----------
        pred, target : torch.Tensor
            As for :func:`confusion_counts`.
        """
        self._counts.append(confusion_counts(pred.detach().cpu(), target.detach().cpu(), self.num_classes,
                                             self.threshold))

    def compute(self) -> dict:
        """Pooled and per-image scores of every image added (:func:`scores`)."""
        if not self._counts:
            raise ValueError("no images were scored")
        stacked = [torch.cat([c[i] for c in self._counts]) for i in range(4)]
        return scores(*stacked)
