"""The VMTL network: a shared timm encoder, clinical<->Wood's cross-attention and task heads.

Shapes for the default (convnextv2_tiny, 224 px): each photo gives a 768x7x7 map; mixed avg/max
pooling (SFS) makes 3x3 = 9 tokens; the clinical tokens attend to the Wood's tokens and back, three
times; the refined maps are resized to 7x7, concatenated and fused, then a conv neck gives 384x7x7
for the classifier. Segmentation, box and reconstruction heads read each modality's own refined
map, because the two photos are not pixel aligned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # annotations only: config names this module's networks in its variant registry
    from vitfeat.deep.vmtl.config import VMTLConfig


def create_backbone(name: str, weights: str = "hub", imgsz: int | None = None, **kwargs) -> nn.Module:
    """A timm model; ``weights`` is "hub", "random" or a local weight file (.pth / .safetensors).

    Offline, hub weights come from the local cache or fail at once with a message saying how to
    supply a file (the deep embedders' rule, vitfeat.deep.embedders).

    Parameters
    ----------
    name : str
        The timm model.
    weights : str, default "hub"
        ``hub``, ``random`` or a weight file.
    imgsz : int, optional
        Input size, for models that fix it at build time (ViT).
    **kwargs
        More ``timm.create_model`` arguments.

    Returns
    -------
    torch.nn.Module
    """
    if weights == "random":
        create = lambda kw: timm.create_model(name, pretrained=False, **kw)  # noqa: E731
    elif weights != "hub":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path} "
                                    "(expected hub, random or a .pth/.safetensors file)")
        create = lambda kw: timm.create_model(name, pretrained=True,  # noqa: E731
                                              pretrained_cfg_overlay=dict(file=str(path.resolve())), **kw)
    else:
        from vitfeat.deep.embedders import Backbone, create_from_hub

        create = lambda kw: create_from_hub(Backbone(name, name), kw)  # noqa: E731
    if imgsz and _accepts_img_size(name, kwargs):
        kwargs = {**kwargs, "img_size": imgsz}  # ViT-like models fix the input size at build time
    return create(kwargs)


def _accepts_img_size(name: str, kwargs: dict) -> bool:
    try:  # built on the meta device: no memory, no weights, milliseconds
        with torch.device("meta"):
            timm.create_model(name, pretrained=False, img_size=224, **kwargs)
        return True
    except TypeError:
        return False


def normalisation(name: str) -> tuple[tuple, tuple]:
    """The (mean, std) the backbone was pretrained with; used in training and inference alike.

    Parameters
    ----------
    name : str
        The timm model.

    Returns
    -------
    tuple
        ``(mean, std)``, three values each.
    """
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return tuple(cfg.mean), tuple(cfg.std)



def encode_wood(encode, fc: torch.Tensor, wood, has_wood, fill: torch.Tensor) -> torch.Tensor:
    """Wood's features for the cases that have a Wood's photo; ``fill`` stands in for the others.

    Parameters
    ----------
    encode : callable
        The backbone's encoder.
    fc : torch.Tensor
        The clinical features (their dtype is kept).
    wood : torch.Tensor or None
        The Wood's photos.
    has_wood : torch.Tensor or None
        (B,) bool (None: every case has one).
    fill : torch.Tensor
        Features for the cases without one.

    Returns
    -------
    torch.Tensor
    """
    if wood is None:
        return fill
    if has_wood is None:  # every case has one (no data-dependent branch: FLOP counting on meta works)
        return encode(wood).to(fc.dtype)
    if not has_wood.any():
        return fill
    fw = fill.clone()
    fw[has_wood] = encode(wood[has_wood]).to(fc.dtype)
    return fw

class MixedPool(nn.Module):
    """SFS pooling: lambda * avg + (1 - lambda) * max; lambda in (0, 1) through a sigmoid.

    Parameters
    ----------
    scale : int
        Pooling window (1: identity).
    """

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        self.mix_logit = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        """Pool ``x``; unchanged when the map is smaller than the window.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, H, W) feature map.

        Returns
        -------
        torch.Tensor
        """
        if self.scale <= 1 or min(x.shape[-2:]) < self.scale:
            return x
        lam = torch.sigmoid(self.mix_logit)
        return lam * F.avg_pool2d(x, self.scale) + (1 - lam) * F.max_pool2d(x, self.scale)


class CrossFeatureEnhancer(nn.Module):
    """CFE: tokens of ``target`` query the tokens of ``source``; learnable residual scalars.

    t' = alpha * attention + beta * target;  out = gamma * t' + delta * FFN(t').

    Parameters
    ----------
    dim : int
        Channels of both maps.
    heads : int
        Attention heads.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_q = nn.GroupNorm(1, dim)
        self.norm_kv = nn.GroupNorm(1, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ffn = nn.GroupNorm(1, dim)
        self.ffn = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1))
        self.alpha, self.beta, self.gamma, self.delta = (nn.Parameter(torch.ones(())) for _ in range(4))

    def forward(self, target, source):
        """``target`` refined by attending to ``source``.

        Parameters
        ----------
        target : torch.Tensor
            (B, C, H, W) map whose tokens query.
        source : torch.Tensor
            (B, C, H', W') map attended to.

        Returns
        -------
        torch.Tensor
            Same shape as ``target``.
        """
        b, c, h, w = target.shape
        q = self.norm_q(target).flatten(2).transpose(1, 2)
        kv = self.norm_kv(source).flatten(2).transpose(1, 2)
        z, _ = self.attn(q, kv, kv, need_weights=False)
        z = z.transpose(1, 2).reshape(b, c, h, w)
        t = self.alpha * z + self.beta * target
        return self.gamma * t + self.delta * self.ffn(self.norm_ffn(t))


