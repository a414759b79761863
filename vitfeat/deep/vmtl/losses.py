"""Task losses and their uncertainty weighting.

Library losses where they exist (BCE, Dice from segmentation-models-pytorch, GIoU from torchvision);
the softmax focal loss with label smoothing is written here because torch/timm only ship the
sigmoid (binary) focal loss. Every loss is computed only on the samples that have the target
(a case without a Wood's photo or a mask contributes nothing to those terms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou_loss

_dice = DiceLoss(mode="binary", from_logits=True)


def focal_loss(logits, target, gamma: float = 3.0, smoothing: float = 0.05):
    """(1 - p_t)^gamma * label-smoothed cross-entropy, averaged over the batch.

    Parameters
    ----------
    logits : torch.Tensor
        (B, C) class logits.
    target : torch.Tensor
        (B,) class indices.
    gamma : float, default 3.0
        Focusing exponent.
    smoothing : float, default 0.05
        Label smoothing.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    logp = F.log_softmax(logits.float(), 1)
    ce = F.cross_entropy(logits.float(), target, label_smoothing=smoothing, reduction="none")
    p_t = logp.gather(1, target[:, None]).squeeze(1).exp()
    return ((1 - p_t) ** gamma * ce).mean()


def seg_loss(logits, mask):
    """Binary cross-entropy plus Dice loss of a lesion mask.

    Parameters
    ----------
    logits : torch.Tensor
        (B, 1, H, W) mask logits.
    mask : torch.Tensor
        (B, 1, H, W) 0/1 target.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    return F.binary_cross_entropy_with_logits(logits.float(), mask) + _dice(logits.float(), mask)


def box_loss(pred_cxcywh, true_cxcywh):
    """Smooth-L1 plus generalised-IoU loss of lesion boxes.

    Parameters
    ----------
    pred_cxcywh, true_cxcywh : torch.Tensor
        (B, 4) boxes ``(cx, cy, w, h)`` in image fractions.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    pred = box_convert(pred_cxcywh.float(), "cxcywh", "xyxy")
    true = box_convert(true_cxcywh, "cxcywh", "xyxy")
    return F.smooth_l1_loss(pred, true, beta=0.05) + generalized_box_iou_loss(pred, true, reduction="mean")


def masked_recon_loss(pred, target, hidden):
    """MSE on the hidden patches only, in the normalised pixel space of the input.

    Parameters
    ----------
    pred, target : torch.Tensor
        (B, 3, H, W) reconstruction and input.
    hidden : torch.Tensor
        (B, 1, H, W), 1 on the hidden patches.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    err = (pred.float() - target) ** 2 * hidden
    return err.sum() / (hidden.sum() * target.shape[1]).clamp_min(1.0)


def contrastive_loss(z_clinical, z_wood, is_active, margins=(0.9, 0.2)):
    """Squared hinge on the cosine of the modality embeddings: stable pairs are pulled above
    ``margins[0]``, active pairs pushed below ``margins[1]`` (fixed margins: learnable ones can
    simply move to where the loss vanishes).

    Parameters
    ----------
    z_clinical, z_wood : torch.Tensor
        (B, D) embeddings of the two photos.
    is_active : torch.Tensor
        (B,) bool, true for active (non-stable) cases.
    margins : tuple of float, default (0.9, 0.2)
        Pull and push margins on the cosine.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    s = F.cosine_similarity(z_clinical.float(), z_wood.float(), dim=1)
    pull = F.relu(margins[0] - s) ** 2
    push = F.relu(s - margins[1]) ** 2
    return torch.where(is_active, push, pull).mean()


class UncertaintyWeighting(nn.Module):
    """total = sum_t w_t * exp(-s_t) * L_t + 0.5 * s_t (Kendall et al.), s_t learnable log-variances.

    Parameters
    ----------
    tasks : iterable of str
        The tasks weighted.
    importance : dict
        ``{task: w_t}`` (default 1).
    init : dict
        ``{task: initial s_t}`` (default 0).
    """

    def __init__(self, tasks, importance: dict, init: dict):
        super().__init__()
        self.importance = {t: float(importance.get(t, 1.0)) for t in tasks}
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.tensor(float(init.get(t, 0.0)))) for t in tasks})

    def forward(self, losses: dict, use_importance: bool = True):
        """The weighted sum; ``use_importance=False`` drops w_t (the original's stages 1-4 do).

        Parameters
        ----------
        losses : dict
            ``{task: scalar loss}``.
        use_importance : bool, default True
            Multiply by the importance weights.

        Returns
        -------
        torch.Tensor
        """
        total = 0.0
        for task, value in losses.items():
            s = self.log_vars[task]
            weight = self.importance[task] if use_importance else 1.0
            total = total + weight * torch.exp(-s) * value + 0.5 * s
        return total


def task_losses(model, out: dict, batch: dict, cfg, positive_index: int) -> dict:
    """Per-task losses for one batch (tasks with no target in the batch are left out).

    Parameters
    ----------
    model : torch.nn.Module
        The network (for its heads' conventions).
    out : dict
        Its outputs for the batch.
    batch : dict
        The batch (labels, masks, boxes, ``has_wood``).
    cfg : VMTLConfig
        Tasks and loss settings.
    positive_index : int
        Index of the active class (contrastive term).

    Returns
    -------
    dict
        ``{task: scalar loss}``.
    """
    tasks = set(cfg.tasks)
    y = batch["label"]
    losses = {}
    if "labels" in batch and len(out.get("logits_per_target", ())) > 1:  # one head per target: summed
        cls = 0.0
        for t, logits in enumerate(out["logits_per_target"]):
            known = batch["labels"][:, t] >= 0
            if known.any():
                cls = cls + focal_loss(logits[known], batch["labels"][known, t], cfg.focal_gamma, cfg.label_smoothing)
    else:
        cls = focal_loss(out["logits"], y, cfg.focal_gamma, cfg.label_smoothing)
    if "aux_clinical" in out and cfg.aux_weight > 0:
        aux = focal_loss(out["aux_clinical"], y, cfg.focal_gamma, cfg.label_smoothing)
        hw = batch["has_wood"]
        if hw.any():
            aux = aux + focal_loss(out["aux_wood"][hw], y[hw], cfg.focal_gamma, cfg.label_smoothing)
        cls = cls + cfg.aux_weight * aux
    losses["cls"] = cls
    for mod in ("clinical", "wood"):
        has = batch[f"has_{mod}_mask"]
        if "seg" in tasks and has.any():
            losses["seg"] = losses.get("seg", 0.0) + seg_loss(out[f"seg_{mod}"][has], batch[f"{mod}_mask"][has])
        has_box = batch[f"has_{mod}_box"]
        if "box" in tasks and has_box.any():
            losses["box"] = losses.get("box", 0.0) + box_loss(out[f"box_{mod}"][has_box], batch[f"{mod}_box"][has_box])
    hw = batch["has_wood"]
    if "con" in tasks and hw.any():
        losses["con"] = contrastive_loss(out["z_clinical"][hw], out["z_wood"][hw], (y[hw] == positive_index),
                                         cfg.margins)
    return losses
