"""Configuration of a VMTL run: one dataclass, saved with the run so predict rebuilds the same model.

Three variants share the code:

* ``vmtl``     paired encoder, clinical<->Wood's cross-attention, all task heads (the default).
* ``vmsl``     the same network on lesion crops (ROI from masks or a YOLO model), classification
               and the contrastive term only, as the original VMSL.
* ``baseline`` a fine-tuned single timm backbone (resnet50, ViT, ConvNeXt, ...): pooled features of
               both photos concatenated, a linear classifier; the original's deep baselines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

VARIANTS = ("vmtl", "vmsl", "baseline")
TASKS = ("cls", "seg", "box", "recon", "con")

# Class names that mean "progressing" in the datasets we know; the contrastive term pushes their
# clinical and Wood's embeddings apart (the Wood's lesion outgrows the daylight one) and pulls the
# others together.
ACTIVE_NAMES = ("active", "non-stable", "nonstable", "unstable", "progressive", "progressing")


@dataclass
class VMTLConfig:
    variant: str = "vmtl"
    backbone: str = "convnextv2_tiny"
    weights: str = "hub"  # "hub" (timm pretrained), "random", or a local .pth/.safetensors file
    imgsz: int = 224
    target: str = "label"
    positive_class: str | None = None  # the "active" class of the contrastive term; guessed if None

    # architecture (defaults follow the original: 768-wide attention, 8 heads, 3 iterations)
    dim: int | None = None  # attention width; None = the backbone's last-stage channels
    heads: int = 8
    iterations: int = 3
    pool_scale: int = 2
    dropout: float = 0.5

    # tasks and their weighting
    tasks: tuple = TASKS
    importance: dict = field(default_factory=lambda: {"cls": 2.0, "con": 1.0, "box": 1.0, "seg": 1.0, "recon": 0.5})
    log_var_init: dict = field(default_factory=lambda: {"cls": -0.3, "con": -0.1, "box": 0.5, "seg": 0.5, "recon": 0.8})
    focal_gamma: float = 3.0
    label_smoothing: float = 0.05
    aux_weight: float = 0.25  # per-modality classifiers on z_clinical / z_wood (dead code in the original)
    margins: tuple = (0.9, 0.2)  # cosine margins: stable pairs above 0.9, active pairs below 0.2
    mask_ratio: float = 0.75
    patch: int = 16

    # optimisation
    epochs: int = 30
    batch: int = 8
    lr: float = 1e-4
    head_lr_mult: float = 10.0  # new layers learn faster than the (pretrained) backbone
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    patience: int = 10
    clip_norm: float = 5.0
    val_fraction: float = 0.2
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None  # CPU threads for torch; None keeps torch's default. Small models on a
    # busy machine run far faster with 1 (OpenMP barriers stall when cores are oversubscribed).

    # VMSL: where lesion crops come from, per modality: "masks" (given masks), "model:PATH" (YOLO
    # .pt or segmenter dir via vitfeat.deep.mask_source), or "whole"
    roi: dict = field(default_factory=dict)
    roi_margin: float = 0.1

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        self.tasks = tuple(self.tasks)
        self.margins = tuple(self.margins)
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")
        if "cls" not in self.tasks:
            raise ValueError("the 'cls' task is required: it is what the run is scored on")
        if self.variant == "baseline" and set(self.tasks) != {"cls"}:
            raise ValueError("the baseline variant trains the classification task only (tasks=('cls',))")

    @property
    def pipeline_name(self) -> str:
        return f"{self.variant}:{self.backbone}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tasks"], d["margins"] = list(self.tasks), list(self.margins)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VMTLConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VMTL config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def preset(variant: str = "vmtl", **overrides) -> VMTLConfig:
    """A config with the variant's task set, then ``overrides`` (None values are ignored)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if variant == "vmsl":
        overrides.setdefault("tasks", ("cls", "con"))
        overrides.setdefault("roi", {"clinical": "masks", "wood": "masks"})
    elif variant == "baseline":
        overrides.setdefault("tasks", ("cls",))
        overrides.setdefault("backbone", "resnet50")
    return VMTLConfig(variant=variant, **overrides)


def guess_positive(classes: list[str], positive: str | None = None) -> str:
    if positive is not None:
        if positive not in classes:
            raise ValueError(f"positive class {positive!r} is not among the labels {classes}")
        return positive
    for name in classes:
        if name.lower() in ACTIVE_NAMES:
            return name
    return classes[-1]
