"""timm image embedders: a backbone, its weights and its preprocessing, turning crops into vectors.

Weights are one of

- ``"hub"``: timm's pretrained weights (downloaded once by timm into the Hugging Face cache). When the
  hub cannot be reached, only the cache is tried (``HF_HUB_OFFLINE``), so a missing weight fails in
  a fraction of a second with a message saying how to supply a file, instead of after ~50 s of retries;
- a local ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors`` file, loaded by timm through
  ``pretrained_cfg_overlay=dict(file=...)`` (classifier weights in the file are dropped);
- ``"random"``: random initialisation (seeded, so reproducible). Allowed for tests and plumbing, but
  the features mean little: a warning is raised and the fact is recorded in the provenance.

Example::

    emb = Embedder("resnet50", weights="/data/weights/resnet50.a1_in1k.safetensors")
    vectors = emb.embed([crop1, crop2])          # (2, 2048) float32
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vitfeat.dataset import file_hash
from vitfeat.deep.runtime import hub_offline, hub_reachable, select_device
from vitfeat.registry import Registry

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights that cannot be had on this machine; the message says how to supply them."""


class RandomWeightsWarning(UserWarning):
    """Features from a randomly initialised backbone carry little information about the lesion."""


@dataclass(frozen=True)
class Backbone:
    """A named timm backbone: the timm model name and the keyword arguments it is built with.

    Attributes
    ----------
    name : str
        The short name.
    timm_name : str
        The timm model.
    create_kwargs : dict
        Fixed ``timm.create_model`` arguments.
    img_size : int or None
        Input size (None: the model's pretrained size).
    """

    name: str
    timm_name: str
    create_kwargs: dict = field(default_factory=dict)
    img_size: int | None = None  # None: the model's pretrained input size

    @property
    def description(self) -> str:
        """One line for ``vitfeat list backbone``: the timm model and its fixed build arguments."""
        extra = ", ".join(f"{k}={v}" for k, v in self.create_kwargs.items())
        return f"timm {self.timm_name}" + (f" ({extra})" if extra else "")


#: Backbones by short name (entry-point group ``vitfeat.backbones``); any timm name works besides.
BACKBONES: Registry[Backbone] = Registry("backbone", "vitfeat.backbones")
_BACKBONES = BACKBONES._entries  # the registry's dict, under its historical name


def register_backbone(name: str, timm_name: str | None = None, **create_kwargs) -> Backbone:
    """Give a timm model a short vitfeat name (and fixed build arguments such as ``img_size``).

    Parameters
    ----------
    name : str
        The short name (``deep:<name>`` families, ``--backbone``).
    timm_name : str, optional
        The timm model it builds (default: ``name``).
    **create_kwargs
        Fixed keyword arguments of ``timm.create_model`` (``img_size=224``).

    Returns
    -------
    Backbone
    """
    bb = Backbone(name, timm_name or name, dict(create_kwargs), create_kwargs.get("img_size"))
    BACKBONES.register(name, bb, overwrite=True)
    return bb


# The backbones the VMSL/VMTL systems and their baselines use, plus ViT and the SAM image encoder.
# SAM's encoder is built for 1024 px; timm accepts img_size=224 and resamples its position embedding.
register_backbone("convnextv2_tiny")
register_backbone("resnet50")
register_backbone("vit_base_patch16_224")
register_backbone("vit_small_patch16_224")
register_backbone("samvit_base_patch16", img_size=224)


def available_backbones() -> list[str]:
    """Short names registered here; any other timm model name is accepted too."""
    return BACKBONES.list()


def get_backbone(name: str) -> Backbone:
    """A registered backbone, or any model timm knows under that name (e.g. ``resnet18``, ``test_vit``).

    Parameters
    ----------
    name : str
        A short name of :data:`BACKBONES` or a timm model name.

    Returns
    -------
    Backbone

    Raises
    ------
    KeyError
        Neither.
    """
    if name in BACKBONES:
        return BACKBONES.get(name)
    import timm

    if not timm.is_model(name):
        raise KeyError(f"unknown backbone '{name}': neither a vitfeat backbone ({', '.join(available_backbones())}) "
                       "nor a timm model name (see timm.list_models())")
    return Backbone(name, name)


