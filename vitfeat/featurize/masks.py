"""Lesion masks: given (manifest columns), automatic, or from a trained model.

Automatic masks:

* **Wood's** photo: depigmented skin fluoresces, so the lesion is the bright class of an Otsu
  threshold on the smoothed grey level, cleaned by morphological opening/closing and hole filling.
* **clinical** photo: vitiligo is loss of melanin, which raises lightness (L*) and lowers
  yellowness (b*) in CIELAB. The depigmentation index ``L* - b*`` therefore separates lesion from
  skin better than L* alone across skin types (tan and shadows change L* but not the L*/b*
  relation much); Otsu splits it and the light class is the lesion. The threshold is chosen
  among *skin* pixels only, and only skin can be lesion: hue in the red-orange range with some
  saturation, closed and with its holes filled, since a depigmented (nearly white) patch is a hole
  in that region. Without it, white walls, sheets and clothing in real photos took the light
  class (median IoU on ``vitiligo-seg`` 0.24 -> 0.37; synth unchanged at 0.97). Fewer than 5 %
  skin pixels (a close-up of depigmented skin) falls back to the whole photo. This suits
  depigmented lesions only: dermoscopy of pigmented lesions (PH2, ISIC) needs given masks.

Components smaller than ``min_area_fraction`` of the image are dropped (noise, pores, glare).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from vitfeat.registry import Registry

#: The mask sources built into featurize; model-backed ones come from :data:`MASK_SOURCES`.
BUILTIN_MASK_SOURCES = ("given", "auto")
#: ``--masks PREFIX:PATH`` sources: ``loader(path) -> predictor`` with ``.predict(rgb, modality) -> bool
#: (H, W)`` and ``.describe() -> dict``. vitfeat.deep adds ``model`` and ``yolo`` through the
#: ``vitfeat.mask_sources`` entry-point group; a third-party package adds its own the same way.
MASK_SOURCES: Registry = Registry("mask source", "vitfeat.mask_sources")
#: Bump when an automatic mask changes: it is part of the feature cache key of auto-masked cases.
AUTO_MASK_VERSION = "2"


def _clean(mask: np.ndarray, min_area_fraction: float, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    m = ndi.binary_fill_holes(m > 0)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_fraction * m.size
    return keep[labels]


def _otsu_light(channel: np.ndarray, smooth_sigma: float, within: np.ndarray | None = None) -> np.ndarray:
    """Pixels of the light Otsu class of the smoothed ``channel``, thresholded among ``within``."""
    smooth = cv2.GaussianBlur(channel.astype(np.float32), (0, 0), smooth_sigma)
    values = smooth if within is None else smooth[within]
    if np.ptp(values) < 1e-6:
        return np.zeros(channel.shape, bool)
    light = smooth > threshold_otsu(values)
    return light if within is None else light & within


def skin_region(rgb: np.ndarray, min_fraction: float = 0.05) -> np.ndarray | None:
    """Skin and what it encloses (bool), or None when under ``min_fraction`` of the photo is skin.

    Skin: HSV hue within 50 degrees of red, saturation >= 6 %, value >= 16 % (all skin types;
    excludes white, grey, black and blue backgrounds), closed over gaps of ~1/64 of the photo and
    with holes filled, which brings back depigmented patches and the lesions inside them.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.
    min_fraction : float, default 0.05
        Below this share of skin pixels the photo has no usable skin region.

    Returns
    -------
    numpy.ndarray or None
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # 8-bit: hue 0-179 (2-degree steps)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    skin = ((hue <= 25) | (hue >= 165)) & (sat >= 15) & (val >= 40)
    radius = max(1, round(max(rgb.shape[:2]) / 64))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    skin = ndi.binary_fill_holes(cv2.morphologyEx(skin.view(np.uint8), cv2.MORPH_CLOSE, kernel) > 0)
    return skin if skin.mean() >= min_fraction else None


def auto_wood_mask(rgb: np.ndarray, min_area_fraction: float = 1e-4, smooth_sigma: float = 1.5) -> np.ndarray:
    """Fluorescent lesion of a Wood's-lamp photo (bool mask).

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.
    min_area_fraction : float
        Smaller components are dropped.
    smooth_sigma : float
        Gaussian smoothing before Otsu's threshold (px).

    Returns
    -------
    numpy.ndarray
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    radius = max(1, round(max(rgb.shape[:2]) / 256))
    return _clean(_otsu_light(grey, smooth_sigma), min_area_fraction, radius)


def depigmentation_index(rgb: np.ndarray) -> np.ndarray:
    """``L* - b*`` (CIELAB): high where melanin is missing.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.

    Returns
    -------
    numpy.ndarray
        (H, W) float32.
    """
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab[..., 0] - lab[..., 2]


def auto_clinical_mask(rgb: np.ndarray, min_area_fraction: float = 1e-4, smooth_sigma: float = 2.0) -> np.ndarray:
    """Depigmented lesion of a daylight photo (bool mask).

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.
    min_area_fraction : float
        Smaller components are dropped.
    smooth_sigma : float
        Gaussian smoothing before Otsu's threshold (px).

    Returns
    -------
    numpy.ndarray
    """
    radius = max(1, round(max(rgb.shape[:2]) / 256))
    light = _otsu_light(depigmentation_index(rgb), smooth_sigma, within=skin_region(rgb))
    return _clean(light, min_area_fraction, radius)


def auto_mask(rgb: np.ndarray, modality: str) -> np.ndarray:
    """The automatic mask of a photo: :func:`auto_wood_mask` or :func:`auto_clinical_mask`.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.
    modality : {"clinical", "wood"}
        Which kind of photo.

    Returns
    -------
    numpy.ndarray
    """
    return auto_wood_mask(rgb) if modality == "wood" else auto_clinical_mask(rgb)


def parse_mask_source(spec: str) -> tuple[str, str | None]:
    """``'given'`` / ``'auto'`` / ``'PREFIX:PATH'`` (a registered model source) -> (kind, path).

    Parameters
    ----------
    spec : str
        The ``--masks`` value.

    Returns
    -------
    tuple
        ``(kind, path or None)``.
    """
    spec = (spec or "given").strip()
    kind, sep, path = spec.partition(":")
    if sep:
        if kind not in MASK_SOURCES:
            raise ValueError(f"unknown mask source '{kind}:' (use given, auto or "
                             f"{' or '.join(f'{name}:PATH' for name in MASK_SOURCES.names()) or 'PREFIX:PATH'})")
        if not path:
            raise ValueError(f"--masks {kind}:PATH needs a path (a YOLO .pt or a segmenter directory)")
        return kind, path
    if spec not in BUILTIN_MASK_SOURCES:
        valid = ", ".join([*BUILTIN_MASK_SOURCES, *(f"{name}:PATH" for name in MASK_SOURCES.names())])
        raise ValueError(f"unknown mask source '{spec}' (use {valid})")
    return spec, None


@lru_cache(maxsize=4)
def mask_predictor(path: str, kind: str = "model"):
    """The predictor of mask source ``kind`` for ``path``, loaded once per process (workers load their own).

    Parameters
    ----------
    path : str
        The model file or folder.
    kind : str, default "model"
        A name of :data:`MASK_SOURCES`.

    Returns
    -------
    object
        With ``predict(rgb, modality)`` and ``describe()``.
    """
    return MASK_SOURCES.get(kind)(path)
