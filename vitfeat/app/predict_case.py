"""One lesion pair through exactly the code of `vitfeat predict`.

The uploaded photos are re-encoded without metadata (EXIF: GPS, dates, device) into a private
temporary folder, and a one-row manifest held in memory goes to :func:`vitfeat.load_run`'s
:meth:`~vitfeat.pipelines.runs.Run.predictions`, which ends in the function behind ``vitfeat
predict`` (:func:`~vitfeat.pipelines.predict.predict_features`): the app's stage and probabilities
are those of ``vitfeat predict`` on the same case, and no table is written. The folder is removed
before the answer is returned; nothing is written into the run.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vitfeat.artefacts import verify_run
from vitfeat.atomic import atomic_path
from vitfeat.dataset import MAX_IMAGE_PIXELS, ImageReadError, read_image, read_mask, write_mask

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: An input whose longest side is this many times smaller or larger than the training photos is flagged.
SIZE_FACTOR = 2.0


class AppInputError(ValueError):
    """Bad input for the app; the message is shown to the user as is."""


@dataclass
class RunInfo:
    """A fitted run directory and what the app shows about it (read once, never written)."""

    path: Path
    trust_modified: bool = False
    meta: dict = field(init=False)

    def __post_init__(self):
        self.path = Path(self.path)
        # once at start-up: a modified or damaged run is refused before the app is served
        self.meta = verify_run(self.path, trust_modified=self.trust_modified)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind"))

    @cached_property
    def loaded(self):
        """The run as :func:`vitfeat.load_run` opens it (the one predict path)."""
        from vitfeat.pipelines.runs import load_run

        return load_run(self.path, trust_modified=self.trust_modified)

    @cached_property
    def bundle(self) -> dict | None:
        if self.kind != "sklearn":
            return None
        return self.loaded.bundle

    @property
    def feature_columns(self) -> list[str]:
        return list(self.meta.get("feature_columns") or (self.bundle or {}).get("features") or [])

    @property
    def needs_wood(self) -> bool:
        """Whether the model needs the Wood's-lamp photo: from what fit recorded (the training cases'
        modalities), else from the feature names (older runs)."""
        if self.kind == "sklearn":
            from vitfeat.app.scope import run_needs

            return "wood" in run_needs(self)["modalities"]
        return False  # VMTL models take a missing Wood's photo (a warning says it is missing)

    @cached_property
    def training_table(self) -> pd.DataFrame | None:
        """The run's own feature table (recorded in run.json), or None when it has moved."""
        path = self.meta.get("features_path")
        if not path or not Path(path).is_file():
            return None
        from vitfeat.pipelines.persist import read_feature_table

        frame, _ = read_feature_table(path)
        if "error" in frame.columns:
            frame = frame[frame["error"].fillna("").astype(str).str.strip() == ""]
        return frame.reset_index(drop=True)

    @cached_property
    def training_manifest(self) -> pd.DataFrame | None:
        """The manifest the run's features were extracted from, paths resolved, or None."""
        path = (self.meta.get("extraction") or {}).get("manifest") or self.meta.get("manifest")
        if not path or not Path(path).is_file():
            return None
        from vitfeat.dataset import load_manifest

        try:
            return load_manifest(path, require_targets=False).frame
        except (ValueError, OSError):  # a manifest that no longer validates only disables the case picker
            return None

    @cached_property
    def training_long_side(self) -> tuple[float, float] | None:
        """Range (min, max) of the longest side of up to 50 training clinical photos, in px."""
        from vitfeat.dataset import oriented_size

        man = self.training_manifest
        if man is None or "clinical" not in man.columns:
            return None
        sides = []
        for p in man["clinical"].dropna().head(50):
            try:
                sides.append(max(oriented_size(Path(p))))
            except (ValueError, OSError) as exc:  # a photo moved since: the range comes from the others
                log.debug("training photo %s unreadable: %s", p, exc)
        return (float(min(sides)), float(max(sides))) if sides else None

    @cached_property
    def leaderboard(self) -> pd.DataFrame | None:
        path = self.path / "leaderboard.csv"
        return pd.read_csv(path) if path.is_file() else None

    def performance(self, target: str) -> dict:
        """The run's honest score for ``target``: the nested-selection row when present."""
        targets = self.meta.get("targets") or {}
        # feature runs keep {target: {positive, pipeline}}; VMTL runs a list of target names plus
        # top-level ``positive_class`` and ``pipeline``
        per_target = (targets.get(target) or {}) if isinstance(targets, dict) else {}
        positive = per_target.get("positive") or (self.meta.get("positive_class") or {}).get(target)
        info = {"target": target, "positive": positive,
                "pipeline": per_target.get("pipeline") or self.meta.get("pipeline")}
        board = self.leaderboard
        if board is None or "pipeline" not in board.columns:
            return info
        rows = board[board["target"] == target] if "target" in board.columns else board
        nested = rows[rows["pipeline"] == "nested-selection"]
        row = nested.iloc[0] if len(nested) else (rows.iloc[0] if len(rows) else None)
        if row is None:
            return info
        metric = "balanced_accuracy"
        info.update(metric=metric, row=str(row["pipeline"]), nested=bool(len(nested)),
                    mean=_num(row.get(f"{metric}_mean")), ci_low=_num(row.get(f"{metric}_ci_low")),
                    ci_high=_num(row.get(f"{metric}_ci_high")), n_cases=_num(row.get("n_cases")))
        return info