def conv_bn_gelu(cin, cout, k=3):
    """Conv (no bias), BatchNorm, GELU.

    Parameters
    ----------
    cin, cout : int
        Channels in and out.
    k : int, default 3
        Kernel size (same padding).

    Returns
    -------
    torch.nn.Sequential
    """
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.GELU())


def mlp_head(cin, n_out, dropout):
    """Dropout, linear to half the width, GELU, dropout, linear to ``n_out``.

    Parameters
    ----------
    cin : int
        Input features.
    n_out : int
        Outputs.
    dropout : float
        Dropout probability.

    Returns
    -------
    torch.nn.Sequential
    """
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, max(cin // 2, 8)), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(max(cin // 2, 8), n_out))


class UpDecoder(nn.Module):
    """3x3 conv, ``n_up`` stride-2 transposed convs (halving width), 1x1, bilinear to the image size.

    Parameters
    ----------
    cin : int
        Input channels.
    n_out : int
        Output channels.
    n_up : int
        Transposed convolutions.
    """

    def __init__(self, cin: int, n_out: int, n_up: int):
        super().__init__()
        width = min(256, cin)
        layers = [conv_bn_gelu(cin, width)]
        for _ in range(n_up):
            nxt = max(width // 2, 16)
            layers += [nn.ConvTranspose2d(width, nxt, 4, stride=2, padding=1), nn.BatchNorm2d(nxt), nn.GELU()]
            width = nxt
        layers.append(nn.Conv2d(width, n_out, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x, size):
        """Decode ``x`` and resize to ``size``.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, h, w) feature map.
        size : tuple of int
            Output (H, W).

        Returns
        -------
        torch.Tensor
        """
        return F.interpolate(self.body(x), size=size, mode="bilinear", align_corners=False)


class VMTLNet(nn.Module):
    """Paired multi-task network. ``forward`` returns a dict; see :meth:`forward`.

    Parameters
    ----------
    cfg : VMTLConfig
        The run's configuration (backbone, widths, tasks, dropout).
    n_classes : int
        Classes of the target.
    """

    def __init__(self, cfg: VMTLConfig, n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg.backbone, cfg.weights, cfg.imgsz, features_only=True, out_indices=(-1,))
        channels = self.backbone.feature_info.channels()[-1]
        dim = cfg.dim or channels
        if dim % cfg.heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={cfg.heads}; set dim or heads")
        self.proj = nn.Identity() if dim == channels else nn.Conv2d(channels, dim, 1)
        self.pool = MixedPool(cfg.pool_scale)
        self.update_clinical = CrossFeatureEnhancer(dim, cfg.heads)
        self.update_wood = CrossFeatureEnhancer(dim, cfg.heads)
        self.fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.GELU(), nn.Conv2d(dim, dim, 1))
        neck = dim // 2
        self.neck = nn.Sequential(conv_bn_gelu(dim, neck), conv_bn_gelu(neck, neck))
        self.classifier = mlp_head(neck, n_classes, cfg.dropout)
        self.aux_clinical = mlp_head(dim, n_classes, cfg.dropout)
        self.aux_wood = mlp_head(dim, n_classes, cfg.dropout)
        tasks = set(cfg.tasks)
        self.seg_head = UpDecoder(dim, 1, 2) if "seg" in tasks else None
        self.box_head = (nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, 4))
                         if "box" in tasks else None)
        self.recon_head = UpDecoder(dim, 3, 3) if "recon" in tasks else None
        self.embedding_dim = neck

    def encode(self, x):
        """The backbone's last-stage map of ``x``, projected to the attention width.

        Parameters
        ----------
        x : torch.Tensor
            (B, 3, H, W) normalised photos.

        Returns
        -------
        torch.Tensor
        """
        return self.proj(self.backbone(x)[-1])

    def refine(self, clinical, wood=None, has_wood=None):
        """Refined (clinical, wood) maps at the backbone's last-stage size.

        Cases without a Wood's photo use their clinical map in the Wood's stream, so the
        cross-attention degrades to self-attention instead of attending to a blank image.

        Parameters
        ----------
        clinical : torch.Tensor
            (B, 3, H, W) normalised clinical photos.
        wood : torch.Tensor, optional
            (B, 3, H, W) Wood's photos.
        has_wood : torch.Tensor, optional
            (B,) bool, which cases have a Wood's photo (None: all).

        Returns
        -------
        tuple of torch.Tensor
        """
        fc = self.encode(clinical)
        fw = encode_wood(self.encode, fc, wood, has_wood, fill=fc)
        size = fc.shape[-2:]
        c, w = self.pool(fc), self.pool(fw)
        for _ in range(self.cfg.iterations):
            c = self.update_clinical(c, w)
            w = self.update_wood(w, c)
        if c.shape[-2:] != size:
            c = F.interpolate(c, size=size, mode="bilinear", align_corners=False)
            w = F.interpolate(w, size=size, mode="bilinear", align_corners=False)
        return c, w

    def forward(self, clinical, wood=None, has_wood=None, dense: bool = True):
        """Keys: logits, aux_clinical, aux_wood, embedding (fused), z_clinical, z_wood and, when
        ``dense`` and the head exists, seg_clinical/seg_wood (mask logits at input size) and
        box_clinical/box_wood (normalised cx, cy, w, h in 0..1).

        Parameters
        ----------
        clinical : torch.Tensor
            (B, 3, H, W) normalised clinical photos.
        wood : torch.Tensor, optional
            (B, 3, H, W) Wood's photos.
        has_wood : torch.Tensor, optional
            (B,) bool, which cases have a Wood's photo (None: all).
        dense : bool, default True
            Also the segmentation and box heads.

        Returns
        -------
        dict
        """
        c, w = self.refine(clinical, wood, has_wood)
        fused = self.neck(self.fuse(torch.cat([c, w], 1)))
        emb = fused.mean((2, 3))
        zc, zw = c.mean((2, 3)), w.mean((2, 3))
        out = {"logits": self.classifier(emb), "embedding": emb, "z_clinical": zc, "z_wood": zw,
               "aux_clinical": self.aux_clinical(zc), "aux_wood": self.aux_wood(zw)}
        if dense:
            size = clinical.shape[-2:]
            if self.seg_head is not None:
                out["seg_clinical"] = self.seg_head(c, size)
                out["seg_wood"] = self.seg_head(w, size)
            if self.box_head is not None:
                out["box_clinical"] = torch.sigmoid(self.box_head(zc))
                out["box_wood"] = torch.sigmoid(self.box_head(zw))
        return out

    def reconstruct(self, clinical, wood=None, has_wood=None):
        """Pixels (in the normalised input space, no squashing) predicted from masked inputs.

        Parameters
        ----------
        clinical : torch.Tensor
            (B, 3, H, W) normalised clinical photos.
        wood : torch.Tensor, optional
            (B, 3, H, W) Wood's photos.
        has_wood : torch.Tensor, optional
            (B,) bool, which cases have a Wood's photo (None: all).

        Returns
        -------
        tuple of torch.Tensor
            Clinical and Wood's reconstructions.
        """
        c, w = self.refine(clinical, wood, has_wood)
        size = clinical.shape[-2:]
        return self.recon_head(c, size), self.recon_head(w, size)


