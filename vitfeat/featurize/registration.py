"""Registration of the Wood's-lamp photo onto the clinical one (the camera moves between shots).

Three methods, tried in order; ``Registration.method`` says which one gave the map:

1. ``satellite_landmarks``: satellite macules are the same spots in both photos (only the camera
   moved), so their centroids are landmarks; matched by exhaustive two-point hypotheses, refitted
   by least squares (see :func:`register_landmarks`). Needs two satellites seen in both masks.
2. ``orb_similarity``: ORB keypoints + RANSAC similarity (``cv2.estimateAffinePartial2D``:
   rotation, uniform scale, shift) on high-pass-filtered grey images, so that daylight and UV
   exposures look alike. Keypoints on and around the lesion are left out: the lesion legitimately
   differs between the modalities (larger under Wood's lamp in active disease), and matching it
   would absorb that growth into the camera's scale. Skin landmarks (naevi, freckles, hair, folds)
   carry the geometry. Accepted with enough inliers and a plausible scale.
3. ``centroid``: translation between the lesion centroids, unit scale (nothing better available).

Tried and rejected on the synthetic pairs: ECC (affine) on the skin, which failed to converge on a
third of pairs and was biased where it did; SIFT, 6x slower than ORB and no more accurate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vitfeat.featurize.views import bounding_box, grown, satellite_sized


@dataclass(frozen=True)
class Registration:
    """A similarity map from the clinical photo to the Wood's photo (:func:`register_pair`).

    Attributes
    ----------
    matrix : numpy.ndarray
        2x3 affine map, clinical (x, y) -> Wood's (x, y).
    score : float
        Share of matched keypoints that agree with the map; 0 for the fallback.
    n_inliers : int
        Agreeing matches.
    method : str
        How it was found (``orb_similarity``, ``satellite_landmarks`` or a fallback).
    """

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
        return self.method in ("orb_similarity", "satellite_landmarks")

    def warp_mask_u8(self, clinical_mask: np.ndarray, wood_shape) -> np.ndarray:
        """The clinical mask carried into the Wood's photo's pixels (nearest neighbour), as 0/1 uint8
        (OpenCV's own output, for counting without a bool pass).

        Parameters
        ----------
        clinical_mask : numpy.ndarray
            (H, W) mask in clinical pixels.
        wood_shape : tuple
            The Wood's photo's shape.

        Returns
        -------
        numpy.ndarray
        """
        h, w = wood_shape[:2]
        return cv2.warpAffine(_as_u8(clinical_mask), self.matrix, (w, h), flags=cv2.INTER_NEAREST)


def _high_pass(grey_u8: np.ndarray, sigma: float = 15.0) -> np.ndarray:
    grey = grey_u8.astype(np.float32)
    # The low-pass is computed at 1/8 resolution: a wide blur at full size costs 10x more.
    h, w = grey.shape
    small = cv2.resize(grey, (max(w // 8, 1), max(h // 8, 1)), interpolation=cv2.INTER_AREA)
    low = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 8), (w, h), interpolation=cv2.INTER_LINEAR)
    detail = grey - low
    # Stretch +-3 SD of the detail to 0-255 (meanStdDev: no sorting, unlike percentiles).
    mean, std = (float(x[0, 0]) for x in cv2.meanStdDev(detail))
    # In place: the same float32 arithmetic as the plain expression, without its temporaries.
    np.subtract(detail, mean - 3 * std, out=detail)
    np.multiply(detail, 255.0 / max(6 * std, 1e-6), out=detail)
    return np.clip(detail, 0, 255, out=detail).astype(np.uint8)


def _as_u8(mask: np.ndarray) -> np.ndarray:
    """A mask as 0/1 uint8 for OpenCV: a view, no copy, when it is bool already."""
    return np.asarray(mask, dtype=bool).view(np.uint8)


def _skin_mask(mask: np.ndarray | None, shape, margin_px: int) -> np.ndarray:
    if mask is None or not mask.any():
        return np.full(shape[:2], 255, np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    # Dilated on the mask's box grown by the margin only (the same values: nothing beyond it is
    # within reach of a lesion pixel, and dilation's default border adds nothing): 3-4x cheaper.
    h, w = shape[:2]
    y0, y1, x0, x1 = grown(bounding_box(mask), margin_px, (h, w))
    skin = np.full((h, w), 255, np.uint8)
    lesion_box = np.ascontiguousarray(_as_u8(mask)[y0:y1, x0:x1])
    skin[y0:y1, x0:x1] = cv2.compare(cv2.dilate(lesion_box, kernel), 0, cv2.CMP_EQ)  # 255 off the lesion, else 0
    return skin


def _prepared(image: np.ndarray, mask: np.ndarray | None, scale: float, margin_px: int):
    """High-passed grey image and the skin mask ORB looks in, at ``scale``.

    An RGB photo is converted to grey before it is shrunk: area averaging of one channel instead
    of three, the costliest step of the preparation (the grey of a shrunk photo and the shrunk
    grey differ only by rounding).
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(_as_u8(mask), image.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    return _high_pass(image), _skin_mask(mask, image.shape, margin_px)


def _centroid(mask: np.ndarray | None):
    if mask is None or not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def register_pair(clinical: np.ndarray, wood: np.ndarray, clinical_mask: np.ndarray | None = None,
                  wood_mask: np.ndarray | None = None, n_features: int = 500, min_inliers: int = 8,
                  scale_range: tuple[float, float] = (0.6, 1.6), margin_px: int = 7,
                  max_side: int = 384, clinical_components=None, wood_components=None) -> Registration:
    """Similarity map clinical -> Wood's in full-resolution pixel coordinates.

    ``clinical`` and ``wood``: the RGB photos or their grey (ITU-R 601 luma, as
    ``cv2.COLOR_RGB2GRAY``) images; registration works on grey, so a caller that has it already
    (:attr:`ImageView.grey_u8`) saves the conversion. Photos larger than ``max_side`` are
    registered downscaled (geometry needs no more detail).
    ``clinical_components`` / ``wood_components``: the masks' ``cv2.connectedComponentsWithStats``
    (8-connectivity; only their stats and centroids are read, so :attr:`ImageView.components_box`
    serves) when the caller has them already.

    Parameters
    ----------
    clinical, wood : numpy.ndarray
        The photos (RGB or grey).
    clinical_mask, wood_mask : numpy.ndarray, optional
        Lesion masks (their satellites serve as landmarks; keypoints on the lesion are masked out).
    n_features : int, default 500
        ORB keypoints per photo.
    min_inliers : int, default 8
        Fewer matches or RANSAC inliers fall back to aligning the masks' centroids.
    scale_range : tuple of float, default (0.6, 1.6)
        Plausible scale between the photos.
    margin_px : int, default 7
        Keypoints on the lesion or within this many pixels of it are ignored.
    max_side : int, default 384
        Longest side registered at.
    clinical_components, wood_components : tuple, optional
        The masks' connected components.

    Returns
    -------
    Registration
    """
    landmarks = register_landmarks(clinical_mask, wood_mask, scale_range,
                                   clinical_components=clinical_components, wood_components=wood_components)
    if landmarks is not None:
        return landmarks
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


def _lesion_points(mask: np.ndarray, max_points: int = 12, components=None):
    """(main lesion centroid, its equivalent radius, centroids of the small components around it).

    ``components``: the mask's ``connectedComponentsWithStats`` (8-connectivity) if already known;
    only the rows of the lesion components (1 ...) of its stats and centroids are read.
    """
    if components is None:
        components = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    n, _, stats, centroids = components
    if n <= 2:
        return None
    main, sized = satellite_sized(stats)  # the satellites family's size rule and defaults
    sized = set(sized)
    largest_first = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    small = [k for k in largest_first if k in sized][:max_points]
    return centroids[main], np.sqrt(stats[main, cv2.CC_STAT_AREA] / np.pi), centroids[small]


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (complex form: dst = a src + b) as a 2x3 matrix."""
    zs, zd = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    cs, cd = zs - zs.mean(), zd - zd.mean()
    a = np.sum(cd * np.conj(cs)) / np.sum(np.abs(cs) ** 2)
    b = zd.mean() - a * zs.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def _best_satellite_map(sat_c, sat_w, main_c, main_w, scale_range, tol):
    """(matched, partner, main_err) of the best map proposed by two clinical and two Wood's satellites.

    Every correspondence (clinical i1 < i2, Wood's j1 != j2) proposes the similarity mapping the two
    onto the two (:func:`_similarity` of two points, in complex form); all are scored at once.
    The best has the most satellites landing within ``tol`` of a Wood's one, then the smallest
    error on the main lesions' centroids, then comes first in (i1, i2, j1, j2) order. None when no
    proposal has a scale within ``scale_range``.
    """
    n_c, n_w = len(sat_c), len(sat_w)
    i1, i2 = np.triu_indices(n_c, k=1)
    j1, j2 = np.nonzero(~np.eye(n_w, dtype=bool))
    i1, i2 = np.repeat(i1, len(j1)), np.repeat(i2, len(j1))
    j1, j2 = np.tile(j1, n_c * (n_c - 1) // 2), np.tile(j2, n_c * (n_c - 1) // 2)
    zc, zw = sat_c[:, 0] + 1j * sat_c[:, 1], sat_w[:, 0] + 1j * sat_w[:, 1]
    s1, s2, d1, d2 = zc[i1], zc[i2], zw[j1], zw[j2]
    mean_s, mean_d = (s1 + s2) / 2, (d1 + d2) / 2
    cs1, cs2, cd1, cd2 = s1 - mean_s, s2 - mean_s, d1 - mean_d, d2 - mean_d
    a = (cd1 * np.conj(cs1) + cd2 * np.conj(cs2)) / (np.abs(cs1) ** 2 + np.abs(cs2) ** 2)
    b = mean_d - a * mean_s
    scale = np.hypot(a.real, a.imag)
    plausible = np.nonzero((scale >= scale_range[0]) & (scale <= scale_range[1]))[0]
    if len(plausible) == 0:
        return None
    a, b = a[plausible], b[plausible]
    mapped = a[:, None] * zc[None, :] + b[:, None]  # (proposal, clinical satellite)
    dist = np.abs(mapped[:, :, None] - zw[None, None, :])  # (proposal, clinical, Wood's satellite)
    matched = dist.min(axis=2) <= tol
    main_err = np.abs(a * complex(*main_c) + b - complex(*main_w))
    # lexsort: last key first -> most matched, then smallest main error, then first proposal.
    best = np.lexsort((np.arange(len(a)), main_err, -matched.sum(axis=1)))[0]
    return matched[best], dist[best].argmin(axis=1), float(main_err[best])


def register_landmarks(clinical_mask, wood_mask, scale_range=(0.6, 1.6), tolerance: float = 0.02, *,
                       clinical_components=None, wood_components=None):
    """Similarity from the satellite macules seen in both masks, or None when they do not suffice.

    Satellites do not change between the two photos (only the camera moved), so their centroids
    are landmarks even when the skin offers none. Every correspondence of two clinical with two
    Wood's satellites proposes a map; the one under which most satellites land on a Wood's
    satellite (within ``tolerance`` x the image diagonal) wins, ties broken by how close it brings
    the main lesions' centroids, and is refitted on all its matches. Needs >= 2 matched satellites.

    Parameters
    ----------
    clinical_mask, wood_mask : numpy.ndarray or None
        Lesion masks.
    scale_range : tuple of float, default (0.6, 1.6)
        Plausible scale between the photos.
    tolerance : float, default 0.02
        Match distance, as a fraction of the image diagonal.
    clinical_components, wood_components : tuple, optional
        The masks' connected components.

    Returns
    -------
    Registration or None
    """
    if clinical_mask is None or wood_mask is None:
        return None
    pc = _lesion_points(clinical_mask, components=clinical_components)
    pw = _lesion_points(wood_mask, components=wood_components)
    if pc is None or pw is None or len(pc[2]) < 2 or len(pw[2]) < 2:
        return None
    (main_c, radius_c, sat_c), (main_w, _, sat_w) = pc, pw
    tol = tolerance * float(np.hypot(*wood_mask.shape))
    best = _best_satellite_map(sat_c, sat_w, main_c, main_w, scale_range, tol)
    if best is None or best[0].sum() < 2:
        return None
    matched, partner, main_err = best
    if main_err > 0.5 * radius_c * 2:  # the main lesions must roughly coincide too
        return None
    matrix = _similarity(sat_c[matched], sat_w[partner[matched]])
    return Registration(matrix, float(matched.mean()), int(matched.sum()), "satellite_landmarks")
