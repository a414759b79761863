"""Training a segmenter: grouped split, AdamW + cosine/plateau, logs, resume, best-on-val, one test.

Output directory::

    config.json      the settings (a resumed run keeps them; only ``epochs`` may grow)
    split.csv        case_id, patient_id, split (train/val/test, whole patients per part)
    log.csv/.json    one row per epoch: lr, train/val loss, val Dice and IoU (pooled and per image)
    last.pt          modules, optimiser, scheduler and loop state after the last finished epoch
                     (resume; written by vitfeat.deep.training.TrainingLoop)
    best.pt          weights of the epoch with the lowest validation loss
    failures.csv     cases that could not be read (the run goes on without them)
    segmenter.json   what a mask source needs, plus the final test-split metrics
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from vitfeat.artefacts import artefact_hashes
from vitfeat.atomic import write_csv, write_text
from vitfeat.deep.runtime import load_checkpoint, select_device
from vitfeat.deep.segmentation import data as segdata
from vitfeat.deep.segmentation.metrics import SegmentationMeter
from vitfeat.deep.segmentation.models import (
    DEFAULT_ENCODER,
    build_model,
    get_architecture,
)
from vitfeat.deep.training import LoopSettings, StepOutput, TrainingLoop

log = logging.getLogger(__name__)

LOSSES = ("bce+dice", "bce+jaccard", "ce+dice", "bce+dice-per-image")
SCHEDULERS = ("cosine", "plateau", "cosine-periodic")
RECIPES = ("vitfeat", "original", "vitiligo")
AUGMENTATIONS = ("vitfeat", "original", "strong")
SEGMENTER_FORMAT = "vitfeat-segmenter/1"

# UltraLight VM-UNet's published recipe (wurenkai/UltraLight-VM-UNet, configs/config_setting.py,
# train.py, loader.py, utils.py); the fields a user may not change under --recipe original.
ORIGINAL_RECIPE = {
    "arch": "ultralight", "loss": "bce+dice-per-image", "scheduler": "cosine-periodic", "lr": 1e-3,
    "weight_decay": 1e-2, "t_max": 50, "eta_min": 1e-5, "val_batch": 1, "augmentation": "original",
    "resize": "bilinear", "mask_mode": "binary",
}
RECIPE_DEFAULTS = {"vitfeat": {"epochs": 50, "seed": 0}, "original": {"epochs": 250, "seed": 42},
                   "vitiligo": {"epochs": 40, "seed": 0, "early_stop": 8}}


@dataclass
class SegConfig:
    """Settings of a segmenter run.

    ``recipe="vitfeat"`` (default) is vitfeat's own recipe; ``recipe="original"`` is UltraLight
    VM-UNet's published one (``ORIGINAL_RECIPE``: BCE + per-image Dice with smooth 1, AdamW 1e-3 /
    1e-2, CosineAnnealingLR(T_max 50, eta_min 1e-5) stepped per epoch, validation at batch 1, the
    original augmentation, bilinear resizing with soft masks, split-level z-score then per-image
    [0, 255]); there only ``epochs``, ``imgsz``, ``batch``, ``seed``, ``split`` and ``device`` may
    differ from the paper (250 epochs, 256 px, batch 8, seed 42 by default).
    """

    arch: str = "unet"
    modality: str = "clinical"
    epochs: int | None = None  # default: 50 (vitfeat), 250 (original)
    imgsz: int = 256
    batch: int = 8
    lr: float = 1e-3
    lrf: float = 0.01  # the learning rate ends at lr * lrf (cosine) or is floored there (plateau)
    weight_decay: float = 1e-2
    loss: str | None = None  # default: bce+dice for binary masks, ce+dice for multi-class
    scheduler: str = "cosine"
    patience: int = 5  # plateau: epochs without val-loss improvement before the lr is halved
    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = None  # none | hub | path of a local encoder state_dict
    mask_mode: str = "binary"  # binary | multiclass
    split: tuple | str = (0.7, 0.15, 0.15)  # fractions of a patient-grouped split, or "ordered:A,B,C"
    seed: int | None = None  # default: 0 (vitfeat), 42 (original)
    augment: bool = True
    device: str = "auto"
    mask_values: list | None = field(default=None)  # filled in for multiclass
    recipe: str = "vitfeat"
    augmentation: str = "vitfeat"  # vitfeat | original
    resize: str = "area"  # area (images; nearest masks) | bilinear (images and soft masks)
    val_batch: int | None = None  # batch of validation and test (default: batch)
    t_max: int = 50  # cosine-periodic: epochs of a half period
    eta_min: float = 1e-5  # cosine-periodic: the lowest learning rate
    init_weights: str | None = None  # a whole-model state_dict to start from (the vitiligo recipe's pretraining)
    early_stop: int | None = None  # stop after this many epochs without a lower validation loss
    tta: bool = False  # test-time augmentation (flips averaged) in the test scores and as a mask source

    def check(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe '{self.recipe}' (choose from {', '.join(RECIPES)})")
        if self.recipe == "original":
            self._apply_original_recipe()
        if self.recipe == "vitiligo":  # see vitfeat.deep.segmentation.vitiligo_recipe
            self.augmentation = "strong" if self.augmentation == "vitfeat" else self.augmentation
            self.tta = True
        for name, value in RECIPE_DEFAULTS[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        get_architecture(self.arch)
        if self.mask_mode not in ("binary", "multiclass"):
            raise ValueError(f"mask_mode must be binary or multiclass, not '{self.mask_mode}'")
        if self.loss is None:
            self.loss = "bce+dice" if self.mask_mode == "binary" else "ce+dice"
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if (self.loss == "ce+dice") != (self.mask_mode == "multiclass"):
            raise ValueError(f"loss '{self.loss}' does not fit {self.mask_mode} masks "
                             "(bce+dice / bce+jaccard are for binary masks, ce+dice for multi-class)")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{self.scheduler}' (choose from {', '.join(SCHEDULERS)})")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation '{self.augmentation}' (choose from {', '.join(AUGMENTATIONS)})")
        if self.resize not in ("area", "bilinear") or (self.resize == "bilinear") != (self.augmentation == "original"):
            raise ValueError("resize 'bilinear' (soft masks) and augmentation 'original' belong together: "
                             "they make UltraLight's data pipeline (use recipe='original')")
        if self.imgsz % 32 or self.imgsz < 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, not {self.imgsz}")
        if self.epochs < 1 or self.batch < 1 or not (self.lr > 0) or not (0 < self.lrf <= 1):
            raise ValueError("epochs and batch must be >= 1, lr > 0 and 0 < lrf <= 1")
        if isinstance(self.split, str):
            segdata.parse_ordered_split(self.split)

    def _apply_original_recipe(self) -> None:
        """Fix the recipe's fields; a value set to something else is refused, not overwritten."""
        vitfeat_defaults = {f.name: f.default for f in fields(SegConfig)}
        clashes = []
        for name, value in ORIGINAL_RECIPE.items():
            current = getattr(self, name)
            if current not in (value, vitfeat_defaults[name]):
                clashes.append(f"{name}={current!r} (the recipe's is {value!r})")
            setattr(self, name, value)
        if clashes:
            raise ValueError("recipe 'original' fixes these settings: " + "; ".join(clashes))

    @property
    def num_classes(self) -> int:
        return 1 if self.mask_mode == "binary" else len(self.mask_values)

    @property
    def eval_batch(self) -> int:
        return self.val_batch or self.batch

    @property
    def input_normalization(self) -> str:
        """How a batch is normalised in the loop (``none``: the dataset did it, split-wide)."""
        return "none" if self.recipe == "original" else get_architecture(self.arch).normalize


