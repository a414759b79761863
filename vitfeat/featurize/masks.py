"""Lesion masks: given (manifest columns), automatic, or from a trained model.

Automatic masks:

* **Wood's** photo: depigmented skin fluoresces, so the lesion is the bright class of an Otsu
  threshold on the smoothed grey level, cleaned by morphological opening/closing and hole filling.
* **clinical** photo (version 4): vitiligo is loss of melanin, which raises lightness (L*) and
  lowers yellowness (b*) in CIELAB. Skin is found first (HSV hue near red with some saturation
  *and* the YCrCb skin box, closed and hole-filled: a depigmented patch is a hole in it). v4 then
  drops the photo's **plain background** (:func:`background_region`): the colours of a strip along
  the photo's edge are clustered; a cluster that covers a good share of the edge and is flat (median
  local SD of L* under 0.5: walls, paper, studio backdrops, unlike skin with its pores and shading)
  marks as background every pixel of that colour (Delta E < 8) connected to the edge; it leaves the
  skin when it is lighter (median L*) than the rest of the skin, i.e. when it would pass for
  depigmentation. Beige walls pass every skin-colour test, and v3 called them lesion (the lightest
  "skin"). v4 also splits
  **collages** (:func:`collage_panels`: before/after and multi-view composites, cut on straight
  separator lines: a flat band or an edge across the whole photo) and treats each panel as a photo
  of its own; a panel is kept only when the colour difference between its lesion and its skin is at
  least ``panel_keep`` (0.8) of the largest among the panels (an "after" panel, or a panel without
  vitiligo, otherwise gets the light half of normal skin).
  Among skin pixels, L* and b* are each put on a robust per-image scale (median, 1.4826 MAD), so that
  the depigmentation contrast ``z(L*) - z(b*)`` is measured against *this photo's* surrounding skin,
  not fixed numbers; Otsu splits it (lowered by 0.2 SD of the contrast: lesions shade into normal
  skin). Smoothing and the morphology that cleans the result scale with the photo (sigma side/200,
  radius side/128); every component over 0.03 % of the photo is kept, satellites included (~50 px at
  416 px). Fewer than 5 % skin pixels (a close-up of depigmented skin) falls back to the whole photo.
  Measured quality: :data:`AUTO_MASK_QUALITY` and docs/masks.md (``benchmarks/bench_auto_masks.py``).
  What v4 cannot do: in a light-skinned photo with small lesions Otsu still splits normal skin into
  a light and a dark half, and which panel of a collage the annotator outlined is not knowable from
  the pixels; a trained segmenter (``train seg --recipe vitiligo``) is the way beyond.

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
AUTO_MASK_VERSION = "4"


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


def _local_sd(channel: np.ndarray, radius: int) -> np.ndarray:
    """Standard deviation of ``channel`` in a ``(2 radius + 1)`` square window around each pixel."""
    k = (2 * radius + 1, 2 * radius + 1)
    mean = cv2.blur(channel, k)
    return np.sqrt(np.maximum(cv2.blur(channel * channel, k) - mean * mean, 0.0))


def background_region(rgb: np.ndarray, flat_sd: float = 0.5, delta_e: float = 8.0, min_share: float = 0.15,
                      n_colours: int = 3) -> np.ndarray:
    """The photo's plain background (bool): flat colours along the photo's edge and what joins them.

    The pixels of a strip along the edge (1/32 of the longest side) are clustered into ``n_colours``
    CIELAB colours (k-means). A colour covering at least ``min_share`` of the strip whose median
    local SD of L* (window ~1/50 of the side) is under ``flat_sd`` is a backdrop (a wall, paper, a
    studio sheet: skin has pores, hair and shading); the background is every pixel within
    ``delta_e`` of such a colour, itself flat (local SD under ``2 flat_sd``) and connected to the edge.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB photo.
    flat_sd : float, default 0.5
        Largest median local SD of L* (0-100 scale) of a backdrop colour.
    delta_e : float, default 8.0
        Largest CIELAB distance from a backdrop colour.
    min_share : float, default 0.15
        Smallest share of the edge strip a backdrop colour must cover.
    n_colours : int, default 3
        Colours the edge strip is clustered into.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool mask (all False when the edge has no flat colour, e.g. a close-up of skin).
    """
    h, w = rgb.shape[:2]
    size = max(h, w)
    lab = cv2.GaussianBlur(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab), (0, 0), 1.0)
    radius = max(2, size // 100)
    texture = _local_sd(lab[..., 0], radius)
    strip = max(2, size // 32)
    edge = np.zeros((h, w), bool)
    edge[:strip], edge[-strip:], edge[:, :strip], edge[:, -strip:] = True, True, True, True
    colours = np.ascontiguousarray(lab[edge])
    # k-means started from the L* quantiles (no random start: the same photo gives the same mask)
    start = np.searchsorted(np.quantile(colours[:, 0], np.linspace(0, 1, n_colours + 1)[1:-1]), colours[:, 0])
    _, labels, centres = cv2.kmeans(colours, n_colours, start.astype(np.int32)[:, None],
                                    (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5), 1,
                                    cv2.KMEANS_USE_INITIAL_LABELS)
    labels, edge_texture = labels.ravel(), texture[edge]
    background = np.zeros((h, w), bool)
    for j, centre in enumerate(centres):
        members = labels == j
        if members.mean() < min_share or np.median(edge_texture[members]) > flat_sd:
            continue
        colour = np.linalg.norm(lab - centre, axis=2) < delta_e
        near = colour & (texture < 2 * flat_sd)
        parts, _ = ndi.label(near)
        touching = np.unique(parts[edge & near])
        found = np.isin(parts, touching[touching > 0])
        # the window of the local SD straddles the backdrop's border: grow it back over that rim
        rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 3, 2 * radius + 3))
        background |= (cv2.dilate(found.view(np.uint8), rim) > 0) & colour
    return background


def _separators(grey: np.ndarray, min_panel: float = 0.2) -> list[tuple[int, int]]:
    """Row bands of ``grey`` that separate collage panels: flat rows or an edge across the whole width."""
    g = grey.astype(np.float32)
    n = g.shape[0]
    flat = g.std(axis=1) < 4.0
    step = np.abs(np.diff(cv2.GaussianBlur(g, (0, 0), 1.0), axis=0))
    edge = np.zeros(n, bool)
    edge[1:] = (step > 12).mean(axis=1) > 0.85
    lo, hi = int(min_panel * n), int((1 - min_panel) * n)
    rows = np.flatnonzero((flat | edge)[lo:hi]) + lo
    if not rows.size:
        return []
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    # a wide flat band is a backdrop, not a separator
    return [(int(b[0]), int(b[-1])) for b in bands if flat[b].sum() <= max(3, 0.04 * n)]


def collage_panels(rgb: np.ndarray, min_panel: float = 0.2) -> list[tuple[int, int, int, int]]:
    """The panels of a composite photo as ``(y0, y1, x0, x1)`` boxes; one box when it is not a collage.

    A separator is a narrow band of rows (columns) that is flat (grey SD < 4) or that a strong edge
    crosses on 85 % of its length, at least ``min_panel`` of the side away from the photo's edges.
    Rows are split first, then each part's columns.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB photo.
    min_panel : float, default 0.2
        Smallest panel, as a share of the side.

    Returns
    -------
    list of tuple
        Panel boxes (slices ``rgb[y0:y1, x0:x1]``).
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    boxes = [(0, h, 0, w)]
    for axis in (0, 1):
        split = []
        for y0, y1, x0, x1 in boxes:
            part = grey[y0:y1, x0:x1]
            bands = _separators(part if axis == 0 else part.T, min_panel)
            n = part.shape[axis]
            cuts = [0, *(c for band in bands for c in (band[0], band[1] + 1)), n]
            pieces = [(a, b) for a, b in zip(cuts[::2], cuts[1::2]) if b - a >= 0.15 * n]
            if len(pieces) < 2:
                split.append((y0, y1, x0, x1))
                continue
            split.extend((y0 + a, y0 + b, x0, x1) if axis == 0 else (y0, y1, x0 + a, x0 + b) for a, b in pieces)
        boxes = split
    return boxes


