"""Segmentation metrics against a hand-counted confusion matrix; splits, mask classes, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vitfeat.deep.segmentation import data as segdata
from vitfeat.deep.segmentation.metrics import SegmentationMeter


def _fixed_example():
    # image 1: predicted [[1,0,1,0],[1,0,1,0]] vs truth [[1,1,0,0],[1,0,1,0]] -> TP 3, FP 1, FN 1, TN 3
    # image 2: nothing predicted, one true pixel                            -> TP 0, FP 0, FN 1, TN 7
    pred = torch.tensor([[[[0.9, 0.2, 0.7, 0.1], [0.6, 0.4, 0.8, 0.3]]],
                         [[[0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]]]])
    truth = torch.tensor([[[1, 1, 0, 0], [1, 0, 1, 0]],
                          [[1, 0, 0, 0], [0, 0, 0, 0]]], dtype=torch.uint8)
    return pred, truth


def test_pooled_metrics_equal_the_hand_counted_confusion_matrix():
    pred, truth = _fixed_example()
    meter = SegmentationMeter(num_classes=1)
    meter.update(pred[:1], truth[:1])  # two batches: counts must accumulate
    meter.update(pred[1:], truth[1:])
    pooled = meter.compute()["pooled"]
    tp, fp, fn, tn = 3, 1, 2, 10  # summed over both images
    expected = {
        "accuracy": (tp + tn) / 16, "iou": tp / (tp + fp + fn), "dice": 2 * tp / (2 * tp + fp + fn),
        "precision": tp / (tp + fp), "recall": tp / (tp + fn), "specificity": tn / (tn + fp),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }
    assert pooled == pytest.approx(expected)


def test_per_image_metrics_are_means_over_images():
    pred, truth = _fixed_example()
    meter = SegmentationMeter(num_classes=1)
    meter.update(pred, truth)
    result = meter.compute()
    per_image = result["per_image"]
    assert result["n_images"] == 2
    assert per_image["dice"] == pytest.approx((6 / 8 + 0.0) / 2)
    assert per_image["iou"] == pytest.approx((3 / 5 + 0.0) / 2)
    assert per_image["recall"] == pytest.approx((3 / 4 + 0.0) / 2)
    assert per_image["specificity"] == pytest.approx((3 / 4 + 7 / 7) / 2)
    # image 2 predicts nothing: its precision is 0/0, counted as 1 (no false alarm)
    assert per_image["precision"] == pytest.approx((3 / 4 + 1.0) / 2)


def test_empty_truth_and_empty_prediction_scores_one_per_image():
    meter = SegmentationMeter(num_classes=1)
    meter.update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.uint8))
    assert meter.compute()["per_image"]["dice"] == 1.0


def test_multiclass_metrics_leave_background_out():
    # classes 0 (background), 1, 2; class 1 perfect, class 2 half found
    truth = torch.tensor([[[0, 1, 1, 2], [0, 0, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1, 2], [0, 0, 0, 0]]])
    meter = SegmentationMeter(num_classes=3)
    meter.update(pred, truth)
    pooled = meter.compute()["pooled"]
    # class 1: TP 2 -> Dice 1; class 2: TP 1, FN 2 -> Dice 2/4
    assert pooled["dice"] == pytest.approx((1.0 + 0.5) / 2)
    assert pooled["recall"] == pytest.approx((1.0 + 1 / 3) / 2)


def test_grey_values_become_classes(tmp_path):
    grey = np.array([[0, 128, 255], [128, 0, 0]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "m.png")
    Image.fromarray(np.array([[0, 64]], dtype=np.uint8)).save(tmp_path / "n.png")
    values = segdata.mask_values([tmp_path / "m.png"])
    assert values == [0, 128, 255]
    np.testing.assert_array_equal(segdata.read_class_mask(tmp_path / "m.png", values), [[0, 1, 2], [1, 0, 0]])
    np.testing.assert_array_equal(segdata.read_class_mask(tmp_path / "m.png", None), [[0, 1, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"n\.png.*64"):
        segdata.read_class_mask(tmp_path / "n.png", values)


def test_grouped_split_keeps_patients_whole(tmp_path):
    items = [segdata.SegItem(f"c{i}", f"p{i // 3}", tmp_path, tmp_path) for i in range(30)]
    split = segdata.grouped_split(items, seed=3)
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"}
    assert (split["split"] == "train").sum() >= 18
    path = segdata.write_split(split, tmp_path / "split.csv")
    assert segdata.read_split(path, items).equals(split)
    leaky = split.copy()
    leaky.loc[0, "split"] = "test" if leaky.loc[0, "split"] != "test" else "train"
    leaky.to_csv(tmp_path / "leaky.csv", index=False)
    with pytest.raises(ValueError, match="several splits"):
        segdata.read_split(tmp_path / "leaky.csv", items)


def test_augmentation_moves_image_and_mask_together():
    torch.manual_seed(0)
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[4:12, 20:28] = 200  # a bright square exactly where the mask is
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[4:12, 20:28] = 1
    transform = segdata.build_augmentation()
    moved = 0
    for _ in range(12):
        img, m = transform(image, mask)
        assert m.dtype == np.uint8 and set(np.unique(m).tolist()) <= {0, 1}  # masks are never interpolated
        bright = img.mean(axis=2) > 60
        assert (bright & (m == 1)).sum() / max(int((m == 1).sum()), 1) > 0.8
        moved += not np.array_equal(m, mask)
    assert moved >= 6  # the transforms do change the geometry


def test_minmax255_normalisation_is_invariant_to_affine_changes():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 8, 8)).float()
    a = segdata.normalize(x, "minmax255")
    b = segdata.normalize(x * 0.5 + 17, "minmax255")  # UltraLight's split z-score is such a change
    assert torch.allclose(a, b, atol=1e-4)
    assert float(a.min()) == 0.0 and float(a.max()) == pytest.approx(255.0)


@pytest.mark.parametrize("name", ["bce+dice", "bce+jaccard", "ce+dice"])
def test_losses_are_small_for_right_and_large_for_wrong_predictions(name):
    from vitfeat.deep.segmentation.train import make_loss

    loss = make_loss(name)
    mask = torch.zeros(2, 8, 8, dtype=torch.uint8)
    mask[:, 2:6, 2:6] = 1
    sign = mask.float() * 2 - 1  # +1 on the lesion, -1 elsewhere
    if name == "ce+dice":
        right = torch.stack([-sign, sign], 1) * 10
    else:
        right = sign.unsqueeze(1) * 10
    assert float(loss(right, mask)) < 0.01
    assert float(loss(-right, mask)) > 1.5
