"""From a manifest to training tensors: patient-grouped splits, mask classes, joint augmentation.

Masks are binary (lesion where grey >= 128, as everywhere in vitfeat) or multi-class: the distinct
grey values found in the training masks, sorted, become classes 0..K-1 (0 = the darkest value =
background), and the mapping is saved with the model so that predictions speak the same language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from vitfeat.atomic import write_csv
from vitfeat.dataset import ImageReadError, load_manifest, read_image, read_mask

SPLITS = ("train", "val", "test")
UNUSED = "unused"  # cases an ordered split leaves out (beyond the sum of its counts)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


@dataclass(frozen=True)
class SegItem:
    """One usable case of a segmentation run.

    Attributes
    ----------
    case_id, patient_id : str
        Ids.
    image, mask : pathlib.Path
        The photo and its mask.
    """

    case_id: str
    patient_id: str
    image: Path
    mask: Path


def items_from_manifest(manifest_path, modality: str = "clinical", *,
                        allow_outside_root: bool = False) -> tuple[list[SegItem], list[dict]]:
    """Cases that have both a ``modality`` image and its mask; the others are listed as skipped.

    Parameters
    ----------
    manifest_path : path-like
        The manifest.
    modality : {"clinical", "wood"}, default "clinical"
        Which photos.
    allow_outside_root : bool, default False
        Read paths outside the manifest's root.

    Returns
    -------
    tuple
        ``(items, skipped)``: the usable cases and ``{case_id, reason}`` records.
    """
    if modality not in ("clinical", "wood"):
        raise ValueError(f"modality must be 'clinical' or 'wood', not '{modality}'")
    manifest = load_manifest(manifest_path, require_targets=False, allow_outside_root=allow_outside_root)
    items, skipped = [], []
    for case in manifest.cases():
        image, mask = case.image(modality), case.mask(modality)
        if image is None or mask is None:
            skipped.append({"case_id": case.case_id, "reason": f"no {modality} image or {modality}_mask"})
            continue
        items.append(SegItem(case.case_id, case.patient_id, image, mask))
    if not items:
        raise ValueError(f"{manifest_path}: no case has both a '{modality}' image and a '{modality}_mask'")
    return items, skipped


def grouped_split(items: list[SegItem], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> pd.DataFrame:
    """Assign whole patients to train/val/test so that no patient's photos straddle two parts.

    The parts come from the project's one patient-split function,
    :func:`vitfeat.evaluation.folds.grouped_split` (scikit-learn's GroupShuffleSplit): the test
    part is drawn first, then the validation part from the rest; the fractions are shares of the
    patients. Every part gets at least one patient when there are three and its fraction is not 0.

    Parameters
    ----------
    items : list of SegItem
        The usable cases, in manifest order.
    fractions : tuple of float, default (0.7, 0.15, 0.15)
        Train, validation and test shares.
    seed : int, default 0
        Shuffling seed.

    Returns
    -------
    pandas.DataFrame
        ``case_id, patient_id, split``.
    """
    from vitfeat.evaluation.folds import grouped_split as patient_split

    frame = pd.DataFrame({"case_id": [i.case_id for i in items], "patient_id": [i.patient_id for i in items]})
    shares = np.asarray(fractions, dtype=float) / sum(fractions)
    split = np.full(len(frame), SPLITS[0], dtype=object)
    if shares[1] > 0 or shares[2] > 0:
        parts = patient_split(frame["patient_id"], val_fraction=float(shares[1]), seed=seed,
                              test_fraction=float(shares[2]))  # (train, val) or (train, val, test)
        for name, rows in zip(SPLITS[1:], parts[1:]):
            split[rows] = name
    frame["split"] = split
    return frame


def parse_ordered_split(spec: str) -> tuple[int, int, int]:
    """``"ordered:1250,150,600"`` -> (1250, 150, 600): the first cases train, the next validate, then test.

    Parameters
    ----------
    spec : str
        The ``--split`` value.

    Returns
    -------
    tuple of int
    """
    if not isinstance(spec, str) or not spec.startswith("ordered:"):
        raise ValueError(f"an ordered split reads 'ordered:TRAIN,VAL,TEST' (e.g. ordered:1250,150,600), not {spec!r}")
    try:
        counts = tuple(int(v) for v in spec.split(":", 1)[1].split(","))
    except ValueError:
        raise ValueError(f"split {spec!r}: the counts must be whole numbers, e.g. ordered:1250,150,600") from None
    if len(counts) != 3 or min(counts) < 0 or counts[0] < 1:
        raise ValueError(f"split {spec!r}: give three counts TRAIN,VAL,TEST with TRAIN >= 1")
    return counts


def ordered_split(items: list[SegItem], counts) -> pd.DataFrame:
    """UltraLight's split: the usable cases in manifest order, the first ``counts[0]`` for training,
    the next ``counts[1]`` for validation, the next ``counts[2]`` for test (the paper's folders in
    glob order: ISIC 2017 1250 / 150 / 600). Cases beyond the sum are ``unused`` (with a warning);
    a split that puts one patient in two parts is refused, naming the patient.

    Parameters
    ----------
    items : list of SegItem
        The usable cases, in manifest order.
    counts : sequence of int
        Train, validation and test counts.

    Returns
    -------
    pandas.DataFrame
        ``case_id, patient_id, split``.
    """
    import warnings

    counts = tuple(int(c) for c in counts)
    if sum(counts) > len(items):
        raise ValueError(f"ordered split {counts} needs {sum(counts)} cases; the manifest has {len(items)} "
                         "usable ones (with an image and a mask)")
    if sum(counts) < len(items):
        warnings.warn(f"ordered split {counts}: the last {len(items) - sum(counts)} case(s) of the manifest "
                      "are not used", UserWarning, stacklevel=2)
    names = [name for name, c in zip(SPLITS, counts) for _ in range(c)]
    names += [UNUSED] * (len(items) - len(names))
    frame = pd.DataFrame({"case_id": [i.case_id for i in items], "patient_id": [i.patient_id for i in items],
                          "split": names})
    used = frame[frame["split"] != UNUSED]
    leaking = used.groupby("patient_id")["split"].nunique()
    if (leaking > 1).any():
        raise ValueError(f"ordered split {counts} puts patient(s) {list(leaking[leaking > 1].index[:3])} in "
                         "several parts; reorder the manifest so that each patient's rows sit in one part")
    return frame


def write_split(frame: pd.DataFrame, path) -> Path:
    """Write ``split.csv`` atomically (``case_id, patient_id, split``).

    Parameters
    ----------
    frame : pandas.DataFrame
        The split.
    path : path-like
        The file.

    Returns
    -------
    pathlib.Path
    """
    return write_csv(path, frame[["case_id", "patient_id", "split"]])


def read_split(path, items: list[SegItem]) -> pd.DataFrame:
    """Read a saved split and check it covers the items; a patient in two parts is an error.

    Parameters
    ----------
    path : path-like
        Another run's ``split.csv``.
    items : list of SegItem
        The usable cases, in manifest order.

    Returns
    -------
    pandas.DataFrame
        ``case_id, patient_id, split``.
    """
    path = Path(path)
    split = pd.read_csv(path, dtype=str)
    missing = {"case_id", "split"} - set(split.columns)
    if missing:
        raise ValueError(f"{path}: split file lacks column(s) {sorted(missing)}")
    bad = set(split["split"]) - set(SPLITS) - {UNUSED}
    if bad:
        raise ValueError(f"{path}: unknown split name(s) {sorted(bad)} (use train/val/test/unused)")
    known = dict(zip(split["case_id"], split["split"]))
    absent = [i.case_id for i in items if i.case_id not in known]
    if absent:
        raise ValueError(f"{path}: {len(absent)} case(s) of the manifest are not in the split, e.g. {absent[:3]}")
    frame = pd.DataFrame({"case_id": [i.case_id for i in items], "patient_id": [i.patient_id for i in items]})
    frame["split"] = frame["case_id"].map(known)
    leaking = frame.groupby("patient_id")["split"].nunique()
    if (leaking > 1).any():
        raise ValueError(f"{path}: patient(s) {list(leaking[leaking > 1].index[:3])} appear in several splits")
    return frame


def mask_values(paths) -> list[int]:
    """The sorted distinct grey values over a set of masks (the classes of a multi-class task).

    Parameters
    ----------
    paths : iterable of path-like
        Mask files.

    Returns
    -------
    list of int
    """
    values: set[int] = set()
    for p in paths:
        values.update(np.unique(_read_grey(p)).tolist())
    return sorted(values)


def _read_grey(path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except OSError as exc:
        raise ImageReadError(f"{path}: unreadable mask ({exc})") from None


def read_class_mask(path, values: list[int] | None) -> np.ndarray:
    """(H, W) uint8 class indices: 0/1 for binary (``values`` None), else the index of each grey value.

    Parameters
    ----------
    path : path-like
        The mask.
    values : list of int or None
        The grey values of the classes (:func:`mask_values`), or None for binary.

    Returns
    -------
    numpy.ndarray
    """
    if values is None:
        return read_mask(path).astype(np.uint8)
    grey = _read_grey(path)
    lut = np.full(256, 255, dtype=np.uint8)
    lut[np.asarray(values)] = np.arange(len(values), dtype=np.uint8)
    classes = lut[grey]
    if (classes == 255).any():
        unknown = sorted(set(np.unique(grey[classes == 255]).tolist()))
        raise ImageReadError(f"{path}: grey value(s) {unknown[:5]} not among the classes {values}")
    return classes


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square resize: area averaging when shrinking, bilinear when growing.

    Parameters
    ----------
    image : numpy.ndarray
        Image or mask.
    size : int
        Output side.

    Returns
    -------
    numpy.ndarray
    """
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)


