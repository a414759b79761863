"""Every single-image family runs on the real public images (../shared/data) without errors."""

import numpy as np
import pandas as pd
import pytest

from vitfeat.dataset import load_manifest
from vitfeat.featurize import DEFAULT_FAMILIES, extract

FOLDERS = ("ph2", "isic2017", "vitiligo-seg", "vitiligo-cls")
PER_FOLDER = 4


def folder_manifest(root, n=PER_FOLDER):
    labels = pd.read_csv(root / "labels.csv", dtype=str).head(n)
    frame = pd.DataFrame({"case_id": labels["image"].str.rsplit("/", n=1).str[-1], "clinical": labels["image"],
                          "clinical_mask": labels["mask"].fillna(""), "label": labels["label"]})
    return load_manifest(frame, root=root)


@pytest.mark.parametrize("folder", FOLDERS)
def test_all_families_run_on_real_images(shared_data, folder):
    manifest = folder_manifest(shared_data / folder)
    result = extract(manifest, None, families=list(DEFAULT_FAMILIES), progress=False)
    assert result.n_failed == 0, result.summary()
    table = result.frame
    clinical = [c for c in table.columns if c.startswith("clinical_")]
    assert len(clinical) > 100
    # Lesion features are defined for every case (a few, e.g. satellite distance, may be NaN).
    for fam in ("shape", "border", "color", "texture", "firstorder"):
        cols = [c for c in clinical if c.startswith(f"clinical_{fam}_")]
        assert np.isfinite(table[cols].to_numpy(float)).mean() > 0.9, fam
    assert table.filter(like="pair_").isna().all().all()  # single-image cases: no pair features
    sources = {v["clinical"] for v in result.provenance["mask_source"].values()}
    assert sources == ({"auto (no given mask)"} if folder == "vitiligo-cls" else {"given"})


def test_auto_clinical_masks_overlap_the_hand_drawn_ones(shared_data):
    # Web photos with walls, sheets and clothing: the threshold is taken among skin pixels. Median
    # IoU over the folder was 0.37 with auto masks v2 (0.24 before skin gating; marking every pixel:
    # 0.14); the current version's pooled Dice is checked against its recorded quality in test_seg_evaluate.
    from vitfeat.dataset import read_image, read_mask
    from vitfeat.featurize.masks import auto_clinical_mask

    root = shared_data / "vitiligo-seg"
    labels = pd.read_csv(root / "labels.csv", dtype=str).iloc[::3]
    ious = []
    for row in labels.itertuples():
        auto, truth = auto_clinical_mask(read_image(root / row.image)), read_mask(root / row.mask)
        ious.append((auto & truth).sum() / max((auto | truth).sum(), 1))
    assert np.median(ious) > 0.3


@pytest.mark.parametrize("folder", ("vitiligo-seg", "vitiligo-cls"))
def test_auto_masks_on_vitiligo_photos(shared_data, folder):
    manifest = folder_manifest(shared_data / folder)
    result = extract(manifest, None, families=["shape", "border", "color"], masks="auto", progress=False)
    assert result.n_failed == 0, result.summary()
    assert (result.frame["clinical_shape_area_fraction"] > 0).all()
