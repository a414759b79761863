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
clinical_box    no         lesion box ``x0,y0,x1,y1`` in pixels of the clinical photo
wood_box        no         lesion box ``x0,y0,x1,y1`` in pixels of the Wood's photo
split           no         a split kept from the source (e.g. YOLO train/val/test); not a target
data_root       no         the folder paths are relative to (written by ``manifest import`` when
                           the manifest lies outside the data folder); one value for all rows
pixels_per_mm   no         scale of the stored photos; adds ``_mm``/``_mm2`` size features
label, ...      no         target columns (default ``label``); any number of them
=============== ========== ==========================================================

Paths are relative to the manifest's folder (or to ``data_root`` when the manifest records one).
:func:`load_manifest` checks everything and reports **every** problem at once, with the row number
(1-based data row, as a spreadsheet shows it below the header) and the column.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from vitfeat.atomic import atomic_path, write_table

ID_COLUMNS = ("case_id", "patient_id")
IMAGE_COLUMNS = ("clinical", "wood")
MASK_COLUMNS = ("clinical_mask", "wood_mask")
PATH_COLUMNS = IMAGE_COLUMNS + MASK_COLUMNS
BOX_COLUMNS = ("clinical_box", "wood_box")
MODALITIES = ("clinical", "wood")
#: How messages name each modality.
MODALITY_NAMES = {"clinical": "clinical (daylight)", "wood": "Wood's-lamp (UV)"}
DATA_ROOT_COLUMN = "data_root"
SCALE_COLUMN = "pixels_per_mm"  # optional: adds millimetre versions of sizes (vitfeat.featurize.units)
RESERVED_COLUMNS = ID_COLUMNS + PATH_COLUMNS + BOX_COLUMNS + ("error", "split", DATA_ROOT_COLUMN, SCALE_COLUMN)
DEFAULT_TARGET = "label"

#: Degenerate-input thresholds of :func:`validate_manifest` (warnings, not errors).
MIN_MASK_AREA = 16  # px: a smaller lesion gives shape features from a handful of pixels
MIN_IMAGE_SIDE = 32  # px: below this most texture and colour-region features are undefined

#: Images above this many pixels are refused (decompression-bomb guard); 64 MP covers any camera.
MAX_IMAGE_PIXELS = 64_000_000


class ManifestError(ValueError):
    """Raised by :func:`load_manifest` when a manifest has fatal problems; lists all of them.

    Parameters
    ----------
    path : path-like or str
        The manifest (``"manifest"`` for a DataFrame).
    problems : sequence of Problem
        Every problem found; the fatal ones make the message.
    """

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
    """One problem of a manifest, as ``manifest check`` prints it.

    Attributes
    ----------
    row : int or None
        1-based data row (as a spreadsheet shows it below the header); None for the whole file.
    column : str or None
        The column concerned.
    message : str
        What is wrong, naming the file where there is one.
    fatal : bool
        An error (the manifest cannot be used) rather than a warning.
    """

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
    """One lesion observation with absolute paths (None where the manifest leaves a path empty).

    Attributes
    ----------
    case_id, patient_id : str
        The case and its patient (the CV group).
    clinical, wood : pathlib.Path or None
        The photos.
    clinical_mask, wood_mask : pathlib.Path or None
        Their lesion masks.
    targets : dict
        ``{target column: value}``.
    clinical_box, wood_box : tuple of float or None
        Annotated lesion boxes ``(x0, y0, x1, y1)`` in pixels.
    """

    case_id: str
    patient_id: str
    clinical: Path
    wood: Path | None = None
    clinical_mask: Path | None = None
    wood_mask: Path | None = None
    targets: dict = field(default_factory=dict)
    clinical_box: tuple[float, float, float, float] | None = None
    wood_box: tuple[float, float, float, float] | None = None

    def image(self, modality: str) -> Path | None:
        """The photo of ``modality``, or None.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        pathlib.Path or None
        """
        return getattr(self, modality)

    def mask(self, modality: str) -> Path | None:
        """The lesion mask of ``modality``, or None.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        pathlib.Path or None
        """
        return getattr(self, f"{modality}_mask")

    def box(self, modality: str) -> tuple[float, float, float, float] | None:
        """The annotated lesion box ``(x0, y0, x1, y1)`` in pixels of that photo, or None.

        Consumers (ROI crops, YOLO export, VMTL box targets) prefer it to a mask's bounding box.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        tuple of float or None
        """
        return getattr(self, f"{modality}_box")


