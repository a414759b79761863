"""Shape of the lesion mask: size, compactness, convexity, elongation, border irregularity.

Mesh quantities (``mesh_area``, ``perimeter``, ``max_diameter``) come from marching squares at the
0.5 level, as pyradiomics' 2D shape class does, so that they agree with it; axis lengths use the
population covariance of pixel centres (pyradiomics' definition: 4 sqrt(eigenvalue)).
"""

from __future__ import annotations

import cv2
import numpy as np

from vitfeat.featurize.compiled import compiled
from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import bounding_box, coordinates, nan_dict, view


# Marching squares at the 0.5 level on a binary mask, cell by cell. A cell is a 2x2 block of pixel
# centres; its code has bit k set when corner k (TL, TR, BR, BL) is inside. The contour crosses the
# cell's edges at their midpoints, so each code contributes a fixed length and enclosed area. Saddles
# (codes 5 and 10) separate the two inside corners, as pyradiomics and scikit-image's
# ``find_contours`` (``fully_connected='low'``) do. Summing over the code histogram gives the
# perimeter and area of the traced contours, holes included, without tracing them.
_HALF_DIAG = np.sqrt(0.5)
_CELL_LENGTH = np.array([0, 1, 1, 0, 1, 2, 0, 1, 1, 0, 2, 1, 0, 1, 1, 0]) * _HALF_DIAG
_CELL_LENGTH[[3, 6, 9, 12]] = 1.0
_CELL_AREA = np.array([0, 1, 1, 4, 1, 2, 4, 7, 1, 4, 2, 7, 4, 7, 7, 8]) / 8.0


def marching_squares_measures(mask: np.ndarray) -> tuple[float, float, np.ndarray]:
    """``(perimeter, area, vertices)`` of a bool mask's marching-squares contours at level 0.5.

    ``vertices`` (row, col) are the contour points: the midpoints between every pair of 4-adjacent
    inside and outside pixels (the image border counts as outside). Equal to tracing the contours
    with ``skimage.measure.find_contours`` and summing lengths and shoelace areas, about 10x faster.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.

    Returns
    -------
    tuple
    """
    y0, y1, x0, x1 = bounding_box(mask)
    if y1 == y0:
        return 0.0, 0.0, np.empty((0, 2))
    return _marching_squares_padded(_padded(np.asarray(mask, dtype=bool)[y0:y1, x0:x1]), (y0, x0))


def _marching_squares_padded(padded: np.ndarray, origin) -> tuple[float, float, np.ndarray]:
    """:func:`marching_squares_measures` of a mask's bounding box (top-left pixel at ``origin``,
    row and column), padded with one background pixel."""
    counts, _, vertices = _mesh_pass(padded.view(np.uint8), float(origin[0]), float(origin[1]))
    return float(counts @ _CELL_LENGTH), float(counts @ _CELL_AREA), vertices


def _marching_squares_numpy(padded: np.ndarray, origin) -> tuple[float, float, np.ndarray]:
    """:func:`_marching_squares_padded` in whole-array numpy operations (what :func:`_mesh_pass`
    replaced; kept as its reference)."""
    m = padded.view(np.uint8)
    code = m[:-1, :-1] | (m[:-1, 1:] << 1) | (m[1:, 1:] << 2) | (m[1:, :-1] << 3)
    counts = cv2.calcHist([code], [0], None, [16], [0, 16]).ravel().astype(np.int64)  # exact, 5x np.bincount
    hy, hx = coordinates(m[:, :-1] != m[:, 1:])  # between (y, x) and (y, x + 1)
    vy, vx = coordinates(m[:-1, :] != m[1:, :])  # between (y, x) and (y + 1, x)
    vertices = np.concatenate([np.column_stack([hy, hx + 0.5]), np.column_stack([vy + 0.5, vx])])
    vertices += np.array([origin[0] - 1.0, origin[1] - 1.0])
    return float(counts @ _CELL_LENGTH), float(counts @ _CELL_AREA), vertices


