"""ultralytics YOLO as lesion detector/segmenter: dataset export, training and per-case prediction.

Everything runs offline: :func:`vitfeat.deep.runtime.ultralytics_offline_env` is applied before
ultralytics is imported (no downloads, a vitfeat-owned config dir with a font, no analytics). Models
are built from a ``.yaml`` architecture (random init) or a local ``.pt`` checkpoint; a name such as
``yolo11n.pt`` that is not a local file is refused rather than downloaded.

A training run directory (``vitfeat train yolo``) holds::

    DIR/dataset/        images/{train,val}, labels/{train,val}, data.yaml, split.csv (patient-grouped)
    DIR/train/          ultralytics' own run folder (weights/last.pt, best.pt, results.csv)
    DIR/model.pt        the best checkpoint, copied when training ends
    DIR/yolo.json       task, modality, image size, split sizes, final metrics, provenance
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vitfeat.artefacts import artefact_hashes, check_artefacts
from vitfeat.atomic import atomic_path, copy_file, write_csv, write_text
from vitfeat.names import join_inside, safe_filenames
from vitfeat.dataset import (
    ImageReadError,
    Manifest,
    load_manifest,
    parse_box,
    read_image,
    read_mask,
)

log = logging.getLogger(__name__)

TASKS = ("detect", "segment")
DEFAULT_MODELS = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml"}
CLASS_NAMES = {0: "lesion"}
#: Components smaller than this many pixels are annotation specks, not lesions: no label for them.
MIN_COMPONENT_PX = 9


def _ultralytics():
    from vitfeat.deep.runtime import ultralytics_offline_env

    ultralytics_offline_env()
    import ultralytics

    _restore_pil_open()
    return ultralytics


def _restore_pil_open() -> None:
    # Importing ultralytics replaces PIL's Image.open with a wrapper that, on a file PIL cannot
    # identify, tries to pip-install a HEIF plugin (a network call, then ModuleNotFoundError);
    # vitfeat.dataset must keep reporting such files as unreadable, so PIL's own opener goes back.
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = patches._image_open


_restore_pil_open()  # ultralytics may have been imported before this module (not via _ultralytics())


# ---------------------------------------------------------------------------------------------
# Masks -> YOLO labels
# ---------------------------------------------------------------------------------------------


def mask_to_polygons(mask: np.ndarray, min_area: int = MIN_COMPONENT_PX, epsilon: float = 1.0) -> list[np.ndarray]:
    """Outer contours of a boolean mask as ``(K, 2)`` float arrays of normalised ``x, y`` in [0, 1].

    Holes are not represented (YOLO polygons have none); ``epsilon`` (px) simplifies the outline.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.
    min_area : int
        Smaller components are dropped (px).
    epsilon : float, default 1.0
        Douglas-Peucker tolerance (px).

    Returns
    -------
    list of numpy.ndarray
    """
    h, w = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if cv2.contourArea(c) < min_area and len(c) < min_area:
            continue
        c = cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2).astype(np.float64)
        if len(c) < 3:
            continue
        c[:, 0] /= w
        c[:, 1] /= h
        polys.append(np.clip(c, 0.0, 1.0))
    return polys


def mask_to_boxes(mask: np.ndarray, min_area: int = MIN_COMPONENT_PX) -> list[tuple[float, float, float, float]]:
    """One box per connected component, YOLO style: normalised ``(cx, cy, w, h)``.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.
    min_area : int
        Smaller components are dropped (px).

    Returns
    -------
    list of tuple
    """
    h, w = mask.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = []
    for x, y, bw, bh, area in stats[1:]:
        if area < min_area:
            continue
        boxes.append(((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h))
    return boxes


def label_lines(mask: np.ndarray, task: str) -> list[str]:
    """Lines of a YOLO label file (class 0) for a lesion mask; empty for an empty mask.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.
    task : {"segment", "detect"}
        Polygons or boxes.

    Returns
    -------
    list of str
    """
    if task == "segment":
        return ["0 " + " ".join(f"{v:.6f}" for v in poly.ravel()) for poly in mask_to_polygons(mask)]
    return ["0 " + " ".join(f"{v:.6f}" for v in box) for box in mask_to_boxes(mask)]


def _box_line(box, width: int, height: int) -> str:
    """A YOLO detection line (class 0, normalised cx cy w h) for a box in pixels: a manifest's
    ``<modality>_box`` is used in preference to the mask's bounding box."""
    x0, y0, x1, y1 = box
    vals = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return "0 " + " ".join(f"{v:.6f}" for v in vals)


