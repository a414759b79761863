"""``vitfeat train seg MANIFEST --recipe vitiligo``: what works for small medical segmentation sets.

1. **Pretraining** on other lesion masks (PH2 and ISIC 2017 dermoscopy in ``shared/data``; any
   manifest or dataset folder with ``labels.csv`` listing ``image`` and ``mask``), into
   ``DIR/pretrain`` (itself a `train seg` run, reused when it is finished).
2. **Fine-tuning** on the vitiligo manifest from those weights, with strong augmentation
   (:class:`StrongAugment`: flips, quarter turns, free rotation, scale, elastic deformation,
   brightness/contrast/saturation and hue jitter), a Dice + BCE loss, and early stopping on the
   validation loss of a patient-grouped split (whole patients in train / val / test).
3. **Test-time augmentation**: the test scores and the masks of ``--masks model:DIR`` average the
   probabilities of the photo and its two flips (``segmenter.json``: ``"tta": true``).

The finished ``DIR`` is a mask source like any `train seg` output (``extract --masks model:DIR``,
``seg evaluate --masks model:DIR``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from vitfeat.atomic import write_csv
from vitfeat.dataset import read_table
from vitfeat.deep.segmentation.data import JointAugment

log = logging.getLogger(__name__)


def _uniform(lo: float, hi: float) -> float:
    # torch's generator (as JointAugment), so that torch.manual_seed repeats a run's draws
    return lo + (hi - lo) * float(torch.rand(()))


class StrongAugment(JointAugment):
    """:class:`JointAugment` plus scale (0.75-1.33), elastic deformation and hue jitter.

    Parameters
    ----------
    scale : tuple of float
        Range of the random zoom (image and mask together).
    elastic_alpha : float
        Displacement of the elastic field, as a fraction of the image side.
    elastic_p : float
        Probability of the elastic deformation.
    hue : float
        Hue shift range in OpenCV hue units (0-179).
    """

    def __init__(self, scale=(0.75, 1.33), elastic_alpha: float = 0.04, elastic_p: float = 0.5, hue: float = 6.0):
        super().__init__(rotate_degrees=45.0, rotate_p=0.5, jitter=0.25)
        self.scale, self.elastic_alpha, self.elastic_p, self.hue = scale, elastic_alpha, elastic_p, hue

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, mask = super().__call__(image, mask)
        h, w = mask.shape
        factor = _uniform(*self.scale)
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, factor)
        image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if torch.rand(()) < self.elastic_p:
            alpha, sigma = self.elastic_alpha * max(h, w), max(h, w) / 16
            field = torch.rand((2, h, w)).numpy().astype(np.float32) * 2 - 1
            dx = cv2.GaussianBlur(field[0], (0, 0), sigma)
            dy = cv2.GaussianBlur(field[1], (0, 0), sigma)
            dx *= alpha / (np.abs(dx).max() + 1e-6)
            dy *= alpha / (np.abs(dy).max() + 1e-6)
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            image = cv2.remap(image, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            mask = cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if self.hue:
            hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).astype(np.int16)
            hsv[..., 0] = (hsv[..., 0] + round(_uniform(-self.hue, self.hue))) % 180
            image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def pretraining_manifest(sources, path, modality: str = "clinical") -> Path:
    """One manifest (absolute paths) of every image with a mask in ``sources``; written to ``path``.

    Parameters
    ----------
    sources : list of str or Path
        Manifests (CSV/Parquet with ``<modality>`` and ``<modality>_mask``) or dataset folders whose
        ``labels.csv`` lists ``image`` and ``mask`` relative to the folder (``shared/data/ph2``).
    path : str or Path
        Where to write the combined manifest.
    modality : str
        Which columns of a manifest to take.
    """
    frames = []
    for source in sources:
        source = Path(source).expanduser()
        if source.is_dir():
            labels = source / "labels.csv"
            if not labels.is_file():
                raise FileNotFoundError(f"{source}: no labels.csv (expected columns image, mask)")
            table = read_table(labels)
            if not {"image", "mask"} <= set(table.columns):
                raise ValueError(f"{labels}: needs columns image and mask")
            table = table.dropna(subset=["mask"])
            image = [str((source / p).resolve()) for p in table["image"]]
            mask = [str((source / p).resolve()) for p in table["mask"]]
            group = table["group"] if "group" in table.columns else [Path(p).stem for p in image]
        else:
            table = read_table(source)
            col = f"{modality}_mask"
            if col not in table.columns:
                raise ValueError(f"{source}: no {col} column: nothing to pretrain on")
            table = table.dropna(subset=[col])
            root = Path(table["data_root"].iloc[0]) if "data_root" in table.columns else source.resolve().parent
            image = [str((root / p).resolve()) for p in table[modality]]
            mask = [str((root / p).resolve()) for p in table[col]]
            group = table["patient_id"] if "patient_id" in table.columns else table["case_id"]
        tag = source.name
        frames.append(pd.DataFrame({"case_id": [f"{tag}/{Path(p).stem}" for p in image],
                                    "patient_id": [f"{tag}/{g}" for g in group],
                                    modality: image, f"{modality}_mask": mask}))
    if not frames:
        raise ValueError("no pretraining source given")
    combined = pd.concat(frames, ignore_index=True).drop_duplicates("case_id")
    return write_csv(Path(path), combined, index=False)


def train_vitiligo(manifest, out_dir, config=None, *, pretrain=(), pretrain_epochs: int = 10,
                   split_from=None, resume: bool = False, progress: bool = True,
                   allow_outside_root: bool = False) -> dict:
    """Pretrain on ``pretrain`` (if any), then fine-tune on ``manifest`` (see the module docstring).

    Parameters
    ----------
    manifest : str or Path
        The vitiligo manifest (photos and masks; ``patient_id`` groups the split).
    out_dir : str or Path
        Output directory; ``out_dir/pretrain`` holds the pretraining run.
    config : SegConfig, optional
        Settings; ``recipe`` is set to ``vitiligo``.
    pretrain : list of str or Path
        Manifests or dataset folders for :func:`pretraining_manifest` (empty: no pretraining).
    pretrain_epochs : int
        Epochs of the pretraining run.
    split_from, resume, progress, allow_outside_root
        As in :func:`vitfeat.deep.segmentation.train.train_segmenter`.

    Returns
    -------
    dict
        The fine-tuned run's ``segmenter.json`` content (with ``pretrained_on``).
    """
    from vitfeat.deep.segmentation.train import SegConfig, train_segmenter

    config = replace(config or SegConfig(), recipe="vitiligo")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pretrained_on = None
    if pretrain:
        pre_dir = out / "pretrain"
        if not (pre_dir / "segmenter.json").is_file():
            pre_manifest = pretraining_manifest(pretrain, out / "pretrain_manifest.csv", config.modality)
            pre_config = replace(config, epochs=pretrain_epochs, init_weights=None, early_stop=None)
            train_segmenter(pre_manifest, pre_dir, pre_config, resume=(pre_dir / "last.pt").is_file(),
                            progress=progress, allow_outside_root=True)
        config = replace(config, init_weights=str((pre_dir / "best.pt").resolve()))
        pretrained_on = [str(p) for p in pretrain]
    else:
        log.warning("--recipe vitiligo without --pretrain: training from scratch on %s only", manifest)
    meta = train_segmenter(manifest, out, config, split_from=split_from, resume=resume, progress=progress,
                           allow_outside_root=allow_outside_root)
    meta["pretrained_on"] = pretrained_on
    return meta
