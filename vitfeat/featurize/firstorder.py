"""First-order statistics of the grey level inside the lesion, per modality.

Definitions follow pyradiomics' ``firstorder`` class (population moments, fixed bin width for
entropy and uniformity, bin edges anchored at a multiple of the bin width below the minimum) so
that the two agree on the same grey image and mask.
"""

from __future__ import annotations

import numpy as np

from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import nan_dict, view

FEATURES = (
    "energy", "entropy", "minimum", "p10", "p90", "maximum", "mean", "median", "iqr", "range",
    "mean_absolute_deviation", "robust_mean_absolute_deviation", "rms", "std", "skewness", "kurtosis",
    "variance", "uniformity",
)


def bin_counts(values: np.ndarray, bin_width: float) -> np.ndarray:
    """Histogram with pyradiomics' fixed-bin-width edges."""
    low = values.min() - (values.min() % bin_width)
    edges = np.arange(low, values.max() + 2 * bin_width, bin_width)
    counts = np.bincount(np.digitize(values, edges))
    return counts[counts > 0]


def firstorder_features(values: np.ndarray, bin_width: float = 25.0) -> dict:
    """The :data:`FEATURES` of a 1-D array of intensities (NaN for an empty one)."""
    if values.size == 0:
        return nan_dict(FEATURES)
    x = values.astype(np.float64)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    mean = x.mean()
    dev = x - mean
    m2 = np.mean(dev**2)
    robust = x[(x >= p10) & (x <= p90)]
    p = bin_counts(x, bin_width) / x.size
    return {
        "energy": float(np.dot(x, x)),
        "entropy": float(-np.sum(p * np.log2(p))),
        "minimum": float(x.min()),
        "p10": float(p10),
        "p90": float(p90),
        "maximum": float(x.max()),
        "mean": float(mean),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "range": float(np.ptp(x)),
        "mean_absolute_deviation": float(np.mean(np.abs(dev))),
        "robust_mean_absolute_deviation": float(np.mean(np.abs(robust - robust.mean()))),
        "rms": float(np.sqrt(np.mean(x**2))),
        "std": float(np.sqrt(m2)),
        "skewness": float(np.mean(dev**3) / m2**1.5) if m2 > 0 else 0.0,
        "kurtosis": float(np.mean(dev**4) / m2**2) if m2 > 0 else 0.0,
        "variance": float(m2),
        "uniformity": float(np.sum(p**2)),
    }


@register_family("firstorder", version="1", defaults={"bin_width": 25.0})
def firstorder(case: CaseArrays, bin_width: float = 25.0) -> dict:
    """Grey-level statistics inside the lesion per modality (pyradiomics definitions)."""
    result = {}
    for modality in ("clinical", "wood"):
        v = view(case, modality)
        feats = (firstorder_features(v.grey[v.mask], bin_width) if v is not None and v.mask is not None
                 else nan_dict(FEATURES))
        result.update({f"{modality}_firstorder_{k}": x for k, x in feats.items()})
    return result