def grouped_split(frame: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0) -> pd.Series:
    """'train' / 'val' per row, whole patients on one side.

    The unstratified split of the project's one patient-split function,
    :func:`vitfeat.evaluation.folds.grouped_split` (sklearn's GroupShuffleSplit).

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``patient_id``.
    val_fraction : float, default 0.2
        Share of patients in validation.
    seed : int, default 0
        Split seed.

    Returns
    -------
    pandas.Series
    """
    from vitfeat.evaluation.folds import grouped_split as patient_split

    train_idx, _ = patient_split(frame["patient_id"].astype(str), val_fraction=val_fraction, seed=seed)
    split = pd.Series("val", index=frame.index)
    split.iloc[train_idx] = "train"
    return split


def export_yolo_dataset(manifest: Manifest | str | os.PathLike, out_dir, *, task: str = "segment",
                        modality: str = "clinical", val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write the manifest's ``modality`` images and masks as a YOLO dataset; return ``data.yaml``.

    Only cases with both the image and its mask are used (a case without a mask is unlabelled, not
    lesion-free). Images are re-encoded as PNG through :func:`vitfeat.dataset.read_image`, so that
    EXIF orientation, 16-bit and grey images mean the same here as everywhere else in vitfeat.
    A case whose files cannot be read is reported in ``split.csv`` (column ``error``) and skipped.

    Parameters
    ----------
    manifest : Manifest or path-like
        The cases.
    out_dir : path-like
        The dataset folder.
    task : {"segment", "detect"}, default "segment"
        Label format.
    modality : str, default "clinical"
        Which photos.
    val_fraction : float, default 0.2
        Share of patients in validation.
    seed : int, default 0
        Split seed.

    Returns
    -------
    pathlib.Path
        ``data.yaml``.
    """
    _check_task(task)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, require_targets=False)
    out = Path(out_dir)
    frame = manifest.frame
    usable = frame[frame[modality].notna() & frame[f"{modality}_mask"].notna()].copy()
    if usable.empty:
        raise ValueError(f"{manifest.path}: no case has both a '{modality}' image and a '{modality}_mask'; "
                         "YOLO needs masks to learn from")
    usable["split"] = grouped_split(usable, val_fraction, seed)
    usable["error"] = ""
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    stems = safe_filenames(usable["case_id"])
    for idx, rec in usable.iterrows():
        stem = stems[str(rec["case_id"])]
        try:
            image = read_image(rec[modality])
            mask = read_mask(rec[f"{modality}_mask"])
            if mask.shape != image.shape[:2]:
                raise ImageReadError(f"{rec[f'{modality}_mask']}: mask size {mask.shape[::-1]} differs from "
                                     f"image size {image.shape[1::-1]}")
        except ImageReadError as exc:
            usable.loc[idx, "error"] = str(exc)
            log.warning("case %s skipped: %s", rec["case_id"], exc)
            continue
        _atomic_png(out / "images" / rec["split"] / f"{stem}.png", image[:, :, ::-1])
        lines = label_lines(mask, task)
        if task == "detect" and isinstance(rec.get(f"{modality}_box"), str):  # annotated box (issue #11, data)
            lines = [_box_line(parse_box(rec[f"{modality}_box"]), image.shape[1], image.shape[0])]
        write_text(out / "labels" / rec["split"] / f"{stem}.txt", "\n".join(lines) + "\n")
    write_csv(out / "split.csv", usable[["case_id", "patient_id", "split", "error"]])
    ok = usable[usable["error"] == ""]
    if not (ok["split"] == "train").any() or not (ok["split"] == "val").any():
        raise ValueError(f"{manifest.path}: the patient-grouped split left an empty train or val part "
                         f"({len(ok)} usable cases); add cases or change val_fraction")
    data_yaml = out / "data.yaml"
    import yaml

    write_text(data_yaml, yaml.safe_dump({"path": str(out.resolve()), "train": "images/train",
                                            "val": "images/val", "names": CLASS_NAMES}, sort_keys=False))
    return data_yaml


def _atomic_png(path: Path, bgr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise OSError(f"{path}: could not write image")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not '{task}'")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def resolve_model_source(model: str | os.PathLike | None, task: str) -> str:
    """A ``.yaml`` architecture (bundled with ultralytics, or a local file) or a local ``.pt``.

    Names of hub checkpoints (``yolo11n.pt``) that are not local files are refused: they would
    trigger a download.

    Parameters
    ----------
    model : str or path-like or None
        The ``--model`` value (None: the task's default architecture, trained from scratch).
    task : {"segment", "detect"}
        What the model does.

    Returns
    -------
    str
    """
    model = str(model or DEFAULT_MODELS[task])
    if model.endswith((".yaml", ".yml")):
        return model
    if model.endswith(".pt"):
        if not Path(model).is_file():
            raise FileNotFoundError(
                f"YOLO checkpoint not found: {model}. vitfeat does not download weights: pass a local .pt "
                f"file (e.g. copied from a machine with internet) or an architecture such as "
                f"{DEFAULT_MODELS[task]} to train from scratch")
        return str(Path(model).resolve())
    raise ValueError(f"model must be a .yaml architecture or a local .pt checkpoint, not '{model}'")


def train_yolo(manifest, out_dir, *, task: str = "segment", modality: str = "clinical", epochs: int = 100,
               imgsz: int = 640, model: str | None = None, batch: int = 16, device: str = "auto",
               val_fraction: float = 0.2, seed: int = 0, workers: int = 0, patience: int = 50,
               **overrides) -> Path:
    """Export the manifest as a YOLO dataset, train, and return ``DIR/model.pt`` (best checkpoint).

    If ``DIR`` holds an unfinished run (``train/weights/last.pt`` and no ``model.pt``), training resumes
    from it. ``overrides`` go to ultralytics' ``train()`` as is (e.g. ``lr0``, ``mosaic``).

    Parameters
    ----------
    manifest : Manifest or path-like
        The cases.
    out_dir : path-like
        The run folder.
    task, modality, epochs, imgsz, model, batch, device, val_fraction, seed, workers, patience
        The ``vitfeat train yolo`` options.
    **overrides
        More ultralytics training arguments.

    Returns
    -------
    pathlib.Path
        ``DIR/model.pt``.
    """
    _check_task(task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_model_source(model, task)
    ul = _ultralytics()
    from vitfeat.deep.runtime import select_device

    dev = select_device(device)
    dev_arg = "cpu" if dev.type == "cpu" else (str(dev.index or 0) if dev.type == "cuda" else dev.type)
    last = out / "train" / "weights" / "last.pt"
    if last.is_file() and not (out / "model.pt").is_file():
        log.warning("resuming the unfinished YOLO run in %s", out / "train")
        results = ul.YOLO(str(last)).train(resume=True)
        data_yaml = out / "dataset" / "data.yaml"
    else:
        data_yaml = export_yolo_dataset(manifest, out / "dataset", task=task, modality=modality,
                                        val_fraction=val_fraction, seed=seed)
        yolo = ul.YOLO(source, task=task)
        args = dict(data=str(data_yaml), epochs=int(epochs), imgsz=int(imgsz), batch=int(batch), device=dev_arg,
                    project=str(out.resolve()), name="train", exist_ok=True, workers=int(workers), seed=int(seed),
                    deterministic=True, patience=int(patience), plots=False, verbose=False,
                    pretrained=source.endswith(".pt"), amp=dev.type == "cuda")
        args.update(overrides)
        results = yolo.train(**args)
    weights = out / "train" / "weights"
    best = weights / "best.pt" if (weights / "best.pt").is_file() else last
    if not best.is_file():
        raise RuntimeError(f"YOLO training in {out / 'train'} produced no checkpoint")
    copy_file(best, out / "model.pt")
    split = pd.read_csv(data_yaml.parent / "split.csv", keep_default_na=False)
    info = {
        "kind": "yolo", "task": task, "modality": modality, "imgsz": int(imgsz), "epochs": int(epochs),
        "model_source": str(model or DEFAULT_MODELS[task]), "classes": CLASS_NAMES,
        "manifest": str(manifest.path if isinstance(manifest, Manifest) else manifest),
        "n_train": int((split["split"] == "train").sum()), "n_val": int((split["split"] == "val").sum()),
        "n_failed": int((split["error"] != "").sum()),
        "val_patients": sorted(split.loc[split["split"] == "val", "patient_id"].astype(str).unique().tolist()),
        "metrics": {k: float(v) for k, v in (getattr(results, "results_dict", None) or {}).items()},
        "ultralytics": ul.__version__,
        "artefacts": artefact_hashes(out, ["model.pt"]),
    }
    write_text(out / "yolo.json", json.dumps(info, indent=2))
    return out / "model.pt"


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


@dataclass
class Detection:
    """YOLO output for one image, in the image's own pixel coordinates.

    Attributes
    ----------
    boxes : numpy.ndarray
        (N, 4) ``x0, y0, x1, y1``, by decreasing confidence.
    conf : numpy.ndarray
        (N,) confidences.
    masks : numpy.ndarray or None
        (N, H, W) instance masks of a segment model.
    """

    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1, sorted by decreasing confidence
    conf: np.ndarray  # (N,)
    masks: np.ndarray | None  # (N, H, W) bool for segment models, None for detect models

    def union_mask(self, shape) -> np.ndarray:
        """All instances as one lesion mask; a detect model's boxes are filled.

        Parameters
        ----------
        shape : tuple
            The image's shape.

        Returns
        -------
        numpy.ndarray
        """
        if self.masks is not None and len(self.masks):
            return self.masks.any(axis=0)
        out = np.zeros(shape[:2], bool)
        for x0, y0, x1, y1 in np.round(self.boxes).astype(int):
            out[max(y0, 0):y1, max(x0, 0):x1] = True
        return out

    def best_box(self) -> tuple[int, int, int, int] | None:
        """The most confident box, or None when nothing was found."""
        if not len(self.boxes):
            return None
        x0, y0, x1, y1 = self.boxes[0]
        return int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))


class YoloPredictor:
    """A trained YOLO model as a mask source and ROI finder.

    ``predict(image, modality)`` returns a bool lesion mask of the image's size (the contract of
    :func:`vitfeat.deep.mask_source.load_mask_predictor`); ``detect(image)`` returns boxes,
    confidences and instance masks.

    Parameters
    ----------
    path : path-like
        ``model.pt`` of ``vitfeat train yolo``.
    conf : float, default 0.25
        Confidence threshold.
    imgsz : int, optional
        Inference size (default: the training size).
    device : str, default "auto"
        Torch device.
    """

    def __init__(self, path, *, conf: float = 0.25, imgsz: int | None = None, device: str = "auto"):
        path = Path(path)
        info_path = path / "yolo.json" if path.is_dir() else path.parent / "yolo.json"
        if path.is_dir():
            path = path / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"YOLO model not found: {path}")
        self.path = path.resolve()
        self.info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        if self.info and self.path.name == "model.pt":
            check_artefacts(info_path.parent, self.info, source=info_path)
        ul = _ultralytics()
        from vitfeat.deep.runtime import check_pickled_checkpoint

        check_pickled_checkpoint(self.path)  # ultralytics unpickles the whole model: vet what it names first
        self.model = ul.YOLO(str(self.path))
        self.task = self.model.task
        if self.task not in TASKS:
            raise ValueError(f"{path}: a YOLO '{self.task}' model; vitfeat uses detect or segment models")
        self.conf = float(conf)
        self.imgsz = int(imgsz or self.info.get("imgsz") or self.model.overrides.get("imgsz") or 640)
        from vitfeat.deep.runtime import select_device

        dev = select_device(device)
        self.device = "cpu" if dev.type == "cpu" else str(dev)

    def describe(self) -> dict:
        """Provenance recorded with the features it masked: path, hash, task, threshold, size."""
        from vitfeat.dataset import file_hash

        return {"kind": "yolo", "path": str(self.path), "sha": file_hash(self.path), "task": self.task,
                "conf": self.conf, "imgsz": self.imgsz, "trained_on": self.info.get("modality")}

    def detect(self, image: np.ndarray) -> Detection:
        """Run the model on one RGB uint8 image.

        Parameters
        ----------
        image : numpy.ndarray
            (H, W, 3) uint8 RGB photo.

        Returns
        -------
        Detection
        """
        h, w = image.shape[:2]
        # ultralytics treats numpy input as BGR (OpenCV order).
        res = self.model.predict(np.ascontiguousarray(image[:, :, ::-1]), imgsz=self.imgsz, conf=self.conf,
                                 device=self.device, retina_masks=True, verbose=False)[0]
        boxes = res.boxes.xyxy.cpu().numpy().reshape(-1, 4) if res.boxes is not None else np.zeros((0, 4))
        conf = res.boxes.conf.cpu().numpy().reshape(-1) if res.boxes is not None else np.zeros(0)
        order = np.argsort(-conf, kind="stable")
        masks = None
        if self.task == "segment":
            if res.masks is not None and len(res.masks):
                data = res.masks.data.cpu().numpy() > 0.5
                if data.shape[1:] != (h, w):  # retina masks are at image size; guard other versions
                    data = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
                                     for m in data])
                masks = data[order]
            else:
                masks = np.zeros((0, h, w), bool)
        return Detection(boxes=boxes[order], conf=conf[order], masks=masks)

    def predict(self, image: np.ndarray, modality: str | None = None) -> np.ndarray:
        """Lesion mask ``(H, W) bool`` for an RGB uint8 image (``modality`` is accepted for the contract).

        Parameters
        ----------
        image : numpy.ndarray
            (H, W, 3) uint8 RGB photo.
        modality : str, optional
            Ignored.

        Returns
        -------
        numpy.ndarray
        """
        return self.detect(image).union_mask(image.shape)


def predict_manifest(model, manifest, out_dir, *, modality: str = "clinical") -> pd.DataFrame:
    """Predict boxes and masks for every case of a manifest.

    Masks go to ``OUT/masks/<case_id>.png`` (the id through :func:`vitfeat.names.safe_filename`); the
    returned (and saved ``OUT/boxes.csv``) table has one
    row per detected box: ``case_id, box_index, x0, y0, x1, y1, conf, mask`` (cases with nothing found
    have one row with empty box fields; cases that fail have the reason in ``error``).

    Parameters
    ----------
    model : path-like or YoloPredictor
        The trained model.
    manifest : Manifest or path-like
        The cases.
    out_dir : path-like
        Output folder.
    modality : str, default "clinical"
        Which photos.

    Returns
    -------
    pandas.DataFrame
    """
    from vitfeat.dataset import write_mask

    predictor = model if isinstance(model, YoloPredictor) else YoloPredictor(model)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, require_targets=False)
    out = Path(out_dir)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    stems = safe_filenames(manifest.frame["case_id"])  # ids are data: never a path of their own
    for case in manifest.cases():
        path = case.image(modality)
        if path is None:
            continue
        base = {"case_id": case.case_id, "error": ""}
        try:
            image = read_image(path)
        except ImageReadError as exc:
            rows.append({**base, "error": str(exc)})
            continue
        det = predictor.detect(image)
        mask_path = join_inside(out / "masks", stems[str(case.case_id)], ".png")
        write_mask(mask_path, det.union_mask(image.shape))  # atomic itself
        if not len(det.boxes):
            rows.append({**base, "mask": str(mask_path)})
        for i, (box, c) in enumerate(zip(det.boxes, det.conf)):
            rows.append({**base, "box_index": i, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
                         "conf": float(c), "mask": str(mask_path)})
    table = pd.DataFrame(rows, columns=["case_id", "box_index", "x0", "y0", "x1", "y1", "conf", "mask", "error"])
    write_csv(out / "boxes.csv", table)
    return table
