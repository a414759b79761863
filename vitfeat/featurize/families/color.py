"""CIELAB colour of the lesion and the perilesional ring, their difference, and a trichrome sign.

CIELAB because its L* (lightness) and b* (yellow-blue, where melanin shows) separate depigmented
from normal skin, and its distances approximate perceived colour difference (CIEDE2000 here).
The trichrome indicator measures the intermediate-tone zone outside the lesion: pixels whose L*
lies between the lesion's and the distant skin's mean L* (25-75 % of the way), expressed as a mean width
in px (zone area / boundary length); a plain blurred edge gives a small width, a trichrome zone a
wide one.
"""

from __future__ import annotations

import math

import numpy as np

from vitfeat.featurize.compiled import compiled
from vitfeat.featurize.registry import CaseArrays, register_family
from vitfeat.featurize.views import ImageView, lab8_to_lab, nan_dict, view, within

_STATS = [f"{region}_{ch}_{stat}" for region in ("lesion", "ring") for ch in ("L", "a", "b")
          for stat in ("mean", "std")]
FEATURES = tuple(_STATS) + ("delta_e", "delta_L", "delta_b", "ring_ita", "lesion_ita",
                            "trichrome_width", "trichrome_fraction")


def _polar_2pi(x: float, y: float) -> tuple[float, float]:
    angle = math.atan2(y, x)
    return math.hypot(x, y), angle + 2 * math.pi if angle < 0 else angle


def ciede2000(lab1, lab2) -> float:
    """CIEDE2000 colour difference of two CIELAB colours (kL = kC = kH = 1).

    scikit-image's ``deltaE_ciede2000``, step for step, on two colours as Python floats: the
    array version's set-up costs more than the formula for one pair (0.15 ms per call); the
    results agree to ~1e-15 (a test holds them together).

    Parameters
    ----------
    lab1, lab2 : sequence of float
        ``(L*, a*, b*)`` colours.

    Returns
    -------
    float
    """
    (L1, a1, b1), (L2, a2, b2) = (float(x) for x in lab1[:3]), (float(x) for x in lab2[:3])
    c_bar = 0.5 * (math.hypot(a1, b1) + math.hypot(a2, b2))
    c7 = c_bar**7
    scale = 1 + 0.5 * (1 - math.sqrt(c7 / (c7 + 25**7)))
    C1, h1 = _polar_2pi(a1 * scale, b1)
    C2, h2 = _polar_2pi(a2 * scale, b2)
    tmp = (0.5 * (L1 + L2) - 50) ** 2
    L_term = (L2 - L1) / (1 + 0.015 * tmp / math.sqrt(20 + tmp))
    c_bar = 0.5 * (C1 + C2)
    C_term = (C2 - C1) / (1 + 0.045 * c_bar)
    h_diff, h_sum, CC = h2 - h1, h1 + h2, C1 * C2
    dH = h_diff - 2 * math.pi if h_diff > math.pi else h_diff + 2 * math.pi if h_diff < -math.pi else h_diff
    if CC == 0.0:
        dH = 0.0
    dH_term = 2 * math.sqrt(CC) * math.sin(dH / 2)
    h_bar = h_sum
    if CC != 0.0 and abs(h_diff) > math.pi:
        h_bar += 2 * math.pi if h_sum < 2 * math.pi else -2 * math.pi
    if CC == 0.0:
        h_bar *= 2
    h_bar *= 0.5
    T = (1 - 0.17 * math.cos(h_bar - math.radians(30)) + 0.24 * math.cos(2 * h_bar)
         + 0.32 * math.cos(3 * h_bar + math.radians(6)) - 0.20 * math.cos(4 * h_bar - math.radians(63)))
    H_term = dH_term / (1 + 0.015 * c_bar * T)
    c7 = c_bar**7
    rotation = 2 * math.sqrt(c7 / (c7 + 25**7))
    dtheta = math.radians(30) * math.exp(-(((math.degrees(h_bar) - 275) / 25) ** 2))
    R_term = -math.sin(2 * dtheta) * rotation * C_term * H_term
    return math.sqrt(max(L_term**2 + C_term**2 + H_term**2 + R_term, 0.0))


