"""The shared intermediates and fast paths of issue #17 against the computations they replaced.

Each test recomputes a result the slow, obvious way (the library call or the loop the code used
before) and checks the fast path gives the same values: bit for bit where the arithmetic is the
same, to the stated tolerance where only the summation order differs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import pywt
from skimage.feature import graycomatrix, graycoprops

from vitfeat.featurize import CaseArrays, get_family
from vitfeat.featurize import views as views_module
from vitfeat.featurize.families.border import (
    BIN_PX,
    _gradient,
    _inner_width,
    _inner_widths,
    border_features,
    sector_profiles,
)
from vitfeat.featurize.families.color import ciede2000
from vitfeat.featurize.families.firstorder import firstorder_features
from vitfeat.featurize.families.satellites import satellite_features
from vitfeat.featurize.families.shape import _box_counts, _padded, box_counting_dimension, shape_features
from vitfeat.featurize.families.texture import (
    N_LBP,
    _LBP_LUT,
    _RING,
    _entropies,
    _lbp_features,
    _quantised,
    _quantised_image,
    _region_histograms,
    _region_ids,
    cooccurrence,
    glcm_properties,
    haar_wavedec2,
    lbp_uniform,
)
from vitfeat.featurize.families.wood import percentiles_of_histogram
from vitfeat.featurize.registration import _best_satellite_map, _similarity, _skin_mask, register_pair
from vitfeat.featurize.views import ImageView, _single_component, coordinates, lab8_to_lab

RNG = np.random.default_rng(17)


def blobs(shape=(160, 180), n=4, holes=True, seed=0):
    """A bool mask of a few discs (one large), optionally with a hole and an island in it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    mask = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) < min(shape) / 4
    for _ in range(n - 1):
        cy, cx = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5)
        mask |= np.hypot(yy - cy, xx - cx) < rng.uniform(2, 6)
    if holes:
        mask &= ~(np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) < min(shape) / 10)
        mask |= np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) < 3  # an island in the hole
    return mask


def masks_to_try():
    yield blobs(seed=1)
    yield blobs(n=1, holes=False, seed=2)  # one piece
    yield blobs(n=1, holes=True, seed=3)  # ring + island: two pieces
    edge = np.zeros((90, 100), bool)
    edge[:40, :35] = True  # touching the image's corner
    edge[70:, 90:] = True
    yield edge
    yield np.ones((30, 40), bool)  # the whole photo
    diagonal = np.zeros((20, 20), bool)
    diagonal[[3, 4, 5, 6], [3, 4, 5, 6]] = True  # one 8-connected piece
    yield diagonal


