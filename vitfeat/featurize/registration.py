"""Registration of the Wood's-lamp photo onto the clinical one (the camera moves between shots).

ORB keypoints + RANSAC similarity (``cv2.estimateAffinePartial2D``: rotation, uniform scale,
shift), on high-pass-filtered grey images so that daylight and UV exposures look alike. Keypoints
on and around the lesion are left out: the lesion legitimately differs between the modalities (it
is larger under Wood's lamp in active disease), and matching it would absorb that growth into the
camera's scale. Skin landmarks (naevi, freckles, hair, folds) carry the geometry.

A match is accepted when enough RANSAC inliers support it and its scale is plausible; otherwise
the lesion centroids give a translation-only map with unit scale, and ``method`` says so. Tried
and rejected on the synthetic pairs: ECC (affine) on the skin, which failed to converge on
a third of pairs and was biased where it did; SIFT, 6x slower than ORB and no more accurate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Registration:
    #: 2x3 affine map from clinical pixel coordinates (x, y) to Wood's pixel coordinates.
    matrix: np.ndarray
    #: Share of matched keypoints that agree with the map (RANSAC inliers / matches); 0 for fallback.
    score: float
    n_inliers: int
    method: str

    @property
    def area_scale(self) -> float:
        """Factor by which the map multiplies areas (the determinant of its linear part)."""
        return float(abs(np.linalg.det(self.matrix[:, :2])))

    @property
    def ok(self) -> bool:
        return self.method == "orb_similarity"

    def warp_mask(self, clinical_mask: np.ndarray, wood_shape) -> np.ndarray:
        h, w = wood_shape[:2]
        warped = cv2.warpAffine(clinical_mask.astype(np.uint8), self.matrix, (w, h), flags=cv2.INTER_NEAREST)
        return warped > 0


def _high_pass(rgb: np.ndarray, sigma: float = 15.0) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # The low-pass is computed at 1/8 resolution: a wide blur at full size costs 10x more.
    h, w = grey.shape
    small = cv2.resize(grey, (max(w // 8, 1), max(h // 8, 1)), interpolation=cv2.INTER_AREA)
    low = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 8), (w, h), interpolation=cv2.INTER_LINEAR)
    detail = grey - low
    # Stretch +-3 SD of the detail to 0-255 (meanStdDev: no sorting, unlike percentiles).
    mean, std = (float(x[0, 0]) for x in cv2.meanStdDev(detail))
    return np.clip((detail - (mean - 3 * std)) * (255.0 / max(6 * std, 1e-6)), 0, 255).astype(np.uint8)


def _skin_mask(mask: np.ndarray | None, shape, margin_px: int) -> np.ndarray:
    skin = np.full(shape[:2], 255, np.uint8)
    if mask is not None and mask.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
        skin[cv2.dilate(mask.astype(np.uint8), kernel) > 0] = 0
    return skin


def _prepared(rgb: np.ndarray, mask: np.ndarray | None, scale: float, margin_px: int):
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(mask.astype(np.uint8), rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    return _high_pass(rgb), _skin_mask(mask, rgb.shape, margin_px)


def _centroid(mask: np.ndarray | None):
    if mask is None or not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def register_pair(clinical: np.ndarray, wood: np.ndarray, clinical_mask: np.ndarray | None = None,
                  wood_mask: np.ndarray | None = None, n_features: int = 500, min_inliers: int = 8,
                  scale_range: tuple[float, float] = (0.6, 1.6), margin_px: int = 7,
                  max_side: int = 384) -> Registration:
    """Similarity map clinical -> Wood's in full-resolution pixel coordinates.

    Photos larger than ``max_side`` are registered downscaled (geometry needs no more detail).
    """
    orb = cv2.ORB_create(n_features)
    s_c, s_w = (min(1.0, max_side / max(img.shape[:2])) for img in (clinical, wood))
    k1, d1 = orb.detectAndCompute(*_prepared(clinical, clinical_mask, s_c, margin_px))
    k2, d2 = orb.detectAndCompute(*_prepared(wood, wood_mask, s_w, margin_px))
    if d1 is not None and d2 is not None and len(k1) >= min_inliers and len(k2) >= min_inliers:
        pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]  # Lowe's ratio test
        if len(good) >= min_inliers:
            p1 = np.float32([k1[g.queryIdx].pt for g in good]) / s_c  # back to full-resolution px
            p2 = np.float32([k2[g.trainIdx].pt for g in good]) / s_w
            matrix, inliers = cv2.estimateAffinePartial2D(p1, p2, method=cv2.RANSAC, ransacReprojThreshold=3.0)
            if matrix is not None:
                n_in = int(inliers.sum())
                scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
                if n_in >= min_inliers and scale_range[0] <= scale <= scale_range[1]:
                    return Registration(matrix.astype(np.float64), n_in / len(good), n_in, "orb_similarity")
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    c_c, c_w = _centroid(clinical_mask), _centroid(wood_mask)
    if c_c is not None and c_w is not None:
        matrix[:, 2] = c_w - c_c
    return Registration(matrix, 0.0, 0, "centroid")