@dataclass
class Manifest:
    """A validated manifest. ``frame`` holds absolute paths; ``problems`` holds non-fatal warnings.

    Attributes
    ----------
    path : pathlib.Path or None
        The file (None for a DataFrame).
    root : pathlib.Path
        The folder the paths were relative to.
    frame : pandas.DataFrame
        The rows, paths absolute.
    targets : list of str
        Target columns.
    problems : list of Problem
        Warnings.
    """

    path: Path | None
    root: Path
    frame: pd.DataFrame
    targets: list[str]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    def cases(self) -> Iterator[Case]:
        """The rows as :class:`Case` objects, in order."""
        for row in self.frame.itertuples(index=False):
            rec = row._asdict()
            yield Case(
                case_id=str(rec["case_id"]),
                patient_id=str(rec["patient_id"]),
                **{c: _opt_path(rec.get(c)) for c in PATH_COLUMNS},
                targets={t: rec[t] for t in self.targets},
                **{c: _opt_box(rec.get(c)) for c in BOX_COLUMNS},
            )


def parse_box(value) -> tuple[float, float, float, float]:
    """Parse ``"x0,y0,x1,y1"`` (pixels); raise ValueError saying what is wrong.

    Parameters
    ----------
    value : str or sequence
        The manifest cell.

    Returns
    -------
    tuple of float
        ``(x0, y0, x1, y1)``.
    """
    parts = [v.strip() for v in str(value).strip().strip("()[]").split(",")]
    if len(parts) != 4:
        raise ValueError(f"box '{value}' needs 4 comma-separated numbers x0,y0,x1,y1, got {len(parts)}")
    try:
        x0, y0, x1, y1 = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"box '{value}' is not 4 numbers x0,y0,x1,y1") from None
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise ValueError(f"box '{value}' has a non-finite coordinate")
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box '{value}' needs x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def format_box(box) -> str:
    """``(x0, y0, x1, y1)`` as the manifest's ``"x0,y0,x1,y1"`` (whole pixels shown without .0).

    Parameters
    ----------
    box : sequence of float
        Four coordinates.

    Returns
    -------
    str
    """
    return ",".join(f"{float(v):g}" for v in box)


def _opt_box(value):
    return None if _is_empty(value) else parse_box(value)