def view_of(mask):
    grey = RNG.integers(0, 256, mask.shape, dtype=np.uint8)
    return ImageView(np.dstack([grey, grey // 2, 255 - grey]), mask)


@pytest.mark.parametrize("kernel", [cv2.DIST_MASK_5, cv2.DIST_MASK_PRECISE])
def test_distance_roi_equals_two_transforms_of_the_whole_roi_and_windows_hold_their_band(monkeypatch, kernel):
    monkeypatch.setattr(views_module, "DISTANCE_KERNEL", kernel)
    for mask in masks_to_try():
        v = view_of(mask)
        m = v.mask_roi.astype(np.uint8)
        expected = cv2.distanceTransform(1 - m, cv2.DIST_L2, kernel) - cv2.distanceTransform(m, cv2.DIST_L2, kernel)
        expected = expected - 0.5 + v.mask_roi
        # The inside transform runs on the mask's box: OpenCV's float rounding may differ by an ulp.
        np.testing.assert_allclose(v.distance_roi, expected, rtol=0, atol=2e-5)
        assert np.array_equal(v.distance_roi < 0, v.mask_roi)
        for px in (0.0, 1.0, 3.0, 24.0, 32.0, 48.0):
            window = np.zeros(expected.shape, bool)
            window[v.near(px)] = True
            assert not np.any((expected <= px) & ~window), px


@pytest.fixture
def without_ipp():
    """OpenCV without its IPP kernels: its plain chamfer transform sums exactly the same steps in any
    window, so windowed and whole-ROI distances can be compared bit for bit."""
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    yield
    cv2.ipp.setUseIPP(was)


@pytest.mark.parametrize("kernel", [cv2.DIST_MASK_5, cv2.DIST_MASK_PRECISE])
def test_distance_near_ring_and_boundary_equal_the_whole_roi_computation(monkeypatch, kernel, without_ipp):
    # The windowed transforms must give exactly the whole-ROI values inside every window a family
    # reads, including windows beyond the first (prefetched) one and windows clipped by the photo.
    monkeypatch.setattr(views_module, "DISTANCE_KERNEL", kernel)
    for mask in masks_to_try():
        whole = view_of(mask).distance_roi
        v = view_of(mask)
        for px in (32.0, 1.0, 3.0, 0.0, 48.0, 60.0, 200.0, 5.5):
            np.testing.assert_array_equal(v.distance_near(px), whole[v.near(px)], err_msg=str(px))
        fresh = view_of(mask)
        outer = 2.0 + fresh.ring_width
        np.testing.assert_array_equal(fresh.ring_roi, (whole > 2.0) & (whole <= outer))
        m = fresh.mask_roi.astype(np.uint8)
        eroded = cv2.erode(m, np.ones((3, 3), np.uint8), borderValue=1)
        np.testing.assert_array_equal(fresh.boundary_roi, fresh.mask_roi & (eroded == 0))


def test_distance_near_with_ipp_within_one_ulp_and_on_the_same_side_of_every_fixed_threshold():
    # OpenCV's IPP chamfer kernel may round a sum differently in another window (1 float32 ulp);
    # chamfer lengths (steps 1, 1.4, 2.1969) never come near the fixed thresholds the families
    # compare with (band edges, 0.5-px bin edges), so no comparison changes.
    for mask in masks_to_try():
        whole = view_of(mask).distance_roi
        v = view_of(mask)
        for px in (32.0, 1.0, 3.0, 48.0):
            got, expected = v.distance_near(px), whole[v.near(px)]
            np.testing.assert_allclose(got, expected, rtol=2.5e-7, atol=0)
            for threshold in (-3.0, 0.0, 1.0, 2.0, 3.0, 24.0, 32.0, 48.0):
                np.testing.assert_array_equal(got <= threshold, expected <= threshold)
            near = np.abs(expected) < 1e4  # a mask without background leaves OpenCV's "no zero pixel" value
            np.testing.assert_array_equal(np.floor((got[near] + 0.25) * 2), np.floor((expected[near] + 0.25) * 2))


def test_components_of_one_piece_masks_equal_opencv_labelling():
    for mask in masks_to_try():
        v = ImageView(np.zeros(mask.shape + (3,), np.uint8), mask)
        n, labels, stats, centroids = v.components
        reference = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        ref_n, ref_labels, ref_stats, ref_centroids = reference
        assert n == ref_n
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_array_equal(stats[1:], ref_stats[1:])
        np.testing.assert_array_equal(centroids[1:], ref_centroids[1:])


def test_components_box_holds_the_whole_labelling_within_the_mask_box():
    for mask in [*masks_to_try(), np.zeros((20, 30), bool)]:
        v = view_of(mask)
        n, box_labels, stats, centroids = v.components_box
        reference = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        ref_n, ref_labels, ref_stats, ref_centroids = reference
        assert n == ref_n
        np.testing.assert_array_equal(stats[1:], ref_stats[1:])
        np.testing.assert_array_equal(centroids[1:], ref_centroids[1:])
        (y0, x0), (h, w) = v.labels_origin, box_labels.shape
        np.testing.assert_array_equal(box_labels, ref_labels[y0:y0 + h, x0:x0 + w])
        beyond = np.ones(mask.shape, bool)
        beyond[y0:y0 + h, x0:x0 + w] = False
        assert not ref_labels[beyond].any()  # nothing lost beyond the box
        if mask.any():
            window = v.near(5.0)
            box, labels = v.labels_window(window)
            whole = ref_labels[v.roi][window]
            np.testing.assert_array_equal(labels, whole[box])
            rest = np.ones(whole.shape, bool)
            rest[box] = False
            assert not whole[rest].any()


class _WholeImageLabels(ImageView):
    """A view whose components carry the labels of the whole image (what the families read before)."""

    labels_origin = (0, 0)

    @property
    def components_box(self):
        return cv2.connectedComponentsWithStats(self.mask.view(np.uint8), connectivity=8)


def test_border_and_satellites_from_the_box_labels_equal_them_from_the_whole_labelling():
    for seed in range(6):
        mask = blobs(shape=(200, 220), n=9, holes=False, seed=seed)  # a holed ring is too thin for a profile
        grey = np.where(mask, 60, 190).astype(np.uint8)
        grey = cv2.GaussianBlur(grey, (0, 0), 2.0) + RNG.integers(0, 8, mask.shape, dtype=np.uint8)
        rgb = np.dstack([grey, grey, grey])
        box_view, whole_view = ImageView(rgb, mask), _WholeImageLabels(rgb, mask)
        assert box_view.components_box[0] > 2  # satellites: the labels are read
        got, expected = border_features(box_view), border_features(whole_view)
        assert np.isfinite(got["contrast"]) and np.isfinite(got["edge_gradient"])
        assert got.keys() == expected.keys()
        for key in got:
            np.testing.assert_equal(got[key], expected[key], err_msg=key)
        sat = satellite_features(mask, components=box_view.components_box, labels_origin=box_view.labels_origin)
        whole = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        assert sat == satellite_features(mask, components=whole)


def test_coordinates_equal_nonzero():
    where = RNG.random((37, 53)) > 0.6
    for got, expected in zip(coordinates(where), np.nonzero(where)):
        np.testing.assert_array_equal(got, expected)


def test_lab8_window_equals_the_slice_of_the_roi_conversion():
    v = view_of(blobs(seed=4))
    window = v.near(10.0)
    fresh = v.lab8_window(window)
    np.testing.assert_array_equal(fresh, v.lab8_roi[window])


@pytest.mark.parametrize("shape", [(64, 96), (63, 95), (101, 57), (9, 8)])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_haar_wavedec2_equals_pywavelets_bit_for_bit(shape, level):
    image = RNG.integers(0, 256, shape).astype(np.float32)
    expected = pywt.wavedec2(image, "haar", level=level)
    got = haar_wavedec2(image, level)
    np.testing.assert_array_equal(got[0], expected[0])
    for ours, theirs in zip(got[1:], expected[1:]):
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(57, 83), (1, 9), (9, 1), (2, 2), (140, 120)])
@pytest.mark.parametrize("levels", [2, 17, 33, 256])
def test_cooccurrence_equals_scikit_image_graycomatrix(shape, levels):
    q = RNG.integers(0, levels, shape).astype(np.uint8)
    q[: shape[0] // 3] = 0  # a block of one level, as outside the regions
    expected = graycomatrix(q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels, symmetric=True)
    got = cooccurrence(q, levels)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    strided = q.T  # a view with non-unit strides: the shifted views OpenCV histograms are views too
    expected = graycomatrix(strided, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels, symmetric=True)
    np.testing.assert_array_equal(cooccurrence(strided, levels), expected)


def _histogram_entropy(row: np.ndarray) -> float:
    counts, _ = np.histogram(row, 16)
    p = counts[counts > 0] / row.size
    return float(-np.sum(p * np.log2(p)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entropies_equal_np_histogram_per_row_and_constant_rows_give_zero(dtype):
    rows = (RNG.standard_normal((3, 2501)) * [[0.01], [5.0], [300.0]]).astype(dtype)
    rows[1, ::7] = np.round(rows[1, ::7])  # repeated values, some on bin edges
    got = _entropies(rows)
    for value, row in zip(got, rows):
        assert value == pytest.approx(_histogram_entropy(row), rel=1e-12)
    rows[0] = 4.0  # a constant subband (a saturated region): entropy 0, no error
    assert _entropies(rows) == [0.0, *got[1:]]
    assert np.isnan(_entropies(rows[:, :1])).all()


def _lbp(codes: np.ndarray, region: np.ndarray) -> dict:
    """LBP features of one region from its own masked histogram (what the one-pass path replaced)."""
    counts = cv2.calcHist([np.ascontiguousarray(codes)], [0], region.view(np.uint8), [N_LBP], [0, N_LBP]).ravel()
    return _lbp_features(counts.astype(np.int64))


def test_region_histograms_equal_one_masked_histogram_per_region():
    mask = blobs(seed=8)
    ring = ~mask & (RNG.random(mask.shape) > 0.3)
    empty = np.zeros(mask.shape, bool)
    grey = RNG.integers(0, 256, mask.shape, dtype=np.uint8)
    codes = lbp_uniform(grey)
    for values, n_bins in ((grey, 256), (codes, 10)):
        got = _region_histograms(values, [mask, ring, empty], n_bins)
        for counts, region in zip(got, (mask, ring, empty)):
            expected = cv2.calcHist([values], [0], region.view(np.uint8), [n_bins], [0, n_bins]).ravel()
            np.testing.assert_array_equal(counts, expected.astype(np.int64))
        ids = _region_ids([mask, ring, empty])  # given by the caller: the same counts
        np.testing.assert_array_equal(_region_histograms(values, [mask, ring, empty], n_bins, ids), got)
    for counts, region in zip(_region_histograms(codes, [mask, ring], 10), (mask, ring)):
        assert _lbp_features(counts) == _lbp(codes, region)


def test_skin_mask_dilated_on_the_lesion_box_equals_dilating_the_whole_mask():
    for mask in masks_to_try():
        for margin in (1, 7):
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
            expected = cv2.compare(cv2.dilate(mask.astype(np.uint8), kernel), 0, cv2.CMP_EQ)
            np.testing.assert_array_equal(_skin_mask(mask, mask.shape, margin), expected)


def test_glcm_properties_equal_scikit_image_graycoprops():
    P = RNG.integers(0, 50, (16, 16, 3, 4)).astype(np.float64)
    P[:, :, 1] = 0  # an empty region
    P[:, :, 2] = 0
    P[5, 5, 2] = 7  # one grey level only: zero standard deviation
    P /= np.maximum(P.sum(axis=(0, 1), keepdims=True), 1)
    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    for prop, got in zip(props, glcm_properties(P)):
        np.testing.assert_array_equal(got, graycoprops(P, prop))


def test_lbp_equals_the_numpy_ring_definition_bit_for_bit():
    grey = RNG.integers(0, 256, (41, 67)).astype(np.uint8)
    padded = np.pad(grey, 1, mode="edge")
    h, w = grey.shape
    pattern = np.zeros((h, w), np.uint8)
    for bit, (dy, dx) in enumerate(_RING):
        pattern |= (padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] >= grey).astype(np.uint8) << bit
    np.testing.assert_array_equal(lbp_uniform(grey), _LBP_LUT[pattern])
    np.testing.assert_array_equal(lbp_uniform(grey[3:30, 5:60]), lbp_uniform(np.ascontiguousarray(grey[3:30, 5:60])))


def test_sector_widths_equal_one_profile_at_a_time():
    for trial in range(300):
        n_bins = int(RNG.integers(4, 90))
        centres = -0.5 * (int(RNG.integers(2, 40)) + 0.5) + (np.arange(n_bins) + 0.5) * 0.5
        profiles = np.tanh(-centres / RNG.uniform(0.5, 6))[None, :] * RNG.uniform(-50, 50) + 100
        profiles = profiles + RNG.normal(0, RNG.uniform(0, 5), (12, n_bins))
        profiles[RNG.random(profiles.shape) < RNG.uniform(0, 0.4)] = np.nan  # empty bins
        if trial % 10 == 0:
            profiles[:] = 100.0  # no transition at all
        plateau_from = RNG.uniform(1, 15)
        expected = np.array([_inner_width(centres, row, plateau_from) for row in profiles])
        np.testing.assert_allclose(_inner_widths(centres, profiles, plateau_from), expected, rtol=1e-11, atol=0)


def test_satellite_gaps_equal_the_exact_distance_transform():
    for seed in range(20):
        mask = blobs(n=8, holes=seed % 2 == 0, seed=seed)
        n, labels, stats, _ = components = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        main = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        exact = cv2.distanceTransform((labels != main).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        r_eq = np.sqrt(stats[main, cv2.CC_STAT_AREA] / np.pi)
        gaps = [exact[labels == k].min() / r_eq for k in range(1, n)
                if k != main and 8 <= stats[k, cv2.CC_STAT_AREA] <= 0.25 * stats[main, cv2.CC_STAT_AREA]
                and exact[labels == k].min() <= 4.0 * r_eq]
        got = satellite_features(mask, components=components)
        assert got["count"] == len(gaps)
        if gaps:
            assert got["mean_distance"] == pytest.approx(np.mean(gaps), rel=1e-6)


def _best_satellite_map_loop(sat_c, sat_w, main_c, main_w, scale_range, tol):
    """The search as it was written before it was vectorised (one proposal at a time)."""
    best, best_key = None, None
    for i1 in range(len(sat_c)):
        for i2 in range(i1 + 1, len(sat_c)):
            for j1 in range(len(sat_w)):
                for j2 in range(len(sat_w)):
                    if j1 == j2:
                        continue
                    m = _similarity(sat_c[[i1, i2]], sat_w[[j1, j2]])
                    if not scale_range[0] <= np.hypot(m[0, 0], m[1, 0]) <= scale_range[1]:
                        continue
                    mapped = sat_c @ m[:, :2].T + m[:, 2]
                    dist = np.linalg.norm(mapped[:, None, :] - sat_w[None, :, :], axis=2)
                    matched = dist.min(axis=1) <= tol
                    main_err = float(np.linalg.norm(main_c @ m[:, :2].T + m[:, 2] - main_w))
                    key = (int(matched.sum()), -main_err)
                    if best_key is None or key > best_key:
                        best_key, best = key, (matched, dist.argmin(axis=1), main_err)
    return best


def test_vectorised_landmark_search_equals_the_loop():
    for _ in range(25):
        sat_c = RNG.uniform(0, 400, (int(RNG.integers(2, 9)), 2))
        angle, scale = RNG.uniform(-0.3, 0.3), RNG.uniform(0.7, 1.4)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        sat_w = sat_c @ rotation.T + RNG.uniform(-30, 30, 2) + RNG.normal(0, 1.0, sat_c.shape)
        keep = RNG.random(len(sat_w)) > 0.2  # some satellites not seen under Wood's lamp ...
        sat_w = np.concatenate([sat_w[keep], RNG.uniform(0, 400, (int(RNG.integers(0, 3)), 2))])  # ... others extra
        if len(sat_w) < 2:
            continue
        main_c, main_w = np.array([200.0, 200.0]), np.array([200.0, 200.0]) @ rotation.T
        expected = _best_satellite_map_loop(sat_c, sat_w, main_c, main_w, (0.6, 1.6), 8.0)
        got = _best_satellite_map(sat_c, sat_w, main_c, main_w, (0.6, 1.6), 8.0)
        if expected is None:
            assert got is None
            continue
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1][got[0]], expected[1][expected[0]])
        assert got[2] == pytest.approx(expected[2], rel=1e-9, abs=1e-9)


def test_registration_from_the_views_grey_equals_registration_from_rgb():
    texture = cv2.GaussianBlur(RNG.integers(0, 256, (300, 320, 3), dtype=np.uint8), (0, 0), 1.5)
    shifted = np.roll(texture, (7, -11), axis=(0, 1))
    from_rgb = register_pair(texture, shifted)
    from_grey = register_pair(cv2.cvtColor(texture, cv2.COLOR_RGB2GRAY), cv2.cvtColor(shifted, cv2.COLOR_RGB2GRAY))
    assert from_rgb.method == from_grey.method == "orb_similarity"
    np.testing.assert_array_equal(from_rgb.matrix, from_grey.matrix)
    np.testing.assert_allclose(from_grey.matrix[:, 2], [-11, 7], atol=1.0)


def test_firstorder_family_histogram_equals_the_pixel_values():
    mask = blobs(seed=5)
    rgb = RNG.integers(0, 256, mask.shape + (3,), dtype=np.uint8)
    got = get_family("firstorder")(CaseArrays("c", rgb, None, mask, None))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    expected = firstorder_features(grey[mask])
    assert {k.removeprefix("clinical_firstorder_"): v for k, v in got.items() if k.startswith("clinical_")} == expected


def test_box_counts_equal_counting_distinct_boxes():
    for _ in range(50):
        points = RNG.integers(-5, int(RNG.integers(5, 400)), (int(RNG.integers(1, 2000)), 2))
        n_sizes = int(RNG.integers(1, 8))
        expected = [len({(a, b) for a, b in (points // s).tolist()}) for s in 2 ** np.arange(1, n_sizes + 1)]
        assert _box_counts(points, n_sizes) == expected


def test_shape_features_given_box_and_components_equal_the_plain_call():
    mask = blobs(seed=6)
    v = ImageView(np.zeros(mask.shape + (3,), np.uint8), mask)
    plain = shape_features(mask)
    shared = shape_features(mask, components=v.components, box=v.mask_box)
    assert plain.keys() == shared.keys()
    for key in plain:
        assert shared[key] == pytest.approx(plain[key], rel=1e-12, nan_ok=True), key


def test_wood_percentiles_from_the_histogram_equal_numpy_percentile():
    for trial in range(500):
        values = RNG.integers(0, 256 if trial % 2 else 4, int(RNG.integers(1, 2000))).astype(np.float32)
        qs = [25, 50, 75, 95] if trial % 3 else list(RNG.uniform(0, 100, 4))
        counts = np.bincount(values.astype(np.int64), minlength=256)
        np.testing.assert_array_equal(percentiles_of_histogram(counts, qs), np.percentile(values, qs))


def test_glcm_levels_by_table_equal_the_gathered_quantisation():
    grey = RNG.integers(0, 256, (70, 90)).astype(np.uint8)
    yy, xx = np.indices(grey.shape)
    r = np.hypot(yy - 35, xx - 45)
    regions = [r < 15, (r >= 18) & (r < 30), r > 1000]  # the last one empty
    q, present = _quantised_image(grey, regions, 16)
    assert present == [0, 1]
    expected = np.zeros(grey.shape, np.uint8)
    for k in present:
        expected[regions[k]] = _quantised(grey, regions[k], 16) + 1 + k * 16
    np.testing.assert_array_equal(q, expected)


def test_ciede2000_equals_scikit_image():
    from skimage.color import deltaE_ciede2000

    pairs = [RNG.uniform([0, -80, -80], [100, 80, 80], (2, 3)) for _ in range(2000)]
    pairs += [np.array([[50.0, 0.0, 0.0], [60.0, 0.0, 0.0]]),  # no chroma
              np.array([[50.0, 10.0, -0.1], [50.0, 10.0, 0.1]]),  # hue across 0
              np.array([[50.0, -10.0, 0.1], [55.0, -10.0, -0.1]])]  # hue across pi
    for lab1, lab2 in pairs:
        assert ciede2000(lab1, lab2) == pytest.approx(float(deltaE_ciede2000(lab1, lab2)), rel=1e-12, abs=1e-12)


def test_numpy_stand_ins_equal_numpy_bit_for_bit():
    for n in (2, 3, 7, 150):
        f = RNG.normal(size=n)
        np.testing.assert_array_equal(_gradient(f, 0.5), np.gradient(f, 0.5))
    for mask in masks_to_try():
        np.testing.assert_array_equal(_padded(mask), np.pad(mask, 1))


def test_box_counting_slope_equals_polyfit():
    for mask in masks_to_try():
        points = np.argwhere(mask ^ cv2.erode(mask.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool))
        extent = int(np.ptp(points, axis=0).max()) + 1 if len(points) else 0
        sizes = 2 ** np.arange(1, max(2, int(np.log2(max(extent, 4))) - 1))
        if len(points) < 16 or len(sizes) < 2:
            assert np.isnan(box_counting_dimension(points))
            continue
        expected = np.polyfit(np.log(1.0 / sizes), np.log(_box_counts(points, len(sizes))), 1)[0]
        assert box_counting_dimension(points) == pytest.approx(expected, rel=1e-12)


def test_mask_box_and_the_one_piece_background_row_equal_the_labelling():
    for mask in masks_to_try():
        ys, xs = np.nonzero(mask)
        v = ImageView(np.zeros(mask.shape + (3,), np.uint8), mask)
        assert v.mask_box == (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        crop = np.ascontiguousarray(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]).view(np.uint8)
        single = _single_component(crop)
        if single is None:
            continue
        _, _, ref_stats, ref_centroids = cv2.connectedComponentsWithStats(crop, connectivity=8)
        if ref_stats[0, cv2.CC_STAT_AREA] == 0:  # no background: OpenCV's row 0 is undefined, ours is 0s
            assert not single[2][0].any()
            continue
        np.testing.assert_array_equal(single[2], ref_stats)  # the background's row 0 too
        np.testing.assert_allclose(single[3], ref_centroids, rtol=1e-12)


def test_entropies_of_ragged_rows_equal_one_call_per_row():
    rows = [RNG.standard_normal(int(n)).astype(np.float32) * 10 for n in RNG.integers(0, 3000, 21)]
    rows[3] = np.full(50, 2.5, np.float32)  # constant
    rows[5], rows[7] = rows[5][:1], rows[7][:0]  # too short: NaN
    got = _entropies(rows)  # 21 rows x 16 bins > 256: the bincount path
    expected = [_entropies(row[None, :])[0] for row in rows]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(_entropies(rows[:12]), expected[:12])  # the 8-bit histogram path
    for value, row in zip(got, rows):
        if row.size >= 2 and row.min() < row.max():
            assert value == pytest.approx(_histogram_entropy(row), rel=1e-12)


def _sector_profiles_numpy(v, r_in, band_px, start, n_bins, n_sectors):
    """The numpy formulation the compiled band pass replaced (border family, version 4)."""
    _, _, _, centroids = v.components_box
    main = v.main_label
    win = v.near(band_px)
    d = v.distance_near(band_px)
    band = (d > -r_in) & (d <= band_px)
    if v.components_box[0] > 2:
        box, labels = v.labels_window(win)
        band[box] &= (labels == main) | (labels == 0)
    flat = np.flatnonzero(band)
    dd = np.ascontiguousarray(d).ravel().take(flat)
    grey = np.ascontiguousarray(v.grey_u8[v.roi][win]).ravel().take(flat)
    ys = flat // band.shape[1] + win[0].start
    xs = flat % band.shape[1] + win[1].start
    position = (dd - start) / BIN_PX
    idx = np.clip(position, 0, n_bins - 1).astype(np.intp)
    cx, cy = centroids[main] - np.array(v.roi_origin[::-1])
    angle = np.arctan2(ys.astype(np.float32) - np.float32(cy), xs.astype(np.float32) - np.float32(cx))
    sector = ((angle + np.pi) * (n_sectors / (2 * np.pi))).astype(np.intp)
    sector[sector == n_sectors] = 0
    key = sector * n_bins + idx
    counts = np.bincount(key, minlength=n_sectors * n_bins).reshape(n_sectors, n_bins)
    sums = np.bincount(key, grey, n_sectors * n_bins).reshape(n_sectors, n_bins)
    return counts, sums


def _profile_cases():
    for seed in range(4):
        mask = blobs(shape=(200, 220), n=9, holes=seed % 2 == 1, seed=seed)  # satellites, holes
        grey = np.where(mask, 60, 190).astype(np.uint8)
        grey = cv2.GaussianBlur(grey, (0, 0), 2.0) + RNG.integers(0, 8, mask.shape, dtype=np.uint8)
        yield ImageView(np.dstack([grey, grey, grey]), mask)
    for mask in masks_to_try():
        if mask.sum() >= 16:
            yield view_of(mask)


@pytest.mark.parametrize("band_px, r_in", [(32.0, 3.0), (32.0, 17.3), (12.5, 7.0)])
def test_compiled_sector_profiles_equal_the_numpy_formulation_bit_for_bit(band_px, r_in):
    n_sectors = 12
    start = -BIN_PX * (np.ceil(r_in / BIN_PX) + 0.5)
    n_bins = int(np.ceil((band_px - start) / BIN_PX))
    banded = 0
    for v in _profile_cases():
        counts, sums = sector_profiles(v, r_in, band_px, start, n_bins, n_sectors)
        expected_counts, expected_sums = _sector_profiles_numpy(v, r_in, band_px, start, n_bins, n_sectors)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_array_equal(sums, expected_sums)
        banded += (counts.sum(axis=1) > 0).all()  # every sector holds band pixels
    assert banded >= 6  # the comparison is not between empty profiles


def _trichrome_numpy(v, band_px=24.0):
    """The numpy formulation of the colour family's trichrome zone (version 5) that the compiled
    passes replaced: (trichrome_width, trichrome_fraction), NaN where undefined."""
    outer = v.near(max(2.0 + v.ring_width, 2 * band_px))
    lab8_outer = v.lab8_window(outer)
    l_lesion = lab8_to_lab(cv2.meanStdDev(lab8_outer[views_module.within(v.near(2.0 + v.ring_width), outer)],
                                          mask=v.mask_roi[v.near(2.0 + v.ring_width)].view(np.uint8))[0].ravel())[0]
    win = v.near(2 * band_px)
    d = v.distance_near(2 * band_px)
    far = (d > band_px) & (d <= 2 * band_px)
    if not far.any():
        return float("nan"), float("nan")
    L8 = np.ascontiguousarray(lab8_outer[views_module.within(win, outer)][..., 0])
    l_skin = cv2.mean(L8, mask=far.view(np.uint8))[0] * 100.0 / 255.0
    if abs(l_lesion - l_skin) <= 1.0:
        return float("nan"), float("nan")
    zone = (d > 0) & (d <= band_px)
    t = (L8[zone] * (100.0 / 255.0) - l_skin) / (l_lesion - l_skin)
    intermediate = np.count_nonzero((t >= 0.25) & (t <= 0.75))
    return (intermediate / max(np.count_nonzero(v.boundary_roi), 1), intermediate / max(np.count_nonzero(zone), 1))


def test_compiled_trichrome_zone_equals_the_numpy_formulation():
    from vitfeat.featurize.families.color import color_features

    defined = 0
    for v in _profile_cases():
        if not v.ring_roi.any():
            continue
        got = color_features(v)
        expected = _trichrome_numpy(v)
        np.testing.assert_equal((got["trichrome_width"], got["trichrome_fraction"]), expected)
        defined += np.isfinite(expected[0])
    assert defined >= 4  # the blobs (the noise images have no lesion-skin contrast): not only NaN compared


def test_compiled_max_distance_equals_pdist():
    from scipy.spatial.distance import pdist

    from vitfeat.featurize.families.shape import _max_distance

    for n in (2, 3, 17, 240):
        points = RNG.integers(-300, 300, (n, 2)).astype(np.float64) + RNG.random((n, 2)).round(1)
        assert _max_distance(points) == pdist(points).max()


def test_compiled_passes_equal_the_numpy_formulations_on_real_photos(shared_data):
    """The border band and the trichrome zone on real vitiligo and dermoscopy photos with their
    hand-drawn masks (irregular outlines, several pieces, lesions at the photo's edge)."""
    from vitfeat.dataset import read_image, read_mask
    from vitfeat.featurize.families.color import color_features

    checked = 0
    for folder, stride in (("vitiligo-seg", 12), ("ph2", 40), ("isic2017", 20)):
        labels = pd.read_csv(shared_data / folder / "labels.csv", dtype=str)
        for row in labels.iloc[::stride].itertuples():
            v = ImageView(read_image(shared_data / folder / row.image), read_mask(shared_data / folder / row.mask))
            if not v.has_lesion or v.area < 16:
                continue
            r_in = float(np.clip(0.8 * np.sqrt(v.components_box[2][v.main_label, 4] / np.pi), 3.0, 32.0))
            start = -BIN_PX * (np.ceil(r_in / BIN_PX) + 0.5)
            n_bins = int(np.ceil((32.0 - start) / BIN_PX))
            for got, expected in zip(sector_profiles(v, r_in, 32.0, start, n_bins, 12),
                                     _sector_profiles_numpy(v, r_in, 32.0, start, n_bins, 12)):
                np.testing.assert_array_equal(got, expected, err_msg=row.image)
            if v.ring_roi.any():
                colour = color_features(v)
                np.testing.assert_equal((colour["trichrome_width"], colour["trichrome_fraction"]),
                                        _trichrome_numpy(v), err_msg=row.image)
            checked += 1
    assert checked >= 15