def column_stem(name: str) -> str:
    """The backbone's part of a column name: lower case, characters other than [a-z0-9_] as '_'.

    Parameters
    ----------
    name : str
        Backbone name.

    Returns
    -------
    str
    """
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")


def describe_weights(weights: str | Path) -> tuple[str, str]:
    """``(kind, identity)`` of a weights spec: kind is hub|file|random; identity goes into cache keys.

    A file is identified by its content hash, so that replacing it invalidates cached features.

    Parameters
    ----------
    weights : str or path-like
        ``hub``, ``random`` or a weight file.

    Returns
    -------
    tuple of str
    """
    w = str(weights)
    if w in ("hub", "pretrained", ""):
        return "hub", "hub"
    if w == "random":
        return "random", "random"
    path = Path(w).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path} (expected 'hub', 'random' or a local "
                                f"{'/'.join(WEIGHT_SUFFIXES)} file)")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(f"{path}: unsupported weights file type '{path.suffix}' (use {', '.join(WEIGHT_SUFFIXES)})")
    return "file", f"file:{file_hash(path)}"


def build_model(backbone: Backbone, weights: str | Path = "hub", *, seed: int = 0):
    """Create the timm model without classifier (``num_classes=0``: pooled features), in eval mode.

    Parameters
    ----------
    backbone : Backbone
        The backbone.
    weights : str or path-like, default "hub"
        ``hub``, ``random`` or a weight file.
    seed : int, default 0
        Seed of random initialisation.

    Returns
    -------
    torch.nn.Module
    """
    import timm
    import torch

    kind, _ = describe_weights(weights)
    kwargs = dict(backbone.create_kwargs, num_classes=0)
    if kind == "random":
        # Seeded in a private RNG scope so that random features are reproducible run to run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(backbone.timm_name, pretrained=False, **kwargs)
    elif kind == "file":
        path = str(Path(weights).expanduser().resolve())
        model = timm.create_model(backbone.timm_name, pretrained=True,
                                  pretrained_cfg_overlay=dict(file=path), **kwargs)
    else:
        model = create_from_hub(backbone, kwargs)
    return model.eval()


def create_from_hub(backbone: Backbone, kwargs: dict):
    """``timm.create_model(pretrained=True)``; offline, from the local cache only.

    Parameters
    ----------
    backbone : Backbone
        The backbone to build.
    kwargs : dict
        Further ``timm.create_model`` arguments (``features_only``, ``num_classes``, ...).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    WeightsUnavailableError
        Offline and not in the cache; the message says how to supply a weights file.
    """
    import timm

    if hub_reachable():
        return timm.create_model(backbone.timm_name, pretrained=True, **kwargs)
    # Offline: the local Hugging Face cache is the only place left; fail at once if it is not there.
    with hub_offline():
        try:
            return timm.create_model(backbone.timm_name, pretrained=True, **kwargs)
        # huggingface_hub raises several types (LocalEntryNotFound, OSError, ...); every one means
        # "not available offline", re-raised below as one clear error naming the way out
        except Exception as exc:  # noqa: BLE001
            cfg = timm.models.get_pretrained_cfg(backbone.timm_name)
            hub_id = getattr(cfg, "hf_hub_id", None) or backbone.timm_name
            raise WeightsUnavailableError(
                f"pretrained weights for '{backbone.name}' (timm '{backbone.timm_name}', hub id '{hub_id}') "
                f"are not in the local cache and the Hugging Face hub cannot be reached ({type(exc).__name__}).\n"
                f"Supply a local weights file instead: download 'model.safetensors' from "
                f"https://huggingface.co/{hub_id} on a machine with internet, copy it here and use "
                f"weights=PATH (CLI: --families deep:{backbone.name}@/path/to/model.safetensors); "
                f"or use @random for plumbing tests only."
            ) from None


