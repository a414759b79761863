"""Manifest schema, image/mask reading, validation and importers.

A manifest has one row per case (a lesion observation):

=============== ========== ==========================================================
column          required   meaning
=============== ========== ==========================================================
case_id         yes        unique identifier of the case
patient_id      no         cross-validation group; defaults to ``case_id``
clinical        yes        path of the clinical (daylight) photo
wood            no         path of the Wood's-lamp (UV) photo
clinical_mask   no         0/255 PNG lesion mask, same size as ``clinical``
wood_mask       no         0/255 PNG lesion mask, same size as ``wood``
label, ...      no         target columns (default ``label``); any number of them
=============== ========== ==========================================================

Paths are relative to the manifest's folder. :func:`load_manifest` checks everything and reports
**every** problem at once, with the row number (1-based data row, as a spreadsheet shows it
below the header) and the column.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

ID_COLUMNS = ("case_id", "patient_id")
IMAGE_COLUMNS = ("clinical", "wood")
MASK_COLUMNS = ("clinical_mask", "wood_mask")
PATH_COLUMNS = IMAGE_COLUMNS + MASK_COLUMNS
MODALITIES = ("clinical", "wood")
RESERVED_COLUMNS = ID_COLUMNS + PATH_COLUMNS + ("error",)
DEFAULT_TARGET = "label"

#: Images above this many pixels are refused (decompression-bomb guard); 64 MP covers any camera.
MAX_IMAGE_PIXELS = 64_000_000


class ManifestError(ValueError):
    """Raised by :func:`load_manifest` when a manifest has fatal problems; lists all of them."""

    def __init__(self, path, problems: Sequence["Problem"]):
        self.path = path
        self.problems = list(problems)
        fatal = [p for p in self.problems if p.fatal]
        lines = [f"{path}: {len(fatal)} fatal problem(s)"] + [f"  {p}" for p in fatal]
        super().__init__("\n".join(lines))


class ImageReadError(ValueError):
    """An image or mask file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Problem:
    row: int | None  # 1-based data row; None for whole-file problems
    column: str | None
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        where = "manifest" if self.row is None else f"row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{'ERROR' if self.fatal else 'warning'}: {where}: {self.message}"


@dataclass(frozen=True)
class Case:
    """One lesion observation with absolute paths (None where the manifest leaves a path empty)."""

    case_id: str
    patient_id: str
    clinical: Path
    wood: Path | None = None
    clinical_mask: Path | None = None
    wood_mask: Path | None = None
    targets: dict = field(default_factory=dict)

    def image(self, modality: str) -> Path | None:
        return getattr(self, modality)

    def mask(self, modality: str) -> Path | None:
        return getattr(self, f"{modality}_mask")


@dataclass
class Manifest:
    """A validated manifest. ``frame`` holds absolute paths; ``problems`` holds non-fatal warnings."""

    path: Path | None
    root: Path
    frame: pd.DataFrame
    targets: list[str]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    def cases(self) -> Iterator[Case]:
        for row in self.frame.itertuples(index=False):
            rec = row._asdict()
            yield Case(
                case_id=str(rec["case_id"]),
                patient_id=str(rec["patient_id"]),
                **{c: _opt_path(rec.get(c)) for c in PATH_COLUMNS},
                targets={t: rec[t] for t in self.targets},
            )


def _opt_path(value) -> Path | None:
    return None if _is_empty(value) else Path(value)


