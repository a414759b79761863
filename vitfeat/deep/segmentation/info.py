"""Model size and cost: parameters and FLOPs (torch.utils.flop_counter, one forward pass)."""

from __future__ import annotations

import torch
import torch.nn as nn

from vitfeat.deep.segmentation.models import DEFAULT_ENCODER, build_model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, imgsz: int, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``batch x 3 x imgsz x imgsz`` (one multiply-add = 2 FLOPs).

    flop_counter counts matmuls and convolutions; elementwise work (norms, activations, the
    Mamba scan's products) is not included, as with thop.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    imgsz : int
        Input side.
    batch : int, default 1
        Batch size.

    Returns
    -------
    int
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    x = torch.zeros(batch, 3, imgsz, imgsz, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def model_info(arch: str, imgsz: int = 256, num_classes: int = 1, encoder: str = DEFAULT_ENCODER) -> dict:
    """Parameters, FLOPs and weight size of an architecture (``vitfeat seg info``).

    Parameters
    ----------
    arch : str
        A registered architecture.
    imgsz : int, default 256
        Input side.
    num_classes : int, default 1
        Output channels.
    encoder : str
        The smp encoder (encoder architectures only).

    Returns
    -------
    dict
    """
    model = build_model(arch, num_classes, encoder, None)
    flops = count_flops(model, imgsz)
    size_kib = sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1024
    return {
        "arch": arch, "encoder": encoder if arch != "ultralight" else None, "imgsz": imgsz,
        "num_classes": num_classes, "params": count_parameters(model),
        "gflops": flops / 1e9, "gmacs": flops / 2e9, "weights_kib": size_kib,
    }