class BaselineNet(nn.Module):
    """Fine-tuned single backbone: pooled features of both photos, concatenated, one linear head per
    target (seed 002's multi-task classifier when there are several).

    A missing Wood's photo contributes zeros (and the model sees that through the zero block).

    Parameters
    ----------
    cfg : VMTLConfig
        The run's configuration (backbone, dropout).
    n_classes : int or list of int
        Classes of the target, or one count per target.
    """

    def __init__(self, cfg: VMTLConfig, n_classes):
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg.backbone, cfg.weights, cfg.imgsz, num_classes=0)
        n = self.backbone.num_features
        counts = list(n_classes) if isinstance(n_classes, (list, tuple)) else [n_classes]
        self.heads = nn.ModuleList(nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * n, k)) for k in counts)
        self.embedding_dim = 2 * n

    def forward(self, clinical, wood=None, has_wood=None, dense: bool = True):
        """Keys: logits (the first target's), logits_per_target (one per head), embedding, z_*.

        Parameters
        ----------
        clinical : torch.Tensor
            (B, 3, H, W) normalised clinical photos.
        wood : torch.Tensor, optional
            (B, 3, H, W) Wood's photos.
        has_wood : torch.Tensor, optional
            (B,) bool, which cases have a Wood's photo (None: all).
        dense : bool, default True
            Ignored (no dense heads).

        Returns
        -------
        dict
        """
        fc = self.backbone(clinical)
        fw = encode_wood(self.backbone, fc, wood, has_wood, fill=torch.zeros_like(fc))
        emb = torch.cat([fc, fw], 1)
        logits = [head(emb) for head in self.heads]
        return {"logits": logits[0], "logits_per_target": logits, "embedding": emb, "z_clinical": fc, "z_wood": fw}