class Embedder:
    """A timm backbone in eval mode that turns RGB uint8 crops into ``(N, D)`` float32 vectors.

    ``device="auto"`` uses CUDA when present. On CUDA, inference runs in channels_last memory format
    under autocast (``amp=True``, ``amp_dtype`` float16 by default, or bfloat16); on CPU in float32.
    Inputs are resized to the backbone's square input size and normalised with the mean/std of its
    pretrained configuration.

    Parameters
    ----------
    backbone : str
        A registered backbone or timm name.
    weights : str or path-like, default "hub"
        ``hub``, ``random`` or a weight file.
    img_size : int, optional
        Input size (default: the backbone's).
    device : str, default "auto"
        Torch device.
    batch_size : int, default 32
        Images per forward pass.
    amp : bool, default True
        Autocast on CUDA.
    seed : int, default 0
        Seed of random initialisation.
    amp_dtype : {"float16", "bfloat16"}, default "float16"
        Autocast precision.
    """

    def __init__(self, backbone: str, weights: str | Path = "hub", *, img_size: int | None = None,
                 device: str | None = "auto", batch_size: int = 32, amp: bool = True, seed: int = 0,
                 amp_dtype: str = "float16"):
        import torch

        self.backbone = get_backbone(backbone)
        self.weights = str(weights)
        self.weights_kind, self.weights_id = describe_weights(weights)
        if self.weights_kind == "random":
            message = (f"backbone '{backbone}' has RANDOM weights: its features say little about the "
                       "lesions (recorded in provenance); use hub or a local weights file for real analyses")
            warnings.warn(message, RandomWeightsWarning, stacklevel=2)
        self.device = select_device(device)
        self.batch_size = int(batch_size)
        self.seed = seed
        self.model = build_model(self.backbone, weights, seed=seed)
        cfg = self.model.pretrained_cfg or {}
        self.img_size = int(img_size or self.backbone.img_size or cfg.get("input_size", (3, 224, 224))[-1])
        self.mean = np.asarray(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=np.float32)
        self.std = np.asarray(cfg.get("std", (0.229, 0.224, 0.225)), dtype=np.float32)
        self.cuda = self.device.type == "cuda"
        self.amp = bool(amp) and self.cuda
        self.amp_dtype = getattr(torch, amp_dtype)  # float16 (default) or bfloat16
        self.model.to(self.device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.num_features = self._probe_dim()

    @property
    def name(self) -> str:
        return self.backbone.name

    @property
    def version(self) -> str:
        """Changes whenever the vectors would: backbone, weights identity, input size."""
        return f"{self.backbone.timm_name}|{self.weights_id}|{self.img_size}px"

    def describe(self) -> dict:
        """Provenance stored with the features: backbone, weights and their identity, input size, normalisation."""
        return {
            "backbone": self.backbone.name,
            "timm_model": self.backbone.timm_name,
            "weights": self.weights_kind,
            "weights_source": self.weights if self.weights_kind != "hub" else
            (self.model.pretrained_cfg or {}).get("hf_hub_id", "timm hub"),
            "weights_id": self.weights_id,
            "random_weights": self.weights_kind == "random",
            "img_size": self.img_size,
            "num_features": self.num_features,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    def _probe_dim(self) -> int:
        return int(self._forward(np.zeros((1, self.img_size, self.img_size, 3), np.uint8)).shape[1])

    def _prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        from vitfeat.deep.roi import square_resize

        batch = np.empty((len(images), self.img_size, self.img_size, 3), np.uint8)
        for i, img in enumerate(images):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"image {i}: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
            batch[i] = img if img.shape[:2] == (self.img_size, self.img_size) else square_resize(img, self.img_size)
        return batch

    def _forward(self, batch_uint8: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch_uint8).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.as_tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=self.amp_dtype) if self.amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = self.model(x)
        return out.float().cpu().numpy()

    def embed(self, images: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        """Embed RGB uint8 images of any size (resized to the input size): ``(N, num_features)`` float32.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            (H, W, 3) uint8 crops.
        progress : bool, default False
            Progress bar.

        Returns
        -------
        numpy.ndarray
        """
        images = list(images)
        if not images:
            return np.zeros((0, self.num_features), np.float32)
        chunks = range(0, len(images), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"embed {self.name}", unit="batch")
        out = [self._forward(self._prepare(images[i:i + self.batch_size])) for i in chunks]
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)
