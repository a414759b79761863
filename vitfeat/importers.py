"""Build manifests from the common folder layouts.

Layouts (``layout=`` / ``vitfeat manifest import --layout``):

``class-folders``  ``ROOT/<class>/*.jpg`` (e.g. ``stable/``, ``non-stable/``): the folder is the label.
``images-masks``   ``ROOT/images/*`` and ``ROOT/masks/*`` with the same stems.
``yolo``           ``ROOT/images/*`` and ``ROOT/labels/*.txt`` (boxes or polygons): masks are drawn
                   from the labels into ``masks_dir``.
``labels-csv``     a folder with ``labels.csv`` (columns ``image``, ``mask``, ``label``, optional
                   ``group`` = patient), as the folders in ``../shared/data``.
``yolo-splits``    ``ROOT/images/{train,val,test}``, ``ROOT/labels/{...}`` and ``ROOT/data.yaml``: the
                   split is kept in a ``split`` column, the class names present in ``yolo_classes``.
``vmtl``           ``ROOT/data.csv`` (``pair_id``, ``stability``, ``image_type`` clinic|wood,
                   ``image_path``) as in the VMTL/VMSL code; a case is (stability, pair_id). Masks from
                   LabelMe ``segmentation_json/<wood stem>.json``, boxes from
                   ``detection_json/<clinical stem>.json``, or from the YOLO ``segmentation/`` and
                   ``detection/`` folders when the JSON folders are absent.

LabelMe JSON annotations (:func:`read_labelme`): polygons and circles become masks, rectangles
boxes (``clinical_box`` / ``wood_box``). Task-JSON labels (:func:`read_labels_json`) add one target
column per task.

Clinical and Wood's photos are paired by stem: with ``pair=("_clinical", "_wood")``, the files
``A12_clinical.jpg`` and ``A12_wood.jpg`` (and masks ``A12_clinical.png``/``A12_wood.png``) become one
case ``A12``. ``patient_regex`` derives the patient from the case id (first group of the match).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from vitfeat.dataset import format_box, oriented_size, write_mask
from vitfeat.names import safe_filename
from vitfeat.registry import Registry

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
LAYOUTS = ("auto", "vmtl", "yolo-splits", "class-folders", "images-masks", "yolo", "labels-csv")
SPLITS = ("train", "val", "valid", "test")
VMTL_COLUMNS = ("pair_id", "stability", "image_type", "image_path")
VMTL_MODALITY = {"clinic": "clinical", "clinical": "clinical", "wood": "wood"}


class LayoutError(ValueError):
    """The folder does not match the requested layout; the message says what was expected."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def detect_layout(root) -> str:
    """Name of the layout of ``root`` (see the module docstring); LayoutError when none fits.

    Parameters
    ----------
    root : path-like
        The data folder.

    Returns
    -------
    str
    """
    root = Path(root)
    if (root / "data.csv").is_file() and set(VMTL_COLUMNS) <= set(_csv_header(root / "data.csv")):
        return "vmtl"
    if (root / "labels.csv").is_file():
        return "labels-csv"
    if (root / "images").is_dir() and any((root / "images" / s).is_dir() for s in SPLITS):
        return "yolo-splits"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "yolo"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "images-masks"
    if any(p.is_dir() and _images(p) for p in root.iterdir()):
        return "class-folders"
    raise LayoutError(f"{root}: no known layout (expected data.csv, labels.csv, images/{{train,val}}/, "
                       "images/+masks/, images/+labels/ or one sub-folder of images per class)")


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        return [c.strip() for c in fh.readline().replace(";", ",").split(",")]


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
    """``ROOT/<class>/*.jpg``: the folder is the label (``label`` column).

    Parameters
    ----------
    root : path-like
        The data folder.
    pair : tuple of str, optional
        Stem suffixes ``(clinical, wood)`` pairing a case's photos (None: clinical photos only).

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
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
    """``ROOT/images/*`` with masks of the same stem in ``ROOT/masks/``.

    Parameters
    ----------
    root : path-like
        The data folder.
    pair : tuple of str, optional
        Stem suffixes ``(clinical, wood)`` pairing a case's photos (None: clinical photos only).
    images, masks : str
        The sub-folders.

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
    root = Path(root)
    files = {p.stem: p for p in _images(root / images)}
    mask_files = {p.stem: p for p in _images(root / masks)} if (root / masks).is_dir() else {}
    return pd.DataFrame(_pair_rows(files, mask_files, pair))


def yolo_mask(label_file, width: int, height: int, classes: Sequence[int] | None = None) -> np.ndarray:
    """Rasterise a YOLO label file (boxes ``c cx cy w h`` or polygons ``c x1 y1 x2 y2 ...``).

    Parameters
    ----------
    label_file : path-like
        The ``.txt`` label file (normalised coordinates).
    width, height : int
        The photo's size in pixels.
    classes : sequence of int, optional
        Only these class ids (default: all).

    Returns
    -------
    numpy.ndarray
        (height, width) bool.
    """
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
    """``ROOT/images/*`` + ``ROOT/labels/*.txt``: masks drawn from the labels into ``masks_dir``.

    Parameters
    ----------
    root : path-like
        The data folder.
    masks_dir : path-like
        Where masks drawn from labels are written.
    pair : tuple of str, optional
        Stem suffixes ``(clinical, wood)`` pairing a case's photos (None: clinical photos only).
    images, labels : str
        The sub-folders.

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
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


# ---------------------------------------------------------------------------------------------
# LabelMe JSON
# ---------------------------------------------------------------------------------------------


@dataclass
class LabelMeShapes:
    """What one LabelMe file annotates, in pixels of the photo it was read for.

    Attributes
    ----------
    mask : numpy.ndarray or None
        Union of the lesion polygons and circles.
    boxes : list of tuple
        Lesion rectangles ``(x0, y0, x1, y1)``.
    """

    mask: np.ndarray | None  # union of the lesion polygons/circles; None when the file has none
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # lesion rectangles

    def box(self) -> tuple[float, float, float, float] | None:
        """The box enclosing every lesion rectangle (the manifest holds one box per photo)."""
        if not self.boxes:
            return None
        b = np.array(self.boxes)
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _labelme_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise LayoutError(f"{path}: not a LabelMe file (needs a 'shapes' list)")
    return data


def _labelme_scale(path: Path, data: dict, image_size) -> np.ndarray:
    """Factors from the JSON's pixel frame to the photo's: the annotation may be of a resized copy."""
    json_size = (data.get("imageWidth"), data.get("imageHeight"))
    if image_size is None:
        return np.ones(2)
    if not all(isinstance(v, (int, float)) and v > 0 for v in json_size):
        return np.ones(2)  # no size recorded: points are taken as pixels of the photo
    scale = np.array(image_size, np.float64) / np.array(json_size, np.float64)
    if abs(scale[0] / scale[1] - 1) > 0.02:
        raise LayoutError(f"{path}: annotated for a {json_size[0]}x{json_size[1]} image, but the photo is "
                          f"{image_size[0]}x{image_size[1]} (another aspect ratio: wrong JSON for this photo?)")
    return scale


def read_labelme(path, image_size: tuple[int, int] | None = None, labels=None) -> LabelMeShapes:
    """Read a LabelMe JSON file: polygons and circles become a mask, rectangles boxes.

    Parameters
    ----------
    path : the ``.json`` file (``shapes[]`` with ``label``, ``shape_type``, ``points``).
    image_size : ``(width, height)`` of the photo; points are rescaled when the JSON's
        ``imageWidth``/``imageHeight`` differ (an annotation of a resized copy). Default: the JSON's.
    labels : shape labels that are lesion (default: all).

    Raises
    ------
    LayoutError
        naming the file and what is wrong (invalid JSON, no shapes list, a shape without points,
        an aspect ratio other than the photo's).
    """
    import cv2

    path = Path(path)
    data = _labelme_json(path)
    scale = _labelme_scale(path, data, image_size)
    width, height = image_size or (data.get("imageWidth"), data.get("imageHeight"))
    wanted = None if labels is None else {str(v) for v in labels}
    mask, boxes, skipped = None, [], set()
    for i, shape in enumerate(data["shapes"]):
        if wanted is not None and str(shape.get("label")) not in wanted:
            continue
        kind = shape.get("shape_type") or "polygon"
        try:
            pts = np.array(shape["points"], np.float64).reshape(-1, 2) * scale
        except (KeyError, TypeError, ValueError):
            raise LayoutError(f"{path}: shape {i} ('{shape.get('label')}') has no valid 'points' list") from None
        if kind == "rectangle" and len(pts) == 2:
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            boxes.append((float(x0), float(y0), float(x1), float(y1)))
        elif kind in ("polygon", "circle"):
            if not (width and height):
                raise LayoutError(f"{path}: no imageWidth/imageHeight and no photo size to draw the mask at")
            mask = np.zeros((int(height), int(width)), np.uint8) if mask is None else mask
            if kind == "circle" and len(pts) == 2:
                radius = int(round(float(np.hypot(*(pts[1] - pts[0])))))
                cv2.circle(mask, tuple(int(round(v)) for v in pts[0]), radius, 255, -1)
            elif kind == "polygon" and len(pts) >= 3:
                cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
            else:
                raise LayoutError(f"{path}: shape {i} ('{shape.get('label')}') is a {kind} with {len(pts)} points")
        else:
            skipped.add(kind)
    if skipped:
        warnings.warn(f"{path}: shapes of type {', '.join(sorted(skipped))} are not lesion areas; ignored",
                      stacklevel=2)
    return LabelMeShapes(mask=None if mask is None else mask > 0, boxes=boxes)


def _annotate_from_labelme(rows: list[dict], json_dirs: dict[str, Path], masks_dir: Path, labels) -> None:
    """Add masks and boxes from ``<json_dir>/<photo stem>.json`` to each row, per modality."""
    for row in rows:
        for modality, folder in json_dirs.items():
            photo = row.get(modality)
            if photo is None or not (folder / f"{Path(photo).stem}.json").is_file():
                continue  # as in VMTL: no annotation file, no mask and no box
            _apply_shapes(row, modality, read_labelme(folder / f"{Path(photo).stem}.json",
                                                      oriented_size(Path(photo)), labels), masks_dir)


def _apply_shapes(row: dict, modality: str, shapes: LabelMeShapes, masks_dir: Path) -> None:
    if shapes.mask is not None and f"{modality}_mask" not in row:
        masks_dir.mkdir(parents=True, exist_ok=True)
        out = masks_dir / f"{safe_filename(row['case_id'])}_{modality}.png"
        write_mask(out, shapes.mask)
        row[f"{modality}_mask"] = out
    if shapes.box() is not None and f"{modality}_box" not in row:
        row[f"{modality}_box"] = format_box(_clip_box(shapes.box(), oriented_size(Path(row[modality]))))


def _clip_box(box, size):
    """LabelMe lets a rectangle corner fall a little outside the photo; keep boxes inside it."""
    w, h = size
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)


# ---------------------------------------------------------------------------------------------
# The VMTL layout
# ---------------------------------------------------------------------------------------------


def _vmtl_photo(root: Path, value: str, stability: str, lineno: int) -> Path:
    """The photo a data.csv row names: relative to ROOT, to its parent (paths like
    ``datasets/stable/x.jpg``) or by file name in ROOT/<stability>/."""
    rel = Path(str(value).replace("\\", "/"))
    for candidate in (root / rel, root.parent / rel, root / stability / rel.name):
        if candidate.is_file():
            return candidate
    raise LayoutError(f"{root / 'data.csv'}: row {lineno}: image '{value}' not found under {root}")


def _yolo_label_index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.rglob("*.txt"))} if folder.is_dir() else {}


def import_vmtl(root, masks_dir, labelme_labels=None) -> pd.DataFrame:
    """Import the VMTL/VMSL ``datasets/`` layout (see the module docstring).

    Parameters
    ----------
    root : path-like
        The data folder.
    masks_dir : path-like
        Where masks drawn from labels are written.
    labelme_labels : sequence of str, optional
        LabelMe shape labels that are lesion (default: all).

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
    root, masks_dir = Path(root), Path(masks_dir)
    table = pd.read_csv(root / "data.csv", dtype=str, encoding="utf-8-sig", sep=None, engine="python")
    table.columns = [c.strip() for c in table.columns]
    cases: dict[tuple[str, str], dict] = {}
    for lineno, rec in enumerate(table.to_dict("records"), start=1):
        stability, pair_id = str(rec["stability"]).strip(), str(rec["pair_id"]).strip()
        modality = VMTL_MODALITY.get(str(rec["image_type"]).strip().lower())
        if modality is None:
            raise LayoutError(f"{root / 'data.csv'}: row {lineno}: image_type '{rec['image_type']}' is not "
                              "clinic or wood")
        case = cases.setdefault((stability, pair_id), {"case_id": f"{stability}/{pair_id}", "label": stability})
        if modality in case:
            raise LayoutError(f"{root / 'data.csv'}: row {lineno}: a second {modality} photo for pair "
                              f"{pair_id} of '{stability}'")
        case[modality] = _vmtl_photo(root, rec["image_path"], stability, lineno)
    rows = list(cases.values())
    missing = [r["case_id"] for r in rows if "clinical" not in r]
    if missing:
        raise LayoutError(f"{root / 'data.csv'}: {len(missing)} pair(s) without a clinic photo, e.g. {missing[0]}")
    json_dirs = {m: root / d for m, d in (("wood", "segmentation_json"), ("clinical", "detection_json"))
                 if (root / d).is_dir()}
    labels = labelme_labels if labelme_labels is not None else ("1",)  # VMTL: label '1' is vitiligo
    _annotate_from_labelme(rows, {"wood": json_dirs["wood"]} if "wood" in json_dirs else {}, masks_dir, labels)
    _annotate_from_labelme(rows, {"clinical": json_dirs["clinical"]} if "clinical" in json_dirs else {},
                           masks_dir, labelme_labels)
    if "wood" not in json_dirs:
        _annotate_from_yolo(rows, "wood", _yolo_label_index(root / "segmentation"), masks_dir)
    if "clinical" not in json_dirs:
        _annotate_from_yolo(rows, "clinical", _yolo_label_index(root / "detection"), masks_dir)
    return pd.DataFrame(rows)


def _annotate_from_yolo(rows: list[dict], modality: str, labels: dict[str, Path], masks_dir: Path) -> None:
    """Boxes (4 values per line) become the enclosing box; polygons a mask."""
    for row in rows:
        photo = row.get(modality)
        if photo is None or Path(photo).stem not in labels:
            continue
        label_file = labels[Path(photo).stem]
        w, h = oriented_size(Path(photo))
        lines = [ln.split() for ln in label_file.read_text().splitlines() if ln.strip()]
        if lines and all(len(parts) == 5 for parts in lines):
            vals = np.array([parts[1:] for parts in lines], np.float64)
            x0, y0 = ((vals[:, :2] - vals[:, 2:] / 2) * [w, h]).min(0)
            x1, y1 = ((vals[:, :2] + vals[:, 2:] / 2) * [w, h]).max(0)
            row[f"{modality}_box"] = format_box(_clip_box((x0, y0, x1, y1), (w, h)))
        else:
            _apply_shapes(row, modality, LabelMeShapes(mask=yolo_mask(label_file, w, h)), masks_dir)


# ---------------------------------------------------------------------------------------------
# YOLO with splits
# ---------------------------------------------------------------------------------------------


def yolo_class_names(data_yaml) -> dict[int, str]:
    """Class names of a YOLO ``data.yaml`` (``names:`` as a list or an index -> name mapping).

    Parameters
    ----------
    data_yaml : path-like
        The file.

    Returns
    -------
    dict
        ``{class id: name}``.
    """
    import yaml

    path = Path(data_yaml)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LayoutError(f"{path}: not valid YAML ({exc})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return dict(enumerate(str(n) for n in names))
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    raise LayoutError(f"{path}: needs a 'names' list or mapping of class names")


def import_yolo_splits(root, masks_dir, pair=None) -> pd.DataFrame:
    """``images/<split>/`` + ``labels/<split>/`` + ``data.yaml``: one manifest with a ``split`` column.

    Parameters
    ----------
    root : path-like
        The data folder.
    masks_dir : path-like
        Where masks drawn from labels are written.
    pair : tuple of str, optional
        Stem suffixes ``(clinical, wood)`` pairing a case's photos (None: clinical photos only).

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
    root, masks_dir = Path(root), Path(masks_dir)
    names = yolo_class_names(root / "data.yaml") if (root / "data.yaml").is_file() else {}
    frames = []
    for split in (s for s in SPLITS if (root / "images" / s).is_dir()):
        frame = import_yolo(root, masks_dir / split, pair, images=f"images/{split}", labels=f"labels/{split}")
        frame.insert(1, "split", split)
        frame["yolo_classes"] = [_classes_present(root / "labels" / split, r, names) for r in frame.to_dict("records")]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not frame.empty and frame["case_id"].duplicated().any():  # the same stem in two splits
        frame["case_id"] = frame["split"] + "/" + frame["case_id"]
    return frame


def _classes_present(label_dir: Path, row: dict, names: dict[int, str]) -> str:
    found = set()
    for modality in ("clinical", "wood"):
        photo = row.get(modality)
        label_file = label_dir / f"{Path(photo).stem}.txt" if isinstance(photo, (str, Path)) else None
        if label_file is not None and label_file.is_file():
            found |= {int(float(ln.split()[0])) for ln in label_file.read_text().splitlines() if ln.strip()}
    return ";".join(names.get(c, str(c)) for c in sorted(found))


# ---------------------------------------------------------------------------------------------
# Task-JSON labels
# ---------------------------------------------------------------------------------------------

IMAGE_KEYS = ("image", "image_path", "imagePath", "file", "filename", "file_name", "img")
BOX_KEYS = ("bbox", "box")


def parse_class_maps(specs: Sequence[str] | None) -> dict[str, dict[str, str]]:
    """``["qd=A:none,B:mild"]`` -> ``{"qd": {"A": "none", "B": "mild"}}``.

    Parameters
    ----------
    specs : sequence of str, optional
        ``TASK=CODE:name,...`` strings (``--classes``).

    Returns
    -------
    dict
    """
    maps: dict[str, dict[str, str]] = {}
    for spec in specs or ():
        task, sep, pairs = spec.partition("=")
        if not sep or not pairs:
            raise LayoutError(f"--classes '{spec}': expected TASK=CODE:name,CODE:name")
        for item in pairs.split(","):
            code, sep, name = item.partition(":")
            if not sep or not code.strip() or not name.strip():
                raise LayoutError(f"--classes '{spec}': '{item}' is not CODE:name")
            maps.setdefault(task.strip(), {})[code.strip()] = name.strip()
    return maps


def read_labels_json(path, classes: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """Task labels, one record per image (a JSON list or JSON lines): one column per task.

    Returns a frame with ``image_stem``, one column per task (letter codes kept, or mapped by
    ``classes``) and ``box`` (``x0,y0,x1,y1``) when records carry a ``bbox``/``box``.

    Parameters
    ----------
    path : path-like
        The JSON file.
    classes : dict, optional
        ``{task: {code: name}}`` (:func:`parse_class_maps`).

    Returns
    -------
    pandas.DataFrame
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    try:
        records = json.loads(text)
        records = records if isinstance(records, list) else [records]
    except json.JSONDecodeError:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LayoutError(f"{path}:{lineno}: neither a JSON list nor JSON lines ({exc.msg})") from None
    rows = []
    for i, rec in enumerate(records, start=1):
        key = next((k for k in IMAGE_KEYS if isinstance(rec, dict) and k in rec), None)
        if key is None:
            raise LayoutError(f"{path}: record {i} names no image (expected one of {', '.join(IMAGE_KEYS)})")
        row = {"image_stem": Path(str(rec[key]).replace("\\", "/")).stem}
        for task, value in rec.items():
            if task == key:
                continue
            if task in BOX_KEYS:
                row["box"] = None if value is None else format_box(value)
                continue
            mapping = (classes or {}).get(task)
            if mapping is not None and value is not None:
                if str(value) not in mapping:
                    raise LayoutError(f"{path}: record {i}: '{task}' code '{value}' is not in --classes "
                                      f"{task}= ({', '.join(mapping)})")
                value = mapping[str(value)]
            row[task] = value
        rows.append(row)
    unknown = set(classes or {}) - {c for r in rows for c in r}
    if unknown:
        raise LayoutError(f"{path}: --classes names task(s) {', '.join(sorted(unknown))} that no record has")
    return pd.DataFrame(rows)


def add_task_labels(frame: pd.DataFrame, labels: pd.DataFrame, path="labels JSON") -> pd.DataFrame:
    """Join task labels to a manifest frame by the stem of each case's clinical (else Wood's) photo.

    Parameters
    ----------
    frame : pandas.DataFrame
        Manifest rows.
    labels : pandas.DataFrame
        :func:`read_labels_json`'s table.
    path : str
        How warnings name the labels' source.

    Returns
    -------
    pandas.DataFrame
    """
    by_stem = labels.drop_duplicates("image_stem").set_index("image_stem")
    out = frame.copy()
    matched = set()
    for modality in ("clinical", "wood"):
        if modality not in out.columns:
            continue
        stems = out[modality].map(lambda p: Path(p).stem if isinstance(p, (str, Path)) else None)
        for task in by_stem.columns:
            column = f"{modality}_box" if task == "box" else task
            values = stems.map(by_stem[task])
            if column in out.columns:
                out[column] = out[column].where(out[column].notna(), values)
            else:
                out[column] = values
        matched |= set(stems.dropna()) & set(by_stem.index)
    unmatched = sorted(set(by_stem.index) - matched)
    if unmatched:
        warnings.warn(f"{path}: {len(unmatched)} record(s) match no photo, e.g. '{unmatched[0]}'", stacklevel=2)
    return out


def import_labels_csv(root, pair=None) -> pd.DataFrame:
    """A folder with ``labels.csv`` (``image``, ``mask``, ``label``, optional ``group`` = patient).

    Parameters
    ----------
    root : path-like
        The data folder.
    pair : tuple of str, optional
        Stem suffixes ``(clinical, wood)`` pairing a case's photos (None: clinical photos only).

    Returns
    -------
    pandas.DataFrame
        Manifest rows, paths absolute.
    """
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


def annotate_beside(frame: pd.DataFrame, masks_dir, labels=None) -> pd.DataFrame:
    """Masks and boxes from LabelMe files saved beside the photos (``a.jpg`` + ``a.json``, LabelMe's
    default), for photos that have no mask or box yet.

    Parameters
    ----------
    frame : pandas.DataFrame
        Manifest rows.
    masks_dir : path-like
        Where masks drawn from labels are written.
    labels : sequence of str, optional
        LabelMe shape labels that are lesion (default: all).

    Returns
    -------
    pandas.DataFrame
    """
    rows = frame.to_dict("records")
    found = False
    for row in rows:
        for modality in ("clinical", "wood"):
            photo = row.get(modality)
            if not isinstance(photo, (str, Path)) or not str(photo):
                continue
            beside = Path(photo).with_suffix(".json")
            if beside.is_file():
                _apply_shapes(_drop_empty(row, modality), modality,
                              read_labelme(beside, oriented_size(Path(photo)), labels), Path(masks_dir))
                found = True
    return pd.DataFrame(rows) if found else frame


def _drop_empty(row: dict, modality: str) -> dict:
    """Let _apply_shapes fill a mask/box column that is present but empty (NaN/None)."""
    for col in (f"{modality}_mask", f"{modality}_box"):
        if col in row and not isinstance(row[col], (str, Path)):
            del row[col]
    return row


def normalise_masks(frame: pd.DataFrame, masks_dir, threshold: float | None = None,
                    inverted: bool = False) -> pd.DataFrame:
    """Rewrite each mask of ``frame`` as a 0/255 PNG in ``masks_dir``, read with the given rule.

    Parameters
    ----------
    frame : pandas.DataFrame
        Manifest rows.
    masks_dir : path-like
        Where the rewritten masks go.
    threshold : float, optional
        Grey level above which a pixel is lesion.
    inverted : bool, default False
        Masks are dark on the lesion.

    Returns
    -------
    pandas.DataFrame
        The rows, mask paths replaced.
    """
    from vitfeat.dataset import read_mask

    masks_dir = Path(masks_dir) / "normalised"
    masks_dir.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    for modality in ("clinical", "wood"):
        col = f"{modality}_mask"
        if col not in out.columns:
            continue
        written = []
        for case_id, value in zip(out["case_id"], out[col]):
            if not isinstance(value, (str, Path)) or not str(value):
                written.append(value)
                continue
            target = masks_dir / f"{safe_filename(str(case_id))}_{modality}.png"
            write_mask(target, read_mask(value, threshold=threshold, inverted=inverted))
            written.append(target)
        out[col] = written
    return out


@dataclass(frozen=True)
class Layout:
    """A folder layout ``manifest import`` reads.

    ``read(root, *, pair, masks_dir, labelme_labels) -> DataFrame`` returns manifest rows with
    absolute paths (an empty frame when the folder holds no image of this layout).

    Attributes
    ----------
    name : str
        ``--layout`` value.
    read : callable
        The reader.
    description : str
        One line (``vitfeat list layout``).
    annotate_beside : bool
        Look for LabelMe JSON and YOLO labels beside each photo afterwards.
    """

    name: str
    read: Callable[..., pd.DataFrame]
    description: str
    #: Look for LabelMe JSON and YOLO labels beside each photo afterwards (the VMTL layout reads its own).
    annotate_beside: bool = True


#: Import layouts by name (entry-point group ``vitfeat.layouts``); ``auto`` picks one (:func:`detect_layout`).
IMPORT_LAYOUTS: Registry[Layout] = Registry("import layout", "vitfeat.layouts")
for _layout in (
    Layout("vmtl", lambda root, *, pair, masks_dir, labelme_labels: import_vmtl(root, masks_dir, labelme_labels),
           "ROOT/data.csv (pair_id, stability, image_type, image_path) as in the VMTL/VMSL code",
           annotate_beside=False),
    Layout("yolo-splits", lambda root, *, pair, masks_dir, labelme_labels: import_yolo_splits(root, masks_dir, pair),
           "ROOT/images/{train,val,test}, ROOT/labels/{...} and ROOT/data.yaml; the split is kept"),
    Layout("class-folders", lambda root, *, pair, masks_dir, labelme_labels: import_class_folders(root, pair),
           "ROOT/<class>/*.jpg: the folder is the label"),
    Layout("images-masks", lambda root, *, pair, masks_dir, labelme_labels: import_images_masks(root, pair),
           "ROOT/images/* and ROOT/masks/* with the same stems"),
    Layout("yolo", lambda root, *, pair, masks_dir, labelme_labels: import_yolo(root, masks_dir, pair),
           "ROOT/images/* and ROOT/labels/*.txt (boxes or polygons drawn into masks)"),
    Layout("labels-csv", lambda root, *, pair, masks_dir, labelme_labels: import_labels_csv(root, pair),
           "a folder with labels.csv (image, mask, label, optional group = patient)"),
):
    IMPORT_LAYOUTS.register(_layout.name, _layout)


def import_folder(root, layout: str = "auto", *, pair: tuple[str, str] | None = None,
                  patient_regex: str | None = None, masks_dir=None, labelme_labels=None,
                  labels_json=None, classes: dict[str, dict[str, str]] | None = None,
                  mask_threshold: float | None = None, masks_inverted: bool = False) -> pd.DataFrame:
    """Build a manifest frame (absolute paths) from a folder in one of the known layouts.

    Parameters
    ----------
    root : the data folder.
    layout : one of :data:`LAYOUTS`; ``auto`` detects it (:func:`detect_layout`).
    pair : stem suffixes ``(clinical, wood)`` pairing the photos of a case.
    patient_regex : regex on the case id whose first group is the patient id.
    masks_dir : where masks drawn from YOLO labels or LabelMe polygons go
        (default ``ROOT/masks-from-labels``).
    labelme_labels : LabelMe shape labels that are lesion (default all; ``1`` for VMTL masks).
    labels_json : task-JSON labels (:func:`read_labels_json`) joined by photo stem.
    classes : per-task code -> name maps for ``labels_json`` (:func:`parse_class_maps`).
    mask_threshold, masks_inverted : when given, every mask is read by this rule
        (:func:`vitfeat.dataset.read_mask`) and rewritten as a 0/255 PNG into ``masks_dir``, so that
        every later command (and its cache) sees the binary mask.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    if layout == "auto":
        layout = detect_layout(root)
    masks_dir = Path(masks_dir) if masks_dir else root / "masks-from-labels"
    if layout not in IMPORT_LAYOUTS:
        raise LayoutError(f"unknown layout '{layout}' (choose from auto, {', '.join(IMPORT_LAYOUTS)})")
    spec = IMPORT_LAYOUTS.get(layout)
    try:
        frame = spec.read(root, pair=pair, masks_dir=masks_dir, labelme_labels=labelme_labels)
    except FileNotFoundError as exc:  # a forced layout whose files are not there
        missing = exc.filename or str(exc)
        raise LayoutError(f"{root}: not the '{layout}' layout ({spec.description}): {missing} not found") from None
    if spec.annotate_beside and not frame.empty:
        frame = annotate_beside(frame, masks_dir, labelme_labels)
    if (mask_threshold is not None or masks_inverted) and not frame.empty:
        frame = normalise_masks(frame, masks_dir, mask_threshold, masks_inverted)
    if labels_json is not None and not frame.empty:
        frame = add_task_labels(frame, read_labels_json(labels_json, classes), labels_json)
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
    columns = ["case_id", "patient_id", "clinical", "wood", "clinical_mask", "wood_mask", "clinical_box", "wood_box"]
    present = [c for c in columns if c in frame.columns]
    frame = frame[present + [c for c in frame.columns if c not in present]]
    for col in ("clinical", "wood", "clinical_mask", "wood_mask"):
        if col in frame.columns:
            frame[col] = frame[col].map(lambda p: str(p) if isinstance(p, Path) else p)
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)