def _num(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def sanitize_image(src, dest: Path, *, what: str, max_bytes: int = MAX_UPLOAD_BYTES,
                   max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an upload under the size and decompression guards and write it to ``dest`` as a PNG
    without any metadata (EXIF orientation applied first); returns the RGB pixels.

    Parameters
    ----------
    src : path-like
        The uploaded file.
    dest : pathlib.Path
        Where the clean PNG goes (the app's private temporary folder).
    what : str
        How messages name it ("clinical photo").
    max_bytes : int
        Upload-size limit.
    max_pixels : int
        Decompression-bomb guard.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.

    Raises
    ------
    AppInputError
        A message for the user, without server paths.
    """
    src = Path(src)
    _check_bytes(src, what, max_bytes)
    try:
        rgb = read_image(src, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise AppInputError(f"{what}: {_strip_path(str(exc), src)}") from None
    with atomic_path(dest) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")  # a fresh image: no EXIF, no text chunks
    return rgb


def sanitize_mask(src, dest: Path, *, what: str, max_bytes: int = MAX_UPLOAD_BYTES,
                  max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an uploaded mask under the same guards and write it to ``dest`` as a clean 0/255 PNG.

    Parameters
    ----------
    src : path-like
        The uploaded file.
    dest : pathlib.Path
        Where the clean PNG goes (the app's private temporary folder).
    what : str
        How messages name it ("clinical photo").
    max_bytes : int
        Upload-size limit.
    max_pixels : int
        Decompression-bomb guard.

    Returns
    -------
    numpy.ndarray
        (H, W) bool.
    """
    src = Path(src)
    _check_bytes(src, what, max_bytes)
    try:
        mask = read_mask(src, max_pixels=max_pixels)
    except (ImageReadError, ValueError) as exc:
        raise AppInputError(f"{what}: {_strip_path(str(exc), src)}") from None
    write_mask(dest, mask)
    return mask


def _check_bytes(src: Path, what: str, max_bytes: int) -> None:
    if not src.is_file():
        raise AppInputError(f"{what}: no file received")
    size = src.stat().st_size
    if size > max_bytes:
        raise AppInputError(f"{what}: the file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB upload limit")


def _strip_path(message: str, src: Path) -> str:
    """Drop the server-side temporary path from a message (it means nothing to the user)."""
    return public_message(message.replace(f"{src}: ", "").replace(str(src), "the file"))


_SERVER_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"()\[\],;]+){2,}[/\\]?")


_LIBRARY_NAME = re.compile(r"\b(?:PIL|numpy|np|torch|sklearn|cv2|pandas|pyarrow|skops|gradio|lightgbm|xgboost|imblearn|"
                           r"scipy|timm|ultralytics|zipfile|builtins)(?:\.[A-Za-z_]\w*)+:?\s?")


def public_message(text: str) -> str:
    """``text`` without server paths or library names: every absolute path is cut to its last component
    and module-qualified names (``PIL.UnidentifiedImageError``) are dropped.

    Parameters
    ----------
    text : str
        A message about to be shown in the browser.

    Returns
    -------
    str
    """
    text = _SERVER_PATH.sub(lambda m: re.split(r"[/\\\\]", m.group(0).rstrip("/\\"))[-1] or "the file", str(text))
    text = _LIBRARY_NAME.sub("", text)
    return re.sub(r"\(\s*\)", "", text).strip()


def predict_pair(run: RunInfo | str | Path, clinical, wood=None, *, clinical_mask=None, wood_mask=None,
                 max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_IMAGE_PIXELS,
                 details: bool = True) -> dict:
    """Stage one lesion pair with a fitted run, exactly as ``vitfeat predict`` would.

    Parameters
    ----------
    run : RunInfo or path
        The fitted run directory (feature run or VMTL run).
    clinical, wood : path
        The photos (any format PIL reads); ``wood`` may be None for a clinical-only model.
    clinical_mask, wood_mask : path, optional
        Lesion masks; without them the run's mask source applies as in ``vitfeat predict``.
    max_bytes, max_pixels : int
        Upload-size limit and decompression guard.
    details : bool
        Also compute the overlay images, areas and top features (the API's bare answer skips nothing
        of the prediction itself).

    Returns
    -------
    dict
        ``stage``, ``target``, ``probabilities`` ({class: p}), ``warnings`` (list), ``performance``,
        and with ``details``: ``areas``, ``overlays`` (RGB arrays), ``top_features`` (list of dicts) and
        ``range_notes`` (features outside the training range: a detail of the table when the case is in
        scope, warnings otherwise).
    """
    run = run if isinstance(run, RunInfo) else RunInfo(run)
    if clinical is None:
        raise AppInputError("a clinical photo is required")
    if wood is None and run.needs_wood:
        raise AppInputError("this model needs a Wood's-lamp photo: it was trained on clinical + Wood's-lamp pairs, "
                            "so please add the Wood's-lamp photo (a prediction without it would be outside what "
                            "the model learned)")
    from vitfeat.app.scope import never_saw_wood

    ignored_wood = wood is not None and never_saw_wood(run)  # a clinical-only model: the Wood's photo is unused
    if ignored_wood:
        wood = wood_mask = None
    tmp = Path(tempfile.mkdtemp(prefix="vitfeat-app-"))
    try:
        row = {"case_id": "upload", "patient_id": "upload"}
        limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
        arrays = {"clinical": sanitize_image(clinical, tmp / "clinical.png", what="clinical photo", **limits)}
        row["clinical"] = "clinical.png"
        if wood is not None:
            arrays["wood"] = sanitize_image(wood, tmp / "wood.png", what="Wood's photo", **limits)
            row["wood"] = "wood.png"
        for modality, mask in (("clinical", clinical_mask), ("wood", wood_mask)):
            if mask is not None and modality in arrays:
                m = sanitize_mask(mask, tmp / f"{modality}_mask.png", what=f"{modality} mask", **limits)
                if m.shape != arrays[modality].shape[:2]:
                    raise AppInputError(f"{modality} mask: size {m.shape[::-1]} differs from the photo's "
                                        f"{arrays[modality].shape[1::-1]}")
                row[f"{modality}_mask"] = f"{modality}_mask.png"
        manifest = pd.DataFrame([{**row, "data_root": str(tmp)}])  # in memory: no table is written
        features = None
        try:
            if run.kind == "sklearn":
                features = run.loaded.features(manifest)
                out = run.loaded.predictions(features, manifest=manifest)
            else:
                out = run.loaded.predictions(manifest)
        except (ValueError, FileNotFoundError) as exc:
            raise AppInputError(public_message(str(exc).replace(str(tmp) + "/", ""))) from None
        result = _answer(run, out.iloc[0])
        from vitfeat.app.scope import scope_fields

        fields, scope_warnings = scope_fields(run, out.iloc[0], result["target"],
                                              masks_uploaded=clinical_mask is not None)
        result.update(fields)
        result["coverage"] = ((run.meta.get("conformal") or {}).get(result["target"]) or {}).get("coverage")
        result["warnings"] += scope_warnings
        if result["in_scope"] is False:
            result["stage"] = None  # the probabilities stay in the answer; the page shows "cannot assess"
        if ignored_wood:
            result["warnings"].append("this model was trained on clinical photos only: the Wood's-lamp photo was "
                                      "not used")
        elif wood is None and not never_saw_wood(run):
            result["warnings"].append("no Wood's-lamp photo: the model answers from the clinical photo alone, "
                                      "which it saw less often (or never) in training")
        result["warnings"] += _size_warnings(run, arrays["clinical"])
        if details:
            result.update(_details(run, manifest, features, result))
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _answer(run: RunInfo, row: pd.Series) -> dict:
    error = str(row.get("error") or "").strip()
    if error and error != "nan":
        raise AppInputError(public_message(f"the photos could not be analysed: {error}"))
    if "y_pred" in row.index:  # VMTL predictions: y_pred, proba_<class>
        target, pred_col, prefix = str(run.meta.get("target") or "label"), "y_pred", "proba_"
    else:  # feature runs: <target>_pred, <target>_proba_<class>
        targets = [c[: -len("_pred")] for c in row.index if str(c).endswith("_pred") and "mask" not in str(c)]
        if not targets:
            raise AppInputError("the run gave no prediction")
        target = targets[0]
        pred_col, prefix = f"{target}_pred", f"{target}_proba_"
    probs = {str(c)[len(prefix):]: float(row[c]) for c in row.index if str(c).startswith(prefix)}
    return {"run": run.name, "target": target, "stage": str(row[pred_col]), "probabilities": probs,
            "warnings": [], "performance": run.performance(target)}


def _size_warnings(run: RunInfo, rgb: np.ndarray) -> list[str]:
    seen = run.training_long_side
    if seen is None:
        return []
    side = max(rgb.shape[:2])
    lo, hi = seen
    if side < lo / SIZE_FACTOR or side > hi * SIZE_FACTOR:
        return [(f"the clinical photo's longest side is {side} px; the training photos had {lo:.0f}-{hi:.0f} px, "
                 "so pixel-unit features may mean something else here")]
    return []


def _details(run: RunInfo, manifest: pd.DataFrame, features: pd.DataFrame | None, result: dict) -> dict:
    from vitfeat.app.overlay import case_overlays

    extraction = run.meta.get("extraction") or {}
    out = {"areas": {}, "overlays": {}, "top_features": [], "range_notes": []}
    try:
        overlays, areas, warnings = case_overlays(manifest, extraction.get("masks", "given"),
                                                  extraction.get("max_side"))
        out.update(overlays=overlays, areas=areas)
        result["warnings"] += warnings
    except Exception as exc:  # noqa: BLE001 - the drawing is an aid; the prediction stands without it
        result["warnings"].append(f"the lesion overlay could not be drawn ({exc})")
    if run.kind == "sklearn" and features is not None:
        from vitfeat.app.features import top_features

        top, notes = top_features(run, features, result["target"])
        out["top_features"], out["range_notes"] = top, notes
        if result.get("in_scope") is not True:  # no verdict of the check on the whole case: they are warnings
            result["warnings"] += notes
    return out
