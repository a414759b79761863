"""Clinical vs Wood's comparison: how much larger the lesion is under Wood's lamp.

``area_ratio`` compares areas after registration (the Wood's area divided by the clinical area
times the camera's area scale); ``area_ratio_unregistered`` is the ratio of the two lesion area
fractions, scale-free in image size but not in camera distance, for when registration fails.
Both use the main (largest) lesion component, so satellites do not move the ratio.
``outside_fraction`` is the share of the Wood's lesion lying outside the registered clinical one.

Columns read ``pair_wood_<feature>`` (the extent under Wood's lamp, seen from the pair), not
``pair_pair_``: see :mod:`vitfeat.featurize.registry` on column names.
"""

from __future__ import annotations

import cv2
import numpy as np

from vitfeat.featurize.registration import register_pair
from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import nan_dict, view


DESCRIPTIONS = {
    "area_ratio": "lesion area under Wood's lamp over its daylight area, after aligning the two photos "
                  "(main lesion)",
    "area_ratio_unregistered": "Wood's over daylight lesion share of the photo, without alignment",
    "total_area_ratio": "Wood's over daylight total lesion area (satellites included), after alignment",
    "iou": "overlap (intersection over union) of the aligned daylight and Wood's lesions",
    "outside_fraction": "share of the Wood's lesion lying outside the aligned daylight lesion",
    "registration_score": "how well the two photos could be aligned (match score)",
    "registration_inliers": "number of matched points supporting the alignment",
    "registration_ok": "1 when the alignment was trusted, 0 when it fell back",
    "registration_scale": "camera zoom between the two photos (linear scale of the alignment)",
}
FEATURES = tuple(DESCRIPTIONS)  # column order: as declared


@register_family("pair", version="4", modalities=("pair",), needs_wood=True, features=DESCRIPTIONS,
                 column_group="wood", order=30)
def pair(case: CaseArrays, modality: str = "pair") -> dict:
    """Wood's-to-clinical area ratio (registered and registration-free), IoU, registration quality.

    Parameters
    ----------
    case : CaseArrays
        The case's photos, masks and shared views.
    modality : str
        Which photo (the family loops over its modalities).

    Returns
    -------
    dict
        ``{bare feature name: value}`` (the declared names).
    """
    out = nan_dict(FEATURES)
    vc, vw = view(case, "clinical"), view(case, "wood")
    if vc is None or vw is None or not vc.has_lesion or not vw.has_lesion:
        return out
    reg = case.memo.get("registration")
    if reg is None:
        # The views' grey images and components: computed once per case for every family.
        reg = case.memo["registration"] = register_pair(vc.grey_u8, vw.grey_u8, vc.mask, vw.mask,
                                                             clinical_components=vc.components_box,
                                                             wood_components=vw.components_box)
    a_c = int(vc.components_box[2][vc.main_label, 4])  # column 4: cv2.CC_STAT_AREA
    a_w = int(vw.components_box[2][vw.main_label, 4])
    out["area_ratio"] = a_w / (a_c * reg.area_scale)
    out["area_ratio_unregistered"] = (a_w / vw.mask.size) / (a_c / vc.mask.size)
    out["total_area_ratio"] = vw.area / (vc.area * reg.area_scale)
    warped = reg.warp_mask_u8(vc.mask, vw.mask.shape)
    # Counts from one intersection: union and outside part follow from the two areas.
    inter = cv2.countNonZero(cv2.bitwise_and(warped, np.ascontiguousarray(vw.mask).view(np.uint8)))
    union = cv2.countNonZero(warped) + vw.area - inter
    out["iou"] = inter / union if union else float("nan")
    out["outside_fraction"] = (vw.area - inter) / vw.area
    out["registration_score"] = reg.score
    out["registration_inliers"] = float(reg.n_inliers)
    out["registration_ok"] = float(reg.ok)
    out["registration_scale"] = float(np.sqrt(reg.area_scale))
    return {k: float(x) for k, x in out.items()}