class PerImageBceDiceLoss(nn.Module):
    """UltraLight's ``BceDiceLoss(wb=1, wd=1)``: BCE over all pixels plus 1 - the mean over images of
    (2 sum(p g) + 1) / (sum p + sum g + 1), on soft predictions p and soft truth g.

    Takes logits: BCE-with-logits is the original's BCE on sigmoid outputs, computed stably (the
    original's ``nn.BCELoss`` also clamps log terms at -100, which only matters for saturated pixels).
    """

    smooth = 1.0

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target = mask.float().reshape(logits.shape)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
        return bce + dice_loss_per_image(torch.sigmoid(logits), target, self.smooth)


def dice_loss_per_image(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over images of the smoothed soft Dice of each image (UltraLight's ``DiceLoss``)."""
    p, g = probs.flatten(1), target.flatten(1)
    dice = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return 1 - dice.mean()


def make_loss(name: str) -> nn.Module:
    import segmentation_models_pytorch as smp

    if name == "bce+dice-per-image":
        return PerImageBceDiceLoss()
    if name == "bce+dice":
        parts = [smp.losses.SoftBCEWithLogitsLoss(), smp.losses.DiceLoss("binary", from_logits=True)]
    elif name == "bce+jaccard":
        parts = [smp.losses.SoftBCEWithLogitsLoss(), smp.losses.JaccardLoss("binary", from_logits=True)]
    else:
        parts = [nn.CrossEntropyLoss(), smp.losses.DiceLoss("multiclass", from_logits=True)]
    return _SumLoss(parts, binary=name.startswith("bce"))


class _SumLoss(nn.Module):
    """Equal-weight sum of losses (the vitfeat recipe; for UltraLight's own see PerImageBceDiceLoss)."""

    def __init__(self, parts, binary: bool):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.binary = binary

    def forward(self, logits, mask):
        target = mask.unsqueeze(1).float() if self.binary else mask.long()
        return sum(p(logits, target) for p in self.parts)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)


def _loader(dataset, batch: int, shuffle: bool, seed: int | None = None) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    # a last batch of one image breaks BatchNorm (DeepLab's pooling branch) in training
    drop_last = shuffle and len(dataset) > batch and len(dataset) % batch == 1
    return DataLoader(dataset, batch_size=batch, shuffle=shuffle, generator=generator, drop_last=drop_last)


def tta_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Probabilities averaged over the image, its left-right and its up-down flip (test-time augmentation)."""
    total = probabilities(model(images))
    for dims in ((3,), (2,)):
        total = total + probabilities(model(images.flip(dims))).flip(dims)
    return total / 3


def evaluate(model: nn.Module, dataset, config: SegConfig, device, loss_fn=None, tta: bool = False) -> dict:
    """Mean loss (if ``loss_fn``) and pooled + per-image metrics of a model on a dataset (``tta``:
    the metrics of flip-averaged probabilities; the loss stays that of the plain prediction)."""
    model.eval()
    meter = SegmentationMeter(config.num_classes)
    total, n = 0.0, 0
    with torch.no_grad():
        for images, masks in _loader(dataset, config.eval_batch, shuffle=False):
            logits = model(segdata.normalize(images.to(device), config.input_normalization))
            masks = masks.to(device)
            if loss_fn is not None:
                total += float(loss_fn(logits, masks)) * len(images)
                n += len(images)
            meter.update(tta_probabilities(model, segdata.normalize(images.to(device), config.input_normalization))
                         if tta else probabilities(logits), masks)
    out = meter.compute()
    if loss_fn is not None:
        out["loss"] = total / max(n, 1)
    return out


def train_segmenter(manifest, out_dir, config: SegConfig | None = None, *, split_from=None,
                    resume: bool = False, progress: bool = True, allow_outside_root: bool = False) -> dict:
    """Train (or resume) a segmenter into ``out_dir``; returns the ``segmenter.json`` content."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = _resolve_config(out, config or SegConfig(), resume)
    items, skipped = segdata.items_from_manifest(manifest, config.modality,
                                                 allow_outside_root=allow_outside_root)
    split = _resolve_split(out, items, config, split_from, resume)
    parts = {name: [i for i, s in zip(items, split["split"]) if s == name] for name in segdata.SPLITS}
    if not parts["train"]:
        raise ValueError("the split leaves no case for training")
    if config.mask_mode == "multiclass" and config.mask_values is None:
        config.mask_values = segdata.mask_values(i.mask for i in parts["train"])
        if len(config.mask_values) < 2:
            raise ValueError(f"the training masks hold a single grey value {config.mask_values}: nothing to segment")
    write_text(out / "config.json", json.dumps(_config_dict(config), indent=2))

    datasets = {name: _dataset(parts[name], config, train=name == "train", progress=progress)
                for name in segdata.SPLITS}
    failures = skipped + [f for d in datasets.values() for f in d.failures]
    if failures:
        write_csv(out / "failures.csv", pd.DataFrame(failures))
        log.warning("%d case(s) left out; see %s", len(failures), out / "failures.csv")
    if len(datasets["train"]) == 0:
        raise ValueError("no readable training case")
    selection = "val" if len(datasets["val"]) else "train"

    device = select_device(config.device, mps=False)
    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(config.arch, config.num_classes, config.encoder, config.encoder_weights).to(device)
    if config.init_weights and not resume:
        model.load_state_dict(load_checkpoint(config.init_weights, device))
    loss_fn = make_loss(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config)

    def step(batch) -> StepOutput:
        images, masks = (t.to(device) for t in batch)
        return StepOutput(loss_fn(model(segdata.normalize(images, config.input_normalization)), masks), len(images))

    def validate(epoch: int) -> dict:
        val = evaluate(model, datasets[selection], config, device, loss_fn)
        return {"val_loss": val["loss"],
                **{f"val_{kind}_{m}": val[kind][m] for kind in ("pooled", "per_image") for m in ("dice", "iou")}}

    def report(row: dict, loop: TrainingLoop) -> None:
        if progress:
            tqdm.write(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  {selection} loss "
                       f"{row['val_loss']:.4f}  {selection} Dice {row['val_pooled_dice']:.4f}")

    def batches(epoch: int, seed: int):
        loader = _loader(datasets["train"], config.batch, shuffle=True, seed=seed)
        return tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)

    loop = TrainingLoop(
        {"model": model}, optimizer, scheduler,
        LoopSettings(epochs=config.epochs, first_epoch=1, seed=config.seed,
                     scheduler_step="plateau" if config.scheduler == "plateau" else "epoch",
                     patience=config.early_stop),
        make_batches=batches, step=step, validate=validate, on_epoch=report,
        last_path=out / "last.pt", best_path=out / "best.pt", log_dir=out, device=device)
    if resume and loop.resume():
        if config.scheduler == "cosine":  # the saved lr followed the old length; re-evaluate the curve
            for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * factor(scheduler.last_epoch)
        log.info("resuming %s at epoch %d", out, loop.next_epoch)
    history = loop.run().history

    return _finish(out, model, datasets, config, history, device, loss_fn, selection, manifest)