def _clinical_panel(rgb: np.ndarray, min_area_fraction: float, threshold_shift: float,
                    background_flat_sd: float | None) -> tuple[np.ndarray, float]:
    """One photo (or panel): its lesion mask and the CIELAB distance between its lesion and its skin."""
    size = max(rgb.shape[:2])
    skin = skin_region(rgb)
    if skin is None:
        skin = np.ones(rgb.shape[:2], bool)
    if background_flat_sd:
        backdrop = skin & background_region(rgb, flat_sd=background_flat_sd)
        without = skin & ~backdrop
        if backdrop.any() and without.mean() >= 0.05:
            light = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 0]
            if np.median(light[backdrop]) > np.median(light[without]):  # it would pass for depigmented skin
                skin = without
    contrast = depigmentation_contrast(rgb, skin, smooth_sigma=max(0.5, size / 200))
    values = contrast[skin]
    if np.ptp(values) < 1e-6:
        return np.zeros(rgb.shape[:2], bool), 0.0
    lesion = (contrast > threshold_otsu(values) + threshold_shift * values.std()) & skin
    rest = skin & ~lesion
    separation = 0.0
    if lesion.any() and rest.any():
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        separation = float(np.linalg.norm(lab[lesion].mean(axis=0) - lab[rest].mean(axis=0)))
    return _clean(lesion, min_area_fraction, max(1, round(size / 128))), separation