@compiled("Tuple((int64[::1], float64[::1], float64[:, ::1]))(uint8[:, :], float64, float64)")
def _mesh_pass(m, origin_y, origin_x):
    """One 0/1 padded mask box's marching-squares code counts (16), binary moments and contour vertices.

    Moments: ``cv2.moments(m, binaryImage=True)``'s m00 and central mu20, mu11, mu02 (integer
    sums, exact in float64, then OpenCV's ``m - m * (m / m00)`` arithmetic). Vertices: the
    midpoints between horizontally differing neighbours, row-major, then between vertically
    differing ones, row-major, shifted by ``origin - 1`` (the box's pixel (1, 1) is at origin).
    """
    h, w = m.shape
    counts = np.zeros(16, np.int64)
    m00 = m10 = m01 = m20 = m11 = m02 = 0
    n_h = n_v = 0
    for y in range(h):
        for x in range(w):
            a = m[y, x]
            if a:
                m00 += 1
                m10 += x
                m01 += y
                m20 += x * x
                m11 += x * y
                m02 += y * y
            if x + 1 < w and a != m[y, x + 1]:
                n_h += 1
            if y + 1 < h:
                if a != m[y + 1, x]:
                    n_v += 1
                if x + 1 < w:
                    counts[a | (m[y, x + 1] << 1) | (m[y + 1, x + 1] << 2) | (m[y + 1, x] << 3)] += 1
    vertices = np.empty((n_h + n_v, 2), np.float64)
    oy, ox = origin_y - 1.0, origin_x - 1.0
    i, j = 0, n_h
    for y in range(h):
        for x in range(w):
            if x + 1 < w and m[y, x] != m[y, x + 1]:
                vertices[i, 0] = np.float64(y) + oy
                vertices[i, 1] = (np.float64(x) + 0.5) + ox
                i += 1
            if y + 1 < h and m[y, x] != m[y + 1, x]:
                vertices[j, 0] = (np.float64(y) + 0.5) + oy
                vertices[j, 1] = np.float64(x) + ox
                j += 1
    moments = np.zeros(4, np.float64)
    if m00 > 0:
        f00, f10, f01 = np.float64(m00), np.float64(m10), np.float64(m01)
        inv = 1.0 / f00
        cx, cy = f10 * inv, f01 * inv
        moments[0] = f00
        moments[1] = np.float64(m20) - f10 * cx
        moments[2] = np.float64(m11) - f10 * cy
        moments[3] = np.float64(m02) - f01 * cy
    return counts, moments, vertices


def _padded(mask: np.ndarray) -> np.ndarray:
    """``np.pad(mask, 1)`` of a bool mask (one background pixel around it), without np.pad's overhead."""
    out = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), bool)
    out[1:-1, 1:-1] = mask
    return out


def outer_contour(mask: np.ndarray) -> np.ndarray:
    """The longest outer boundary (row, col) of a bool mask, traced through pixel centres.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.

    Returns
    -------
    numpy.ndarray
        (K, 2).
    """
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    longest = max(contours, key=len)[:, 0, ::-1].astype(np.float64)
    return np.concatenate([longest, longest[:1]])  # closed


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """The bits of 32-bit integers moved to the even positions of 64-bit ones (Morton order)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, magic in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                         (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(magic)
    return v


def _box_counts(points: np.ndarray, n_sizes: int) -> list[int]:
    """Boxes of side 2, 4, ..., 2**n_sizes (aligned on multiples of the side) holding a point.

    Points sorted once by their Morton code (row and column bits interleaved) lie box after box
    at every box size, so each count is the number of changes of the code's high bits along
    the sorted array: one sort for all sizes.
    """
    # Shift to non-negative coordinates by a multiple of the largest side: the boxes stay aligned.
    points = points - (points.min(axis=0) >> n_sizes << n_sizes)
    codes = np.sort(_morton_codes(np.ascontiguousarray(points, dtype=np.int64)))
    return [int(c) for c in _code_changes(codes, n_sizes)]


@compiled("uint64[::1](int64[:, ::1])")
def _morton_codes(points):
    """Morton codes of non-negative (row, column) points: ``_spread_bits(row) << 1 | _spread_bits(col)``,
    in one compiled pass (exact integers)."""
    n = points.shape[0]
    codes = np.empty(n, np.uint64)
    for i in range(n):
        code = np.uint64(0)
        for half in range(2):
            v = np.uint64(points[i, half]) & np.uint64(0xFFFFFFFF)
            v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
            v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
            v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
            v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
            v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
            code |= v << np.uint64(1 - half)  # rows on the odd bits, columns on the even ones
        codes[i] = code
    return codes


@compiled("int64[::1](uint64[::1], int64)")
def _code_changes(codes, n_sizes):
    """For box sizes 2, 4, ..., 2**n_sizes: 1 + the changes of the sorted codes' bits above the
    size's along the array (the boxes holding a point)."""
    n = codes.size
    counts = np.ones(n_sizes, np.int64)
    for k in range(1, n_sizes + 1):
        shift = np.uint64(2 * k)
        for i in range(1, n):
            if (codes[i] >> shift) != (codes[i - 1] >> shift):
                counts[k - 1] += 1
    return counts


