"""Official UltraLight VM-UNet checkpoints (wurenkai/UltraLight-VM-UNet) as vitfeat segmenters.

The network of ``ultralight.py`` computes exactly what the original computes, but its tensors are
named differently (``encoder.3.mamba.A_log`` here, ``encoder4.0.mamba.A_log`` there). The
mapping below translates all 129 tensors of the original (``num_classes=1``, widths 8..64,
``split_att='fc'``, bridge on); checkpoints saved under DataParallel carry a ``module.`` prefix,
which is removed. Anything that does not match by name and shape is refused with the first
offending tensors named: an official checkpoint either loads completely or not at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

from vitfeat.artefacts import artefact_hashes
from vitfeat.atomic import write_csv, write_text
from vitfeat.deep.runtime import load_checkpoint

# (our name pattern, official name pattern); \1 is the index, shifted by one where written {+1}
_RULES = [
    (r"encoder\.([0-5])\.(.+)", "encoder{+1}.0.{rest}"),
    (r"encoder_norms\.([0-4])\.(.+)", "ebn{+1}.{rest}"),
    (r"decoder\.([0-4])\.(.+)", "decoder{+1}.0.{rest}"),
    (r"decoder_norms\.([0-4])\.(.+)", "dbn{+1}.{rest}"),
    (r"bridge\.channel\.heads\.([0-4])\.(.+)", "scab.catt.att{+1}.{rest}"),
    (r"bridge\.channel\.mix\.(weight)", "scab.catt.get_all_att.{rest}"),
    (r"bridge\.spatial\.conv\.(weight|bias)", "scab.satt.shared_conv2d.0.{rest}"),
    (r"final\.(weight|bias)", "final.{rest}"),
]


def official_name(ours: str) -> str:
    """The original repository's name of one of our UltraLight tensors.

    Parameters
    ----------
    ours : str
        A key of our state_dict.

    Returns
    -------
    str
    """
    for pattern, template in _RULES:
        m = re.fullmatch(pattern, ours)
        if m is None:
            continue
        if "{+1}" in template:
            return template.replace("{+1}", str(int(m.group(1)) + 1)).replace("{rest}", m.group(2))
        return template.replace("{rest}", m.group(1))
    raise KeyError(f"no official name for tensor '{ours}'")


def to_official(state: dict) -> dict:
    """Our UltraLight state_dict in the original's naming (the inverse of :func:`from_official`).

    Parameters
    ----------
    state : dict
        Our state_dict.

    Returns
    -------
    dict
    """
    return {official_name(k): v for k, v in state.items()}


def _unwrap(checkpoint) -> dict:
    """The state_dict inside a saved object: a bare state_dict, or under ``state_dict`` / ``model``."""
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                return checkpoint[key]
        return checkpoint
    raise ValueError(f"expected a state_dict (a dict of tensors), got {type(checkpoint).__name__}")


def from_official(official: dict, model=None) -> dict:
    """Translate an official state_dict (with or without ``module.``) into our names.

    Refuses, naming the first offending tensors, a checkpoint with unknown or missing names or with
    shapes that differ from our model's (``model``: an ``UltraLightVMUNet``; default widths built).

    Parameters
    ----------
    official : dict
        The official state_dict.
    model : UltraLightVMUNet, optional
        The model whose names and shapes it must fit.

    Returns
    -------
    dict
    """
    from vitfeat.deep.segmentation.ultralight import UltraLightVMUNet

    model = model or UltraLightVMUNet()
    ours = model.state_dict()
    expected = {official_name(k): k for k in ours}
    stripped = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in official.items()}
    unknown = [k for k in stripped if k not in expected]
    missing = [k for k in expected if k not in stripped]
    wrong = [f"{k} {tuple(stripped[k].shape)} (expected {tuple(ours[expected[k]].shape)})"
             for k in expected if k in stripped and tuple(stripped[k].shape) != tuple(ours[expected[k]].shape)]
    if unknown or missing or wrong:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown tensor(s), first {unknown[:3]}")
        if missing:
            parts.append(f"{len(missing)} missing, first {missing[:3]}")
        if wrong:
            parts.append(f"{len(wrong)} with another shape, first {wrong[:3]}")
        raise ValueError("not an official UltraLight VM-UNet checkpoint (num_classes 1, widths 8..64, "
                         f"split_att fc, bridge on): {'; '.join(parts)}")
    return {expected[k]: v for k, v in stripped.items()}


def load_official(path, model=None):
    """An ``UltraLightVMUNet`` (returning probabilities, as the original) with official weights.

    Parameters
    ----------
    path : path-like
        The official checkpoint.
    model : UltraLightVMUNet, optional
        The model to load into (default widths built).

    Returns
    -------
    torch.nn.Module
    """
    from vitfeat.deep.segmentation.ultralight import UltraLightVMUNet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    checkpoint = load_checkpoint(path)  # a bad file: WeightsFileError (a ValueError) naming it
    model = model or UltraLightVMUNet()
    try:
        model.load_state_dict(from_official(_unwrap(checkpoint), model))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return model


def import_official(checkpoint, out_dir, *, modality: str = "clinical", imgsz: int = 256,
                    evaluate=None, split=None, allow_outside_root: bool = False) -> dict:
    """Write a segmenter directory (``segmenter.json`` + ``best.pt``) from an official checkpoint.

    The directory is a mask source (``--masks model:DIR``). With ``evaluate`` (a manifest), the
    model is scored as the original scores (UltraLight's data preparation, batch 1, pooled pixels at
    >= 0.5) on that manifest's test part: every usable case, or the test part of ``split``
    (``"ordered:A,B,C"``); the scores go into ``segmenter.json`` and ``seg compare`` can set the run
    beside trained ones. Returns the ``segmenter.json`` content.

    Parameters
    ----------
    checkpoint : path-like
        The official checkpoint.
    out_dir : path-like
        The segmenter directory.
    modality : str, default "clinical"
        Which photos it segments.
    imgsz : int, default 256
        Input size.
    evaluate : path-like, optional
        A manifest to score it on.
    split : str, optional
        ``ordered:A,B,C``: score the test part only.
    allow_outside_root : bool, default False
        Read paths outside the manifest's root.

    Returns
    -------
    dict
    """
    from vitfeat.deep.runtime import save_checkpoint
    from vitfeat.deep.segmentation import data as segdata
    from vitfeat.deep.segmentation.info import count_parameters
    from vitfeat.deep.segmentation.train import SEGMENTER_FORMAT, SegConfig
    from vitfeat.deep.segmentation.train import evaluate as score

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_official(checkpoint)
    model.return_logits = True  # our segmenters store logit models
    save_checkpoint(model.state_dict(), out / "best.pt")
    meta = {
        "format": SEGMENTER_FORMAT, "arch": "ultralight", "encoder": None, "num_classes": 1,
        "mask_values": None, "normalize": "minmax255", "resize": "bilinear", "recipe": "original",
        "imgsz": int(imgsz), "modality": modality, "weights": "best.pt", "params": count_parameters(model),
        "source": {"kind": "official-checkpoint", "path": str(Path(checkpoint).resolve())},
        "best_epoch": None, "epochs_done": 0, "mean_epoch_seconds": None, "test_metrics": None,
        "torch": torch.__version__,
    }
    if evaluate is not None:
        items, _ = segdata.items_from_manifest(evaluate, modality, allow_outside_root=allow_outside_root)
        if split:
            frame = segdata.ordered_split(items, segdata.parse_ordered_split(split))
        else:
            frame = segdata.ordered_split(items, (0, 0, len(items)))  # -> every case tests
        segdata.write_split(frame, out / "split.csv")
        test_items = [i for i, s in zip(items, frame["split"]) if s == "test"]
        dataset = segdata.OriginalRecipeDataset(test_items, imgsz)
        config = SegConfig(arch="ultralight", recipe="original", imgsz=imgsz, epochs=1)
        config.check()
        metrics = score(model, dataset, config, torch.device("cpu"))
        meta.update(test_metrics=metrics, evaluated_on="test", manifest=str(Path(evaluate).resolve()),
                    split_counts={"train": 0, "val": 0, "test": len(dataset)})
        if dataset.failures:
            write_csv(out / "failures.csv", pd.DataFrame(dataset.failures))
    meta["artefacts"] = artefact_hashes(out, [meta["weights"]])
    write_text(out / "segmenter.json", json.dumps(meta, indent=2))
    return meta