def _finish(out, model, datasets, config, history, device, loss_fn, selection, manifest) -> dict:
    model.load_state_dict(load_checkpoint(out / "best.pt", device))
    test_part = "test" if len(datasets["test"]) else selection
    test = evaluate(model, datasets[test_part], config, device, loss_fn, tta=config.tta)
    best = min(history, key=lambda r: r["val_loss"])
    from vitfeat.deep.segmentation.info import count_parameters

    meta = {
        "format": SEGMENTER_FORMAT,
        "arch": config.arch,
        "encoder": config.encoder if get_architecture(config.arch).uses_encoder else None,
        "num_classes": config.num_classes,
        "mask_values": config.mask_values,
        "normalize": get_architecture(config.arch).normalize,
        "resize": config.resize,
        "recipe": config.recipe,
        "tta": config.tta,
        "imgsz": config.imgsz,
        "modality": config.modality,
        "weights": "best.pt",
        "params": count_parameters(model),
        "best_epoch": best["epoch"],
        "epochs_done": len(history),
        "selected_on": selection,
        "mean_epoch_seconds": sum(r["epoch_seconds"] for r in history) / len(history),
        "split_counts": {k: len(v) for k, v in datasets.items()},
        "evaluated_on": test_part,
        "test_metrics": test,
        "manifest": str(Path(manifest).resolve()),
        "config": _config_dict(config),
        "device": str(device),
        "torch": torch.__version__,
    }
    write_text(out / "test_metrics.json", json.dumps(test, indent=2))
    meta["artefacts"] = artefact_hashes(out, [meta["weights"]])
    write_text(out / "segmenter.json", json.dumps(meta, indent=2))
    return meta


