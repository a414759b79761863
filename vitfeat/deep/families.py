"""The ``deep`` feature family: timm embeddings of lesion crops, one column per embedding dimension.

Spec grammar (``vitfeat extract --families ...``)::

    deep:BACKBONE[@WEIGHTS][:OPTION=VALUE ...]

    deep:convnextv2_tiny                         timm hub weights (cache only when offline)
    deep:resnet50@/data/w/resnet50.safetensors   a local weights file (.pth/.pt/.bin/.safetensors)
    deep:samvit_base_patch16@random              random weights (warned, recorded in provenance)
    deep:resnet50@hub:roi=full                   whole images instead of lesion crops
    deep:resnet50@random:roi=full:size=128       options chain with ':'
    deep:convnextv2_tiny:roi=yolo:runs/yolo-det  crops around a trained YOLO model's best box
    deep:vmtl@RUN_DIR                            the VMTL model's fused embedding (vitfeat.deep.vmtl)

Options: ``roi`` = ``mask`` (default: the bounding box of the case's lesion mask, whatever the
extract mask source gave: given, auto or model:PATH; whole image when there is no mask), ``full``, or
``yolo:PATH`` (a YOLO model: its most confident box, or for a segment model the box of its masks);
``margin`` (fraction of the box added on each side, default 0.1); ``size`` (backbone input px,
default the backbone's); ``batch`` (inference batch size, default 32); ``device`` (auto|cpu|cuda);
``name`` (the column stem, default the backbone's name: two specs with the same backbone in one
extraction, e.g. ``deep:resnet50`` and ``deep:resnet50:roi=full:name=resnet50_full``, need one).

Columns are ``<modality>_deep_<backbone>_<i>`` with ``i`` zero-padded (``clinical_deep_resnet50_0017``),
for each modality the case has; a missing Wood's image gives NaN columns. The family version holds
the backbone, the weights' content hash, the ROI mode (and the YOLO model's hash) and the input size,
so the engine's cache is invalidated whenever the vectors would change. PCA or other reduction
belongs in the fit pipelines, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitfeat.deep.embedders import Embedder, column_stem, describe_weights, get_backbone
from vitfeat.deep.roi import crop_roi

FAMILY = "deep"
#: Bump when the crop or embedding procedure changes (invalidates cached deep features).
FAMILY_VERSION = "1"
MODALITIES = ("clinical", "wood")
ROI_MODES = ("mask", "full", "yolo")
DEFAULT_OPTIONS = {"roi": "mask", "margin": 0.1, "size": None, "batch": 32, "device": "auto", "name": None}


@dataclass
class DeepSpec:
    """A parsed ``deep:...`` family spec.

    Attributes
    ----------
    backbone : str
        The timm backbone.
    weights : str
        ``hub``, ``random`` or a weight file.
    options : dict
        ROI, margin, crop size and the other ``key=value`` options.
    """

    backbone: str
    weights: str = "hub"
    options: dict = field(default_factory=lambda: dict(DEFAULT_OPTIONS))

    @property
    def roi_mode(self) -> str:
        return str(self.options["roi"]).split(":", 1)[0]

    @property
    def roi_model(self) -> str | None:
        roi = str(self.options["roi"])
        return roi.split(":", 1)[1] if roi.startswith("yolo:") else None


def parse_spec(spec: str) -> DeepSpec:
    """Parse ``deep:BACKBONE[@WEIGHTS][:key=value...]`` (see the module docstring).

    Options are separated by ``:`` rather than ``,`` because family lists are comma-separated.

    Parameters
    ----------
    spec : str
        ``deep:BACKBONE[@WEIGHTS][:key=value...]``.

    Returns
    -------
    DeepSpec
    """
    if not spec.startswith(f"{FAMILY}:"):
        raise ValueError(f"not a deep family spec: '{spec}' (expected 'deep:BACKBONE[@WEIGHTS]')")
    body = spec[len(FAMILY) + 1:]
    # Options start at a ':' followed by 'key=': a drive letter or ':' inside a path survives.
    head, *opts = re.split(r":(?=\s*[A-Za-z_]+\s*=)", body)
    backbone, _, weights = head.partition("@")
    backbone = backbone.strip()
    if not backbone:
        raise ValueError(f"'{spec}': no backbone named (e.g. deep:convnextv2_tiny@hub)")
    options = dict(DEFAULT_OPTIONS)
    for opt in opts:
        key, _, value = opt.partition("=")
        key = key.strip()
        if key not in DEFAULT_OPTIONS:
            raise ValueError(f"'{spec}': unknown option '{key}' (known: {', '.join(DEFAULT_OPTIONS)})")
        options[key] = value.strip()
    options["margin"] = float(options["margin"])
    options["batch"] = int(options["batch"])
    options["size"] = int(options["size"]) if options["size"] not in (None, "", "None") else None
    if options["name"] is not None and column_stem(options["name"]) != options["name"]:
        raise ValueError(f"'{spec}': name must be lower-case letters, digits and '_' (got '{options['name']}')")
    parsed = DeepSpec(backbone, weights.strip() or "hub", options)
    if parsed.roi_mode not in ROI_MODES or (parsed.roi_mode == "yolo" and not parsed.roi_model):
        raise ValueError(f"'{spec}': roi must be mask, full or yolo:PATH, not '{options['roi']}'")
    return parsed


class DeepFeatures:
    """Callable state behind one deep family: the (lazily built) embedder and the ROI finder.

    Models are built on first use, in the process that runs the family (the engine runs batch
    families in its main process), so listing or validating families costs nothing.

    Parameters
    ----------
    spec : DeepSpec
        The parsed spec.
    """

    def __init__(self, spec: DeepSpec):
        self.spec = spec
        self.backbone = get_backbone(spec.backbone)
        self.stem = spec.options["name"] or column_stem(spec.backbone)
        self.weights_kind, self.weights_id = describe_weights(spec.weights)
        self.roi_id = spec.roi_mode
        if spec.roi_model:
            from vitfeat.dataset import file_hash

            model = Path(spec.roi_model)
            model_file = model / "model.pt" if model.is_dir() else model
            if not model_file.is_file():
                raise FileNotFoundError(f"roi=yolo: YOLO model not found: {model_file}")
            self.roi_id = f"yolo:{file_hash(model_file)}"
        self._embedder: Embedder | None = None
        self._roi_model = None

    @property
    def version(self) -> str:
        o = self.spec.options
        named = f"|name={o['name']}" if o["name"] else ""  # cached values are keyed by column name
        return (f"{FAMILY_VERSION}|{self.backbone.timm_name}|{self.weights_id}|roi={self.roi_id}"
                f"|margin={o['margin']}|size={o['size'] or 'default'}{named}")

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            o = self.spec.options
            self._embedder = Embedder(self.spec.backbone, self.spec.weights, img_size=o["size"],
                                      device=o["device"], batch_size=o["batch"])
        return self._embedder

    def describe(self) -> dict:
        """Provenance: the embedder's description (built on demand) plus the ROI settings."""
        return {**self.embedder.describe(), "roi": self.spec.options["roi"], "roi_id": self.roi_id,
                "margin": self.spec.options["margin"], "family_version": self.version}

    def columns(self, modality: str) -> list[str]:
        """The family's column names for ``modality`` (one per embedding dimension).

        Parameters
        ----------
        modality : str
            ``clinical`` or ``wood``.

        Returns
        -------
        list of str
        """
        n = self.embedder.num_features
        width = max(3, len(str(n - 1)))
        return [f"{modality}_{FAMILY}_{self.stem}_{i:0{width}d}" for i in range(n)]

    def crop(self, case, modality: str) -> np.ndarray | None:
        """The lesion crop the backbone embeds (mask, box, YOLO or whole photo, per the spec).

        Parameters
        ----------
        case : CaseArrays
            The case.
        modality : str
            ``clinical`` or ``wood``.

        Returns
        -------
        numpy.ndarray or None
            None without that photo.
        """
        image = case.image(modality)
        if image is None:
            return None
        margin = self.spec.options["margin"]
        size = self.embedder.img_size
        mode = self.spec.roi_mode
        try:
            if mode == "full":
                return crop_roi(image, size=size)[0]
            if mode == "yolo":
                return crop_roi(image, box=self._yolo_box(image), margin=margin, size=size)[0]
            box = case.box(modality)
            if box is not None:  # an annotated box is preferred to the mask's bounding box
                return crop_roi(image, box=box, margin=margin, size=size)[0]
            return crop_roi(image, mask=case.mask(modality), margin=margin, size=size)[0]
        except ValueError as exc:
            raise ValueError(f"case {case.case_id}, {modality}: {exc}") from None

    def _yolo_box(self, image: np.ndarray):
        if self._roi_model is None:
            from vitfeat.deep.yolo import YoloPredictor

            self._roi_model = YoloPredictor(self.spec.roi_model, device=self.spec.options["device"])
        det = self._roi_model.detect(image)
        if det.masks is not None:  # segment model: the box of all its masks (VMSL's Wood's-lamp crop)
            from vitfeat.deep.roi import bbox_from_mask

            return bbox_from_mask(det.union_mask(image.shape))
        return det.best_box()  # detect model: the most confident box (VMSL's clinical crop)

    def batch(self, cases, **config) -> list[dict]:
        """Features for several cases at once (one forward pass per batch and modality).

        Parameters
        ----------
        cases : list of CaseArrays
            The cases.
        **config
            Refused: deep families take their options in the spec.

        Returns
        -------
        list of dict
        """
        if config:
            raise ValueError(f"deep families take their options in the spec (e.g. deep:{self.spec.backbone}"
                             f"@hub:roi=full:margin=0.2), not as config keys: {', '.join(sorted(config))}")
        rows = [dict() for _ in cases]
        for modality in MODALITIES:
            cols = self.columns(modality)
            crops, where = [], []
            for i, case in enumerate(cases):
                crop = self.crop(case, modality)
                if crop is None:
                    rows[i].update(dict.fromkeys(cols, float("nan")))
                else:
                    crops.append(crop)
                    where.append(i)
            if crops:
                vectors = self.embedder.embed(crops)
                for i, vec in zip(where, vectors):
                    rows[i].update(zip(cols, vec.astype(float).tolist()))
        return rows

    def __call__(self, case, **config) -> dict:
        return self.batch([case], **config)[0]


