"""The published VMTL (aaalzh/VMTL, ``models/VMTL/VMTL.py``) re-implemented exactly: network and losses.

Every figure here is in ``../shared/notes/vmtl.md`` ("Corrections" override the rest). With
convnextv2_tiny at 224 px:

* one shared backbone; only its last map (768x7x7) is used; stages 0-2 frozen;
* ONE cross-attention module for both directions. Each CFE call pools both maps with SFS
  (lambda*avg + (1-lambda)*max, stride 2: 7->3, then 6->3), attends with Q from the other stream
  and K, V from the stream being updated (8 heads, 9 tokens: weights (B, 8, 9, 9)), z = o_conv(AV),
  t' = alpha*z + beta*main, t = gamma*t' + delta*FFN(t'), and upsamples x2 (3->6). The clinic map is
  updated from Wood's, then Wood's from the updated clinic map, three times; a 1x1-GELU-1x1 fuses the
  two 768x6x6 maps; z_c and z_w are spatial means of the LAST calls' z (before the residual);
* fusion_conv (2x [3x3 conv with bias, BN, GELU], 768->384) and four heads on the fused 384x6x6 map:
  classifier, box (4x6x6, no activation), segmentation (logits at input size, trained on the Wood's
  mask) and reconstruction (sigmoid, trained against both normalised inputs);
* three z classifiers (z_c, z_w, z_f) that the original builds and never trains (its auxiliary loss
  looks them up on the wrong object and swallows the error): kept, so the parameter count is exact,
  and left out of every loss, as there.

The unused scalar ``beta`` of the original's ``MultiTaskModel`` is not built (it enters no
computation; the published total, 45,004,053, does not count it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vitfeat.deep.vmtl.model import create_backbone, encode_wood

if TYPE_CHECKING:  # annotations only: config names this module's network in its variant registry
    from vitfeat.deep.vmtl.config import VMTLConfig


class SFSCrossAttention(nn.Module):
    """The original ``ConvQKVAttention``: iterated clinic<->Wood's cross-feature enhancement (CFE).

    Parameters
    ----------
    channels : int
        Channels of the backbone's last stage.
    heads : int, default 8
        Attention heads.
    iterations : int, default 3
        CFE rounds.
    scale : int, default 2
        SFS pooling window.
    """

    def __init__(self, channels: int, heads: int = 8, iterations: int = 3, scale: int = 2):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels are not divisible by {heads} heads")
        self.heads, self.iterations, self.scale = heads, iterations, scale
        self.sfs_lambda = nn.Parameter(torch.tensor(0.5))
        self.q_conv, self.k_conv, self.v_conv, self.o_conv = (nn.Conv2d(channels, channels, 1) for _ in range(4))
        self.ffn = nn.Sequential(nn.Conv2d(channels, 4 * channels, 1), nn.GELU(), nn.Conv2d(4 * channels, channels, 1))
        self.fusion_layers = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.GELU(),
                                           nn.Conv2d(channels, channels, 1))
        self.alpha, self.beta, self.gamma, self.delta = (nn.Parameter(torch.tensor(1.0)) for _ in range(4))

    def sfs(self, x):
        """Mixed pooling; lambda is unconstrained, as in the original.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, H, W) feature map.

        Returns
        -------
        torch.Tensor
        """
        return self.sfs_lambda * F.avg_pool2d(x, self.scale) + (1 - self.sfs_lambda) * F.max_pool2d(x, self.scale)

    def cfe(self, main, aux):
        """Update ``main`` from ``aux``: (enhanced map, attention weights, z).

        Parameters
        ----------
        main, aux : torch.Tensor
            (B, C, H, W) maps; ``aux``'s tokens query ``main``'s.

        Returns
        -------
        tuple of torch.Tensor
        """
        main, aux = self.sfs(main), self.sfs(aux)
        b, c, h, w = main.shape

        def tokens(x):  # (B, heads, tokens, head_dim)
            return x.view(b, self.heads, c // self.heads, h * w).transpose(2, 3)

        q, k, v = tokens(self.q_conv(aux)), tokens(self.k_conv(main)), tokens(self.v_conv(main))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)
        z = self.o_conv((weights @ v).transpose(2, 3).reshape(b, c, h, w))
        t = self.alpha * z + self.beta * main
        t = self.gamma * t + self.delta * self.ffn(t)
        return F.interpolate(t, scale_factor=self.scale, mode="bilinear", align_corners=False), weights, z

    def forward(self, clinic, wood):
        """(fused map, (clinic attention, Wood's attention), (z_c, z_w, z_f)).

        Parameters
        ----------
        clinic, wood : torch.Tensor
            (B, C, H, W) maps of the two photos.

        Returns
        -------
        tuple
        """
        for _ in range(self.iterations):
            clinic, attn_c, z_c = self.cfe(clinic, wood)
            wood, attn_w, z_w = self.cfe(wood, clinic)
        fused = self.fusion_layers(torch.cat([clinic, wood], 1))
        return fused, (attn_c, attn_w), (z_c.mean((2, 3)), z_w.mean((2, 3)), fused.mean((2, 3)))


def _bn_gelu(conv: nn.Module, width: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(width), nn.GELU()]


def _decoder(hidden: int, widths: tuple, n_out: int) -> nn.Sequential:
    """3x3 conv to 256, stride-2 transposed convs through ``widths``, 1x1 to ``n_out``."""
    layers = _bn_gelu(nn.Conv2d(hidden, 256, 3, padding=1), 256)
    for cin, cout in zip((256,) + widths[:-1], widths):
        layers += _bn_gelu(nn.ConvTranspose2d(cin, cout, 4, 2, 1), cout)
    return nn.Sequential(*layers, nn.Conv2d(widths[-1], n_out, 1))


def _z_classifier(hidden: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Dropout(0.3), nn.Linear(hidden // 2, n_classes))


class OriginalVMTLNet(nn.Module):
    """The original ``MultiTaskModel``; ``forward`` returns vitfeat's keys (see :meth:`forward`).

    Parameters
    ----------
    cfg : VMTLConfig
        The run's configuration (backbone, hidden width, heads, frozen stages).
    n_classes : int
        Classes of the target.
    """

    TASK_HEADS = {"recon": "reconstruction_head", "box": "detection_head", "seg": "segmentation_head"}
    ALWAYS_TRAINED = ("backbone", "cross_attention", "fusion_conv", "classifier",
                      "z_c_classifier", "z_w_classifier", "z_f_classifier")

    def __init__(self, cfg: VMTLConfig, n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg.backbone, cfg.weights, cfg.imgsz, features_only=True)
        channels = self.backbone.feature_info.channels()[-1]
        hidden = cfg.hidden_dim
        self.cross_attention = SFSCrossAttention(channels, cfg.heads, cfg.iterations, cfg.pool_scale)
        self.fusion_conv = nn.Sequential(*_bn_gelu(nn.Conv2d(channels, hidden, 3, padding=1), hidden),
                                         *_bn_gelu(nn.Conv2d(hidden, hidden, 3, padding=1), hidden))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout),
                                        nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(hidden // 2, n_classes))
        self.detection_head = nn.Sequential(*_bn_gelu(nn.Conv2d(hidden, 256, 3, padding=1), 256), nn.Conv2d(256, 4, 1))
        self.segmentation_head = _decoder(hidden, (128, 64), 1)
        self.reconstruction_head = _decoder(hidden, (128, 64, 32), 3)
        # built and never trained by the original (see the module docstring)
        self.z_c_classifier, self.z_w_classifier, self.z_f_classifier = (
            _z_classifier(hidden, n_classes) for _ in range(3))
        self.embedding_dim = hidden
        self.frozen = frozen_backbone_stages(self.backbone, cfg.frozen_stages)

    def forward(self, clinical, wood=None, has_wood=None, dense: bool = True):
        """Keys: logits (B, C), embedding (the classifier's pooled 384-d input), z_clinical, z_wood
        (spatial means of the attention output z), z_fused, attention (two (B, 8, 9, 9) tensors at
        224 px), fused_map (the attention module's (B, 768, 6, 6)), fused (after fusion_conv,
        (B, 384, 6, 6)), detection (B, 4, 6, 6), box_clinical (its spatial mean, the quantity the
        box loss compares), seg_wood (mask logits at input size), reconstruction
        (B, 3, H, W) in 0..1. A case without a Wood's photo uses its clinical map in both streams.

        Parameters
        ----------
        clinical : torch.Tensor
            (B, 3, H, W) normalised clinical photos.
        wood : torch.Tensor, optional
            (B, 3, H, W) Wood's photos.
        has_wood : torch.Tensor, optional
            (B,) bool (None: all).
        dense : bool, default True
            Accepted for the common signature; every head always runs.

        Returns
        -------
        dict
        """
        fc = self.backbone(clinical)[-1]
        fw = encode_wood(lambda x: self.backbone(x)[-1], fc, wood, has_wood, fill=fc)
        fused_map, attention, (zc, zw, zf) = self.cross_attention(fc, fw)
        fused = self.fusion_conv(fused_map)
        size = clinical.shape[-2:]
        detection = self.detection_head(fused)
        return {"logits": self.classifier(fused), "embedding": fused.mean((2, 3)), "fused_map": fused_map,
                "fused": fused,
                "z_clinical": zc, "z_wood": zw, "z_fused": zf, "attention": attention,
                "detection": detection, "box_clinical": detection.mean((2, 3)),
                "seg_wood": F.interpolate(self.segmentation_head(fused), size=size, mode="bilinear",
                                          align_corners=False),
                "reconstruction": torch.sigmoid(F.interpolate(self.reconstruction_head(fused), size=size,
                                                              mode="bilinear", align_corners=False))}

    def set_stage_trainable(self, tasks) -> None:
        """The original's ``freeze_model_parts``: the shared trunk and the classifiers always train,
        a task head only in the stages that train its task; frozen backbone stages stay frozen.

        Parameters
        ----------
        tasks : iterable of str
            The tasks the current stage trains.
        """
        heads = {self.TASK_HEADS[t] for t in tasks if t in self.TASK_HEADS}
        every = set(self.TASK_HEADS.values()) <= heads
        for name, child in self.named_children():
            on = every or name in self.ALWAYS_TRAINED or name in heads
            child.requires_grad_(on)
        for module in self.frozen:
            module.requires_grad_(False)


def frozen_backbone_stages(backbone: nn.Module, stages) -> list[nn.Module]:
    """The backbone modules of ``stages`` (timm ``stages_<i>`` / ``stages.<i>`` / ResNet ``layer<i+1>``).

    They are frozen here.

    Parameters
    ----------
    backbone : torch.nn.Module
        A timm backbone.
    stages : iterable of int
        Stage indices.

    Returns
    -------
    list of torch.nn.Module
    """
    children = dict(backbone.named_modules())
    found = []
    for i in stages:
        module = next((children[n] for n in (f"stages_{i}", f"stages.{i}", f"layer{i + 1}") if n in children), None)
        if module is None:
            raise ValueError(f"frozen stage {i}: the backbone has no stages_{i} / layer{i + 1} module "
                             f"(top-level modules: {', '.join(n for n, _ in backbone.named_children())})")
        module.requires_grad_(False)
        found.append(module)
    return found


# ----------------------------------------------------------------------------------------- losses


def original_focal_loss(logits, target, alpha: float = 2.0, gamma: float = 3.0, smoothing: float = 0.05):
    """alpha * (1 - p_t)^gamma * sum_c -y~_c log p_c, batch mean. Smoothing in the original's
    convention: 1 - eps on the true class and eps / (C - 1) on each other class (for two classes,
    torch's ``label_smoothing=2*eps``).

    Parameters
    ----------
    logits : torch.Tensor
        (B, C) class logits.
    target : torch.Tensor
        (B,) class indices.
    alpha, gamma : float
        Scale and focusing exponent.
    smoothing : float
        eps.

    Returns
    -------
    torch.Tensor
    """
    n_classes = logits.shape[1]
    logp = F.log_softmax(logits.float(), 1)
    smooth = torch.full_like(logp, smoothing / max(n_classes - 1, 1)).scatter_(1, target[:, None], 1.0 - smoothing)
    p_true = logp.gather(1, target[:, None]).squeeze(1).exp()
    return (alpha * (1 - p_true) ** gamma * -(smooth * logp).sum(1)).mean()


def box_mean_mse(detection, boxes, has_box, empty_weight: float = 0.1):
    """MSE between the spatial mean of the 4-channel box map and the case's (cx, cy, w, h); a case
    without a box is compared with (0.5, 0.5, 0, 0); the batch mean is scaled by ``empty_weight``
    only when no case of the batch has a box.

    Parameters
    ----------
    detection : torch.Tensor
        (B, 4, h, w) box map.
    boxes : torch.Tensor
        (B, 4) ``(cx, cy, w, h)``.
    has_box : torch.Tensor
        (B,) bool.
    empty_weight : float, default 0.1
        Scale of a batch without any box.

    Returns
    -------
    torch.Tensor
    """
    pred = detection.float().mean((2, 3))
    empty = torch.tensor([0.5, 0.5, 0.0, 0.0], device=pred.device)
    target = torch.where(has_box[:, None], boxes.float(), empty)
    loss = ((pred - target) ** 2).mean(1).mean()
    return loss if has_box.any() else loss * empty_weight


def recon_both_mse(reconstruction, clinical, wood):
    """Mean over cases of MSE(reconstruction, clinical) + MSE(reconstruction, Wood's), halved.

    Parameters
    ----------
    reconstruction, clinical, wood : torch.Tensor
        (B, 3, H, W) images.

    Returns
    -------
    torch.Tensor
    """
    rec = reconstruction.float()
    per_case = ((rec - clinical) ** 2).mean((1, 2, 3)) + ((rec - wood) ** 2).mean((1, 2, 3))
    return per_case.sum() / (2 * len(rec))


class SummedContrastive(nn.Module):
    """Squared hinge on cos(z_c, z_w) with learnable margins: mean over stable cases of
    max(0, m+ - s)^2 PLUS mean over non-stable cases of max(0, s - m-)^2 (an absent class adds 0).

    Parameters
    ----------
    margins : tuple of float, default (0.9, 0.2)
        Initial m+ and m-.
    """

    def __init__(self, margins=(0.9, 0.2)):
        super().__init__()
        self.pos_margin = nn.Parameter(torch.tensor(float(margins[0])))
        self.neg_margin = nn.Parameter(torch.tensor(float(margins[1])))

    def forward(self, z_clinical, z_wood, is_active):
        """The loss of a batch.

        Parameters
        ----------
        z_clinical, z_wood : torch.Tensor
            (B, D) embeddings.
        is_active : torch.Tensor
            (B,) bool.

        Returns
        -------
        torch.Tensor
        """
        s = F.cosine_similarity(F.normalize(z_clinical.float(), dim=1), F.normalize(z_wood.float(), dim=1), dim=1)
        loss = s.new_zeros(())
        stable = ~is_active
        if stable.any():
            loss = loss + (torch.clamp(self.pos_margin - s[stable], min=0.0) ** 2).mean()
        if is_active.any():
            loss = loss + (torch.clamp(s[is_active] - self.neg_margin, min=0.0) ** 2).mean()
        return loss


def original_task_losses(out: dict, batch: dict, tasks, cfg: VMTLConfig, contrastive: SummedContrastive,
                         positive_index: int) -> dict:
    """The original's per-task losses for one batch, restricted to ``tasks``.

    Segmentation is BCE on the Wood's mask (a missing mask counts as empty, as a missing LabelMe file
    does there); cases without a Wood's photo (which the original never has) are left out of it, and
    their reconstruction target is the clinical photo twice.

    Parameters
    ----------
    out : dict
        The network's outputs.
    batch : dict
        The batch.
    tasks : iterable of str
        The stage's tasks.
    cfg : VMTLConfig
        Loss settings.
    contrastive : SummedContrastive
        The contrastive term (learnable margins).
    positive_index : int
        Index of the non-stable class.

    Returns
    -------
    dict
    """
    y = batch["label"]
    losses = {"cls": original_focal_loss(out["logits"], y, cfg.focal_alpha, cfg.focal_gamma, cfg.label_smoothing)}
    hw = batch["has_wood"]
    if "box" in tasks:
        losses["box"] = box_mean_mse(out["detection"], batch["clinical_box"], batch["has_clinical_box"])
    if "seg" in tasks and hw.any():
        losses["seg"] = F.binary_cross_entropy_with_logits(out["seg_wood"][hw].float(), batch["wood_mask"][hw])
    if "recon" in tasks:
        wood = torch.where(hw[:, None, None, None], batch["wood"], batch["clinical"])
        losses["recon"] = recon_both_mse(out["reconstruction"], batch["clinical"], wood)
    if "con" in tasks:
        losses["con"] = contrastive(out["z_clinical"], out["z_wood"], y == positive_index)
    return losses
