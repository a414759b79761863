"""Lesion masks outlined on both photos and the Wood's photo registered onto the clinical one."""

from __future__ import annotations

import cv2
import numpy as np

CLINICAL_COLOUR = (255, 215, 0)  # clinical lesion outline (gold)
WOOD_COLOUR = (0, 200, 255)  # Wood's lesion outline (cyan)
#: A mask covering less than this share of the photo is called empty, more than 1 - it full.
EMPTY_SHARE = 1e-3


def _mask_plan(case, mask_spec: str) -> dict:
    """The mask source of each modality, as the extraction engine chooses it."""
    from vitfeat.featurize.masks import parse_mask_source

    kind, path = parse_mask_source(mask_spec or "given")
    plan = {}
    for modality in ("clinical", "wood"):
        if case.image(modality) is None:
            continue
        if kind == "given":
            plan[modality] = "given" if case.mask(modality) is not None else "auto (no given mask)"
        else:
            plan[modality] = "auto" if kind == "auto" else f"{kind}:{path}"
    return plan


def outline(rgb: np.ndarray, mask: np.ndarray, colour, thickness: int = 2) -> np.ndarray:
    """``rgb`` with the contours of ``mask`` drawn on it (a copy).

    Parameters
    ----------
    rgb : numpy.ndarray
        The photo.
    mask : numpy.ndarray
        (H, W) bool.
    colour : tuple of int
        RGB colour.
    thickness : int, default 2
        Line width at 512 px (scaled with the photo).

    Returns
    -------
    numpy.ndarray
    """
    out = np.ascontiguousarray(rgb.copy())
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, max(1, thickness * max(rgb.shape[:2]) // 512))
    return out


def case_overlays(manifest, mask_spec: str, max_side: int | None):
    """``(images, areas, warnings)`` for the one case of ``manifest`` (photos and masks exactly as
    the extraction sees them: same mask source, same ``max_side``).

    Parameters
    ----------
    manifest : path-like or pandas.DataFrame
        A one-case manifest.
    mask_spec : str
        The run's mask source.
    max_side : int or None
        The run's ``max_side``.

    Returns
    -------
    tuple
    """
    from vitfeat.dataset import load_manifest
    from vitfeat.featurize.engine import load_case_arrays
    from vitfeat.featurize.registration import register_pair

    case = next(iter(load_manifest(manifest, require_targets=False).cases()))
    arrays = load_case_arrays(case, _mask_plan(case, mask_spec), max_side)
    images, warnings = {}, []
    c_mask = arrays.clinical_mask.astype(bool)
    images["clinical"] = outline(arrays.clinical, c_mask, CLINICAL_COLOUR)
    areas = {"clinical_px": int(c_mask.sum())}
    warnings += _mask_warnings("clinical", c_mask)
    if arrays.wood is not None:
        w_mask = arrays.wood_mask.astype(bool)
        images["wood"] = outline(arrays.wood, w_mask, WOOD_COLOUR)
        warnings += _mask_warnings("Wood's", w_mask)
        reg = register_pair(arrays.clinical, arrays.wood, c_mask, w_mask)
        h, w = arrays.clinical.shape[:2]
        back = cv2.invertAffineTransform(reg.matrix)  # Wood's -> clinical coordinates
        wood_on_clinical = cv2.warpAffine(arrays.wood, back, (w, h), flags=cv2.INTER_LINEAR)
        wood_mask_on_clinical = cv2.warpAffine(w_mask.astype(np.uint8), back, (w, h), flags=cv2.INTER_NEAREST) > 0
        blend = cv2.addWeighted(arrays.clinical, 0.5, wood_on_clinical, 0.5, 0)
        images["registered"] = outline(outline(blend, c_mask, CLINICAL_COLOUR), wood_mask_on_clinical, WOOD_COLOUR)
        wood_area = float(w_mask.sum()) / max(reg.area_scale, 1e-9)  # in clinical pixels
        areas.update(wood_px=int(w_mask.sum()), wood_in_clinical_px=round(wood_area, 1),
                     ratio=(wood_area / areas["clinical_px"]) if areas["clinical_px"] else None,
                     registration=reg.method)
        if not reg.ok:
            warnings.append("the Wood's photo could not be registered on skin landmarks (lesion centroids "
                            "used instead); the area ratio is less reliable")
    return images, areas, warnings


def _mask_warnings(name: str, mask: np.ndarray) -> list[str]:
    share = float(mask.mean()) if mask.size else 0.0
    if share < EMPTY_SHARE:
        return [f"the {name} lesion mask is empty: no lesion was found, so lesion features are not meaningful"]
    if share > 1 - EMPTY_SHARE:
        return [f"the {name} lesion mask covers the whole photo: frame the lesion with surrounding skin"]
    return []
