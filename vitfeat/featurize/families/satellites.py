"""Confetti-like satellite macules: small lesion components near the main lesion.

A satellite is a connected component of the mask other than the largest one, at least
``min_area_px`` px, at most ``max_area_fraction`` of the main lesion's area (a second large lesion
is not confetti) and within ``max_distance`` main-lesion equivalent radii of its boundary.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import nan_dict, satellite_sized, view

DEFAULTS = {"min_area_px": 8, "max_area_fraction": 0.25, "max_distance": 4.0}


def _border_points(component: np.ndarray) -> np.ndarray:
    """(x, y) of the pixels of a bool mask that have a background pixel among their 4 neighbours.

    The closest pixels of two disjoint pixel sets are such border pixels (a step from an inner
    pixel towards the other set gets closer), so the Euclidean gap between a satellite and the
    main lesion is the smallest distance between their border points: a nearest-neighbour query
    among a few hundred points instead of a distance transform of the whole box. The borders are
    OpenCV's traced contours (outer and hole borders, every border pixel).
    """
    contours, _ = cv2.findContours(component.view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return np.concatenate([c[:, 0, :] for c in contours]).astype(np.float64)


def satellite_features(mask: np.ndarray, min_area_px: int = 8, max_area_fraction: float = 0.25,
                       max_distance: float = 4.0, components=None, labels_origin=(0, 0)) -> dict:
    """Satellite statistics of a bool mask (``components``: its precomputed connectedComponentsWithStats).

    ``labels_origin``: the image (row, column) where ``components``' labels start, when they cover
    only a part of the image holding every lesion pixel (:attr:`ImageView.components_box`).

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.
    min_area_px, max_area_fraction, max_distance
        As for :func:`satellites`.
    components : tuple, optional
        The mask's ``connectedComponentsWithStats``.
    labels_origin : tuple of int, default (0, 0)
        Where the components' labels start.

    Returns
    -------
    dict
        ``{bare feature name: value}``.
    """
    out = nan_dict(FEATURES)
    if components is None:
        components = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    n, labels, stats, _ = components
    if n <= 1:
        return out
    main, sized = satellite_sized(stats, min_area_px, max_area_fraction)
    main_area = float(stats[main, cv2.CC_STAT_AREA])
    r_eq = np.sqrt(main_area / np.pi)
    if not sized:  # no component of satellite size: no distances to compute
        return {**out, "count": 0.0, "area_fraction": 0.0, "mean_area_fraction": 0.0}
    # All components lie in the mask's bounding box, so distances computed there are exact.
    # (The box from the components' stats: no scan of the labels image.)
    left, top = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    oy, ox = int(top.min()), int(left.min())
    bottom, right = (top + stats[1:, cv2.CC_STAT_HEIGHT]).max(), (left + stats[1:, cv2.CC_STAT_WIDTH]).max()
    ly, lx = labels_origin
    crop = labels[oy - ly:int(bottom) - ly, ox - lx:int(right) - lx]
    main_tree = cKDTree(_border_points(crop == main))
    keep, dists = [], []
    for k in sized:
        area = stats[k, cv2.CC_STAT_AREA]
        x, y, w, h = stats[k, :4]
        box = (slice(y - oy, y - oy + h), slice(x - ox, x - ox + w))
        # Nearest main-lesion pixel of the satellite's border pixels, in float32 like OpenCV's exact transform.
        gap = float(np.float32(main_tree.query(_border_points(crop[box] == k) + (x - ox, y - oy))[0].min()))
        if gap <= max_distance * r_eq:
            keep.append(area)
            dists.append(gap / r_eq)
    out["count"] = float(len(keep))
    out["area_fraction"] = float(sum(keep) / main_area)
    out["mean_area_fraction"] = float(np.mean(keep) / main_area) if keep else 0.0
    out["mean_distance"] = float(np.mean(dists)) if dists else float("nan")
    return out


DESCRIPTIONS = {
    "count": "number of small separate spots (satellite macules) near the main lesion",
    "area_fraction": "total satellite area relative to the main lesion's area",
    "mean_area_fraction": "average satellite size relative to the main lesion's area",
    "mean_distance": "average distance of satellites from the main lesion, in lesion radii",
}
FEATURES = tuple(DESCRIPTIONS)  # column order: as declared


@register_family("satellites", version="1", defaults=DEFAULTS, features=DESCRIPTIONS, order=60)
def satellites(case: CaseArrays, modality: str, min_area_px: int = 8, max_area_fraction: float = 0.25,
               max_distance: float = 4.0) -> dict:
    """Satellite macules per modality: count, area relative to the main lesion, distance to it.

    Parameters
    ----------
    case : CaseArrays
        The case's photos, masks and shared views.
    modality : str
        Which photo (the family loops over its modalities).
    min_area_px : int, default 8
        Smaller specks are ignored.
    max_area_fraction : float, default 0.25
        Larger components (relative to the main lesion) are not satellites.
    max_distance : float, default 4.0
        How far from the main lesion a satellite may lie, in lesion radii.

    Returns
    -------
    dict
        ``{bare feature name: value}`` (the declared names).
    """
    v = view(case, modality)
    if v.mask is None:
        return nan_dict(FEATURES)
    return satellite_features(v.mask, min_area_px, max_area_fraction, max_distance, v.components_box, v.labels_origin)
