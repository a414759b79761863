"""``vitfeat train seg MANIFEST --recipe vitiligo``: what works for small medical segmentation sets.

Its default segmenter (:data:`DEFAULT_ARCH`, ``pixel-gbm``) is a LightGBM pixel classifier on
colour-contrast features (:mod:`vitfeat.deep.segmentation.pixel_gbm`): the best of the candidates
measured under patient-grouped cross-validation on shared/data vitiligo-seg
(``benchmarks/bench_seg_vitiligo.py``, docs/segmentation.md). With a network (``--arch ultralight``,
``unet``, ...) the recipe is:

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

import pandas as pd

from vitfeat.atomic import write_csv
from vitfeat.dataset import read_table
from vitfeat.deep.segmentation.augment import StrongAugment  # noqa: F401  (the recipe's augmentation)

log = logging.getLogger(__name__)

#: The recipe's segmenter when none is named: the best of the candidates measured under
#: patient-grouped CV on shared/data vitiligo-seg (``benchmarks/bench_seg_vitiligo.py``; docs/segmentation.md).
DEFAULT_ARCH = "pixel-gbm"


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
                   allow_outside_root: bool = False, gbm=None) -> dict:
    """Train the recipe's segmenter on ``manifest`` (see the module docstring).

    ``config.arch == "pixel-gbm"`` (:data:`DEFAULT_ARCH`, the best measured): a LightGBM pixel
    classifier (:func:`vitfeat.deep.segmentation.pixel_gbm.train_pixel_gbm`; ``pretrain`` does not
    apply). A network: pretrain on ``pretrain`` (if any), then fine-tune.

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
    gbm : PixelGbmConfig, optional
        Settings of the pixel classifier (its ``modality``, ``seed`` and ``split`` come from ``config``).

    Returns
    -------
    dict
        The fine-tuned run's ``segmenter.json`` content (with ``pretrained_on``).
    """
    from vitfeat.deep.segmentation.train import SegConfig, train_segmenter

    config = replace(config or SegConfig(arch=DEFAULT_ARCH), recipe="vitiligo")
    if config.arch == "pixel-gbm":
        return _train_gbm(manifest, out_dir, config, gbm, pretrain=pretrain, split_from=split_from, resume=resume,
                          progress=progress, allow_outside_root=allow_outside_root)
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


def _train_gbm(manifest, out_dir, config, gbm, *, pretrain, split_from, resume, progress, allow_outside_root) -> dict:
    from vitfeat.deep.segmentation.pixel_gbm import PixelGbmConfig, train_pixel_gbm

    if resume:
        raise ValueError("--resume: a pixel-gbm trains in seconds to minutes; train it again into a new directory")
    if pretrain:
        log.warning("--pretrain applies to networks; the pixel-gbm learns from %s only", manifest)
    if config.mask_mode != "binary":
        raise ValueError("pixel-gbm segments binary masks only (--masks binary)")
    gbm = replace(gbm or PixelGbmConfig(), modality=config.modality, seed=config.seed or 0,
                  split=tuple(config.split) if not isinstance(config.split, str) else PixelGbmConfig.split)
    if isinstance(config.split, str):
        raise ValueError("pixel-gbm takes a patient-grouped split (fractions) or --split-from, not an ordered split")
    return train_pixel_gbm(manifest, out_dir, gbm, split_from=split_from, allow_outside_root=allow_outside_root,
                           progress=progress)
