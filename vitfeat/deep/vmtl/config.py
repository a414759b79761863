"""Configuration of a VMTL run: one dataclass, saved with the run so predict rebuilds the same model.

The variants live in :data:`VARIANTS`, a :class:`vitfeat.registry.Registry` of :class:`Variant`:

* ``original`` the published VMTL network exactly (aaalzh/VMTL, 45,004,053 parameters with
               convnextv2_tiny), its losses and its 6-stage curriculum, selected by P*S*R.
* ``vmtl``     vitfeat's redesign: per-direction cross-attention, per-modality heads, all tasks
               jointly (the default).
* ``vmsl``     the redesign on lesion crops (ROI from masks or a YOLO model), classification
               and the contrastive term only, as the original VMSL.
* ``baseline`` a fine-tuned single timm backbone (resnet50, ViT, ConvNeXt, ...): pooled features of
               both photos concatenated, one linear head per target; the original's deep baselines
               and seed 002's multi-task classifier (several ``targets``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vitfeat.registry import Registry


@dataclass(frozen=True)
class Variant:
    """A VMTL variant: its network (``"module:Class"``, imported when built) and its preset.

    Attributes
    ----------
    name : str
        ``--variant`` value.
    network : str
        ``"module:Class"`` of the network, built as ``Class(cfg, n_classes)``.
    description : str
        One line (``vitfeat list vmtl-variant``).
    defaults : dict
        :class:`VMTLConfig` fields the variant presets.
    """

    name: str
    network: str
    description: str
    defaults: dict = field(default_factory=dict)


VARIANTS: Registry[Variant] = Registry("VMTL variant", "vitfeat.vmtl_variants")
VARIANTS.register("vmtl", Variant("vmtl", "vitfeat.deep.vmtl.model:VMTLNet",
                                  "vitfeat's redesign: per-direction cross-attention, per-modality heads, joint tasks"))
VARIANTS.register("vmsl", Variant("vmsl", "vitfeat.deep.vmtl.model:VMTLNet",
                                  "the redesign on lesion crops, stage + contrastive terms (as VMSL)",
                                  {"tasks": ("cls", "con"), "roi": {"clinical": "masks", "wood": "masks"}}))
VARIANTS.register("baseline", Variant("baseline", "vitfeat.deep.vmtl.model:BaselineNet",
                                      "fine-tuned single backbone, both photos' pooled features, one head per target",
                                      {"tasks": ("cls",), "backbone": "resnet50"}))
# The published recipe (../shared/notes/vmtl.md): no effective augmentation, AdamW weight decay 1e-5,
# batch 8, stages 0-2 of the backbone frozen, focal alpha 2 / gamma 3 / smoothing 0.05 (original
# convention), learnable margins 0.9 / 0.2, six stages with their epochs, patience and learning rates.
VARIANTS.register("original", Variant("original", "vitfeat.deep.vmtl.original:OriginalVMTLNet",
                                      "the published VMTL exactly: one cross-attention module, fused 6x6 map, "
                                      "6-stage curriculum, P*S*R selection",
                                      {"tasks": ("cls", "box", "seg", "recon", "con"), "augment": False,
                                       "weight_decay": 1e-5, "batch": 8, "focal_alpha": 2.0, "focal_gamma": 3.0,
                                       "label_smoothing": 0.05, "frozen_stages": (0, 1, 2), "seed": 42}))
TASKS = ("cls", "seg", "box", "recon", "con")

@dataclass
class VMTLConfig:
    """Everything that decides a VMTL run; saved with it so that ``predict`` rebuilds the same model.

    Attributes
    ----------
    variant : str
        A name of :data:`VARIANTS`.
    backbone : str
        A timm backbone (``vitfeat list backbone``).
    weights : str
        ``hub`` (timm pretrained), ``random`` or a local weight file.
    imgsz : int
        Input size.
    target : str
        The target column (``targets`` for several).
    """

    variant: str = "vmtl"
    backbone: str = "convnextv2_tiny"
    weights: str = "hub"  # "hub" (timm pretrained), "random", or a local .pth/.safetensors file
    imgsz: int = 224
    target: str = "label"
    targets: tuple = ()  # baseline only: several targets, one head each (the first is ``target``)
    positive_class: str | None = None  # the "active" class of the contrastive term; guessed if None

    # architecture (defaults follow the original: 768-wide attention, 8 heads, 3 iterations)
    dim: int | None = None  # attention width; None = the backbone's last-stage channels
    heads: int = 8
    iterations: int = 3
    pool_scale: int = 2
    dropout: float = 0.5
    hidden_dim: int = 384  # original: width of the fused neck and the heads (Config.hidden_dim)
    frozen_stages: tuple = ()  # backbone stages kept frozen (original: 0, 1, 2)

    # tasks and their weighting
    tasks: tuple = TASKS
    importance: dict = field(default_factory=lambda: {"cls": 2.0, "con": 1.0, "box": 1.0, "seg": 1.0, "recon": 0.5})
    log_var_init: dict = field(default_factory=lambda: {"cls": -0.3, "con": -0.1, "box": 0.5, "seg": 0.5, "recon": 0.8})
    focal_gamma: float = 3.0
    focal_alpha: float = 1.0  # original only (2); a plain scale, absorbed by the weighting elsewhere
    # redesign: torch's convention (true class 1 - eps + eps/C); original: its own convention
    # (true class 1 - eps, eps/(C-1) elsewhere), i.e. twice as strong for two classes
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
    oversample: bool = False  # random oversampling of the minority class, inside training folds only
    # original's curriculum (stage 0: all tasks, 1: recon, 2: box, 3: seg, 4: contrastive, each with
    # cls; 5: all tasks); each stage restarts from the best weights so far
    stage_epochs: tuple = (80, 30, 30, 30, 100, 120)
    stage_patience: tuple = (40, 20, 20, 20, 40, 60)
    stage_lrs: tuple = (5e-5, 4e-5, 4e-5, 4e-5, 6e-5, 4e-5)
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
            raise ValueError(f"variant must be one of {', '.join(VARIANTS.names())}, not {self.variant!r}")
        for name in ("tasks", "margins", "targets", "frozen_stages", "stage_epochs", "stage_patience", "stage_lrs"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.targets:
            if self.variant != "baseline":
                raise ValueError("several targets (one head each) are trained by the baseline variant only")
            self.target = self.targets[0]
        if not len(self.stage_epochs) == len(self.stage_patience) == len(self.stage_lrs) == 6:
            raise ValueError("stage_epochs, stage_patience and stage_lrs need one value per curriculum stage (6)")
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

    @property
    def network(self) -> str:
        """The variant's network, ``"module:Class"`` (:data:`VARIANTS`); the model module builds it from
        this without importing the registry, so that config, model and original import no one in a circle."""
        return VARIANTS.get(self.variant).network

    @property
    def all_targets(self) -> tuple:
        """The targets the run is scored on (``targets``, or the single ``target``)."""
        return self.targets or (self.target,)

    def to_dict(self) -> dict:
        """The config as plain YAML/JSON values (tuples as lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "VMTLConfig":
        """The config of a saved run, refusing keys it does not know.

        Parameters
        ----------
        d : dict
            :meth:`to_dict`'s output.

        Returns
        -------
        VMTLConfig
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VMTL config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def preset(variant: str = "vmtl", **overrides) -> VMTLConfig:
    """A config with the variant's task set, then ``overrides`` (None values are ignored).

    Parameters
    ----------
    variant : str, default "vmtl"
        A name of :data:`VARIANTS`.
    **overrides
        :class:`VMTLConfig` fields.

    Returns
    -------
    VMTLConfig
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in VARIANTS.get(variant).defaults.items():
        overrides.setdefault(key, value)
    return VMTLConfig(variant=variant, **overrides)


def guess_positive(classes: list[str], positive: str | None = None, y=None, target: str | None = None) -> str:
    """The positive ("non-stable") class: the project's one rule, :func:`vitfeat.evaluation.positive.positive_class`
    (known stage names, else ``positive``, else the minority class with a warning).

    Parameters
    ----------
    classes : list of str
        The target's classes.
    positive : str, optional
        An explicit choice (must be a class).
    y : array-like, optional
        The labels (for the minority rule).
    target : str, optional
        The target's name (for the warning).

    Returns
    -------
    str
    """
    from vitfeat.evaluation.positive import positive_class

    if positive is not None and positive not in classes:
        raise ValueError(f"positive class {positive!r} is not among the labels {classes}")
    return positive_class(classes, y=y, explicit=positive, target=target)
