"""Manifest cases -> paired tensors for VMTL.

Images are decoded and resized once per run (uint8, kept in memory: a few hundred cases at 224 px
are tens of MB); augmentation runs on those arrays, in training only. One normalisation (the
backbone's pretrained mean/std) is applied in training and inference alike. Boxes are derived from
the (augmented) masks, so they always match them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm.auto import tqdm

from vitfeat.dataset import MODALITIES, ImageReadError, read_image, read_mask

log = logging.getLogger(__name__)


@dataclass
class LoadedCase:
    """One case's arrays, prepared at the network's input size (see the field comments).

    Attributes
    ----------
    case_id, patient_id : str
        Ids.
    label : str or None
        The (first) target's class.
    images, masks : dict
        ``{modality: array}`` at (S, S); an absent modality is missing.
    """

    case_id: str
    patient_id: str
    label: str | None
    images: dict  # modality -> (S, S, 3) uint8, absent modality missing
    masks: dict  # modality -> (S, S) bool
    crop_boxes: dict  # modality -> (x0, y0, x1, y1) in original pixels when cropped (VMSL)
    sizes: dict  # modality -> (H, W) of the original photo
    labels: dict = field(default_factory=dict)  # target -> class name, for multi-target runs
    # modality -> annotated lesion box (x0, y0, x1, y1) in pixels of the prepared (S, S) image;
    # preferred to the mask's bounding box as the detection target
    boxes: dict = field(default_factory=dict)


def _resize(img, size, nearest=False):
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(img, (size, size), interpolation=interp)


def _crop(arr, box):
    x0, y0, x1, y1 = box
    return arr[y0:y1, x0:x1]


def _prepared_box(box, crop, shape, imgsz):
    """An annotated box (original pixels) in the prepared image's pixels: shifted by the crop,
    clipped to it and scaled to ``imgsz``; None when nothing of it is left inside."""
    x0, y0, x1, y1 = (float(v) for v in box)
    height, width = shape[:2]
    if crop is not None:
        x0, x1 = x0 - crop[0], x1 - crop[0]
        y0, y1 = y0 - crop[1], y1 - crop[1]
    x0, x1 = max(x0, 0.0), min(x1, float(width))
    y0, y1 = max(y0, 0.0), min(y1, float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    sx, sy = imgsz / width, imgsz / height
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def prepare_case(case_id: str, patient_id: str, label, images: dict, masks: dict, imgsz: int, roi=None,
                 boxes: dict | None = None) -> LoadedCase:
    """Crop (when ``roi(modality, image, mask) -> box|None`` says so) and resize one case's arrays.

    ``boxes`` maps a modality to its annotated lesion box ``(x0, y0, x1, y1)`` in original pixels;
    it follows the same crop and resize.

    Parameters
    ----------
    case_id, patient_id : str
        Ids.
    label : str or None
        The target's class.
    images, masks : dict
        ``{modality: array}`` at the photos' own size.
    imgsz : int
        Output side.
    roi : callable, optional
        ``roi(modality, image, mask) -> box or None`` (:func:`make_roi`).
    boxes : dict, optional
        Annotated boxes.

    Returns
    -------
    LoadedCase
    """
    out_images, out_masks, crop_boxes, sizes, out_boxes = {}, {}, {}, {}, {}
    for mod in MODALITIES:
        img = images.get(mod)
        if img is None:
            continue
        mask = masks.get(mod)
        sizes[mod] = img.shape[:2]
        box = roi(mod, img, mask) if roi is not None else None
        if box is not None:
            crop_boxes[mod] = tuple(int(v) for v in box)
            img = _crop(img, crop_boxes[mod])
            mask = _crop(mask, crop_boxes[mod]) if mask is not None else None
        annotated = (boxes or {}).get(mod)
        if annotated is not None:
            prepared = _prepared_box(annotated, crop_boxes.get(mod), img.shape, imgsz)
            if prepared is not None:
                out_boxes[mod] = prepared
        out_images[mod] = _resize(img, imgsz)
        if mask is not None:
            out_masks[mod] = _resize(mask.astype(np.uint8), imgsz, nearest=True).astype(bool)
    return LoadedCase(case_id, patient_id, None if label is None else str(label), out_images, out_masks,
                      crop_boxes, sizes, boxes=out_boxes)


def load_case(case, imgsz: int, target=None, roi=None) -> LoadedCase:
    """Read one manifest ``Case`` (images and masks) and prepare it; ``target`` is a column name or
    a list of them (the first is ``label``, all are in ``labels``).

    Parameters
    ----------
    case : vitfeat.dataset.Case
        The case.
    imgsz : int
        Output side.
    target : str or list of str, optional
        Target column(s).
    roi : callable, optional
        Crop rule (:func:`make_roi`).

    Returns
    -------
    LoadedCase
    """
    images = {m: read_image(case.image(m)) for m in MODALITIES if case.image(m) is not None}
    masks = {m: read_mask(case.mask(m)) for m in images if case.mask(m) is not None}
    targets = [] if target is None else [target] if isinstance(target, str) else list(target)
    label = case.targets.get(targets[0]) if targets else None
    boxes = {m: case.box(m) for m in images if case.box(m) is not None}
    loaded = prepare_case(case.case_id, case.patient_id, label, images, masks, imgsz, roi, boxes)
    loaded.labels = {t: str(case.targets.get(t)) for t in targets}
    return loaded


def make_roi(cfg):
    """VMSL lesion crops per ``cfg.roi``: "masks" (the given mask), "model:PATH" (a mask predictor,
    YOLO .pt or segmenter dir, via vitfeat.deep.mask_source) or "whole"; None when no crop is set.

    Parameters
    ----------
    cfg : VMTLConfig
        Its ``roi`` setting.

    Returns
    -------
    callable or None
    """
    if not cfg.roi:
        return None
    from vitfeat.deep.roi import select_roi

    predictors = {}
    for mod, source in cfg.roi.items():
        if mod not in MODALITIES:
            raise ValueError(f"roi: unknown modality {mod!r} (use {', '.join(MODALITIES)})")
        if source.startswith("model:"):
            from vitfeat.deep.mask_source import load_mask_predictor

            predictors[mod] = load_mask_predictor(source.split(":", 1)[1])
        elif source not in ("masks", "whole"):
            raise ValueError(f"roi source {source!r} for {mod}: use masks, whole or model:PATH")

    def roi(modality, image, mask):
        source = cfg.roi.get(modality, "whole")
        if modality in predictors:
            mask = predictors[modality].predict(image, modality)
        elif source != "masks":
            return None
        return select_roi(image.shape, mask, margin=cfg.roi_margin).box

    return roi


def load_cases(cases, imgsz: int, target: str | None = None, roi=None, progress: bool = True):
    """Load every case; returns (loaded, failures) where failures is a list of (case_id, message).

    Parameters
    ----------
    cases : iterable of vitfeat.dataset.Case
        The cases.
    imgsz : int
        Output side.
    target : str, optional
        Target column(s).
    roi : callable, optional
        Crop rule.
    progress : bool, default True
        Progress bar.

    Returns
    -------
    tuple
        ``(list of LoadedCase, list of (case_id, message))``.
    """
    loaded, failures = [], []
    for case in tqdm(list(cases), desc="loading images", disable=not progress, leave=False):
        try:
            loaded.append(load_case(case, imgsz, target, roi))
        except (ImageReadError, OSError, ValueError) as exc:
            log.warning("case %s skipped: %s", case.case_id, exc)
            failures.append((case.case_id, str(exc)))
    return loaded, failures


def mask_to_box(mask: np.ndarray | torch.Tensor):
    """Normalised (cx, cy, w, h) of a mask's bounding box, or None when the mask is empty.

    Parameters
    ----------
    mask : numpy.ndarray or torch.Tensor
        (H, W) mask.

    Returns
    -------
    torch.Tensor or None
    """
    m = torch.as_tensor(mask).bool().squeeze()
    ys, xs = torch.nonzero(m, as_tuple=True)
    if len(xs) == 0:
        return None
    h, w = m.shape
    x0, x1 = xs.min().item(), xs.max().item() + 1
    y0, y1 = ys.min().item(), ys.max().item() + 1
    return torch.tensor([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], dtype=torch.float32)


def box_to_mask(box, size: int) -> np.ndarray:
    """Rasterise a box ``(x0, y0, x1, y1)`` (pixels) as a (size, size) bool mask, so that it can
    follow the geometric augmentation alongside the lesion mask.

    Parameters
    ----------
    box : sequence of float
        ``(x0, y0, x1, y1)`` in pixels.
    size : int
        The image side.

    Returns
    -------
    numpy.ndarray
    """
    out = np.zeros((size, size), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    out[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)] = True
    return out


def build_transform(train: bool, mean, std):
    """Geometric + photometric augmentation for training (masks follow the geometry), then the
    one normalisation shared with inference.

    Parameters
    ----------
    train : bool
        Augment.
    mean, std : tuple of float
        The backbone's normalisation.

    Returns
    -------
    callable
    """
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    if not train:
        return v2.Compose(tail)
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(0.9, 1.1)),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.02),
        v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.0))], p=0.2),
        *tail,
    ])


class PairedDataset(Dataset):
    """Items are dicts of tensors; absent images/masks are zeros with a ``has_*`` flag False.

    Parameters
    ----------
    cases : list of LoadedCase
        The prepared cases.
    classes : list of str
        The (first) target's classes, in index order.
    imgsz : int
        Input side.
    mean, std : tuple of float
        The backbone's normalisation.
    train : bool
        Augment (training) or not.
    target_classes : dict, optional
        ``{target: classes}`` for several targets.
    """

    def __init__(self, cases: list[LoadedCase], classes: list[str], imgsz: int, mean, std, train: bool,
                 target_classes: dict | None = None):
        self.cases = cases
        self.index = {c: i for i, c in enumerate(classes)}
        # several targets: item["labels"] holds one class index per target (-1 when unknown)
        self.target_index = {t: {c: i for i, c in enumerate(cl)} for t, cl in (target_classes or {}).items()}
        self.imgsz = imgsz
        self.transform = build_transform(train, mean, std)

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, i):
        case = self.cases[i]
        s = self.imgsz
        item = {"case_id": case.case_id,
                "label": self.index.get(case.label, -1) if case.label is not None else -1}
        if self.target_index:
            item["labels"] = torch.tensor([index.get(case.labels.get(t), -1) for t, index in self.target_index.items()])
        for mod in MODALITIES:
            img = case.images.get(mod)
            mask = case.masks.get(mod)
            if img is None:
                item[mod] = torch.zeros(3, s, s)
                item[f"{mod}_mask"] = torch.zeros(1, s, s)
                has_mask = False
            else:
                image = tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1))
                annotated = case.boxes.get(mod)
                # the annotated box travels as a second mask channel: same flips, affine and crop
                channels = [mask if mask is not None else np.zeros((s, s), bool)]
                if annotated is not None:
                    channels.append(box_to_mask(annotated, s))
                m = tv_tensors.Mask(torch.from_numpy(np.stack(channels)).to(torch.uint8))
                image, m = self.transform(image, m)
                m = m.as_subclass(torch.Tensor).float()
                item[mod] = image.as_subclass(torch.Tensor)
                item[f"{mod}_mask"] = m[:1]
                has_mask = mask is not None
            if img is not None and case.boxes.get(mod) is not None:
                box = mask_to_box(m[1])
            else:
                box = mask_to_box(item[f"{mod}_mask"]) if has_mask else None
            item[f"has_{mod}"] = img is not None
            item[f"has_{mod}_mask"] = has_mask
            item[f"has_{mod}_box"] = box is not None
            item[f"{mod}_box"] = box if box is not None else torch.zeros(4)
        return item


def to_device(batch: dict, device, channels_last: bool = False) -> dict:
    """The batch's tensors moved to ``device`` (other values kept).

    Parameters
    ----------
    batch : dict
        A batch of :class:`PairedDataset` items.
    device : torch.device
        Where to.
    channels_last : bool, default False
        Put image tensors in channels-last memory format (faster convolutions on CUDA).

    Returns
    -------
    dict
    """
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4 and v.shape[1] == 3:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