def _ita(lab_mean: np.ndarray) -> float:
    """Individual typology angle (degrees), the usual skin-colour scale: higher = lighter."""
    return float(np.degrees(np.arctan2(lab_mean[0] - 50.0, lab_mean[2])))


def color_features(v: ImageView, band_px: float = 24.0) -> dict:
    """The colour family's features of one photo (see :func:`color`).

    Parameters
    ----------
    v : ImageView
        One photo and its lesion mask.
    band_px : float, default 24.0
        Width of the perilesional ring (px).

    Returns
    -------
    dict
        ``{bare feature name: value}``.
    """
    out = nan_dict(FEATURES)
    if not v.has_lesion or not v.ring_roi.any():
        return out
    # Lesion and ring lie within the ring's outer distance: their window of the ROI suffices
    # (integer sums over the same pixels, so the same statistics).
    # CIELAB of the one window both parts below need (lesion + ring, and the bands out to 2 band_px).
    outer = v.near(max(2.0 + v.ring_width, 2 * band_px))
    lab8_outer = v.lab8_window(outer)
    win = v.near(2.0 + v.ring_width)
    lab8 = lab8_outer[within(win, outer)]
    mask_u8, ring_u8 = v.mask_roi[win].view(np.uint8), v.ring_roi[win].view(np.uint8)
    stats = {}
    sums, squares, counts = _region_sums(lab8, mask_u8, ring_u8)  # both regions in one pass
    for k, region in enumerate(("lesion", "ring")):
        # cv2.meanStdDev(lab8, mask=region)'s arithmetic on the same exact integer sums.
        scale = 1.0 / counts[k] if counts[k] else 0.0
        mean8 = sums[k] * scale
        std8 = np.sqrt(np.maximum(squares[k] * scale - mean8 * mean8, 0.0))
        mean = lab8_to_lab(mean8)
        std = std8 * np.array([100.0 / 255.0, 1.0, 1.0])  # the 8-bit encoding is affine per channel
        stats[region] = mean
        for i, ch in enumerate("Lab"):
            out[f"{region}_{ch}_mean"] = float(mean[i])
            out[f"{region}_{ch}_std"] = float(std[i])
    l_mean, r_mean = stats["lesion"], stats["ring"]
    out["delta_e"] = ciede2000(l_mean, r_mean)
    out["delta_L"] = float(l_mean[0] - r_mean[0])
    out["delta_b"] = float(l_mean[2] - r_mean[2])
    out["ring_ita"], out["lesion_ita"] = _ita(r_mean), _ita(l_mean)

    win = v.near(2 * band_px)  # the zones below lie within 2 band_px of the lesion
    d = v.distance_near(2 * band_px)
    L8 = lab8_outer[within(win, outer)]
    f32 = np.float32  # numpy 2 compares float32 distances with Python floats in float32 (NEP 50)
    skin_sum, skin_count = _skin_lightness_sum(d, L8, f32(band_px), f32(2 * band_px))
    if skin_count:
        l_lesion = float(stats["lesion"][0])
        l_skin = skin_sum * (1.0 / skin_count) * 100.0 / 255.0  # cv2.mean's arithmetic: sum times 1/count
        if abs(l_lesion - l_skin) > 1.0:
            intermediate, zone = _intermediate_count(d, L8, f32(band_px), 100.0 / 255.0, l_skin, l_lesion - l_skin)
            out["trichrome_width"] = intermediate / max(np.count_nonzero(v.boundary_roi), 1)
            out["trichrome_fraction"] = intermediate / max(zone, 1)
    return out


