"""`vitfeat seg evaluate`: a mask source scored against expert masks; mask quality in provenance."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vitfeat.cli.main import main
from vitfeat.deep.segmentation.evaluate import SUMMARY_KEYS, evaluate_masks
from vitfeat.featurize.masks import describe_mask_source, mask_quality


def _square(size, y0, y1, x0, x1):
    m = np.zeros((size, size), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


@pytest.fixture()
def handmade(tmp_path):
    """Four 20x20 photos with reference masks and a folder of predictions whose Dice is known by hand.

    a: ref 10x10=100 px, pred the same                          tp 100 fp 0  fn 0   Dice 1
    b: ref 10x10=100 px, pred its top half (5x10)               tp 50  fp 0  fn 50  Dice 100/150
    c: ref 10x10=100 px, pred shifted 5 px right (10x10)        tp 50  fp 50 fn 50  Dice 100/200
    d: ref 4x5=20 px,    pred nothing                           tp 0   fp 0  fn 20  Dice 0
    a and b belong to patient P1.
    """
    (tmp_path / "img").mkdir()
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    refs = {"a": _square(20, 0, 10, 0, 10), "b": _square(20, 0, 10, 0, 10), "c": _square(20, 5, 15, 5, 15),
            "d": _square(20, 0, 4, 0, 5)}
    preds = {"a": refs["a"], "b": _square(20, 0, 5, 0, 10), "c": _square(20, 5, 15, 10, 20),
             "d": np.zeros((20, 20), np.uint8)}
    rng = np.random.default_rng(0)
    for cid in refs:
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{cid}.png")
        Image.fromarray(refs[cid]).save(tmp_path / "ref" / f"{cid}.png")
        Image.fromarray(preds[cid]).save(tmp_path / "pred" / f"{cid}.png")
    manifest = pd.DataFrame({"case_id": list(refs), "patient_id": ["P1", "P1", "P2", "P3"],
                             "clinical": [f"img/{c}.png" for c in refs],
                             "clinical_mask": [f"ref/{c}.png" for c in refs], "label": "x"})
    manifest.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path


def test_dice_equals_the_hand_computed_one(handmade):
    result = evaluate_masks(handmade / "m.csv", str(handmade / "pred"), n_boot=200)
    s, per = result.summary, result.per_image.set_index("case_id")
    dice = {"a": 1.0, "b": 100 / 150, "c": 100 / 200, "d": 0.0}
    assert per["dice"].to_dict() == pytest.approx(dice)
    assert per.loc["c", "iou"] == pytest.approx(50 / 150)
    tp, fp, fn = 100 + 50 + 50 + 0, 0 + 0 + 50 + 0, 0 + 50 + 50 + 20
    assert s["dice_pooled"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert s["iou_pooled"] == pytest.approx(tp / (tp + fp + fn))
    assert s["dice_median"] == pytest.approx(np.median(list(dice.values())))
    assert s["dice_mean"] == pytest.approx(np.mean(list(dice.values())))
    assert s["n_images"] == 4 and s["resampled"] == "patients" and s["n_groups"] == 3
    assert [w["case_id"] for w in s["worst"][:2]] == ["d", "c"]
    lo, hi = s["dice_pooled_ci"]
    assert 0 <= lo <= s["dice_pooled"] <= hi <= 1 and lo < hi


def test_cli_json_keys_and_output_files(handmade, capsys):
    out = handmade / "eval"
    assert main(["seg", "evaluate", str(handmade / "m.csv"), "--masks", str(handmade / "pred"), "--json",
                 "--n-boot", "50", "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(SUMMARY_KEYS) <= set(summary)
    per = pd.read_csv(out / "per_image.csv")
    assert sorted(per["case_id"]) == ["a", "b", "c", "d"] and (out / "overlays.png").stat().st_size > 1000


def test_bad_inputs_are_named(handmade, caplog):
    frame = pd.read_csv(handmade / "m.csv")
    frame.drop(columns="clinical_mask").to_csv(handmade / "nomask.csv", index=False)
    with pytest.raises(ValueError, match="reference"):
        evaluate_masks(handmade / "nomask.csv", "auto", n_boot=0)
    assert main(["seg", "evaluate", str(handmade / "nomask.csv"), "--masks", "auto"]) == 2
    # an empty reference mask: reported, no per-image Dice, pooled scores still computed
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(handmade / "ref" / "d.png")
    # a predicted mask of the wrong size, and a reference of the wrong size: named per case
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(handmade / "pred" / "c.png")
    Image.fromarray(np.zeros((12, 20), np.uint8)).save(handmade / "ref" / "b.png")
    with caplog.at_level(logging.WARNING):
        result = evaluate_masks(handmade / "m.csv", str(handmade / "pred"), n_boot=20)
    s = result.summary
    assert s["empty_reference"] == ["d"] and np.isnan(result.per_image.set_index("case_id").loc["d", "dice"])
    failed = {f["case_id"]: f["error"] for f in s["failed"]}
    assert set(failed) == {"b", "c"}
    assert "differs" in failed["b"] and "differs" in failed["c"]
    assert s["dice_pooled"] == pytest.approx(1.0) and s["dice_median"] == pytest.approx(1.0)
    assert "empty reference" in caplog.text
    with pytest.raises(ValueError, match="reference itself"):
        evaluate_masks(handmade / "m.csv", "given")


def _unscored_segmenter(tmp_path, modality):
    """A `seg import-official` directory made without --evaluate: its test metrics are null."""
    from vitfeat.deep.segmentation.official import import_official, to_official
    from vitfeat.deep.segmentation.ultralight import UltraLightVMUNet

    torch.manual_seed(0)
    torch.save(to_official(UltraLightVMUNet().state_dict()), tmp_path / f"best_{modality}.pth")
    out = tmp_path / f"imported_{modality}"
    meta = import_official(tmp_path / f"best_{modality}.pth", out, modality=modality, imgsz=32)
    assert meta["test_metrics"] is None
    return out


def test_unscored_official_import_works_as_mask_source_and_says_so(synth_small, tmp_path, caplog):
    from vitfeat.featurize.engine import extract

    directory = _unscored_segmenter(tmp_path, "clinical")
    with caplog.at_level(logging.WARNING):
        result = extract(synth_small, None, families=["shape"], masks=f"model:{directory}", progress=False)
    assert result.n_failed == 0 and len(result.frame) == 24
    assert result.provenance["mask_quality"] == {"clinical": None, "wood": None}  # synth has Wood's photos
    assert "quality unknown" in caplog.text
    line = describe_mask_source(f"model:{directory}", result.provenance["mask_quality"])
    assert "quality unknown" in line and "seg evaluate" in line
    # the same directory is scored by seg evaluate; one imported for Wood's photos is refused by name
    assert evaluate_masks(synth_small, f"model:{directory}", n_boot=0).summary["n_images"] == 24
    # --record stores the measured quality in the segmenter; extract's provenance then knows it
    assert main(["seg", "evaluate", str(synth_small), "--masks", f"model:{directory}", "--n-boot", "20",
                 "--record"]) == 0
    from vitfeat.featurize.masks import mask_predictor

    mask_predictor.cache_clear()
    recorded = extract(synth_small, None, families=["shape"], masks=f"model:{directory}", progress=False)
    quality = recorded.provenance["mask_quality"]["clinical"]
    assert quality["n_images"] == 24 and quality["reference"] == str(synth_small)
    assert "on 24 expert-masked images" in describe_mask_source(f"model:{directory}",
                                                                recorded.provenance["mask_quality"])
    wood = _unscored_segmenter(tmp_path, "wood")
    with pytest.raises(ValueError, match="trained on wood"):
        evaluate_masks(synth_small, f"model:{wood}", modality="clinical", n_boot=0)


def test_auto_mask_quality_reaches_the_report_line():
    quality = mask_quality("auto")
    line = describe_mask_source("auto", quality)
    q = quality["clinical"]
    assert line.startswith("auto, clinical Dice ") and f"{q['dice_pooled']:.2f}" in line
    assert f"on {q['n_images']} expert-masked images" in line and line.endswith("wood quality unknown")
    assert "wood" not in describe_mask_source("auto", mask_quality("auto", modalities=["clinical"]))
    assert mask_quality("given") is None and describe_mask_source("given", None).startswith("given")


def test_recorded_auto_quality_is_what_seg_evaluate_measures(shared_data, tmp_path):
    # AUTO_MASK_QUALITY is shown in reports: it must be the current auto masks' measured Dice
    from vitfeat.featurize.masks import AUTO_MASK_QUALITY, AUTO_MASK_VERSION

    root = shared_data / "vitiligo-seg"
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    manifest = pd.DataFrame({"case_id": [p.split("/")[-1].rsplit(".", 1)[0] for p in labels["image"]],
                             "patient_id": labels["group"], "clinical": labels["image"],
                             "clinical_mask": labels["mask"], "label": "vitiligo", "data_root": str(root)})
    manifest.to_csv(tmp_path / "vit.csv", index=False)
    summary = evaluate_masks(tmp_path / "vit.csv", "auto", n_boot=0).summary
    recorded = AUTO_MASK_QUALITY["clinical"]
    assert recorded["auto_mask_version"] == AUTO_MASK_VERSION
    assert summary["n_images"] == recorded["n_images"] == 96
    assert summary["dice_pooled"] == pytest.approx(recorded["dice_pooled"], abs=5e-4)
