"""``vitfeat vmtl info``: parameters per top-level module (total and trainable) and FLOPs of a variant.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` for one forward pass of one pair at
``imgsz`` (a multiply-add counts as 2 FLOPs; both photos go through the backbone). The model is
built on the meta device, so no weights are allocated or downloaded and nothing is computed.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vitfeat.deep.vmtl.config import preset


def variant_info(variant: str, backbone: str | None = None, imgsz: int = 224, n_classes: int = 2) -> dict:
    """Parameter and FLOP counts of a variant's network.

    Parameters
    ----------
    variant : str
        A name of ``VARIANTS`` (original, vmtl, vmsl, baseline).
    backbone : str, optional
        timm backbone (default: the variant's).
    imgsz : int
        Input size for the FLOP count.
    n_classes : int
        Classes of the stage head.

    Returns
    -------
    dict
        variant, backbone, imgsz, modules ``[{name, parameters, trainable}]``, total, trainable,
        flops (one pair, forward), flops_by_module (top-level modules).
    """
    from vitfeat.deep.vmtl.model import build_model

    cfg = preset(variant, backbone=backbone, weights="random", imgsz=imgsz)
    with torch.device("meta"):
        model = build_model(cfg, n_classes)
        model.eval()
        x = torch.empty(1, 3, imgsz, imgsz)
        counter = FlopCounterMode(display=False, depth=1)
        with counter, torch.no_grad():
            model(x, x.clone())
    modules = [{"name": name, "parameters": sum(p.numel() for p in child.parameters()),
                "trainable": sum(p.numel() for p in child.parameters() if p.requires_grad)}
               for name, child in model.named_children()]
    own = [p for name, p in model.named_parameters(recurse=False)]
    if own:
        modules.append({"name": "(own parameters)", "parameters": sum(p.numel() for p in own),
                        "trainable": sum(p.numel() for p in own if p.requires_grad)})
    by_module = counter.get_flop_counts()
    top = type(model).__name__
    flops_by_module = {k.split(".", 1)[1]: int(sum(v.values()))
                       for k, v in by_module.items() if k.startswith(f"{top}.")}
    return {"variant": variant, "backbone": cfg.backbone, "imgsz": imgsz, "modules": modules,
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "flops": int(counter.get_total_flops()), "flops_by_module": flops_by_module}


def format_info(info: dict) -> str:
    """The table ``vitfeat vmtl info`` prints.

    Parameters
    ----------
    info : dict
        The network's parameters and FLOPs by module.

    Returns
    -------
    str
    """
    lines = [f"{info['variant']} ({info['backbone']}, {info['imgsz']} px)",
             f"{'module':<24} {'parameters':>14} {'trainable':>14} {'GFLOPs':>9}"]
    for m in info["modules"]:
        flops = info["flops_by_module"].get(m["name"])
        lines.append(f"{m['name']:<24} {m['parameters']:>14,} {m['trainable']:>14,} "
                     f"{'-' if flops is None else f'{flops / 1e9:9.2f}':>9}")
    lines.append(f"{'total':<24} {info['total']:>14,} {info['trainable']:>14,} {info['flops'] / 1e9:9.2f}")
    lines.append("FLOPs: one forward pass of one pair (clinical + Wood's), multiply-add = 2, "
                 "torch.utils.flop_counter; '-': no FLOPs counted in forward (unused in it, or a tiny "
                 "module inside a list; the redesign's reconstruction runs in its own masked pass)")
    return "\n".join(lines)
