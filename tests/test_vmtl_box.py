"""VMTL box targets: an annotated (manifest) box is preferred to the mask's bounding box and
follows the same crop, resize and geometric augmentation as the image."""

import numpy as np
import torch
from torchvision.transforms import v2

from vitfeat.deep.vmtl.data import PairedDataset, mask_to_box, prepare_case

S = 64
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _case(boxes=None, roi=None):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    mask = np.zeros((128, 128), bool)
    mask[40:80, 40:80] = True  # bbox (40, 40, 80, 80)
    return prepare_case("c1", "p1", "stable", {"clinical": img}, {"clinical": mask}, S, roi, boxes)


def _pixels(box):
    """Normalised (cx, cy, w, h) -> (x0, y0, x1, y1) in pixels of the S x S item."""
    cx, cy, w, h = (float(v) * S for v in box)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_annotated_box_is_the_target_not_the_mask_bbox():
    annotated = (10.0, 20.0, 70.0, 100.0)  # original pixels, unlike the mask's (40, 40, 80, 80)
    item = PairedDataset([_case({"clinical": annotated})], ["stable"], S, MEAN, STD, train=False)[0]
    assert item["has_clinical_box"]
    np.testing.assert_allclose(_pixels(item["clinical_box"]), np.array(annotated) / 2, atol=1.0)
    # the mask itself is unchanged, and without a box the target is its bbox
    plain = PairedDataset([_case()], ["stable"], S, MEAN, STD, train=False)[0]
    torch.testing.assert_close(item["clinical_mask"], plain["clinical_mask"])
    np.testing.assert_allclose(_pixels(plain["clinical_box"]), [20, 20, 40, 40], atol=1.0)


def test_annotated_box_follows_a_flip_and_the_roi_crop():
    annotated = (10.0, 20.0, 70.0, 100.0)
    dataset = PairedDataset([_case({"clinical": annotated})], ["stable"], S, MEAN, STD, train=False)
    dataset.transform = v2.Compose([v2.RandomHorizontalFlip(p=1.0), dataset.transform])
    item = dataset[0]
    x0, y0, x1, y1 = np.array(annotated) / 2
    np.testing.assert_allclose(_pixels(item["clinical_box"]), [S - x1, y0, S - x0, y1], atol=1.0)
    # the image and the box moved together: the flipped mask's bbox is the flipped mask bbox
    np.testing.assert_allclose(_pixels(mask_to_box(item["clinical_mask"])), [S - 40, 20, S - 20, 40], atol=1.0)

    # VMSL crop (0, 0)-(64, 128) of the 128 px photo: the box is clipped and rescaled with it
    cropped = _case({"clinical": annotated}, roi=lambda mod, image, mask: (0, 0, 64, 128))
    assert cropped.crop_boxes["clinical"] == (0, 0, 64, 128)
    np.testing.assert_allclose(cropped.boxes["clinical"], (10 * S / 64, 20 * S / 128, S, 100 * S / 128))
    outside = _case({"clinical": (100.0, 0.0, 120.0, 10.0)}, roi=lambda mod, image, mask: (0, 0, 64, 128))
    assert "clinical" not in outside.boxes  # nothing of it left in the crop: fall back to the mask


def test_annotated_box_under_random_augmentation_stays_with_the_image():
    dataset = PairedDataset([_case({"clinical": (10.0, 20.0, 70.0, 100.0)})], ["stable"], S, MEAN, STD, train=True)
    torch.manual_seed(0)
    for _ in range(4):
        item = dataset[0]
        assert item["has_clinical_box"]
        mask_box = mask_to_box(item["clinical_mask"])
        # the target differs from the augmented mask's bbox (it is the annotated box, augmented)
        assert not torch.allclose(item["clinical_box"], mask_box, atol=0.05)
