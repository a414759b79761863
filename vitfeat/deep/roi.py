"""Lesion regions of interest: boxes from masks or detectors, margins, square crops for backbones.

Small pure functions on arrays. Boxes are ``(x0, y0, x1, y1)`` integer pixel corners with exclusive
``x1, y1`` (so ``image[y0:y1, x0:x1]`` is the box), as ultralytics reports them after rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: A crop smaller than this (pixels, shorter side) says more about the detector than the lesion:
#: the full image is used instead (as the VMSL system does).
MIN_CROP_PX = 32


def bbox_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of all lesion pixels of a boolean mask, or None when the mask is empty.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool.

    Returns
    -------
    tuple of int or None
        ``(x0, y0, x1, y1)``, end-exclusive.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def expand_box(box, shape, margin: float = 0.1, square: bool = True) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` (a fraction of its size, on each side), optionally to a square,
    and clip it to an image of ``shape`` (H, W, ...).

    Squaring grows the shorter side around the centre, so that the later resize to the backbone's
    square input does not distort the lesion; near an image edge the square is shifted inwards and,
    if the image itself is too narrow, clipped.

    Parameters
    ----------
    box : sequence of float
        ``(x0, y0, x1, y1)`` in pixels.
    shape : tuple
        The image's shape.
    margin : float, default 0.1
        Growth on each side, as a fraction of the box's size.
    square : bool, default True
        Grow the shorter side to a square.

    Returns
    -------
    tuple of int
    """
    h, w = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    x0, x1 = x0 - margin * bw, x1 + margin * bw
    y0, y1 = y0 - margin * bh, y1 + margin * bh
    if square:
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1 = _fit_interval(cx - side / 2, side, w)
        y0, y1 = _fit_interval(cy - side / 2, side, h)
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    return x0, y0, x1, y1


def _fit_interval(start: float, length: float, limit: int) -> tuple[float, float]:
    """Shift [start, start+length) inside [0, limit) where it fits; clip where it does not."""
    if length >= limit:
        return 0.0, float(limit)
    start = min(max(start, 0.0), limit - length)
    return start, start + length


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an image (any aspect) to ``size x size``: area averaging when shrinking, cubic when growing.

    Parameters
    ----------
    image : numpy.ndarray
        The crop.
    size : int
        The side in pixels.

    Returns
    -------
    numpy.ndarray
    """
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)


@dataclass(frozen=True)
class Roi:
    """Where a crop came from: ``source`` is 'mask', 'box' or 'full' ('full' also for fallbacks).

    Attributes
    ----------
    box : tuple of int
        ``(x0, y0, x1, y1)`` in pixels of the image.
    source : str
        ``mask``, ``box`` or ``full``.
    """

    box: tuple[int, int, int, int]
    source: str


def select_roi(image_shape, mask: np.ndarray | None = None, box=None, *, margin: float = 0.1,
               square: bool = True, min_size: int = MIN_CROP_PX) -> Roi:
    """Choose the region to crop: the box if given, else the mask's bounding box, else the whole image.

    A region whose shorter side (before the margin) is under ``min_size`` pixels falls back to the
    whole image.

    Parameters
    ----------
    image_shape : tuple
        The image's shape.
    mask : numpy.ndarray, optional
        (H, W) lesion mask.
    box : sequence of float, optional
        An annotated box (preferred to the mask).
    margin : float, default 0.1
        Growth on each side, as a fraction of the box's size.
    square : bool, default True
        Grow the shorter side to a square.
    min_size : int
        A region whose shorter side is smaller falls back to the whole image.

    Returns
    -------
    Roi
    """
    h, w = image_shape[:2]
    full = Roi((0, 0, w, h), "full")
    source = "box" if box is not None else "mask"
    if box is None and mask is not None:
        if mask.shape[:2] != (h, w):
            raise ValueError(f"mask shape {mask.shape[:2]} differs from image shape {(h, w)}")
        box = bbox_from_mask(mask)
    if box is None:
        return full
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < min_size:
        return full
    return Roi(expand_box(box, (h, w), margin, square), source)


def crop_roi(image: np.ndarray, mask: np.ndarray | None = None, box=None, *, margin: float = 0.1,
             size: int | None = 224, square: bool = True, min_size: int = MIN_CROP_PX) -> tuple[np.ndarray, Roi]:
    """Crop the lesion region of ``image`` (see :func:`select_roi`) and resize it to ``size`` square.

    ``size=None`` returns the crop at its own resolution.

    Parameters
    ----------
    image : numpy.ndarray
        The photo.
    mask : numpy.ndarray, optional
        (H, W) lesion mask.
    box : sequence of float, optional
        An annotated box (preferred to the mask).
    margin : float, default 0.1
        Growth on each side, as a fraction of the box's size.
    square : bool, default True
        Grow the shorter side to a square.
    min_size : int
        A region whose shorter side is smaller falls back to the whole image.
    size : int or None, default 224
        Output side in pixels (None: the crop's own size).

    Returns
    -------
    crop : numpy.ndarray
    roi : Roi
    """
    roi = select_roi(image.shape, mask, box, margin=margin, square=square, min_size=min_size)
    x0, y0, x1, y1 = roi.box
    crop = image[y0:y1, x0:x1]
    if size is not None:
        crop = square_resize(crop, size)
    return crop, roi
