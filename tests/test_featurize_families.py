"""Feature families on small arrays whose answers are known by construction."""

import re

import cv2
import numpy as np
import pytest

from vitfeat.featurize import (
    DEFAULT_FAMILIES,
    CaseArrays,
    available_families,
    get_family,
)
from vitfeat.featurize.families.border import border_features
from vitfeat.featurize.families.firstorder import firstorder_features
from vitfeat.featurize.families.satellites import satellite_features
from vitfeat.featurize.families.shape import marching_squares_measures, shape_features
from vitfeat.featurize.families.texture import lbp_uniform
from vitfeat.featurize.masks import (
    auto_clinical_mask,
    auto_wood_mask,
    parse_mask_source,
)
from vitfeat.featurize.registration import register_pair
from vitfeat.featurize.views import ImageView

NAME = re.compile(r"^(clinical|wood|pair)_[a-z]+_[A-Za-z0-9_]+$")


def disc(size=128, radius=30, centre=None):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = centre or (size / 2, size / 2)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def blurred_lesion(size=128, radius=30, blur_sigma=0.0, skin=90, lesion=200):
    """Grey RGB photo of a bright disc on darker skin with a Gaussian-blurred edge, and its mask."""
    mask = disc(size, radius)
    img = np.where(mask, lesion, skin).astype(np.float32)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    rgb = np.repeat(np.clip(img + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return rgb, mask


def test_registry_lists_every_handcrafted_family_and_rejects_unknown():
    assert set(DEFAULT_FAMILIES) <= set(available_families())
    with pytest.raises(KeyError, match="unknown feature family 'nope'"):
        get_family("nope")


def test_every_family_names_columns_by_modality_and_gives_nan_without_wood():
    rgb, mask = blurred_lesion(blur_sigma=1.0)
    paired = CaseArrays("c1", rgb, rgb.copy(), mask, mask.copy())
    single = CaseArrays("c2", rgb, None, mask, None)
    for name in DEFAULT_FAMILIES:
        fam = get_family(name)
        full, alone = fam(paired), fam(single)
        assert full and all(NAME.match(k) for k in full), name
        assert list(alone) == list(full), f"{name}: a single-image case must give the same columns"
        wood_cols = [k for k in alone if k.startswith(("wood_", "pair_"))]
        assert all(np.isnan(alone[k]) for k in wood_cols), name
        clinical = [k for k in full if k.startswith("clinical_")]
        if clinical:
            assert np.isfinite([full[k] for k in clinical]).mean() >= 0.75, name


def test_shape_of_a_disc_and_of_a_square():
    f = shape_features(disc(200, 50))
    # Marching squares cuts pixel corners at 45 degrees, so a digital disc's perimeter comes out
    # ~5 % long (pyradiomics shares this): circularity ~0.9, not 1.
    assert 0.85 < f["circularity"] <= 1.0
    assert f["solidity"] == pytest.approx(1.0, abs=0.02)
    assert f["eccentricity"] < 0.1 and f["n_components"] == 1
    assert f["major_axis"] == pytest.approx(100, rel=0.02)  # 4 sqrt(r^2/4) = 2r for a disc
    assert f["mesh_area"] == pytest.approx(np.pi * 50**2, rel=0.01)
    square = np.zeros((100, 100), bool)
    square[20:80, 20:80] = True
    s = shape_features(square)
    assert s["pixel_area"] == 3600 and s["area_fraction"] == pytest.approx(0.36)
    assert s["circularity"] == pytest.approx(np.pi / 4, rel=0.03) and s["circularity"] < f["circularity"]
    ragged = disc(200, 50) & ~(np.indices((200, 200)).sum(0) % 9 < 2)  # a comb-like edge
    assert shape_features(ragged)["fourier_energy"] > f["fourier_energy"]
    empty = shape_features(np.zeros((10, 10), bool))
    assert empty["area_fraction"] == 0 and np.isnan(empty["perimeter"])


def test_marching_squares_measures_equal_traced_contours():
    # The fast path sums per-cell lengths and areas; tracing the contours (scikit-image, the
    # convention pyradiomics shares) must give the same perimeter, area and vertex set, including
    # holes, saddle cells (two diagonal pixels) and lesions touching the image border.
    from skimage.measure import find_contours

    rng = np.random.default_rng(3)
    masks = [rng.random((30, 40)) < p for p in (0.2, 0.5, 0.8)]
    masks.append(np.eye(6, dtype=bool))  # a chain of saddles
    ring = disc(60, 25) & ~disc(60, 10)  # a hole
    masks += [ring, np.ones((8, 8), bool)]
    for mask in masks:
        contours = find_contours(np.pad(mask.astype(float), 1), 0.5)
        traced_len = sum(np.hypot(*np.diff(c, axis=0).T).sum() for c in contours)
        traced_area = abs(sum(0.5 * (np.dot(c[:, 1], np.roll(c[:, 0], -1)) - np.dot(c[:, 0], np.roll(c[:, 1], -1)))
                              for c in contours))
        traced_vertices = {tuple(v) for c in contours for v in np.round(c - 1.0, 6)}
        perimeter, area, vertices = marching_squares_measures(mask)
        assert perimeter == pytest.approx(traced_len, rel=1e-12)
        assert area == pytest.approx(traced_area, rel=1e-12)
        assert {tuple(v) for v in np.round(vertices, 6)} == traced_vertices


def test_border_transition_width_measures_the_blur():
    widths = []
    for sigma in (0.8, 2.0, 4.0):
        rgb, mask = blurred_lesion(size=160, radius=40, blur_sigma=sigma)
        f = border_features(ImageView(rgb, mask))
        widths.append(f["transition_width"])
        # A Gaussian-blurred step's 10-90 % width is 2.563 sigma.
        if sigma >= 2:
            assert f["transition_width"] == pytest.approx(2.563 * sigma, rel=0.2)
            assert f["inner_transition_width"] == pytest.approx(2.563 * sigma, rel=0.25)
    assert widths[0] < widths[1] < widths[2]


def test_satellites_are_small_components_near_the_main_lesion():
    mask = disc(200, 40)
    for cy, cx in ((100, 160), (40, 100), (160, 60)):
        mask |= disc(200, 4, (cy, cx))
    mask |= disc(200, 1, (10, 10))  # a 5-px speck: noise, not a macule
    f = satellite_features(mask)
    assert f["count"] == 3
    assert f["area_fraction"] == pytest.approx(3 * 49 / disc(200, 40).sum(), rel=0.1)


def test_firstorder_matches_numpy_definitions():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, 3001).astype(np.uint8)
    f = firstorder_features(x)
    xf = x.astype(float)
    assert f["mean"] == pytest.approx(xf.mean())
    assert f["p10"] == pytest.approx(np.percentile(xf, 10))
    assert f["iqr"] == pytest.approx(np.subtract(*np.percentile(xf, [75, 25])))
    assert f["variance"] == pytest.approx(xf.var())
    assert f["energy"] == pytest.approx(np.sum(xf**2))
    assert f == pytest.approx(firstorder_features(xf))  # 8-bit histogram path = generic path


def test_lbp_codes_are_uniform_patterns():
    flat = lbp_uniform(np.full((8, 8), 7, np.uint8))
    assert (flat == 8).all()  # all neighbours >= centre
    rng = np.random.default_rng(1)
    codes = lbp_uniform(rng.integers(0, 255, (32, 32)).astype(np.uint8))
    assert codes.min() >= 0 and codes.max() <= 9 and len(np.unique(codes)) > 5


def test_wood_and_color_see_contrast_and_depigmentation():
    rgb, mask = blurred_lesion(blur_sigma=1.0, skin=60, lesion=220)
    case = CaseArrays("c", rgb, rgb.copy(), mask, mask.copy())
    w = get_family("wood")(case)
    assert w["wood_fluorescence_contrast_ratio"] == pytest.approx(220 / 60, rel=0.1)
    assert w["wood_fluorescence_michelson"] == pytest.approx((220 - 60) / 280, rel=0.1)
    c = get_family("color")(case)
    assert c["clinical_color_delta_L"] > 30 and c["clinical_color_delta_e"] > 20


def landmark_photo(size=256, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 120, np.float32)
    img += cv2.resize(rng.normal(0, 12, (16, 16)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        cv2.circle(img, tuple(int(v) for v in rng.integers(10, size - 10, 2)), int(rng.integers(2, 6)),
                   float(rng.uniform(30, 80)), -1)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_registration_recovers_a_known_camera_move():
    clinical = landmark_photo()
    M = cv2.getRotationMatrix2D((128, 128), 6.0, 1.08)
    M[:, 2] += (5, -4)
    # Another exposure: darker, compressed and gamma-curved (landmarks stay darker than skin).
    exposed = (255 * (0.15 + 0.5 * (clinical / 255.0) ** 1.4)).astype(np.uint8)
    wood = cv2.warpAffine(exposed, M, (256, 256), borderMode=cv2.BORDER_REFLECT)
    reg = register_pair(clinical, wood)
    assert reg.method == "orb_similarity"
    assert np.sqrt(reg.area_scale) == pytest.approx(1.08, abs=0.01)
    pts = np.array([[60.0, 70.0, 1.0], [200.0, 180.0, 1.0]])
    np.testing.assert_allclose(pts @ reg.matrix.T, pts @ M.T, atol=1.5)


def test_registration_falls_back_to_centroids_on_featureless_images():
    flat = np.full((64, 64, 3), 100, np.uint8)
    m1, m2 = disc(64, 10, (30, 30)), disc(64, 10, (34, 37))
    reg = register_pair(flat, flat, m1, m2)
    assert reg.method == "centroid" and reg.area_scale == pytest.approx(1.0)
    assert reg.matrix[:, 2] == pytest.approx([7, 4], abs=0.5)


def test_auto_masks_find_bright_fluorescence_and_depigmentation():
    mask = disc(128, 30)
    wood = np.zeros((128, 128, 3), np.uint8)
    wood[...] = (40, 20, 70)
    wood[mask] = (200, 210, 250)
    auto = auto_wood_mask(wood)
    assert (auto & mask).sum() / (auto | mask).sum() > 0.95
    clinical = np.zeros((128, 128, 3), np.uint8)
    clinical[...] = (170, 120, 95)  # tan skin
    clinical[mask] = (235, 220, 210)  # depigmented
    auto = auto_clinical_mask(clinical)
    assert (auto & mask).sum() / (auto | mask).sum() > 0.95
    # A white wall beside the arm is lighter than the lesion: it must not become the lesion.
    clinical[:, 100:] = (250, 250, 250)
    auto = auto_clinical_mask(clinical)
    assert not auto[:, 100:].any() and (auto & mask).sum() / mask.sum() > 0.9


def test_mask_source_parsing():
    assert parse_mask_source("auto") == ("auto", None)
    assert parse_mask_source("model:/x/best.pt") == ("model", "/x/best.pt")
    with pytest.raises(ValueError, match="unknown mask source"):
        parse_mask_source("magic")


def test_satellites_serve_as_landmarks_when_the_skin_has_none():
    clinical = disc(256, 40)
    for cy, cx in ((128, 200), (50, 110), (200, 70)):
        clinical |= disc(256, 5, (cy, cx))
    M = cv2.getRotationMatrix2D((128, 128), -5.0, 0.93)
    M[:, 2] += (6, 3)
    wood = cv2.warpAffine(clinical.astype(np.uint8), M, (256, 256), flags=cv2.INTER_NEAREST) > 0
    flat = np.full((256, 256, 3), 90, np.uint8)  # featureless photos: ORB finds nothing
    reg = register_pair(flat, flat, clinical, wood)
    assert reg.method == "satellite_landmarks" and reg.n_inliers == 3
    assert np.sqrt(reg.area_scale) == pytest.approx(0.93, abs=0.01)
    np.testing.assert_allclose(reg.matrix[:, :2], M[:, :2], atol=0.02)
    np.testing.assert_allclose(reg.matrix[:, 2], M[:, 2], atol=2.0)
