"""Wood's-lamp fluorescence: lesion vs perilesional contrast, uniformity, contrast at the border.

Depigmented skin fluoresces blue-white under UV; stable lesions glow evenly ("chalk-white"),
active ones are patchier and fade into the surrounding skin. Intensity is the grey level of the
Wood's photo; ratios and coefficients of variation make the features exposure-invariant.
Columns read ``wood_fluorescence_<feature>``, not ``wood_wood_``.
"""

from __future__ import annotations

import cv2
import numpy as np

from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import nan_dict, view


def percentiles_of_histogram(counts: np.ndarray, qs) -> np.ndarray:
    """``np.percentile(values, qs)`` (linear method) of the integer levels ``0 .. len(counts) - 1``
    that ``counts`` tallies, bit for bit: numpy's own index, weight and interpolation arithmetic
    (on float32 samples, as the lesion's grey values are), with the order statistics read from
    the histogram instead of a partition of the pixels.

    Parameters
    ----------
    counts : numpy.ndarray
        Pixels per integer level.
    qs : array-like of float
        Percentiles.

    Returns
    -------
    numpy.ndarray
    """
    n = int(counts.sum())
    cum = np.cumsum(counts)
    virtual = (n - 1) * np.true_divide(np.asarray(qs, dtype=np.float64), 100)
    previous = np.floor(virtual)
    following = previous + 1
    last = virtual >= n - 1
    previous[last], following[last] = n - 1, n - 1  # numpy takes the maximum there
    gamma = virtual - np.where(last, -1.0, previous)  # numpy's weight uses index -1 there (no effect)
    a = np.searchsorted(cum, previous, side="right").astype(np.float32)  # the order statistics
    b = np.searchsorted(cum, following, side="right").astype(np.float32)
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


DESCRIPTIONS = {
    "contrast_ratio": "lesion over surrounding-skin brightness under Wood's lamp",
    "michelson": "Michelson contrast of lesion against surrounding skin under Wood's lamp",
    "uniformity_cv": "unevenness of the lesion's glow (coefficient of variation)",
    "uniformity_iqr": "unevenness of the lesion's glow (interquartile range over median)",
    "uniform_fraction": "share of the lesion glowing at least halfway between skin and its brightest part",
    "border_contrast": "contrast just inside vs just outside the edge, relative to the overall contrast",
    "blue_ratio": "blue over red in the lesion under Wood's lamp (blue-white fluorescence)",
}
FEATURES = tuple(DESCRIPTIONS)  # column order: as declared


@register_family("wood", version="2", modalities=("wood",), needs_wood=True, features=DESCRIPTIONS,
                 column_group="fluorescence", order=40)
def wood(case: CaseArrays, modality: str = "wood") -> dict:
    """Fluorescence contrast (ratio, Michelson), uniformity inside the lesion, contrast at the border.

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
    v = view(case, "wood")
    if v is not None and v.has_lesion and v.ring_roi.any():
        # Lesion, ring and the 3 px border bands lie within the ring's outer distance: that window
        # of the ROI holds the same pixels in the same order.
        win = v.near(max(2.0 + v.ring_width, 3.0))
        grey, mask = v.grey_roi[win], v.mask_roi[win]
        lesion, ring = grey[mask], grey[v.ring_roi[win]]
        l_mean, r_mean = float(lesion.mean()), float(ring.mean())
        # Percentiles from the lesion's 8-bit histogram (exactly np.percentile's, without sorting).
        hist = cv2.calcHist([np.ascontiguousarray(v.grey_u8[v.roi][win])], [0], mask.view(np.uint8), [256], [0, 256])
        q25, med, q75, bright = percentiles_of_histogram(hist.ravel().astype(np.int64), [25, 50, 75, 95])
        out["contrast_ratio"] = l_mean / max(r_mean, 1.0)
        out["michelson"] = (l_mean - r_mean) / max(l_mean + r_mean, 1.0)
        out["uniformity_cv"] = float(lesion.std() / max(l_mean, 1.0))
        out["uniformity_iqr"] = float((q75 - q25) / max(med, 1.0))
        # Share of the lesion fluorescing at least halfway between skin and the lesion's bright end.
        out["uniform_fraction"] = float(np.mean(lesion >= r_mean + 0.5 * (bright - r_mean)))
        edge = v.near(3.0)  # the 3 px bands either side of the edge: a smaller window, same pixels
        grey, d = v.grey_roi[edge], v.distance_near(3.0)
        inner, outer = grey[(d > -3) & (d <= 0)], grey[(d > 0) & (d <= 3)]
        if inner.size and outer.size:
            out["border_contrast"] = float((inner.mean() - outer.mean()) / max(l_mean - r_mean, 1.0))
        red, _, blue, _ = cv2.mean(v.rgb[v.roi][win], mask=mask.view(np.uint8))  # channel means, no copies
        out["blue_ratio"] = float(blue / max(red, 1.0))
    return out