@compiled("Tuple((int64[:, ::1], int64[:, ::1], int64[::1]))(uint8[:, :, :], uint8[:, :], uint8[:, :])")
def _region_sums(lab8, lesion, ring):
    """Per region (lesion, ring): the sums and sums of squares of the three 8-bit channels and the
    pixel count, exact integers (what ``cv2.meanStdDev`` with a mask accumulates)."""
    sums = np.zeros((2, 3), np.int64)
    squares = np.zeros((2, 3), np.int64)
    counts = np.zeros(2, np.int64)
    for y in range(lab8.shape[0]):
        for x in range(lab8.shape[1]):
            for k in range(2):
                if (lesion[y, x] if k == 0 else ring[y, x]) == 0:
                    continue
                counts[k] += 1
                for c in range(3):
                    v = np.int64(lab8[y, x, c])
                    sums[k, c] += v
                    squares[k, c] += v * v
    return sums, squares, counts


@compiled("UniTuple(int64, 2)(float32[:, :], uint8[:, :, :], float32, float32)")
def _skin_lightness_sum(d, lab8, near, far):
    """Sum and count of the 8-bit L* of the pixels with ``near < d <= far`` (the skin beyond the band)."""
    total = count = 0
    for y in range(d.shape[0]):
        for x in range(d.shape[1]):
            if d[y, x] > near and d[y, x] <= far:
                total += lab8[y, x, 0]
                count += 1
    return total, count


@compiled("UniTuple(int64, 2)(float32[:, :], uint8[:, :, :], float32, float64, float64, float64)")
def _intermediate_count(d, lab8, band, to_lightness, l_skin, contrast):
    """``(intermediate, zone)``: of the pixels with ``0 < d <= band``, how many have a lightness
    between a quarter and three quarters of the way from the skin's (``l_skin``) to the lesion's."""
    intermediate = zone = 0
    for y in range(d.shape[0]):
        for x in range(d.shape[1]):
            if d[y, x] > 0 and d[y, x] <= band:
                zone += 1
                t = (lab8[y, x, 0] * to_lightness - l_skin) / contrast
                if t >= 0.25 and t <= 0.75:
                    intermediate += 1
    return intermediate, zone


_CHANNEL = {"L": "lightness L*", "a": "redness a*", "b": "yellowness b*"}
DESCRIPTIONS = {
    **{f"{region}_{ch}_{stat}": f"{'mean' if stat == 'mean' else 'spread (SD) of'} CIELAB {_CHANNEL[ch]} "
       f"{'in the lesion' if region == 'lesion' else 'in the skin ring around it'}"
       for region in ("lesion", "ring") for ch in ("L", "a", "b") for stat in ("mean", "std")},
    "delta_e": "colour difference (CIEDE2000) between lesion and surrounding skin",
    "delta_L": "lightness difference, lesion minus surrounding skin",
    "delta_b": "yellowness difference, lesion minus surrounding skin",
    "ring_ita": "individual typology angle (skin tone) of the surrounding skin",
    "lesion_ita": "individual typology angle of the lesion",
    "trichrome_width": "width (px) of the intermediate-colour zone between lesion and skin",
    "trichrome_fraction": "share of the border band in the intermediate-colour (trichrome) zone",
}
assert tuple(DESCRIPTIONS) == FEATURES


@register_family("color", version="5", defaults={"band_px": 24.0}, features=DESCRIPTIONS, order=50)
def color(case: CaseArrays, modality: str, band_px: float = 24.0) -> dict:
    """CIELAB statistics in lesion and ring, CIEDE2000 between them, ITA, trichrome zone width.

    Parameters
    ----------
    case : CaseArrays
        The case's photos, masks and shared views.
    modality : str
        Which photo (the family loops over its modalities).
    band_px : float, default 24.0
        Width of the perilesional ring (px).

    Returns
    -------
    dict
        ``{bare feature name: value}`` (the declared names).
    """
    return color_features(view(case, modality), band_px)