def _dataset(items, config: SegConfig, train: bool, progress: bool):
    augment = config.augment and train
    if config.recipe == "original":
        return segdata.OriginalRecipeDataset(items, config.imgsz, augment=augment, progress=progress)
    dataset = segdata.SegmentationDataset(items, config.imgsz, config.mask_values, augment=augment, progress=progress)
    if augment and config.augmentation == "strong":
        from vitfeat.deep.segmentation.augment import StrongAugment

        dataset.transform = StrongAugment()
    return dataset


def _make_scheduler(optimizer, config: SegConfig):
    floor = config.lr * config.lrf
    if config.scheduler == "cosine-periodic":
        # UltraLight's: torch's recursive CosineAnnealingLR stepped once per epoch; past T_max it
        # climbs back, so over 250 epochs the rate returns to lr at epochs 100 and 200
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.t_max, eta_min=config.eta_min)
    if config.scheduler == "cosine":
        # closed form in the epoch number (not CosineAnnealingLR's recursion), so that a resumed run
        # whose epochs grew follows the longer cosine from where it stands
        def factor(epoch: int) -> float:
            progress = min(epoch, config.epochs) / config.epochs
            return config.lrf + (1 - config.lrf) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                      patience=config.patience, min_lr=floor)


def _config_dict(config: SegConfig) -> dict:
    d = asdict(config)
    if not isinstance(d["split"], str):
        d["split"] = list(d["split"])
    return d


def _resolve_config(out: Path, config: SegConfig, resume: bool) -> SegConfig:
    saved = out / "config.json"
    if (out / "last.pt").is_file() and not resume:
        raise FileExistsError(f"{out} already holds a training run; pass resume=True (--resume) to continue it "
                              "or choose another output directory")
    if resume and saved.is_file():
        stored = json.loads(saved.read_text())
        names = {f.name for f in fields(SegConfig)}
        kept = SegConfig(**{k: (tuple(v) if k == "split" and isinstance(v, list) else v)
                            for k, v in stored.items() if k in names})
        if config.epochs is not None and config.epochs != kept.epochs:
            log.info("resume: epochs %d -> %d", kept.epochs, config.epochs)
            kept.epochs = max(config.epochs, kept.epochs)
        config = kept
    config.check()
    return config


def _resolve_split(out: Path, items, config: SegConfig, split_from, resume: bool) -> pd.DataFrame:
    own = out / "split.csv"
    if split_from is not None:
        split = segdata.read_split(split_from, items)
    elif resume and own.is_file():
        split = segdata.read_split(own, items)
    elif isinstance(config.split, str):
        split = segdata.ordered_split(items, segdata.parse_ordered_split(config.split))
    else:
        split = segdata.grouped_split(items, config.split, config.seed)
    segdata.write_split(split, own)
    return split