def build_model(cfg: VMTLConfig, n_classes) -> nn.Module:
    """The network of ``cfg.variant`` (from the VARIANTS registry). ``n_classes`` is an int, or for
    a multi-target baseline a list with one class count per target.

    Parameters
    ----------
    cfg : VMTLConfig
        The configuration (its ``network``).
    n_classes : int or list of int
        Class count(s).

    Returns
    -------
    torch.nn.Module
    """
    import importlib

    module, _, attr = cfg.network.partition(":")
    return getattr(importlib.import_module(module), attr)(cfg, n_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not).

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters())


def random_patch_mask(shape, patch: int, ratio: float, device=None) -> torch.Tensor:
    """(B, 1, H, W) float mask, 1 on the hidden patches (MAE-style, ``ratio`` of the patches).

    Parameters
    ----------
    shape : tuple
        (B, C, H, W) of the images.
    patch : int
        Patch side in pixels.
    ratio : float
        Share of patches hidden.
    device : torch.device, optional
        Where the mask is made.

    Returns
    -------
    torch.Tensor
    """
    b, _, h, w = shape
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    n = gh * gw
    keep = max(1, n - max(1, round(ratio * n)))
    scores = torch.rand(b, n, device=device)
    hidden = torch.ones(b, n, device=device)
    hidden.scatter_(1, scores.argsort(1)[:, :keep], 0.0)
    grid = hidden.view(b, 1, gh, gw)
    return grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :h, :w]