def id_strings(values: pd.Series) -> pd.Series:
    """Identifiers as text, numbers written the way a person types them: ``7``, not ``7.0``.

    A spreadsheet or pandas turns a column of numeric ids into floats (``1.0``); compared as text
    with the same ids elsewhere (``1``) they would not match. Missing values stay missing.

    Parameters
    ----------
    values : pandas.Series
        An id column (``case_id``, ``patient_id``) of any dtype.

    Returns
    -------
    pandas.Series
        Strings (object dtype), missing values as None.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        def text(v):
            if pd.isna(v):
                return None
            return str(int(v)) if float(v).is_integer() else repr(float(v))
        return values.map(text).astype(object)
    return values.map(lambda v: None if _is_empty(v) else str(v)).astype(object)


def same_id(a, b) -> bool:
    """Whether two identifiers name the same thing: equal as text, or equal as numbers (``"7"``, ``7.0``).

    Parameters
    ----------
    a, b : object
        Two identifiers (text and numbers are compared after ``str(...).strip()``, then as floats).

    Returns
    -------
    bool
    """
    if str(a).strip() == str(b).strip():
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _opt_path(value) -> Path | None:
    return None if _is_empty(value) else Path(value)


def _is_empty(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""


# ---------------------------------------------------------------------------------------------
# Reading images and masks
# ---------------------------------------------------------------------------------------------


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
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
    """(width, height) after applying the EXIF orientation, read from the header only.

    Parameters
    ----------
    path : path-like
        The image.
    max_pixels : int
        Decompression-bomb guard.

    Returns
    -------
    tuple of int
    """
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

    Parameters
    ----------
    path : path-like
        The photo.
    max_pixels : int
        Larger images are refused (decompression-bomb guard).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ImageReadError
        Naming the file and the reason.
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


class MaskWarning(UserWarning):
    """A mask read by a rule the user may not expect (several grey values, colour); names the file."""


def read_mask(path, max_pixels: int = MAX_IMAGE_PIXELS, *, threshold: float | None = None,
              inverted: bool = False) -> np.ndarray:
    """Read a lesion mask as an ``(H, W) bool`` array.

    Parameters
    ----------
    path : path of the mask file.
    max_pixels : decompression-bomb guard.
    threshold : grey value at or above which a pixel is lesion. None (default): a mask with at most
        two values (0/k for any k > 0, e.g. 0/1 or 0/255) is binary with its larger value as lesion;
        a mask with more values is thresholded at half its maximum, with a :class:`MaskWarning`.
    inverted : lesion is black (the smaller value) instead of white.

    Colour masks use their maximum channel, with a :class:`MaskWarning`; opaque-on-transparent
    masks of one colour use their alpha channel.
    """
    path = Path(path)
    with _open_checked(path, max_pixels) as img:
        try:
            img = ImageOps.exif_transpose(img)
            arr = _mask_grey(img, path)
        except OSError as exc:
            raise ImageReadError(f"{path}: truncated or corrupt mask ({exc})") from None
    lesion = _binarise(arr, threshold, path)
    return ~lesion if inverted else lesion


def _mask_grey(img: Image.Image, path: Path) -> np.ndarray:
    """One grey channel of a mask, keeping its original value range (0/1 stays 0/1)."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") and _alpha_only(img):
        return np.asarray(img.convert("RGBA").getchannel("A"))
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return np.asarray(img, dtype=np.float64)
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    rgb = np.asarray(img.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        warnings.warn(f"{path}: colour mask ({img.mode}); using its maximum channel as the grey value",
                      MaskWarning, stacklevel=3)
    return rgb.max(axis=2)


def _binarise(arr: np.ndarray, threshold: float | None, path: Path) -> np.ndarray:
    if threshold is not None:
        return arr >= threshold
    values = np.unique(arr)
    if len(values) <= 2:  # 0/k, or a constant mask: the larger non-zero value is lesion
        return arr == values[-1] if values[-1] > 0 else np.zeros(arr.shape, bool)
    cut = float(values[-1]) / 2
    warnings.warn(f"{path}: mask has {len(values)} grey values (not two); lesion where value >= {cut:g} "
                  "(half its maximum); pass a mask threshold to choose another", MaskWarning, stacklevel=3)
    return arr >= cut


def _alpha_only(img: Image.Image) -> bool:
    """True for masks drawn as opaque-on-transparent with constant colour."""
    rgb = np.asarray(img.convert("RGB"))
    return rgb.min() == rgb.max()


def write_mask(path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit 0/255 PNG, atomically (see :mod:`vitfeat.atomic`).

    Parameters
    ----------
    path : path-like
        The PNG file.
    mask : numpy.ndarray
        (H, W), true on the lesion.
    """
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")


def file_hash(path, chunk: int = 1 << 20) -> str:
    """Content hash (BLAKE2b, 128 bit) of a file: the cache key part that identifies an image.

    Parameters
    ----------
    path : path-like
        The file.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


class ManifestEncodingError(ValueError):
    """A manifest that is not text in the expected encoding; names the file, a likely encoding and
    the option to pass."""


#: Minimum number of cases per class below which cross-validation folds cannot all hold the class.
DEFAULT_FOLDS = 5


def read_table(path, *, encoding: str | None = None, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table, keeping identifiers, paths and boxes as strings.

    Parameters
    ----------
    path : a ``.csv``/``.txt``/``.tsv`` or ``.parquet`` file.
    encoding : text encoding of a CSV; default UTF-8 (with or without a byte-order mark). When the
        bytes are not valid in it, :class:`ManifestEncodingError` names the file, the position, the
        likely encoding and the ``--encoding`` option.
    sep : field separator; default from the header line (``,``, ``;`` or tab).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
            if len(set(names)) == len(names):
                frame = pd.read_parquet(path)
            else:  # repeated names: read them apart (as name.1, like a CSV), the check names them
                unique = [n if names.index(n) == i else f"{n}.{names[:i].count(n)}" for i, n in enumerate(names)]
                frame = pq.ParquetFile(path).read().rename_columns(unique).to_pandas()
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise ValueError(f"{path}: not a readable Parquet table (truncated or damaged?): {exc}") from None
        frame.attrs["header"] = list(names)
        return frame
    if suffix not in (".csv", ".txt", ".tsv"):
        raise ValueError(f"{path}: unsupported manifest format '{suffix}' (use .csv or .parquet)")
    text = _decode(path.read_bytes(), path, encoding)
    header = text.split("\n", 1)[0]
    sep = sep or ("\t" if suffix == ".tsv" else _guess_separator(header))
    dtype = {c: str for c in ID_COLUMNS + PATH_COLUMNS + BOX_COLUMNS + (DATA_ROOT_COLUMN,)}
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=dtype)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a well-formed CSV table ({exc})") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (no header line)") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    frame.attrs["header"] = _header_names(header, sep)
    return frame


def _header_names(header: str, sep: str) -> list[str]:
    """The column names as written in the header line (pandas renames a repeated one to ``name.1``)."""
    import csv

    try:
        return [c.strip().lstrip("\ufeff") for c in next(csv.reader([header.rstrip("\r")], delimiter=sep))]
    except (csv.Error, StopIteration):
        return []


def _decode(raw: bytes, path: Path, encoding: str | None) -> str:
    name = encoding or _utf16(raw) or "utf-8-sig"
    try:
        return raw.decode(name)
    except LookupError:
        raise ManifestEncodingError(f"{path}: unknown encoding '{encoding}' (e.g. utf-8, cp1252, latin-1)") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        guess = _likely_encoding(raw)
        raise ManifestEncodingError(
            f"{path}: not valid {name} text (byte 0x{raw[exc.start]:02x} on line {line}); it looks like "
            f"{guess}: pass --encoding {guess} (encoding='{guess}' in Python), or save the file as UTF-8"
        ) from None


def _utf16(raw: bytes) -> str | None:
    """``utf-16`` for a UTF-16 export (Excel's "Unicode text"): a UTF-16 byte-order mark, or ASCII text
    with a NUL after (or before) every character; None otherwise."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    head = raw[:200]
    if len(head) >= 4 and head[1::2].count(0) == len(head[1::2]) and head[0::2].count(0) == 0:
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) == len(head[0::2]) and head[1::2].count(0) == 0:
        return "utf-16-be"
    return None


def _likely_encoding(raw: bytes) -> str:
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(raw).best()
        if best is not None and best.encoding not in ("utf_8", "ascii"):
            return best.encoding.replace("_", "-")
    except ImportError:  # optional: a plain guess is still a way out
        pass
    return "cp1252"


def _guess_separator(header: str) -> str:
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


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
    encoding: str | None = None,
    mask_threshold: float | None = None,
    masks_inverted: bool = False,
    min_mask_area: int = MIN_MASK_AREA,
    min_image_side: int = MIN_IMAGE_SIDE,
    folds: int = DEFAULT_FOLDS,
) -> tuple[pd.DataFrame, list[str], list[Problem]]:
    """Check a manifest and return ``(frame with absolute paths, target columns, problems)``.

    ``source`` is a path (CSV/Parquet) or a DataFrame (then ``root`` is required). Never raises for
    problems in the data; every problem is returned so that a user sees all of them at once.
    Paths are resolved against ``root`` (default: the manifest's ``data_root`` column when it has
    one, else its folder); a path leaving that root is reported and never opened unless
    ``allow_outside_root``. Degenerate masks (empty, full, under ``min_mask_area`` px, touching
    every border) and images under ``min_image_side`` px are warnings (``fatal=False``).
    ``frame.attrs["root"]`` holds the root used.

    Parameters
    ----------
    source : path-like or pandas.DataFrame
        The manifest (CSV/Parquet or a DataFrame).
    targets : sequence of str, optional
        Target columns (default ``label`` when present).
    require_targets : bool, default True
        Missing or empty targets are errors (fitting) rather than warnings (prediction).
    root : path-like, optional
        The folder paths are relative to.
    allow_outside_root : bool, default False
        Read paths that leave the root.
    check_files : bool, default True
        Open every file (headers only) and check masks.
    max_pixels : int
        Decompression-bomb guard.
    encoding : str, optional
        The CSV's text encoding (default: detected).
    mask_threshold : float, optional
        Grey level above which a mask pixel is lesion (default: the mask reader's rule).
    masks_inverted : bool, default False
        Masks are dark on the lesion.
    min_mask_area : int
        Smaller masks get a warning (px).
    min_image_side : int
        Smaller photos get a warning (px).
    folds : int
        Classes with fewer cases get a warning.

    Returns
    -------
    frame : pandas.DataFrame
        The rows with absolute paths.
    targets : list of str
    problems : list of Problem
    """
    frame, root, problems = _read_source(source, root, encoding)
    if any(p.fatal for p in problems):
        return frame, [], problems
    _normalise_columns(frame)
    targets, target_problems = _check_targets(frame, targets, require_targets, folds)
    problems += target_problems + _check_ids(frame)
    escaped, path_problems = _resolve_paths(frame, root, allow_outside_root)
    problems += path_problems + _check_box_syntax(frame) + _check_scale(frame)
    if check_files:
        rules = dict(threshold=mask_threshold, inverted=masks_inverted, min_area=min_mask_area,
                     min_side=min_image_side)
        problems += _check_files(frame, max_pixels, escaped, rules)
    blank = frame.attrs.get("blank_rows") or set()
    problems = [p for p in problems if p.row not in blank or p.column is None]  # one error per blank row
    frame = frame.reset_index(drop=True)
    frame.attrs["root"] = str(root)
    return frame, targets, sorted(problems, key=lambda p: (p.row or 0, not p.fatal))


def _read_source(source, root, encoding) -> tuple[pd.DataFrame, Path, list[Problem]]:
    """The table, the root its paths are relative to, and whole-file problems."""
    problems: list[Problem] = []
    if isinstance(source, pd.DataFrame):
        if root is None and DATA_ROOT_COLUMN not in source.columns:
            raise ValueError("root is required when the manifest is given as a DataFrame")
        frame, folder = source.copy(), Path(root or ".")
    else:
        frame, folder = read_table(source, encoding=encoding), Path(source).resolve().parent
    frame.columns = [str(c).strip() for c in frame.columns]
    problems += _table_debris(frame)
    for col in ("case_id", "clinical"):
        if col not in frame.columns:
            problems.append(Problem(None, col, f"required column '{col}' is missing "
                                               f"(columns are: {', '.join(frame.columns)})"))
    if root is None and DATA_ROOT_COLUMN in frame.columns:
        values = sorted({str(v).strip() for v in frame[DATA_ROOT_COLUMN] if not _is_empty(v)})
        if len(values) > 1:
            problems.append(Problem(None, DATA_ROOT_COLUMN, f"{len(values)} different data roots "
                                                            f"({', '.join(values[:3])}); one is allowed"))
        elif values:
            root = folder / values[0]  # an absolute value replaces the folder
    return frame, Path(root or folder).resolve(), problems


def _table_debris(frame: pd.DataFrame) -> list[Problem]:
    """Whole-table problems of a spreadsheet export, fixed in place where a user would expect it.

    Repeated column names are fatal (which one is meant?); columns without a name and without a
    value (Excel's trailing empty columns) are dropped with a warning; rows of empty cells only
    (a line of separators) at the end are dropped with a warning, elsewhere each is one error.
    """
    problems = []
    header = frame.attrs.get("header") or list(frame.columns)
    seen: dict[str, list[int]] = {}
    for pos, name in enumerate(header, start=1):
        if str(name).strip():
            seen.setdefault(str(name).strip(), []).append(pos)
    for name, positions in seen.items():
        if len(positions) > 1:
            problems.append(Problem(None, name, f"column '{name}' appears {len(positions)} times (columns "
                                                f"{', '.join(map(str, positions))}); rename or delete all but one"))
    empty_cols = [c for pos, c in enumerate(frame.columns)
                  if (str(c).startswith("Unnamed: ") or not str(c).strip()) and frame[c].map(_is_empty).all()]
    if empty_cols:
        frame.drop(columns=empty_cols, inplace=True)
        problems.append(Problem(None, None, f"{len(empty_cols)} column(s) without a name or a value dropped "
                                            "(empty columns of a spreadsheet export)", fatal=False))
    if len(frame.columns):
        blank = frame.map(_is_empty).all(axis=1).to_numpy()
        n_trailing = 0
        while n_trailing < len(blank) and blank[len(blank) - 1 - n_trailing]:
            n_trailing += 1
        if n_trailing:
            rows = f"{len(blank) - n_trailing + 1}-{len(blank)}" if n_trailing > 1 else str(len(blank))
            frame.drop(index=frame.index[len(blank) - n_trailing:], inplace=True)
            problems.append(Problem(None, None, f"{n_trailing} empty row(s) at the end (row(s) {rows}, only "
                                                "separators) dropped", fatal=False))
        for row in np.flatnonzero(blank[: len(blank) - n_trailing]) + 1:
            problems.append(Problem(int(row), None, "empty row (only separators); delete it"))
    frame.attrs["blank_rows"] = {int(r) + 1 for r in np.flatnonzero(blank[: len(blank) - n_trailing])} \
        if len(frame.columns) else set()
    return problems


def _normalise_columns(frame: pd.DataFrame) -> None:
    for col in ID_COLUMNS + PATH_COLUMNS + BOX_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: None if _is_empty(v) else str(v).strip())
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    else:
        frame["patient_id"] = frame["patient_id"].fillna(frame["case_id"])
    for col in PATH_COLUMNS:
        if col not in frame.columns:
            frame[col] = None


def _check_targets(frame, targets, require_targets: bool, folds: int) -> tuple[list[str], list[Problem]]:
    problems = []
    if targets is None:
        targets = [DEFAULT_TARGET] if DEFAULT_TARGET in frame.columns else []
    targets = list(targets)
    for t in targets:
        if t not in frame.columns:
            problems.append(Problem(None, t, f"target column '{t}' is missing", fatal=require_targets))
    if not targets and require_targets:
        problems.append(Problem(None, DEFAULT_TARGET, "no target column (expected 'label'); "
                                                      "fine for prediction, not for fitting", fatal=False))
    for t in (t for t in targets if t in frame.columns):
        for row, value in enumerate(frame[t], start=1):
            if _is_empty(value):
                problems.append(Problem(row, t, f"empty or NaN value in target '{t}'", fatal=require_targets))
        counts = frame[t].dropna().astype(str).value_counts()
        if require_targets and len(counts) == 1:
            problems.append(Problem(None, t, f"target '{t}' has one class only ('{counts.index[0]}'); "
                                             "fitting needs at least two", fatal=False))
        small = counts[counts < folds]
        if require_targets and len(counts) > 1 and len(small):
            listed = ", ".join(f"'{c}' ({n})" for c, n in small.items())
            problems.append(Problem(None, t, f"class(es) {listed} have fewer cases than {folds} folds; "
                                             "some folds will miss them", fatal=False))
    return targets, problems


def _check_ids(frame: pd.DataFrame) -> list[Problem]:
    problems = [Problem(row, "case_id", "empty case_id")
                for row, cid in enumerate(frame["case_id"], start=1) if _is_empty(cid)]
    for col in ID_COLUMNS:
        for row, value in enumerate(frame[col], start=1):
            bad = sorted({_CONTROL_NAMES.get(ch, f"U+{ord(ch):04X}") for ch in str(value or "")
                          if ord(ch) < 32 or ord(ch) == 127})
            if bad:
                problems.append(Problem(row, col, f"{col} {str(value)!r} holds control character(s) "
                                                  f"({', '.join(bad)}); ids must be one line of printable text"))
    dup = frame["case_id"].duplicated(keep=False) & frame["case_id"].notna()
    for cid, idx in frame[dup].groupby("case_id").groups.items():
        nums = ", ".join(str(i + 1) for i in idx)
        problems.append(Problem(int(idx[0]) + 1, "case_id", f"duplicate case_id '{cid}' (rows {nums})"))
    return problems + _renamed_ids(frame["case_id"])


def _renamed_ids(ids: pd.Series) -> list[Problem]:
    """Warn about ids that cannot be file names as they are (``../x``, ``CON``, ``a/b``, 300 characters)."""
    from vitfeat.names import safe_filenames

    present = [(row, str(cid)) for row, cid in enumerate(ids, start=1) if not _is_empty(cid)]
    safe = safe_filenames(cid for _, cid in present)
    return [Problem(row, "case_id", f"case_id {cid[:60]!r} is not a safe file name; files derived from it "
                                    f"(masks, predictions) are named {safe[cid]!r}", fatal=False)
            for row, cid in present if safe[cid] != cid]


def _resolve_paths(frame: pd.DataFrame, root: Path, allow_outside_root: bool) -> tuple[set, list[Problem]]:
    """Make path columns absolute; return the (row, column) cells leaving the root and the problems."""
    problems, escaped, backslashed = [], set(), 0
    for col in PATH_COLUMNS:
        resolved = []
        for row, value in enumerate(frame[col], start=1):
            if _is_empty(value):
                if col == "clinical":
                    problems.append(Problem(row, col, "empty path; every case needs a clinical image"))
                resolved.append(None)
                continue
            foreign = _foreign_path(value)
            if foreign:
                escaped.add((row, col))
                problems.append(Problem(row, col, f"path {value[:200]!r} {foreign}"))
                resolved.append(value)
                continue
            if "\\" in value and os.sep == "/":  # a manifest written on Windows
                value, backslashed = value.replace("\\", "/"), backslashed + 1
            p = Path(os.path.normpath(Path(value) if os.path.isabs(value) else root / value))
            if not allow_outside_root and not _within(p.resolve(), root):
                escaped.add((row, col))
                problems.append(Problem(row, col, f"path '{value}' escapes the dataset root {root}; not read "
                                                  "(pass allow_outside_root / --allow-outside-root "
                                                  "if this is intended)"))
            resolved.append(str(p))
        frame[col] = resolved
    if backslashed:
        problems.append(Problem(None, None, f"{backslashed} path(s) use Windows backslashes; read as '/'",
                                fatal=False))
    return escaped, problems


_CONTROL_NAMES = {"\n": "newline", "\r": "carriage return", "\t": "tab", "\0": "NUL"}
#: Longest file name (one path component, bytes) and whole path that POSIX systems accept.
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 4096


def _foreign_path(value: str) -> str | None:
    """Why a path-column value cannot be read as a local file here, or None when it may be."""
    import re

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return ("is a URL; vitfeat reads local files only: download the images and give their paths "
                "relative to the manifest")
    if os.sep == "/" and re.match(r"^[A-Za-z]:[\\/]", value):
        return ("is a Windows drive path, which this system cannot open: give the path relative to the "
                "manifest's folder (or set data_root)")
    if os.sep == "/" and value.startswith("\\\\"):
        return "is a Windows network (UNC) path, which this system cannot open: copy the images and give local paths"
    if "\0" in value:
        return "holds a NUL byte"
    encoded = value.encode("utf-8", "surrogateescape")
    longest = max((len(part) for part in encoded.replace(b"\\", b"/").split(b"/")), default=0)
    if longest > MAX_NAME_BYTES:
        return f"has a file or folder name of {longest} bytes (at most {MAX_NAME_BYTES})"
    if len(encoded) > MAX_PATH_BYTES:
        return f"is {len(encoded)} bytes long (at most {MAX_PATH_BYTES})"
    return None


def _check_box_syntax(frame: pd.DataFrame) -> list[Problem]:
    problems = []
    for col in (c for c in BOX_COLUMNS if c in frame.columns):
        for row, value in enumerate(frame[col], start=1):
            if not _is_empty(value):
                try:
                    parse_box(value)
                except ValueError as exc:
                    problems.append(Problem(row, col, str(exc)))
    return problems


def _check_scale(frame: pd.DataFrame) -> list[Problem]:
    """``pixels_per_mm`` values that are not positive numbers (empty cells are allowed: no scale)."""
    if SCALE_COLUMN not in frame.columns:
        return []
    problems = []
    for row, value in enumerate(frame[SCALE_COLUMN], start=1):
        if _is_empty(value):
            continue
        try:
            scale = float(value)
        except (TypeError, ValueError):
            problems.append(Problem(row, SCALE_COLUMN, f"'{value}' is not a number (pixels per millimetre)"))
            continue
        if not np.isfinite(scale) or scale <= 0:
            problems.append(Problem(row, SCALE_COLUMN, f"{value} must be a positive number of pixels per millimetre"))
    return problems


def _check_files(frame: pd.DataFrame, max_pixels: int, escaped: set = frozenset(), rules: dict | None = None
                 ) -> list[Problem]:
    rules = rules or dict(threshold=None, inverted=False, min_area=MIN_MASK_AREA, min_side=MIN_IMAGE_SIDE)
    problems = []
    for row, rec in enumerate(frame.to_dict("records"), start=1):
        sizes = {}
        for col in PATH_COLUMNS:
            if _is_empty(rec[col]) or (row, col) in escaped:
                continue
            try:
                sizes[col] = oriented_size(Path(rec[col]), max_pixels)
                problems += _file_warnings(row, col, Path(rec[col]), sizes[col], rules)
            except ImageReadError as exc:
                problems.append(Problem(row, col, str(exc)))
        for modality in MODALITIES:
            problems += _check_pairing(row, rec, modality, sizes)
    return problems


def _check_pairing(row: int, rec: dict, modality: str, sizes: dict) -> list[Problem]:
    problems = []
    img, mask = sizes.get(modality), sizes.get(f"{modality}_mask")
    if img and mask and img != mask:
        problems.append(Problem(row, f"{modality}_mask", f"mask size {mask[0]}x{mask[1]} differs from image size "
                                                         f"{img[0]}x{img[1]} ({rec[f'{modality}_mask']})"))
    if mask and not img and _is_empty(rec[modality]):
        problems.append(Problem(row, f"{modality}_mask", f"mask given without a {modality} image", fatal=False))
    box = rec.get(f"{modality}_box")
    if img and not _is_empty(box):
        try:
            x0, y0, x1, y1 = parse_box(box)
        except ValueError:
            return problems  # reported by _check_box_syntax
        if x0 < 0 or y0 < 0 or x1 > img[0] or y1 > img[1]:
            problems.append(Problem(row, f"{modality}_box", f"box {box} is not inside the {img[0]}x{img[1]} "
                                                            f"{modality} image"))
    return problems


def _file_warnings(row: int, col: str, path: Path, size: tuple[int, int], rules: dict) -> list[Problem]:
    """Non-fatal problems of one readable file: truncation, several frames, degenerate size or mask."""
    problems = [Problem(row, col, msg) for msg in _integrity_errors(path)]
    with _open_checked(path, MAX_IMAGE_PIXELS * 4) as img:
        frames = getattr(img, "n_frames", 1)
    if frames > 1:
        problems.append(Problem(row, col, f"{path}: {frames} frames (animated or multi-page); only the first "
                                          "is used", fatal=False))
    if col in IMAGE_COLUMNS and min(size) < rules["min_side"]:
        problems.append(Problem(row, col, f"{path}: image is only {size[0]}x{size[1]} px (under "
                                          f"{rules['min_side']} px a side): most features will be missing",
                                fatal=False))
    if col in MASK_COLUMNS and not problems:
        problems += _mask_warnings(row, col, path, rules)
    return problems


def _integrity_errors(path: Path) -> list[str]:
    """Cheap checks that a file's data is complete, without decoding its pixels (JPEG end marker,
    PNG chunk checksums)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(max(0, os.path.getsize(path) - 2))
        tail = fh.read(2)
    if head[:2] == b"\xff\xd8" and tail != b"\xff\xd9":
        return [f"{path}: truncated JPEG (no end-of-image marker)"]
    if head == b"\x89PNG\r\n\x1a\n":
        try:
            with Image.open(path) as img:
                img.verify()
        # PIL raises several unrelated types for a damaged PNG (SyntaxError, OSError, struct.error, ...);
        # any of them means the file is reported as a problem, with the message
        except Exception as exc:  # noqa: BLE001
            return [f"{path}: truncated or corrupt PNG ({exc})"]
    return []


def _mask_warnings(row: int, col: str, path: Path, rules: dict) -> list[Problem]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskWarning)
        try:
            mask = read_mask(path, threshold=rules["threshold"], inverted=rules["inverted"])
        except ImageReadError as exc:
            return [Problem(row, col, str(exc))]
    problems = [Problem(row, col, str(w.message), fatal=False) for w in caught if issubclass(w.category, MaskWarning)]
    area = int(mask.sum())
    if area == 0:
        problems.append(Problem(row, col, f"{path}: empty mask (no lesion pixel)", fatal=False))
    elif area == mask.size:
        problems.append(Problem(row, col, f"{path}: full mask (every pixel is lesion)", fatal=False))
    elif area < rules["min_area"]:
        problems.append(Problem(row, col, f"{path}: mask of {area} px, under {rules['min_area']} px", fatal=False))
    elif mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any():
        problems.append(Problem(row, col, f"{path}: mask touches every image border (inverted? then pass "
                                          "--masks-inverted)", fatal=False))
    return problems


def load_manifest(source, **kwargs) -> Manifest:
    """Validate a manifest and return it; raise :class:`ManifestError` listing all fatal problems.

    Parameters
    ----------
    source : path-like or pandas.DataFrame
        The manifest (a DataFrame needs ``root`` or a ``data_root`` column).
    **kwargs
        Those of :func:`validate_manifest` (``targets``, ``require_targets``, ``root``, ...).

    Returns
    -------
    Manifest
    """
    frame, targets, problems = validate_manifest(source, **kwargs)
    path = None if isinstance(source, pd.DataFrame) else Path(source)
    if any(p.fatal for p in problems):
        raise ManifestError(path or "manifest", problems)
    root = Path(frame.attrs.get("root") or kwargs.get("root") or (path.resolve().parent if path else "."))
    return Manifest(path=path, root=root.resolve(), frame=frame, targets=targets, problems=problems)


def load_valid_rows(source, **kwargs) -> tuple[Manifest, pd.DataFrame]:
    """Like :func:`load_manifest`, but rows with fatal problems are set aside instead of raising.

    Returns the manifest of the valid rows and a frame of the invalid ones (``case_id``,
    ``patient_id``, the targets and ``error``: every fatal problem of the row), so that a long run
    loses only what is broken. Whole-file problems (a missing column, an undecodable file) still
    raise :class:`ManifestError`.

    Parameters
    ----------
    source : path-like or pandas.DataFrame
        The manifest.
    **kwargs
        Those of :func:`validate_manifest`.

    Returns
    -------
    manifest : Manifest
        The valid rows.
    invalid : pandas.DataFrame
        The others, with their reasons in ``error``.
    """
    frame, targets, problems = validate_manifest(source, **kwargs)
    path = None if isinstance(source, pd.DataFrame) else Path(source)
    whole_file = [p for p in problems if p.fatal and p.row is None]
    if whole_file:
        raise ManifestError(path or "manifest", whole_file)
    reasons: dict[int, list[str]] = {}
    for p in problems:
        if p.fatal:
            reasons.setdefault(p.row, []).append(str(p).removeprefix("ERROR: "))
    bad = frame.index[[i + 1 in reasons for i in range(len(frame))]]
    keep = [c for c in ["case_id", "patient_id"] + targets if c in frame.columns]
    invalid = frame.loc[bad, keep].copy()
    invalid["case_id"] = [cid if not _is_empty(cid) else f"row {i + 1}" for i, cid in zip(bad, invalid["case_id"])]
    invalid["patient_id"] = invalid["patient_id"].fillna(invalid["case_id"])
    invalid["error"] = ["; ".join(reasons[i + 1]) for i in bad]
    valid = frame.drop(index=bad).reset_index(drop=True)
    valid.attrs = dict(frame.attrs)
    root = Path(frame.attrs.get("root") or (path.resolve().parent if path else "."))
    warnings_only = [p for p in problems if not p.fatal and (p.row is None or p.row not in reasons)]
    manifest = Manifest(path=path, root=root, frame=valid, targets=targets, problems=warnings_only)
    return manifest, invalid.reset_index(drop=True)


def write_manifest(frame: pd.DataFrame, path, *, relative_to=None, data_root=None) -> Path:
    """Write a manifest atomically (temp file + rename), with paths it can find wherever it lies.

    Parameters
    ----------
    frame : manifest rows; path columns may be absolute.
    path : the ``.csv`` or ``.parquet`` file to write.
    relative_to : folder the paths are written relative to (default: the manifest's folder).
    data_root : the folder the images come from. When some path lies outside the manifest's folder
        paths are written relative to ``data_root`` (or to the folder enclosing it and every path,
        e.g. masks drawn elsewhere) and a ``data_root`` column records it, so that ``manifest
        check`` and every command accept the manifest without ``--allow-outside-root``.
    """
    path = Path(path)
    base = Path(relative_to or path.parent).resolve()
    out = frame.copy()
    present = [c for c in PATH_COLUMNS if c in out.columns]
    absolute = {c: [None if _is_empty(v) else Path(v).resolve() for v in out[c]] for c in present}
    every = [v for values in absolute.values() for v in values if v is not None]
    if data_root is not None and relative_to is None and not all(_within(v, base) for v in every):
        root = Path(data_root).resolve()
        if not all(_within(v, root) for v in every):  # e.g. masks drawn into a --masks-dir elsewhere
            root = Path(os.path.commonpath([str(root)] + [str(v) for v in every]))
        base = root
        out[DATA_ROOT_COLUMN] = str(root)
    for col in present:
        out[col] = [None if v is None else os.path.relpath(v, base) for v in absolute[col]]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_table(path, out)
