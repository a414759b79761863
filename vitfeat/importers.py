"""Build manifests from the common folder layouts.

Layouts (``layout=`` / ``vitfeat manifest import --layout``):

``class-folders``  ``ROOT/<class>/*.jpg`` (e.g. ``stable/``, ``non-stable/``): the folder is the label.
``images-masks``   ``ROOT/images/*`` and ``ROOT/masks/*`` with the same stems.
``yolo``           ``ROOT/images/*`` and ``ROOT/labels/*.txt`` (boxes or polygons): masks are drawn
                   from the labels into ``masks_dir``.
``labels-csv``     a folder with ``labels.csv`` (columns ``image``, ``mask``, ``label``, optional
                   ``group`` = patient), as the folders in ``../shared/data``.

Clinical and Wood's photos are paired by stem: with ``pair=("_clinical", "_wood")``, the files
``A12_clinical.jpg`` and ``A12_wood.jpg`` (and masks ``A12_clinical.png``/``A12_wood.png``) become one
case ``A12``. ``patient_regex`` derives the patient from the case id (first group of the match).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from vitfeat.dataset import oriented_size, write_mask

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
LAYOUTS = ("auto", "class-folders", "images-masks", "yolo", "labels-csv")


class LayoutError(ValueError):
    """The folder does not match the requested layout; the message says what was expected."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def detect_layout(root) -> str:
    root = Path(root)
    if (root / "labels.csv").is_file():
        return "labels-csv"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "yolo"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "images-masks"
    if any(p.is_dir() and _images(p) for p in root.iterdir()):
        return "class-folders"
    raise LayoutError(f"{root}: no known layout (expected labels.csv, images/+masks/, images/+labels/ "
                       "or one sub-folder of images per class)")


def _split_modality(stem: str, pair: tuple[str, str] | None) -> tuple[str, str]:
    """(case key, modality) of a file stem under the pairing suffixes."""
    if pair:
        for modality, suffix in zip(("clinical", "wood"), pair):
            if suffix and stem.endswith(suffix):
                return stem[: -len(suffix)], modality
    return stem, "clinical"


def _pair_rows(files: dict[str, Path], masks: dict[str, Path], pair, extra: dict | None = None) -> list[dict]:
    cases: dict[str, dict] = {}
    for stem, path in files.items():
        key, modality = _split_modality(stem, pair)
        case = cases.setdefault(key, {"case_id": key, **(extra or {})})
        if modality in case:
            raise LayoutError(f"two {modality} images for case '{key}': {case[modality]} and {path}")
        case[modality] = path
        if stem in masks:
            case[f"{modality}_mask"] = masks[stem]
    missing = [k for k, c in cases.items() if "clinical" not in c]
    if missing:
        raise LayoutError(f"{len(missing)} case(s) have a Wood's image but no clinical image, e.g. "
                           f"'{missing[0]}' (pairing suffixes {pair})")
    return list(cases.values())


def import_class_folders(root, pair=None) -> pd.DataFrame:
    root = Path(root)
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {p.stem: p for p in _images(folder)}
        rows += _pair_rows(files, {}, pair, {"label": folder.name})
    ids = pd.Series([r["case_id"] for r in rows])
    if ids.duplicated().any():  # the same stem under two classes: qualify by class
        for r in rows:
            r["case_id"] = f"{r['label']}/{r['case_id']}"
    return pd.DataFrame(rows)


def import_images_masks(root, pair=None, images="images", masks="masks") -> pd.DataFrame:
    root = Path(root)
    files = {p.stem: p for p in _images(root / images)}
    mask_files = {p.stem: p for p in _images(root / masks)} if (root / masks).is_dir() else {}
    return pd.DataFrame(_pair_rows(files, mask_files, pair))


