"""Apply a VMTL run to new cases: stage probabilities, predicted lesion masks and boxes.

A VMTL run holds one model per outer fold and no model refit on all data; predictions average the
fold models (probabilities, mask probabilities and boxes), which is the ensemble whose members were
each scored out of fold.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import yaml

from vitfeat.atomic import write_csv
from vitfeat.dataset import MODALITIES, load_manifest, write_mask
from vitfeat.deep.runtime import load_checkpoint, select_device
from vitfeat.deep.vmtl.config import VMTLConfig
from vitfeat.deep.vmtl.data import PairedDataset, load_cases, make_roi
from vitfeat.deep.vmtl.model import build_model, normalisation
from vitfeat.artefacts import verify_run
from vitfeat.names import join_inside, safe_filenames
from vitfeat.deep.vmtl.loaders import make_loader, predict_loader


class RunError(ValueError):
    """A directory that is not a usable VMTL run; the message says what is missing."""


def load_run(run_dir, device: str | None = None, *, trust_modified: bool | None = None):
    """(config, run.json dict, {fold dir name: model in eval mode}) of a finished VMTL run.

    Parameters
    ----------
    run_dir : path-like
        The VMTL run.
    device : str, optional
        Torch device (default: auto).
    trust_modified : bool, optional
        Use a run whose files changed after it was written (with a warning).

    Returns
    -------
    tuple
    """
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise RunError(f"{run_dir}: no run.json (not a finished run; train it or pass --resume)")
    run = verify_run(run_dir, ("config.yaml",), trust_modified=trust_modified)
    if run.get("kind") != "vmtl":
        raise RunError(f"{run_dir}: run.json kind is {run.get('kind')!r}, not 'vmtl'")
    cfg = VMTLConfig.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    cfg.weights = "random"  # the architecture only; trained weights come from the fold checkpoints
    dev = select_device(device or cfg.device, mps=False)
    targets = run.get("targets") or [run["target"]]
    n_classes = [len(run["target_classes"][t]) for t in targets] if len(targets) > 1 else len(run["classes"])
    models = {}
    for fold in run["folds"]:
        path = run_dir / fold["dir"] / "best.pt"
        if not path.is_file():
            raise RunError(f"{path}: checkpoint missing")
        model = build_model(cfg, n_classes)
        model.load_state_dict(load_checkpoint(path)["model"])
        models[fold["dir"]] = model.to(dev).eval()
    cfg.device = str(dev)
    return cfg, run, models


def _paste(prob: np.ndarray, size, crop_box) -> np.ndarray:
    """A (S, S) mask probability mapped back onto the original photo (inside its crop box)."""
    h, w = size
    if crop_box is None:
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    x0, y0, x1, y1 = crop_box
    full = np.zeros((h, w), np.float32)
    full[y0:y1, x0:x1] = cv2.resize(prob, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return full


def _box_pixels(cxcywh, size, crop_box):
    cx, cy, bw, bh = (float(v) for v in cxcywh)
    x0, y0, x1, y1 = crop_box if crop_box is not None else (0, 0, size[1], size[0])
    cw, ch = x1 - x0, y1 - y0
    h, w = size
    box = (x0 + (cx - bw / 2) * cw, y0 + (cy - bh / 2) * ch, x0 + (cx + bw / 2) * cw, y0 + (cy + bh / 2) * ch)
    return tuple(float(np.clip(v, 0, lim)) for v, lim in zip(box, (w, h, w, h)))  # clipped to the photo


def predict_run(run_dir, manifest_path, out_path=None, *, masks_dir=None, device: str | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Predictions for every case of ``manifest_path``, also written to ``out_path`` (CSV) if given.

    Columns: case_id, patient_id, y_pred, proba_<class>, and per modality the predicted mask's
    PNG path (``<modality>_mask_pred``, written under ``masks_dir``, default ``<out stem>_masks/``)
    and the lesion box in pixels (``<modality>_box_x0 .. _y1``) where the model has those heads;
    ``error`` names cases whose images could not be read (they get no prediction).

    Parameters
    ----------
    run_dir : path-like
        The VMTL run.
    manifest_path : path-like
        The new cases.
    out_path : path-like, optional
        Output CSV.
    masks_dir : path-like, optional
        Where predicted masks go.
    device : str, optional
        Torch device.
    progress : bool, default True
        Progress bar.

    Returns
    -------
    pandas.DataFrame
    """
    cfg, run, models = load_run(run_dir, device)
    classes = run["classes"]
    man = load_manifest(manifest_path, targets=[], require_targets=False)
    loaded, failures = load_cases(man.cases(), cfg.imgsz, None, roi=make_roi(cfg), progress=progress)
    mean, std = normalisation(cfg.backbone)
    loader = make_loader(PairedDataset(loaded, classes, cfg.imgsz, mean, std, train=False), cfg, shuffle=False)
    dense = cfg.variant != "baseline" and bool({"seg", "box"} & set(cfg.tasks))
    preds = [predict_loader(m, loader, torch.device(cfg.device), dense=dense) for m in models.values()]
    avg = {k: np.mean([p[k] for p in preds], axis=0) for k in preds[0] if k not in ("case_id", "has_wood")}

    if masks_dir is None and out_path is not None:
        masks_dir = Path(out_path).with_name(f"{Path(out_path).stem}_masks")
    rows = []
    stems = safe_filenames(case.case_id for case in loaded)  # ids are data: never a path of their own
    for i, case in enumerate(loaded):
        row = {"case_id": case.case_id, "patient_id": case.patient_id,
               "y_pred": classes[int(avg["proba"][i].argmax())], "error": ""}
        row.update({f"proba_{c}": float(avg["proba"][i, j]) for j, c in enumerate(classes)})
        for mod in MODALITIES:
            if mod not in case.images:
                continue
            crop = case.crop_boxes.get(mod)
            if f"seg_{mod}" in avg and masks_dir is not None:
                masks_dir = Path(masks_dir)
                masks_dir.mkdir(parents=True, exist_ok=True)
                prob = _paste(avg[f"seg_{mod}"][i, 0], case.sizes[mod], crop)
                path = join_inside(masks_dir, stems[str(case.case_id)], f"_{mod}.png")
                write_mask(path, prob >= 0.5)
                row[f"{mod}_mask_pred"] = str(path)
            if f"box_{mod}" in avg:
                for name, v in zip(("x0", "y0", "x1", "y1"), _box_pixels(avg[f"box_{mod}"][i], case.sizes[mod], crop)):
                    row[f"{mod}_box_{name}"] = round(v, 1)
        rows.append(row)
    rows += [{"case_id": cid, "error": msg} for cid, msg in failures]
    frame = pd.DataFrame(rows)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(out_path, frame)
    return frame
