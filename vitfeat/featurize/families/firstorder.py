"""First-order statistics of the grey level inside the lesion, per modality.

Definitions follow pyradiomics' ``firstorder`` class (population moments, fixed bin width for
entropy and uniformity, bin edges anchored at a multiple of the bin width below the minimum) so
that the two agree on the same grey image and mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import nan_dict, view

FEATURES = (
    "energy", "entropy", "minimum", "p10", "p90", "maximum", "mean", "median", "iqr", "range",
    "mean_absolute_deviation", "robust_mean_absolute_deviation", "rms", "std", "skewness", "kurtosis",
    "variance", "uniformity",
)


def _percentiles_from_hist(counts: np.ndarray, values: np.ndarray, qs) -> list[float]:
    """``np.percentile`` (linear interpolation) of the sample a histogram describes, exactly."""
    n = counts.sum()
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        x_lo = values[np.searchsorted(cum, lo, side="right")]
        x_hi = values[np.searchsorted(cum, min(lo + 1, n - 1), side="right")]
        out.append(float(x_lo + (pos - lo) * (x_hi - x_lo)))
    return out


def firstorder_features(values: np.ndarray, bin_width: float = 25.0) -> dict:
    """The :data:`FEATURES` of a 1-D array of intensities (NaN for an empty one).

    8-bit input goes through a 256-bin histogram (all statistics are exact from it), which is
    several times faster than sorting the pixels.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities inside the lesion.
    bin_width : float, default 25.0
        Grey-level bin width (entropy, uniformity).

    Returns
    -------
    dict
        ``{bare feature name: value}``.
    """
    if values.size == 0:
        return nan_dict(FEATURES)
    if values.dtype == np.uint8:
        counts = np.bincount(values, minlength=256).astype(np.float64)
        levels = np.arange(256, dtype=np.float64)
    else:
        levels, counts = np.unique(values.astype(np.float64), return_counts=True)
        counts = counts.astype(np.float64)
    return firstorder_from_histogram(levels, counts, bin_width)


def firstorder_from_histogram(levels: np.ndarray, counts: np.ndarray, bin_width: float = 25.0) -> dict:
    """The :data:`FEATURES` of the sample with ``counts[i]`` pixels at intensity ``levels[i]`` (ascending).

    Parameters
    ----------
    levels : numpy.ndarray
        Intensities, ascending.
    counts : numpy.ndarray
        Pixels at each.
    bin_width : float, default 25.0
        Grey-level bin width.

    Returns
    -------
    dict
        ``{bare feature name: value}``.
    """
    nz = counts > 0
    if not nz.any():
        return nan_dict(FEATURES)
    levels, counts = levels[nz], counts[nz]
    n = counts.sum()
    p10, p25, p50, p75, p90 = _percentiles_from_hist(counts, levels, [10, 25, 50, 75, 90])
    mean = float(np.dot(counts, levels) / n)
    dev = levels - mean
    m2 = float(np.dot(counts, dev**2) / n)
    robust = (levels >= p10) & (levels <= p90)
    r_counts, r_levels = counts[robust], levels[robust]
    r_mean = np.dot(r_counts, r_levels) / r_counts.sum()
    p = _binned(levels, counts, bin_width) / n
    return {
        "energy": float(np.dot(counts, levels**2)),
        "entropy": float(-np.sum(p * np.log2(p))),
        "minimum": float(levels[0]),
        "p10": p10,
        "p90": p90,
        "maximum": float(levels[-1]),
        "mean": mean,
        "median": p50,
        "iqr": p75 - p25,
        "range": float(levels[-1] - levels[0]),
        "mean_absolute_deviation": float(np.dot(counts, np.abs(dev)) / n),
        "robust_mean_absolute_deviation": float(np.dot(r_counts, np.abs(r_levels - r_mean)) / r_counts.sum()),
        "rms": float(np.sqrt(np.dot(counts, levels**2) / n)),
        "std": float(np.sqrt(m2)),
        "skewness": float(np.dot(counts, dev**3) / n / m2**1.5) if m2 > 0 else 0.0,
        "kurtosis": float(np.dot(counts, dev**4) / n / m2**2) if m2 > 0 else 0.0,
        "variance": m2,
        "uniformity": float(np.sum(p**2)),
    }


def _binned(levels: np.ndarray, counts: np.ndarray, bin_width: float) -> np.ndarray:
    """Counts per fixed-width bin with pyradiomics' edges (anchored below the minimum)."""
    low = levels[0] - (levels[0] % bin_width)
    edges = np.arange(low, levels[-1] + 2 * bin_width, bin_width)
    binned = np.bincount(np.digitize(levels, edges), weights=counts)
    return binned[binned > 0]


DESCRIPTIONS = {name: f"{name.replace('_', ' ')} of the grey levels inside the lesion (pyradiomics definition)"
                for name in FEATURES}
DESCRIPTIONS.update({
    "p10": "10th percentile of the grey levels inside the lesion",
    "p90": "90th percentile of the grey levels inside the lesion",
    "iqr": "interquartile range of the grey levels inside the lesion",
    "rms": "root mean square of the grey levels inside the lesion",
})


@register_family("firstorder", version="1", defaults={"bin_width": 25.0}, features=DESCRIPTIONS, order=80)
def firstorder(case: CaseArrays, modality: str, bin_width: float = 25.0) -> dict:
    """Grey-level statistics inside the lesion per modality (pyradiomics definitions).

    Parameters
    ----------
    case : CaseArrays
        The case's photos, masks and shared views.
    modality : str
        Which photo (the family loops over its modalities).
    bin_width : float, default 25.0
        Grey-level bin width (pyradiomics' ``binWidth``).

    Returns
    -------
    dict
        ``{bare feature name: value}`` (the declared names).
    """
    v = view(case, modality)
    if v.mask is None:
        return nan_dict(FEATURES)
    if not v.has_lesion:
        return nan_dict(FEATURES)
    # The 8-bit histogram of the lesion straight from the image (OpenCV's masked histogram over
    # the mask's box; exact counts below 2**24 pixels): no copy of the lesion's pixels.
    y0, y1, x0, x1 = v.mask_box
    counts = cv2.calcHist([np.ascontiguousarray(v.grey_u8[y0:y1, x0:x1])], [0],
                          np.ascontiguousarray(v.mask[y0:y1, x0:x1]).view(np.uint8), [256], [0, 256])
    return firstorder_from_histogram(np.arange(256, dtype=np.float64), counts.ravel().astype(np.float64), bin_width)