def yolo_mask(label_file, width: int, height: int, classes: Sequence[int] | None = None) -> np.ndarray:
    """Rasterise a YOLO label file (boxes ``c cx cy w h`` or polygons ``c x1 y1 x2 y2 ...``)."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    scale = np.array([width, height], np.float64)
    for lineno, line in enumerate(Path(label_file).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, vals = int(float(parts[0])), np.array(parts[1:], np.float64)
        except ValueError:
            raise LayoutError(f"{label_file}:{lineno}: not a YOLO label line: {line!r}") from None
        if classes is not None and cls not in classes:
            continue
        if len(vals) == 4:
            cx, cy, w, h = vals
            p0 = np.round([(cx - w / 2) * width, (cy - h / 2) * height]).astype(int)
            p1 = np.round([(cx + w / 2) * width, (cy + h / 2) * height]).astype(int)
            cv2.rectangle(mask, tuple(int(v) for v in p0), tuple(int(v) - 1 for v in p1), 255, -1)
        elif len(vals) >= 6 and len(vals) % 2 == 0:
            pts = np.round(vals.reshape(-1, 2) * scale).astype(np.int32)
            cv2.fillPoly(mask, [pts], 255)
        else:
            raise LayoutError(f"{label_file}:{lineno}: expected 4 box values or an even number >= 6 of "
                               f"polygon coordinates, got {len(vals)}")
    return mask > 0


def import_yolo(root, masks_dir, pair=None, images="images", labels="labels") -> pd.DataFrame:
    root, masks_dir = Path(root), Path(masks_dir)
    masks_dir.mkdir(parents=True, exist_ok=True)
    files = {p.stem: p for p in _images(root / images)}
    mask_files = {}
    for stem, path in files.items():
        label_file = root / labels / f"{stem}.txt"
        if not label_file.is_file():
            continue  # an image without a label file has no lesion annotation
        w, h = oriented_size(path)
        out = masks_dir / f"{stem}.png"
        write_mask(out, yolo_mask(label_file, w, h))
        mask_files[stem] = out
    return pd.DataFrame(_pair_rows(files, mask_files, pair))


def import_labels_csv(root, pair=None) -> pd.DataFrame:
    root = Path(root)
    table = pd.read_csv(root / "labels.csv", dtype=str)
    if "image" not in table.columns:
        raise LayoutError(f"{root / 'labels.csv'}: needs an 'image' column (has {', '.join(table.columns)})")
    files = {Path(p).stem: root / p for p in table["image"]}
    masks = {}
    if "mask" in table.columns:
        masks = {Path(i).stem: root / m for i, m in zip(table["image"], table["mask"]) if isinstance(m, str) and m}
    rows = pd.DataFrame(_pair_rows(files, masks, pair))
    extra = table.drop(columns=[c for c in ("image", "mask") if c in table.columns])
    extra.insert(0, "case_id", [_split_modality(Path(p).stem, pair)[0] for p in table["image"]])
    extra = extra.drop_duplicates("case_id")
    if "group" in extra.columns:
        extra = extra.rename(columns={"group": "patient_id"})
    return rows.merge(extra, on="case_id", how="left")


def import_folder(root, layout: str = "auto", *, pair: tuple[str, str] | None = None,
                  patient_regex: str | None = None, masks_dir=None) -> pd.DataFrame:
    """Build a manifest frame (absolute paths) from a folder in one of the known layouts."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "class-folders":
        frame = import_class_folders(root, pair)
    elif layout == "images-masks":
        frame = import_images_masks(root, pair)
    elif layout == "yolo":
        frame = import_yolo(root, masks_dir or root / "masks-from-labels", pair)
    elif layout == "labels-csv":
        frame = import_labels_csv(root, pair)
    else:
        raise LayoutError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
    if frame.empty:
        raise LayoutError(f"{root}: no images found for layout '{layout}'")
    if patient_regex:
        pattern = re.compile(patient_regex)

        def patient(case_id: str) -> str:
            m = pattern.search(case_id)
            if not m:
                raise LayoutError(f"case '{case_id}' does not match --patient-regex {patient_regex!r}")
            return m.group(1) if m.groups() else m.group(0)

        frame["patient_id"] = frame["case_id"].map(patient)
    columns = ["case_id", "patient_id", "clinical", "wood", "clinical_mask", "wood_mask"]
    present = [c for c in columns if c in frame.columns]
    frame = frame[present + [c for c in frame.columns if c not in present]]
    for col in ("clinical", "wood", "clinical_mask", "wood_mask"):
        if col in frame.columns:
            frame[col] = frame[col].map(lambda p: str(p) if isinstance(p, Path) else p)
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)