def box_counting_dimension(points: np.ndarray) -> float:
    """Fractal dimension of a boundary pixel set: slope of log N(s) against log(1/s), s = 2, 4, 8 ...

    Parameters
    ----------
    points : numpy.ndarray
        (K, 2) boundary pixels.

    Returns
    -------
    float
    """
    if len(points) < 16:
        return float("nan")
    extent = int(np.ptp(points, axis=0).max()) + 1
    sizes = 2 ** np.arange(1, max(2, int(np.log2(max(extent, 4))) - 1))
    if len(sizes) < 2:
        return float("nan")
    counts = _box_counts(points.astype(np.int64), len(sizes))
    # The least-squares slope in closed form: np.polyfit's value to float rounding, 10x cheaper.
    x, y = np.log(1.0 / sizes), np.log(counts)
    x = x - x.mean()
    return float(x @ (y - y.mean()) / (x @ x))


def fourier_energy(contour: np.ndarray, n_points: int = 128, low_harmonics: int = 4) -> float:
    """Share of a contour's Fourier-descriptor energy above ``low_harmonics``: 0 for an ellipse.

    Parameters
    ----------
    contour : numpy.ndarray
        (K, 2) closed contour.
    n_points : int, default 128
        Resampled points.
    low_harmonics : int, default 4
        Harmonics counted as the smooth shape.

    Returns
    -------
    float
    """
    seg = np.hypot(*np.diff(contour, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0 or len(contour) < 8:
        return float("nan")
    t = np.linspace(0.0, s[-1], n_points, endpoint=False)
    z = np.interp(t, s, contour[:, 1]) + 1j * np.interp(t, s, contour[:, 0])
    power = np.abs(np.fft.fft(z - z.mean())) ** 2
    k = np.fft.fftfreq(n_points, 1.0 / n_points)
    total = power[k != 0].sum()
    return float(power[np.abs(k) > low_harmonics].sum() / total) if total > 0 else float("nan")


@compiled("float64(float64[:, :])")
def _max_distance(points):
    """Largest Euclidean distance between two of the points (rows x, y): ``pdist(points).max()``,
    the same squares and sums, without the array of all pairwise distances."""
    best = 0.0
    for i in range(points.shape[0]):
        for j in range(i + 1, points.shape[0]):
            dx, dy = points[i, 0] - points[j, 0], points[i, 1] - points[j, 1]
            best = max(best, dx * dx + dy * dy)
    return np.sqrt(best)  # the square root is monotone and correctly rounded: the max of the roots


@compiled("float32[:, ::1](float64[:, ::1])")
def _row_extremes(vertices):
    """(x, y) float32 of each row's leftmost and rightmost vertex (rows are multiples of 0.5), in
    row order. ``vertices``: (row, col) of :func:`_mesh_pass`."""
    n = vertices.shape[0]
    if n == 0:
        return np.empty((0, 2), np.float32)
    top = vertices[0, 0]
    bottom = top
    for i in range(n):
        top = min(top, vertices[i, 0])
        bottom = max(bottom, vertices[i, 0])
    n_rows = int(round(2.0 * (bottom - top))) + 1
    lo = np.full(n_rows, np.inf)
    hi = np.full(n_rows, -np.inf)
    for i in range(n):
        r = int(round(2.0 * (vertices[i, 0] - top)))
        lo[r] = min(lo[r], vertices[i, 1])
        hi[r] = max(hi[r], vertices[i, 1])
    out = np.empty((2 * n_rows, 2), np.float32)
    k = 0
    for r in range(n_rows):
        if lo[r] <= hi[r]:
            y = np.float32(top + 0.5 * r)
            out[k, 0], out[k, 1] = np.float32(lo[r]), y
            k += 1
            if hi[r] > lo[r]:
                out[k, 0], out[k, 1] = np.float32(hi[r]), y
                k += 1
    return out[:k]


def shape_features(mask: np.ndarray, min_component_px: int = 5, components=None, box=None) -> dict:
    """The :data:`FEATURES` of one bool mask (NaN where undefined, e.g. for an empty mask).

    ``components`` (its ``connectedComponentsWithStats``; only the statistics are read) and ``box`` (its bounding box
    ``(y0, y1, x0, x1)``, exclusive ends), when the caller has them, spare scans of the mask.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool lesion mask.
    min_component_px : int, default 5
        Smaller components are ignored.
    components : tuple, optional
        Precomputed connected components.
    box : tuple of int, optional
        Precomputed bounding box.

    Returns
    -------
    dict
        ``{bare feature name: value}``.
    """
    out = nan_dict(FEATURES)
    area = int(components[2][1:, cv2.CC_STAT_AREA].sum()) if components is not None else int(np.count_nonzero(mask))
    out["area_fraction"] = area / mask.size
    out["pixel_area"] = float(area)
    if area == 0:
        out["n_components"] = 0.0
        return out
    mask = np.asarray(mask, dtype=bool)
    box = bounding_box(mask) if box is None else box
    # Mesh, moments and contours of the mask's bounding box, padded with one background pixel:
    # the same shapes at a translation (central moments and Fourier energies do not depend on
    # it), from a fraction of the pixels.
    padded = _padded(mask[box[0]:box[1], box[2]:box[3]])
    counts, moments, vertices = _mesh_pass(padded.view(np.uint8), float(box[0]), float(box[2]))
    perimeter, mesh_area = float(counts @ _CELL_LENGTH), float(counts @ _CELL_AREA)
    out.update(mesh_area=mesh_area, perimeter=perimeter)
    if perimeter > 0 and mesh_area > 0:
        out["perimeter_area_ratio"] = perimeter / mesh_area
        out["circularity"] = 4.0 * np.pi * mesh_area / perimeter**2
        out["sphericity"] = 2.0 * np.sqrt(np.pi * mesh_area) / perimeter

    # Only each row's leftmost and rightmost vertex can be a corner of the hull (a vertex between
    # two others of its row lies on their segment): the same hull from a fraction of the points.
    hull = cv2.convexHull(_row_extremes(vertices))
    hull_area = cv2.contourArea(hull)
    if hull_area > 0:
        out["solidity"] = mesh_area / hull_area
        out["convexity"] = cv2.arcLength(hull, True) / perimeter
    if len(hull) >= 2:
        out["max_diameter"] = _max_distance(hull[:, 0, :].astype(np.float64))

    # Population covariance of pixel centres from image moments (same numbers, no coordinate arrays).
    # cv2.moments(padded, binaryImage=True)'s m00, mu20, mu11, mu02, from the mesh pass.
    m00, mu20, mu11, mu02 = moments
    cov = np.array([[mu02, mu11], [mu11, mu20]]) / m00
    eig = np.sort(np.linalg.eigvalsh(cov))  # ascending
    minor, major = max(eig[0], 0.0), eig[1]
    if major > 0:
        out["major_axis"] = 4.0 * np.sqrt(major)
        out["minor_axis"] = 4.0 * np.sqrt(minor)
        out["elongation"] = float(np.sqrt(minor / major))
        out["eccentricity"] = float(np.sqrt(1.0 - minor / major))

    if components is None:
        components = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    stats = components[2]
    out["n_components"] = float(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_component_px))
    out["fractal_dimension"] = box_counting_dimension(np.round(vertices).astype(np.int64))
    out["fourier_energy"] = fourier_energy(outer_contour(padded))
    return out


DESCRIPTIONS = {
    "area_fraction": "share of the photo covered by the lesion",
    "pixel_area": "lesion area in pixels",
    "mesh_area": "lesion area inside its traced outline (pyradiomics' mesh area)",
    "perimeter": "length of the lesion outline (px)",
    "perimeter_area_ratio": "outline length per unit area (higher: more ragged or smaller)",
    "circularity": "how close the lesion is to a circle (1 = circle)",
    "sphericity": "pyradiomics' sphericity of the outline (1 = circle)",
    "solidity": "lesion area over the area of its convex hull (1 = no dents)",
    "convexity": "convex-hull perimeter over the lesion perimeter (1 = no dents)",
    "major_axis": "length of the lesion's long axis (px)",
    "minor_axis": "length of the lesion's short axis (px)",
    "elongation": "short axis over long axis (1 = round)",
    "eccentricity": "eccentricity of the fitted ellipse (0 = circle)",
    "max_diameter": "largest distance between two points of the outline (px)",
    "n_components": "number of separate lesion pieces",
    "fractal_dimension": "box-counting dimension of the outline (higher: more irregular border)",
    "fourier_energy": "share of the outline's shape energy beyond its lowest harmonics (irregularity)",
}
FEATURES = tuple(DESCRIPTIONS)  # column order: as declared


@register_family("shape", version="2", modalities=("clinical", "wood"), defaults={"min_component_px": 5},
                 features=DESCRIPTIONS, order=10)
def shape(case: CaseArrays, modality: str, min_component_px: int = 5) -> dict:
    """Lesion shape per modality: area, perimeter, circularity, solidity, convexity, axes, fractal dimension.

    Parameters
    ----------
    case : CaseArrays
        The case's photos, masks and shared views.
    modality : str
        Which photo (the family loops over its modalities).
    min_component_px : int, default 5
        Smaller mask components are ignored.

    Returns
    -------
    dict
        ``{bare feature name: value}`` (the declared names).
    """
    v = view(case, modality)
    if v.mask is None:
        return nan_dict(FEATURES)
    box = v.mask_box if v.has_lesion else None
    return {k: float(x) for k, x in shape_features(v.mask, min_component_px, v.components_box, box).items()}