def resize_bilinear(array: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear resize of a uint8 image or mask, as ``scipy.misc.imresize(..., 'bilinear')`` in
    UltraLight's data preparation (PIL's bilinear filter widens its support when shrinking).

    Parameters
    ----------
    array : numpy.ndarray
        uint8 image or mask.
    size : int
        Output side.

    Returns
    -------
    numpy.ndarray
    """
    return np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR))


def resize_for(image: np.ndarray, size: int, resize: str = "area") -> np.ndarray:
    """Resize an image the way a recipe does: ``area`` (vitfeat) or ``bilinear`` (UltraLight's).

    Parameters
    ----------
    image : numpy.ndarray
        Image or mask.
    size : int
        Output side.
    resize : {"area", "bilinear"}, default "area"
        The recipe's rule.

    Returns
    -------
    numpy.ndarray
    """
    return resize_bilinear(image, size) if resize == "bilinear" else resize_image(image, size)


def split_minmax255(images: np.ndarray) -> np.ndarray:
    """UltraLight's normalisation of a whole split (N, H, W, 3): the z-score over the split array,
    then each image min-max scaled to [0, 255] (``loader.py``). float32.

    Parameters
    ----------
    images : numpy.ndarray
        (N, H, W, 3) images.

    Returns
    -------
    numpy.ndarray
    """
    x = images.astype(np.float64)
    x = (x - x.mean()) / max(float(x.std()), 1e-12)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return ((x - lo) / np.maximum(hi - lo, 1e-12) * 255.0).astype(np.float32)


def normalize(images: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8-valued (B, 3, H, W) -> float input of the network (``none``: already normalised).

    Parameters
    ----------
    images : torch.Tensor
        (B, 3, H, W) uint8-valued images.
    mode : str
        The architecture's normalisation (``imagenet``, ``minmax255``) or ``none``.

    Returns
    -------
    torch.Tensor
    """
    x = images.float()
    if mode == "none":
        return x
    if mode == "imagenet":
        mean = torch.as_tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
        std = torch.as_tensor(IMAGENET_STD, device=x.device)[:, None, None]
        return (x - mean) / std
    if mode == "minmax255":
        # UltraLight's split-wide z-score followed by a per-image min-max to [0, 255] reduces to the
        # per-image min-max alone (an affine map does not change the per-image min-max result).
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        return (x - lo) / (hi - lo).clamp_min(1e-6) * 255.0
    raise ValueError(f"unknown normalisation '{mode}'")


def _uniform(lo: float, hi: float) -> float:
    # torch's generator, so that torch.manual_seed makes a (resumed) run repeat its draws
    return lo + (hi - lo) * float(torch.rand(()))


class JointAugment:
    """Random flips, quarter turns and a free rotation applied to image and mask alike (the mask
    with nearest-neighbour sampling, so classes stay classes); brightness, contrast and saturation
    jitter on the image only. OpenCV on arrays: ~0.1 ms per 96 px image, against ~100 ms for
    torchvision's tensor rotation and hue jitter on CPU.

    Parameters
    ----------
    rotate_degrees : float, default 45.0
        Largest free rotation.
    rotate_p : float, default 0.5
        Probability of a free rotation.
    jitter : float, default 0.2
        Brightness, contrast and saturation jitter.
    """

    def __init__(self, rotate_degrees: float = 45.0, rotate_p: float = 0.5, jitter: float = 0.2):
        self.rotate_degrees, self.rotate_p, self.jitter = rotate_degrees, rotate_p, jitter

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if torch.rand(()) < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if torch.rand(()) < 0.5:
            image, mask = image[::-1], mask[::-1]
        k = int(torch.randint(0, 4, ()))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        image, mask = np.ascontiguousarray(image), np.ascontiguousarray(mask)
        if self.rotate_degrees and torch.rand(()) < self.rotate_p:
            h, w = mask.shape
            angle = _uniform(-self.rotate_degrees, self.rotate_degrees)
            m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
            image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        if self.jitter:
            j = self.jitter
            x = image.astype(np.float32) * _uniform(1 - j, 1 + j)  # brightness
            grey = x.mean(axis=2, keepdims=True)
            x = grey.mean() + (x - grey.mean()) * _uniform(1 - j, 1 + j)  # contrast
            grey = x.mean(axis=2, keepdims=True)
            x = grey + (x - grey) * _uniform(1 - j, 1 + j)  # saturation
            image = np.clip(x, 0, 255).astype(np.uint8)
        return image, mask


def build_augmentation(rotate_degrees: float = 45.0) -> JointAugment:
    """Geometric transforms move image and mask together; colour jitter touches the image only.

    Parameters
    ----------
    rotate_degrees : float, default 45.0
        Largest free rotation.

    Returns
    -------
    JointAugment
    """
    return JointAugment(rotate_degrees)


class OriginalAugment:
    """UltraLight's training augmentation (``loader.py``), on the normalised image and soft mask:
    with p 0.5 a quarter turn k in 0..3 then a flip on a random axis; with p 0.5 a rotation by a
    whole angle in 20..79 degrees (``ndimage.rotate``, order 0, no reshape, zero fill). Draws come
    from torch's generator so that a seeded (resumed) epoch repeats them."""

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import ndimage

        if float(torch.rand(())) > 0.5:
            k = int(torch.randint(0, 4, ()))
            axis = int(torch.randint(0, 2, ()))
            image, mask = np.flip(np.rot90(image, k), axis=axis), np.flip(np.rot90(mask, k), axis=axis)
        if float(torch.rand(())) > 0.5:
            angle = int(torch.randint(20, 80, ()))
            image = ndimage.rotate(image, angle, order=0, reshape=False)
            mask = ndimage.rotate(mask, angle, order=0, reshape=False)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _read_items(items: list[SegItem], values, failures: list, progress: bool):
    """Yield ``(item, image, class mask)`` of each readable item; unreadable ones go to ``failures``."""
    from tqdm.auto import tqdm

    for item in tqdm(items, desc="loading images", disable=not progress, leave=False):
        try:
            image = read_image(item.image)
            mask = read_class_mask(item.mask, values)
            if image.shape[:2] != mask.shape:
                raise ImageReadError(f"{item.mask}: mask size {mask.shape[::-1]} differs from image "
                                     f"size {image.shape[1::-1]}")
        except ImageReadError as exc:
            failures.append({"case_id": item.case_id, "path": str(item.image), "error": str(exc)})
            continue
        yield item, image, mask


class _InMemorySplit(Dataset):
    """A split held in memory: ``images`` (N, S, S, 3), ``masks`` (N, S, S), the ``items`` they came
    from and an optional joint ``transform(image, mask)``; items are (image (3, S, S), mask) tensors."""

    items: list
    images: np.ndarray
    masks: np.ndarray
    transform = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(mask)


class OriginalRecipeDataset(_InMemorySplit):
    """A split prepared as UltraLight prepares it: PIL-bilinear resize of images and of 0/255 masks
    (soft mask edges, /255), the split-level z-score then per-image [0, 255] rescale, and (training)
    the original augmentation after normalisation. Items: (float32 (3, S, S) in [0, 255], float32
    (S, S) in [0, 1]); the network input needs no further normalisation (mode ``none``).

    Parameters
    ----------
    items : list of SegItem
        The split's cases.
    imgsz : int
        Side.
    augment : bool, default False
        The original's training augmentation.
    progress : bool, default False
        Progress bar.
    """

    def __init__(self, items: list[SegItem], imgsz: int, augment: bool = False, progress: bool = False):
        self.imgsz = imgsz
        self.transform = OriginalAugment() if augment else None
        self.items, self.failures, images, masks = [], [], [], []
        for item, image, mask in _read_items(items, None, self.failures, progress):
            images.append(resize_bilinear(image, imgsz))
            masks.append(resize_bilinear((mask * 255).astype(np.uint8), imgsz).astype(np.float32) / 255.0)
            self.items.append(item)
        self.images = split_minmax255(np.stack(images)) if images else np.zeros((0, imgsz, imgsz, 3), np.float32)
        self.masks = np.stack(masks) if masks else np.zeros((0, imgsz, imgsz), np.float32)


class SegmentationDataset(_InMemorySplit):
    """Images and class masks resized to ``imgsz`` squares and held in memory (uint8).

    Unreadable cases are left out and listed in ``failures`` (case_id, path, error); the rest go on.
    Items return ``(image uint8 (3, S, S), mask uint8 (S, S))``; normalisation happens on the batch.

    Parameters
    ----------
    items : list of SegItem
        The split's cases.
    imgsz : int
        Side.
    values : list of int, optional
        Class grey values (multi-class masks).
    augment : bool, default False
        Joint augmentation (:func:`build_augmentation`).
    progress : bool, default False
        Progress bar.
    """

    def __init__(self, items: list[SegItem], imgsz: int, values: list[int] | None = None,
                 augment: bool = False, progress: bool = False):
        self.imgsz = imgsz
        self.transform = build_augmentation() if augment else None
        self.items, self.failures, images, masks = [], [], [], []
        for item, image, mask in _read_items(items, values, self.failures, progress):
            images.append(resize_image(image, imgsz))
            masks.append(cv2.resize(mask, (imgsz, imgsz), interpolation=cv2.INTER_NEAREST))
            self.items.append(item)
        self.images = np.stack(images) if images else np.zeros((0, imgsz, imgsz, 3), np.uint8)  # (N, S, S, 3)
        self.masks = np.stack(masks) if masks else np.zeros((0, imgsz, imgsz), np.uint8)