def auto_clinical_mask(rgb: np.ndarray, min_area_fraction: float = 3e-4, threshold_shift: float = -0.2,
                       background_flat_sd: float | None = 0.5, panel_keep: float | None = 0.8) -> np.ndarray:
    """Depigmented lesion of a daylight photo (bool mask); see the module docstring.

    ``background_flat_sd=None, panel_keep=None`` gives version 3 (no backdrop removal, no collages).

    Parameters
    ----------
    rgb : ndarray
        (H, W, 3) uint8 photo.
    min_area_fraction : float
        Components smaller than this fraction of the photo (of the panel) are dropped.
    threshold_shift : float
        Added to the Otsu threshold, in standard deviations of the contrast among skin pixels.
    background_flat_sd : float or None, default 0.5
        :func:`background_region`'s ``flat_sd``: flat edge colours are not skin (None: keep them).
    panel_keep : float or None, default 0.8
        Split collages (:func:`collage_panels`) and keep a panel's lesions when its lesion-to-skin
        colour distance is at least this share of the largest panel's (None: no split).
    """
    boxes = collage_panels(rgb) if panel_keep is not None else []
    if len(boxes) < 2:
        return _clinical_panel(rgb, min_area_fraction, threshold_shift, background_flat_sd)[0]
    found = [(box, *_clinical_panel(np.ascontiguousarray(rgb[box[0]:box[1], box[2]:box[3]]), min_area_fraction,
                                    threshold_shift, background_flat_sd)) for box in boxes]
    strongest = max(separation for _, _, separation in found)
    mask = np.zeros(rgb.shape[:2], bool)
    for (y0, y1, x0, x1), lesion, separation in found:
        if strongest > 0 and separation >= panel_keep * strongest:
            mask[y0:y1, x0:x1] = lesion
    return mask


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
#: ``vitfeat seg evaluate vitiligo-seg.csv --masks auto`` (1000 patient-bootstrap resamples; the
#: patient is the source photo of ~3 augmented copies) and ``benchmarks/bench_auto_masks.py``:
#: v3 0.554 [0.452-0.658] -> v4 0.630 [0.536-0.710], median 0.664 -> 0.681; PH2 0.328 -> 0.328, ISIC
#: 2017 0.174 -> 0.221. In-sample: the method was designed on this set (see docs/masks.md, which also
#: gives the patient-grouped cross-validated figure of its two new settings).
AUTO_MASK_QUALITY = {
    "clinical": {"dice_pooled": 0.630, "dice_pooled_ci": [0.536, 0.710], "n_images": 96,
                 "reference": "vitiligo-seg: web clinical photos, hand-drawn masks", "auto_mask_version": "4"},
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
