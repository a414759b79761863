"""Automatic clinical masks v4: plain backdrops are not skin, collages are split into panels."""

import numpy as np
import pytest

from vitfeat.featurize.masks import (
    AUTO_MASK_QUALITY,
    AUTO_MASK_VERSION,
    auto_clinical_mask,
    background_region,
    collage_panels,
)

V3 = {"background_flat_sd": None, "panel_keep": None}
TAN, LESION, BEIGE = (170, 120, 95), (232, 205, 195), (236, 216, 196)


def _dice(pred, ref):
    return 2 * (pred & ref).sum() / (pred.sum() + ref.sum())


def _disc(shape, radius, centre):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius ** 2


def _skin(shape, colour, rng, sd=10.0):
    """Skin with pores: one grey-level noise on the three channels (texture real skin has, walls have not)."""
    noise = rng.normal(0, sd, shape)[..., None]
    return np.clip(np.asarray(colour, float) + noise, 0, 255)


def _arm_on_backdrop(size=160, seed=0):
    """A tan arm (a band across the photo) with a depigmented patch, on a flat beige wall lighter than the arm."""
    rng = np.random.default_rng(seed)
    photo = np.empty((size, size, 3))
    photo[...] = BEIGE  # the wall passes every skin-colour test and is lighter than the arm
    arm = np.zeros((size, size), bool)
    arm[size // 4: 3 * size // 4] = True
    photo[arm] = _skin((size, size), TAN, rng)[arm]
    lesion = _disc((size, size), size // 8, (size // 2, size // 2))
    photo[lesion] = _skin((size, size), LESION, rng)[lesion]
    return photo.astype(np.uint8), lesion


def test_backdrop_is_found_and_is_not_called_lesion_where_v3_fails():
    photo, lesion = _arm_on_backdrop()
    wall = np.ones(lesion.shape, bool)
    wall[40:120] = False
    found = background_region(photo)
    assert found[wall].mean() > 0.85 and not found[~wall].any()  # the wall, less a rim by the arm
    old, new = auto_clinical_mask(photo, **V3), auto_clinical_mask(photo)
    assert _dice(old, lesion) < 0.5  # v3: the wall is the lightest "skin", so it becomes lesion
    assert _dice(new, lesion) > 0.85 and not new[wall].any()
    assert np.array_equal(new, auto_clinical_mask(photo))  # deterministic: it is part of the cache key


def test_textured_close_up_has_no_backdrop_and_keeps_v3_behaviour():
    rng = np.random.default_rng(1)
    photo = _skin((128, 128), TAN, rng)
    lesion = _disc((128, 128), 30, (64, 64))
    photo[lesion] = _skin((128, 128), LESION, rng)[lesion]
    photo = photo.astype(np.uint8)
    assert not background_region(photo).any()  # skin up to the edge, with pores: no wall
    new = auto_clinical_mask(photo)
    assert _dice(new, lesion) > 0.9
    assert np.array_equal(new, auto_clinical_mask(photo, **V3))


def test_flat_skin_up_to_the_edge_is_not_dropped_as_a_backdrop():
    # featureless skin is flat like a wall, but darker than the rest: it stays skin, the patch stays lesion
    photo = np.empty((128, 128, 3), np.uint8)
    photo[...] = TAN
    lesion = _disc((128, 128), 30, (64, 64))
    photo[lesion] = LESION
    assert _dice(auto_clinical_mask(photo), lesion) > 0.95


def test_collage_panels_are_split_and_the_panel_without_vitiligo_is_dropped():
    rng = np.random.default_rng(2)
    h, w = 128, 260
    photo = np.full((h, w, 3), 255.0)  # a white separator between "before" and "after"
    before = _skin((h, 126), TAN, rng)
    lesion = np.zeros((h, w), bool)
    lesion[:, :126] = _disc((h, 126), 28, (64, 63))
    before[lesion[:, :126]] = _skin((h, 126), LESION, rng)[lesion[:, :126]]
    photo[:, :126] = before
    photo[:, 134:] = _skin((h, 126), (205, 160, 140), rng)  # after treatment, lighter light: no lesion
    photo = photo.astype(np.uint8)
    boxes = collage_panels(photo)
    assert len(boxes) == 2 and boxes[0][3] <= 127 and boxes[1][2] >= 133
    assert collage_panels(photo[:, :126].copy()) == [(0, h, 0, 126)]
    old, new = auto_clinical_mask(photo, **V3), auto_clinical_mask(photo)
    assert old[:, 134:].mean() > 0.3  # v3 scores both halves against one skin: the lighter "after" is lesion
    assert not new[:, 134:].any() and _dice(new, lesion) > 0.85


def test_recorded_quality_is_of_this_version():
    q = AUTO_MASK_QUALITY["clinical"]
    assert q["auto_mask_version"] == AUTO_MASK_VERSION == "4"
    assert q["dice_pooled_ci"][0] < q["dice_pooled"] < q["dice_pooled_ci"][1]


@pytest.mark.parametrize("shape", [(64, 48), (48, 64)])
def test_small_and_oblong_photos_work(shape):
    rng = np.random.default_rng(3)
    photo = _skin(shape, TAN, rng).astype(np.uint8)
    mask = auto_clinical_mask(photo)
    assert mask.shape == shape and mask.dtype == bool
