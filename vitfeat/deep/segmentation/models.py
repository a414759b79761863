"""Segmentation architectures by name: smp UNet / DeepLabV3 / DeepLabV3+ and UltraLight VM-UNet.

Every model maps a (B, 3, H, W) float tensor to (B, num_classes, H, W) **logits** here; H and W
must be multiples of 32. Each architecture also names the input normalisation it was designed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from vitfeat.registry import Registry

DEFAULT_ENCODER = "resnet34"


@dataclass(frozen=True)
class Architecture:
    """A registered segmentation architecture (:data:`ARCHITECTURES`).

    Attributes
    ----------
    name : str
        ``--arch`` value.
    build : callable
        ``build(num_classes=..., [encoder=..., encoder_weights=...]) -> nn.Module`` returning logits.
    normalize : str
        ``imagenet`` or ``minmax255``.
    uses_encoder : bool
        Takes an smp encoder.
    summary : str
        One line.
    """
    name: str
    build: Callable[..., nn.Module]
    normalize: str  # "imagenet" (pretrained encoders) or "minmax255" (UltraLight's per-image rescale)
    uses_encoder: bool
    summary: str


#: Segmentation architectures by name (entry-point group ``vitfeat.seg_architectures``).
ARCHITECTURES: Registry[Architecture] = Registry("segmentation architecture", "vitfeat.seg_architectures")
_ARCHITECTURES = ARCHITECTURES._entries  # the registry's dict, in registration order


def register_architecture(name: str, normalize: str, uses_encoder: bool, summary: str):
    """Decorator registering ``build(num_classes=..., [encoder=..., encoder_weights=...]) -> nn.Module``.

    Parameters
    ----------
    name : str
        The architecture's name (``--arch``).
    normalize : {"imagenet", "minmax255"}
        The input normalisation it was designed for.
    uses_encoder : bool
        Whether ``build`` takes ``encoder`` and ``encoder_weights`` (smp encoders).
    summary : str
        One line, shown by ``vitfeat list segmentation``.

    Returns
    -------
    callable
        The decorator; it returns ``build`` unchanged.
    """
    def wrap(build):
        ARCHITECTURES.register(name, Architecture(name, build, normalize, uses_encoder, summary), overwrite=True)
        return build
    return wrap


def available_architectures() -> list[str]:
    """Registered architecture names, in registration order (built-in ones first)."""
    ARCHITECTURES.load_entry_points()
    return list(_ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    """The architecture called ``name``.

    Parameters
    ----------
    name : str
        A registered name.

    Returns
    -------
    Architecture

    Raises
    ------
    ValueError
        Naming the available architectures.
    """
    try:
        return ARCHITECTURES.get(name)
    except KeyError:
        raise ValueError(f"unknown architecture '{name}' (available: {', '.join(available_architectures())})") from None


def build_model(arch: str, num_classes: int = 1, encoder: str = DEFAULT_ENCODER,
                encoder_weights: str | None = None) -> nn.Module:
    """Build an architecture that returns logits.

    ``encoder_weights`` (smp architectures only): ``None``/"none" (random), "hub" (smp's ImageNet
    weights, downloaded once into the torch/HF cache), or the path of a local state_dict
    (``.pt``/``.pth``/``.safetensors``) for the encoder.

    Parameters
    ----------
    arch : str
        A registered architecture.
    num_classes : int, default 1
        Output channels.
    encoder : str
        The smp encoder (encoder architectures only).
    encoder_weights : str, optional
        See above.

    Returns
    -------
    torch.nn.Module
    """
    spec = get_architecture(arch)
    if spec.uses_encoder:
        return spec.build(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights)
    if encoder_weights not in (None, "none"):
        raise ValueError(f"{arch} has no pretrained encoder; encoder_weights must be none")
    return spec.build(num_classes=num_classes)


def _smp_model(cls_name: str, num_classes: int, encoder: str, encoder_weights: str | None) -> nn.Module:
    import segmentation_models_pytorch as smp

    hub = encoder_weights == "hub"
    local = encoder_weights not in (None, "none", "hub")
    try:
        model = getattr(smp, cls_name)(encoder_name=encoder, encoder_weights="imagenet" if hub else None,
                                       in_channels=3, classes=num_classes)
    except KeyError as exc:
        raise ValueError(f"unknown encoder '{encoder}' for {cls_name}: {exc}") from None
    except OSError as exc:  # offline hub, missing cache
        raise ValueError(f"cannot fetch ImageNet weights for encoder '{encoder}' ({exc}); "
                         "pass a local weight file instead of 'hub'") from None
    if local:
        load_encoder_weights(model.encoder, encoder_weights)
    return model


def load_encoder_weights(encoder: nn.Module, path) -> None:
    """Load a local state_dict into an smp encoder; a file that does not fit fails loudly.

    Parameters
    ----------
    encoder : torch.nn.Module
        The smp encoder.
    path : path-like
        The state_dict file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: encoder weight file not found")
    from vitfeat.deep.runtime import load_checkpoint

    state = load_checkpoint(path)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    # timm/torchvision classifier heads are not part of an smp encoder
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "head.", "classifier."))}
    # checked here: smp encoders override load_state_dict and do not all report mismatches
    expected = encoder.state_dict()
    if state and all(k.startswith("model.") for k in expected) and not any(k.startswith("model.") for k in state):
        # a timm model's own state_dict (timm.create_model(...).state_dict()) for a ``tu-`` encoder,
        # which holds the timm model as ``.model``
        state = {f"model.{k}": v for k, v in state.items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: does not fit the encoder (missing {len(missing)} keys, e.g. {missing[:3]}; "
                         f"unexpected {len(unexpected)}, e.g. {unexpected[:3]}; wrong shape {wrong[:3]})")
    encoder.load_state_dict(state)


@register_architecture("unet", "imagenet", True, "smp U-Net (encoder-decoder with skip connections)")
def _unet(num_classes, encoder, encoder_weights):
    return _smp_model("Unet", num_classes, encoder, encoder_weights)


@register_architecture("deeplabv3", "imagenet", True, "smp DeepLabV3 (dilated encoder + ASPP)")
def _deeplabv3(num_classes, encoder, encoder_weights):
    return _smp_model("DeepLabV3", num_classes, encoder, encoder_weights)


@register_architecture("deeplabv3plus", "imagenet", True, "smp DeepLabV3+ (ASPP + light decoder)")
def _deeplabv3plus(num_classes, encoder, encoder_weights):
    return _smp_model("DeepLabV3Plus", num_classes, encoder, encoder_weights)


@register_architecture("ultralight", "minmax255", False, "UltraLight VM-UNet (49,457 parameters)")
def _ultralight(num_classes):
    from vitfeat.deep.segmentation.ultralight import UltraLightVMUNet

    model = UltraLightVMUNet(num_classes=num_classes)
    model.return_logits = True
    return model
