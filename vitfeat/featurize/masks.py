"""Lesion masks: given (manifest columns), automatic, or from a trained model.

Automatic masks:

* **Wood's** photo: depigmented skin fluoresces, so the lesion is the bright class of an Otsu
  threshold on the smoothed grey level, cleaned by morphological opening/closing and hole filling.
* **clinical** photo (version 3): vitiligo is loss of melanin, which raises lightness (L*) and
  lowers yellowness (b*) in CIELAB. Skin is found first (HSV hue near red with some saturation
  *and* the YCrCb skin box, closed and hole-filled: a depigmented patch is a hole in it). Among skin
  pixels, L* and b* are each put on a robust per-image scale (median, 1.4826 MAD), so that the
  depigmentation contrast ``z(L*) - z(b*)`` is measured against *this photo's* surrounding skin, not
  fixed numbers; Otsu splits it (lowered by 0.2 SD of the contrast: lesions shade into normal skin).
  Smoothing and the morphology that cleans the result scale with the photo (sigma side/200, radius
  side/128); every component over 0.03 % of the photo is kept, satellites included (~50 px at
  416 px). Fewer than 5 % skin pixels (a close-up of depigmented skin) falls back to the whole
  photo. On ``vitiligo-seg`` (96 photos, ``vitfeat seg evaluate``) pooled Dice 0.532 -> 0.554,
  median 0.535 -> 0.664; PH2 0.325 -> 0.328, ISIC 2017 0.167 -> 0.174 (dermoscopy of pigmented
  lesions needs given or trained masks all the same). The 0.2 SD and the YCrCb box were chosen on
  those same sets (no held-out set: optimistic). A per-image *oracle* threshold on this contrast
  reaches only 0.61 pooled on ``vitiligo-seg`` (composite before/after photos with one half
  outlined, beige backgrounds): thresholding cannot reach 0.75 there; a trained segmenter
  (``train seg --recipe vitiligo``) is the way beyond.

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
AUTO_MASK_VERSION = "3"


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
    excludes white, grey, black and blue backgrounds) and inside the YCrCb skin box (Cr 135-180, Cb
    85-135: drops beige walls and wood), opened over 2 px, closed over gaps of ~1/64 of the photo
    and with holes filled, which brings back depigmented patches and the lesions inside them.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB photo.
    min_fraction : float, default 0.05
        Smallest share of the photo that must be skin.

    Returns
    -------
    numpy.ndarray or None
        ``(H, W)`` bool mask, or None when too little skin is found.
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # 8-bit: hue 0-179 (2-degree steps)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    skin = (((hue <= 25) | (hue >= 165)) & (sat >= 15) & (val >= 40)
            & (cr >= 135) & (cr <= 180) & (cb >= 85) & (cb <= 135))
    skin = cv2.morphologyEx(skin.view(np.uint8), cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    radius = max(1, round(max(rgb.shape[:2]) / 64))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    skin = ndi.binary_fill_holes(cv2.morphologyEx(skin, cv2.MORPH_CLOSE, kernel) > 0)
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


def _robust_z(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` on the scale of ``reference``: (x - median) / (1.4826 MAD)."""
    median = np.median(reference)
    spread = 1.4826 * np.median(np.abs(reference - median)) + 1e-3
    return (values - median) / spread


def depigmentation_contrast(rgb: np.ndarray, skin: np.ndarray, smooth_sigma: float) -> np.ndarray:
    """``z(L*) - z(b*)`` against the photo's own skin (robust z-scores among ``skin`` pixels).

    Parameters
    ----------
    rgb : ndarray
        (H, W, 3) uint8 photo.
    skin : ndarray
        (H, W) bool: the pixels whose median and MAD set the scale.
    smooth_sigma : float
        Gaussian smoothing of L* and b* before the contrast (px).
    """
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    light = cv2.GaussianBlur(lab[..., 0], (0, 0), smooth_sigma)
    yellow = cv2.GaussianBlur(lab[..., 2], (0, 0), smooth_sigma)
    return _robust_z(light, light[skin]) - _robust_z(yellow, yellow[skin])