def _is_empty(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""


# ---------------------------------------------------------------------------------------------
# Reading images and masks
# ---------------------------------------------------------------------------------------------


def _pil_open():
    """PIL's own ``Image.open``: importing ultralytics replaces it with a wrapper that, on a file PIL
    cannot identify, tries to pip-install a HEIF plugin (a network call, then ModuleNotFoundError)."""
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        return patches._image_open
    return Image.open


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _pil_open()(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except PermissionError:
        raise ImageReadError(f"{path}: cannot read (permission denied)") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: image is too large (decompression-bomb guard)") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: unreadable image ({exc})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageReadError(
            f"{path}: {w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP limit "
            "(decompression-bomb guard; pass a larger max_pixels if the image is genuine)"
        )
    return img


def oriented_size(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(width, height) after applying the EXIF orientation, read from the header only."""
    with _open_checked(Path(path), max_pixels) as img:
        orientation = img.getexif().get(0x0112, 1)
        w, h = img.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _to_uint8(img: Image.Image) -> Image.Image:
    """Map 16-bit and float images to 8 bits by scaling their dynamic range (not clipping)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return img


def read_image(path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a photo as an ``(H, W, 3) uint8`` RGB array, EXIF orientation applied.

    Grey images are replicated to three channels, 16-bit images scaled to 8 bits, transparent
    images (RGBA, LA, palette with transparency) composited over white, CMYK/YCbCr converted.
    """
    path = Path(path)
    with _open_checked(path, max_pixels) as img:
        try:
            img = ImageOps.exif_transpose(img)
            img = _to_uint8(img)
            if img.mode == "P":
                img = img.convert("RGBA")
            if img.mode in ("RGBA", "LA", "PA"):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            arr = np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise ImageReadError(f"{path}: truncated or corrupt image ({exc})") from None
    return np.ascontiguousarray(arr)


def read_mask(path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a lesion mask as an ``(H, W) bool`` array (lesion where the grey value is >= 128)."""
    path = Path(path)
    with _open_checked(path, max_pixels) as img:
        try:
            img = ImageOps.exif_transpose(img)
            img = _to_uint8(img)
            if img.mode in ("RGBA", "LA"):
                img = img.convert("RGBA").getchannel("A") if _alpha_only(img) else img.convert("L")
            arr = np.asarray(img.convert("L"))
        except OSError as exc:
            raise ImageReadError(f"{path}: truncated or corrupt mask ({exc})") from None
    return arr >= 128


def _alpha_only(img: Image.Image) -> bool:
    """True for masks drawn as opaque-on-transparent with constant colour."""
    rgb = np.asarray(img.convert("RGB"))
    return rgb.min() == rgb.max()


def write_mask(path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit 0/255 PNG."""
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, format="PNG")


def file_hash(path, chunk: int = 1 << 20) -> str:
    """Content hash (BLAKE2b, 128 bit) of a file: the cache key part that identifies an image."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def read_table(path) -> pd.DataFrame:
    """Read a CSV or Parquet table, keeping identifiers and paths as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep, dtype={c: str for c in ID_COLUMNS + PATH_COLUMNS})
    raise ValueError(f"{path}: unsupported manifest format '{suffix}' (use .csv or .parquet)")


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def validate_manifest(
    source,
    *,
    targets: Sequence[str] | None = None,
    require_targets: bool = True,
    root=None,
    allow_outside_root: bool = False,
    check_files: bool = True,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[pd.DataFrame, list[str], list[Problem]]:
    """Check a manifest and return ``(frame with absolute paths, target columns, problems)``.

    ``source`` is a path (CSV/Parquet) or a DataFrame (then ``root`` is required). Never raises for
    problems in the data; every problem is returned so that a user sees all of them at once.
    """
    problems: list[Problem] = []
    if isinstance(source, pd.DataFrame):
        if root is None:
            raise ValueError("root is required when the manifest is given as a DataFrame")
        frame = source.copy()
    else:
        frame = read_table(source)
        root = Path(source).resolve().parent if root is None else root
    root = Path(root).resolve()
    frame.columns = [str(c).strip() for c in frame.columns]

    for col in ("case_id", "clinical"):
        if col not in frame.columns:
            problems.append(Problem(None, col, f"required column '{col}' is missing "
                                               f"(columns are: {', '.join(frame.columns)})"))
    if any(p.fatal for p in problems):
        return frame, [], problems

    for col in ID_COLUMNS + PATH_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: None if _is_empty(v) else str(v).strip())
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    else:
        frame["patient_id"] = frame["patient_id"].fillna(frame["case_id"])
    for col in PATH_COLUMNS:
        if col not in frame.columns:
            frame[col] = None

    if targets is None:
        targets = [DEFAULT_TARGET] if DEFAULT_TARGET in frame.columns else []
    targets = list(targets)
    for t in targets:
        if t not in frame.columns:
            problems.append(Problem(None, t, f"target column '{t}' is missing", fatal=require_targets))
    if not targets and require_targets:
        problems.append(Problem(None, DEFAULT_TARGET, "no target column (expected 'label'); "
                                                      "fine for prediction, not for fitting", fatal=False))

    rows = range(1, len(frame) + 1)
    for row, cid in zip(rows, frame["case_id"]):
        if _is_empty(cid):
            problems.append(Problem(row, "case_id", "empty case_id"))
    dup = frame["case_id"].duplicated(keep=False) & frame["case_id"].notna()
    for cid, idx in frame[dup].groupby("case_id").groups.items():
        nums = ", ".join(str(i + 1) for i in idx)
        problems.append(Problem(int(idx[0]) + 1, "case_id", f"duplicate case_id '{cid}' (rows {nums})"))

    for t in targets:
        if t in frame.columns:
            for row, value in zip(rows, frame[t]):
                if _is_empty(value):
                    problems.append(Problem(row, t, f"empty or NaN value in target '{t}'", fatal=require_targets))

    for col in PATH_COLUMNS:
        resolved = []
        for row, value in zip(rows, frame[col]):
            if _is_empty(value):
                if col == "clinical":
                    problems.append(Problem(row, col, "empty path; every case needs a clinical image"))
                resolved.append(None)
                continue
            p = Path(value) if os.path.isabs(value) else root / value
            p = Path(os.path.normpath(p))
            if not _within(p.resolve(), root) and not allow_outside_root:
                problems.append(Problem(row, col, f"path '{value}' escapes the dataset root {root} "
                                                  "(pass allow_outside_root / --allow-outside-root "
                                                  "if this is intended)"))
            resolved.append(str(p))
        frame[col] = resolved

    if check_files:
        problems += _check_files(frame, max_pixels)
    return frame.reset_index(drop=True), targets, problems


def _check_files(frame: pd.DataFrame, max_pixels: int) -> list[Problem]:
    problems = []
    for row, rec in enumerate(frame.to_dict("records"), start=1):
        sizes = {}
        for col in PATH_COLUMNS:
            if _is_empty(rec[col]):
                continue
            try:
                sizes[col] = oriented_size(Path(rec[col]), max_pixels)
            except ImageReadError as exc:
                problems.append(Problem(row, col, str(exc)))
        for modality in MODALITIES:
            img, mask = sizes.get(modality), sizes.get(f"{modality}_mask")
            if img and mask and img != mask:
                problems.append(Problem(row, f"{modality}_mask",
                                        f"mask size {mask[0]}x{mask[1]} differs from image size "
                                        f"{img[0]}x{img[1]} ({rec[f'{modality}_mask']})"))
            if mask and not img and _is_empty(rec[modality]):
                problems.append(Problem(row, f"{modality}_mask", f"mask given without a {modality} image",
                                        fatal=False))
    return problems


def load_manifest(source, **kwargs) -> Manifest:
    """Validate a manifest and return it; raise :class:`ManifestError` listing all fatal problems.

    Keyword arguments are those of :func:`validate_manifest`.
    """
    frame, targets, problems = validate_manifest(source, **kwargs)
    path = None if isinstance(source, pd.DataFrame) else Path(source)
    if any(p.fatal for p in problems):
        raise ManifestError(path or "manifest", problems)
    root = Path(kwargs.get("root") or (path.resolve().parent if path else "."))
    return Manifest(path=path, root=root.resolve(), frame=frame, targets=targets, problems=problems)


def write_manifest(frame: pd.DataFrame, path, *, relative_to=None) -> Path:
    """Write a manifest with paths relative to its folder, atomically (temp file + rename)."""
    path = Path(path)
    base = Path(relative_to or path.parent).resolve()
    out = frame.copy()
    for col in PATH_COLUMNS:
        if col in out.columns:
            out[col] = out[col].map(lambda v: None if _is_empty(v) else os.path.relpath(Path(v).resolve(), base))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        out.to_parquet(tmp, index=False)
    else:
        out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
