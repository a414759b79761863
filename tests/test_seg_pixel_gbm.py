"""`train seg --recipe vitiligo` (default: the pixel-gbm segmenter): trains offline in seconds, persists as
LightGBM text + JSON with a SHA-256, works as `--masks model:DIR`; a segmenter is refused on the other modality."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vitfeat.artefacts import RunIntegrityError
from vitfeat.cli.main import main
from vitfeat.dataset import read_image
from vitfeat.deep.segmentation import load_segmenter
from vitfeat.deep.segmentation.pixel_gbm import FEATURE_NAMES, pixel_features


@pytest.fixture(scope="module")
def clinical_only(synth_small, tmp_path_factory):
    """synth_small without its Wood's-lamp columns (a clinical-only manifest, same folder)."""
    frame = pd.read_csv(synth_small)
    path = synth_small.parent / "clinical_only.csv"
    frame.drop(columns=[c for c in frame.columns if c.startswith("wood")]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def gbm_runs(synth_small, tmp_path_factory, refused):
    """The recipe's default segmenter trained on clinical and on Wood's photos (12 rounds, 48 px)."""
    root = tmp_path_factory.mktemp("pixel_gbm")
    runs = {}
    for modality in ("clinical", "wood"):
        out = root / modality
        assert main(["train", "seg", str(synth_small), "-o", str(out), "--recipe", "vitiligo", "--modality", modality,
                     "--epochs", "12", "--imgsz", "48", "--threads", "1"]) == 0
        runs[modality] = out
    assert refused == []
    return runs


def test_recipe_default_is_the_pixel_gbm_and_learns_the_synthetic_lesions(gbm_runs, synth_small):
    meta = json.loads((gbm_runs["clinical"] / "segmenter.json").read_text())
    assert meta["arch"] == "pixel-gbm" and meta["recipe"] == "vitiligo" and meta["modality"] == "clinical"
    assert meta["weights"] == "model.txt" and set(meta["artefacts"]) == {"model.txt"}
    assert 1 <= meta["rounds"] <= 12 and 0.2 <= meta["threshold"] <= 0.8
    # the text model is LightGBM's own format, not a pickle
    assert (gbm_runs["clinical"] / "model.txt").read_text().startswith("tree")
    split = pd.read_csv(gbm_runs["clinical"] / "split.csv")
    assert split.groupby("patient_id")["split"].nunique().max() == 1  # whole patients per part
    # synthetic lesions are bright blobs: far better than chance on the held-out test split
    assert meta["test_metrics"]["pooled"]["dice"] > 0.5


def test_pixel_features_are_named_and_finite():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    feats = pixel_features(rgb)
    assert feats.shape == (40, 56, len(FEATURE_NAMES)) and np.isfinite(feats).all()


def test_pixel_gbm_is_a_mask_source_for_extract_and_seg_evaluate(gbm_runs, clinical_only, tmp_path, capsys):
    out = gbm_runs["clinical"]
    seg = load_segmenter(out)
    frame = pd.read_csv(clinical_only)
    photo = read_image(clinical_only.parent / frame.loc[0, "clinical"])
    mask = seg.predict(photo, "clinical")
    assert mask.shape == photo.shape[:2] and mask.dtype == bool
    assert main(["extract", str(clinical_only), "-o", str(tmp_path / "f.parquet"), "--families", "shape",
                 "--masks", f"model:{out}", "--no-progress"]) == 0
    table = pd.read_parquet(tmp_path / "f.parquet").set_index("case_id")
    assert table.loc[frame.loc[0, "case_id"], "clinical_shape_area_fraction"] == pytest.approx(mask.mean())
    capsys.readouterr()
    assert main(["seg", "evaluate", str(clinical_only), "--masks", f"model:{out}", "--json", "--n-boot", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 24 and summary["dice_pooled"] > 0.5


def test_a_modified_model_file_is_refused(gbm_runs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(gbm_runs["clinical"], copy)
    text = (copy / "model.txt").read_text()
    (copy / "model.txt").write_text(text.replace("learning_rate", "learning_rate ", 1))
    with pytest.raises(RunIntegrityError, match="model.txt"):
        load_segmenter(copy)
    meta = json.loads((copy / "segmenter.json").read_text())
    meta.pop("artefacts")
    (copy / "segmenter.json").write_text(json.dumps(meta))
    with pytest.raises(RunIntegrityError, match="no SHA-256 recorded"):
        load_segmenter(copy)


def test_a_segmenter_of_the_other_modality_is_refused_naming_both(gbm_runs, synth_small, clinical_only, capsys):
    from vitfeat.deep.segmentation.evaluate import evaluate_masks
    from vitfeat.featurize.engine import extract

    wood, clinical = gbm_runs["wood"], gbm_runs["clinical"]
    photo = read_image(synth_small.parent / pd.read_csv(synth_small).loc[0, "clinical"])
    # the library: a Wood's-lamp model on a clinical photo, and the other way round
    with pytest.raises(ValueError, match=r"trained on Wood's-lamp \(UV\) photos; it cannot mask clinical"):
        load_segmenter(wood).predict(photo, "clinical")
    with pytest.raises(ValueError, match=r"trained on clinical \(daylight\) photos; it cannot mask Wood's-lamp"):
        load_segmenter(clinical).predict(photo, "wood")
    # extract: a Wood's model for a manifest of clinical photos only is refused before any work
    with pytest.raises(ValueError, match=r"trained on Wood's-lamp \(UV\) photos and the manifest has only clinical"):
        extract(clinical_only, None, families=["shape"], masks=f"model:{wood}", progress=False)
    assert main(["extract", str(clinical_only), "-o", "unused.parquet", "--masks", f"model:{wood}"]) != 0
    assert "Wood's-lamp (UV)" in capsys.readouterr().err
    # seg evaluate on the other modality's reference masks
    with pytest.raises(ValueError, match="trained on wood"):
        evaluate_masks(synth_small, f"model:{clinical}", modality="wood", n_boot=0)
    # a paired manifest: the model masks its own modality, the other photos get automatic masks (said so)
    result = extract(synth_small, None, families=["shape"], masks=f"model:{wood}", progress=False)
    assert result.n_failed == 0
    plans = list(result.provenance["mask_source"].values())
    assert all(p["wood"] == f"model:{wood}" and p["clinical"].startswith("auto (the model masks wood") for p in plans)


def test_a_timm_models_own_weight_file_loads_into_a_tu_encoder(tmp_path):
    """--encoder-weights FILE for `--encoder tu-NAME`: the state_dict of timm.create_model(NAME), saved
    locally (random init here; a user's ImageNet file the same way), no download."""
    import timm
    import torch

    from vitfeat.deep.segmentation.models import build_model

    torch.manual_seed(2)
    source = timm.create_model("resnet18", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "resnet18_timm.pth")
    model = build_model("unet", 1, "tu-resnet18", encoder_weights=str(tmp_path / "resnet18_timm.pth"))
    key = "layer1.0.conv1.weight"
    assert torch.equal(model.encoder.state_dict()[f"model.{key}"], source.state_dict()[key])
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not fit the encoder"):
        build_model("unet", 1, "tu-resnet18", encoder_weights=str(tmp_path / "bad.pth"))
