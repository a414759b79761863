"""The texture family's fast paths against the libraries' own functions.

* LBP: vitfeat's 3x3 ring vs ``skimage.feature.local_binary_pattern(P=8, R=1, 'uniform')``, equal
  wherever skimage's interpolated diagonal cannot flip a comparison (the documented difference);
* GLCM: the one-pass diagonal-block trick vs one ``graycomatrix`` / ``graycoprops`` per region;
* wavelet energies and entropies vs a direct PyWavelets ``dwt2`` cascade and ``np.histogram``.
"""

from __future__ import annotations

import numpy as np
import pytest
import pywt
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

from vitfeat.featurize.families.texture import GLCM_PROPS, SUBBANDS, _glcm, _quantised, _wavelet_features, lbp_uniform

RNG = np.random.default_rng(0)


def test_lbp_equals_scikit_image_where_interpolation_cannot_flip_a_bit():
    grey = RNG.integers(0, 256, (64, 80)).astype(np.uint8)
    ours = lbp_uniform(grey)[1:-1, 1:-1]
    theirs = local_binary_pattern(grey, P=8, R=1, method="uniform")[1:-1, 1:-1]
    centre = grey[1:-1, 1:-1]
    safe = np.ones(centre.shape, bool)
    h, w = grey.shape
    for dy in (-1, 1):
        for dx in (-1, 1):
            # skimage's diagonal neighbour is bilinear between the centre and these three pixels:
            # when all three lie on one side of the centre, the interpolated value does too.
            sides = [grey[1 + oy:h - 1 + oy, 1 + ox:w - 1 + ox] >= centre for oy, ox in ((dy, 0), (0, dx), (dy, dx))]
            safe &= (sides[0] == sides[1]) & (sides[1] == sides[2])
    assert safe.mean() > 0.2
    np.testing.assert_array_equal(ours[safe], theirs[safe].astype(np.uint8))


def _glcm_one_region(grey: np.ndarray, region: np.ndarray, levels: int) -> dict:
    q = np.zeros(grey.shape, np.uint8)
    q[region] = _quantised(grey, region, levels) + 1  # 0 = outside, dropped below
    P = graycomatrix(q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels + 1, symmetric=True)
    P = P[1:, 1:].astype(np.float64)
    P /= P.sum(axis=(0, 1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {f"glcm_{p.lower()}": float(np.nanmean(graycoprops(P, p))) for p in GLCM_PROPS}


def test_glcm_block_trick_equals_one_graycomatrix_per_region():
    grey = np.round(RNG.normal(120, 30, (90, 90)).clip(0, 255))
    grey[30:60, 30:60] += 40 * (np.indices((30, 30)).sum(axis=0) % 3)  # some structure in the lesion
    yy, xx = np.indices(grey.shape)
    r = np.hypot(yy - 45, xx - 45)
    lesion, ring = r < 20, (r >= 23) & (r < 35)
    combined = _glcm(grey, [lesion, ring], 16)
    for region, got in zip((lesion, ring), combined):
        expected = _glcm_one_region(grey, region, 16)
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key


def _entropy_direct(values: np.ndarray, bins: int = 16) -> float:
    counts, _ = np.histogram(values, bins)
    p = counts[counts > 0] / values.size
    return float(-np.sum(p * np.log2(p)))


def test_wavelet_energies_equal_a_direct_pywavelets_cascade():
    levels = 3
    grey = RNG.uniform(0, 255, (64, 96))
    left = np.zeros(grey.shape, bool)
    left[:, :48] = True  # halves stay exact halves at every level (48 = 2**3 * 6)
    ours = _wavelet_features(pywt.wavedec2(grey, "haar", level=levels), [left], levels)[0]
    approx = grey
    for level in range(1, levels + 1):
        approx, details = pywt.dwt2(approx, "haar")
        for band, coeffs in zip(SUBBANDS, details):
            inside = coeffs[:, : coeffs.shape[1] // 2]
            assert ours[f"wavelet_L{level}_{band}_energy"] == pytest.approx(np.mean(inside**2), rel=1e-12)
            assert ours[f"wavelet_L{level}_{band}_entropy"] == pytest.approx(_entropy_direct(inside.ravel()),
                                                                             abs=1e-12)