def make_deep_family(spec: str):
    """timm embeddings of lesion crops, deep:BACKBONE[@WEIGHTS][:roi=mask|full|yolo:PATH] (docs/deep.md)

    The factory for the featurize registry: ``deep:...`` spec -> :class:`vitfeat.featurize.registry.Family`.

    Registered for the ``deep`` prefix through the ``vitfeat.families`` entry point (setup.cfg).

    Parameters
    ----------
    spec : str
        ``deep:BACKBONE[@WEIGHTS][:key=value...]``.

    Returns
    -------
    vitfeat.featurize.registry.Family
    """
    from vitfeat.featurize.registry import Family

    parsed = parse_spec(spec)
    if parsed.backbone == "vmtl":
        # The VMTL engineer's model embeds a clinical + Wood's pair; it builds its own family.
        from vitfeat.deep.vmtl import load_embedder

        return load_embedder(parsed.weights)
    features = DeepFeatures(parsed)
    return Family(name=spec, version=features.version, modalities=MODALITIES, func=features,
                  batch_func=features.batch,
                  column_prefixes=tuple(f"{m}_{FAMILY}_{features.stem}_" for m in MODALITIES),
                  description=f"timm {parsed.backbone} embeddings of lesion crops "
                              f"({features.weights_kind} weights, roi={parsed.roi_mode})")