def auto_clinical_mask(rgb: np.ndarray, min_area_fraction: float = 3e-4, threshold_shift: float = -0.2
                       ) -> np.ndarray:
    """Depigmented lesion of a daylight photo (bool mask); see the module docstring.

    Parameters
    ----------
    rgb : ndarray
        (H, W, 3) uint8 photo.
    min_area_fraction : float
        Components smaller than this fraction of the photo are dropped.
    threshold_shift : float
        Added to the Otsu threshold, in standard deviations of the contrast among skin pixels.
    """
    size = max(rgb.shape[:2])
    skin = skin_region(rgb)
    if skin is None:
        skin = np.ones(rgb.shape[:2], bool)
    contrast = depigmentation_contrast(rgb, skin, smooth_sigma=max(0.5, size / 200))
    values = contrast[skin]
    if np.ptp(values) < 1e-6:
        return np.zeros(rgb.shape[:2], bool)
    lesion = (contrast > threshold_otsu(values) + threshold_shift * values.std()) & skin
    return _clean(lesion, min_area_fraction, max(1, round(size / 128)))


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


#: The measured quality of the automatic masks of :data:`AUTO_MASK_VERSION`, per modality (None:
#: never measured; no public Wood's-lamp photos with expert masks exist). Measured with
#: ``vitfeat seg evaluate vitiligo-seg.csv --masks auto`` (1000 patient-bootstrap resamples).
AUTO_MASK_QUALITY = {
    "clinical": {"dice_pooled": 0.554, "dice_pooled_ci": [0.452, 0.658], "n_images": 96,
                 "reference": "vitiligo-seg: web clinical photos, hand-drawn masks", "auto_mask_version": "3"},
    "wood": None,
}


def mask_quality(spec: str, describe: dict | None = None, modalities=("clinical", "wood")) -> dict | None:
    """``{modality: quality record or None}`` of a mask source, for a run's provenance.

    A quality record holds ``dice_pooled``, ``dice_pooled_ci`` (or None), ``n_images`` and
    ``reference`` (what it was measured on). None for a modality: quality unknown.

    Parameters
    ----------
    spec : str
        The ``--masks`` value (``given``, ``auto``, ``PREFIX:PATH``).
    describe : dict, optional
        The model source's ``describe()``; its ``quality`` and ``trained_modality`` are used.
    modalities : sequence of str
        The modalities whose masks the run used (a model's quality holds for its training modality).
    """
    kind, _ = parse_mask_source(spec)
    if kind == "given":
        return None  # the manifest's own masks: the reference, nothing to measure against
    if kind == "auto":
        return {m: AUTO_MASK_QUALITY.get(m) for m in modalities}
    describe = describe or {}
    trained = describe.get("trained_modality") or "clinical"
    return {m: describe.get("quality") if m == trained else None for m in modalities}


def describe_mask_source(spec: str | None, quality: dict | None) -> str:
    """One line for reports: ``"auto, Dice 0.55 [0.45-0.66] on 96 expert-masked images (...)"``.

    Parameters
    ----------
    spec : str or None
        The ``--masks`` value recorded in the provenance.
    quality : dict or None
        :func:`mask_quality`'s record from the provenance.
    """
    if not spec:
        return "unknown"
    if spec == "given":
        return "given (the manifest's masks)"
    known = [(m, q) for m, q in (quality or {}).items() if q and q.get("dice_pooled") is not None]
    if not known:
        return f"{spec}, quality unknown (measure it: vitfeat seg evaluate MANIFEST --masks {spec})"
    parts = []
    for modality, q in (quality or {}).items():
        if not q or q.get("dice_pooled") is None:
            parts.append(f"{modality} quality unknown")
            continue
        ci = q.get("dice_pooled_ci") or [None, None]
        band = f" [{ci[0]:.2f}\u2013{ci[1]:.2f}]" if ci[0] is not None else ""
        n = f" on {q['n_images']} expert-masked images" if q.get("n_images") else ""
        ref = f" ({q['reference']})" if q.get("reference") else ""
        parts.append(f"{modality} Dice {q['dice_pooled']:.2f}{band}{n}{ref}")
    return f"{spec}, " + "; ".join(parts)
