"""Training, resume, failures, multi-class masks, the CLI, and trained segmenters as mask sources."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vitfeat.dataset import read_image, read_mask
from vitfeat.deep.segmentation import load_segmenter
from vitfeat.deep.segmentation.train import SegConfig, train_segmenter

SMALL = dict(epochs=1, imgsz=64, batch=8, encoder="resnet18")


@pytest.fixture(scope="module")
def ultralight_run(synth_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "ultralight"
    train_segmenter(synth_small, out, SegConfig(arch="ultralight", **SMALL), progress=False)
    return out


def _check_run(out, arch: str, manifest) -> None:
    meta = json.loads((out / "segmenter.json").read_text())
    assert meta["arch"] == arch and meta["epochs_done"] == 1
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [1] and np.isfinite(log["train_loss"]).all()
    split = pd.read_csv(out / "split.csv")
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert meta["split_counts"]["test"] == (split["split"] == "test").sum() > 0
    for kind in ("pooled", "per_image"):
        assert all(0.0 <= v <= 1.0 for v in meta["test_metrics"][kind].values())
    seg = load_segmenter(out, device="cpu")
    image = read_image(pd.read_csv(manifest)["clinical"].map(lambda p: manifest.parent / p)[0])
    image = np.ascontiguousarray(image[:, :100])  # not square, not the training size
    mask = seg.predict(image, "clinical")
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert seg.describe()["arch"] == arch and len(seg.describe()["weights_hash"]) == 32


def test_deeplabv3_trains_one_epoch_and_predicts(synth_small, tmp_path):
    train_segmenter(synth_small, tmp_path / "dl", SegConfig(arch="deeplabv3", scheduler="plateau", **SMALL),
                    progress=False)
    _check_run(tmp_path / "dl", "deeplabv3", synth_small)


def test_ultralight_trains_one_epoch_and_predicts(ultralight_run, synth_small):
    _check_run(ultralight_run, "ultralight", synth_small)
    assert json.loads((ultralight_run / "segmenter.json").read_text())["params"] == 49_457


def test_unet_through_the_command_line(synth_small, tmp_path, capsys):
    from vitfeat.cli.main import main

    out = tmp_path / "unet"
    code = main(["train", "seg", str(synth_small), "-o", str(out), "--arch", "unet", "--epochs", "1",
                 "--imgsz", "64", "--encoder", "resnet18", "--lr", "3e-4", "--lrf", "0.1"])
    assert code == 0
    assert "Dice" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 3e-4 and config["lrf"] == 0.1 and config["encoder"] == "resnet18"
    _check_run(out, "unet", synth_small)
    # a second run into the same folder without --resume is refused, with advice
    assert main(["train", "seg", str(synth_small), "-o", str(out), "--epochs", "1"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_repeats_an_uninterrupted_run(synth_small, tmp_path):
    cfg = dict(arch="ultralight", imgsz=64, batch=8)
    train_segmenter(synth_small, tmp_path / "straight", SegConfig(epochs=2, **cfg), progress=False)
    train_segmenter(synth_small, tmp_path / "resumed", SegConfig(epochs=1, **cfg), progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        train_segmenter(synth_small, tmp_path / "resumed", SegConfig(epochs=2, **cfg), progress=False)
    train_segmenter(synth_small, tmp_path / "resumed", SegConfig(epochs=2, **cfg), resume=True, progress=False)
    straight = pd.read_csv(tmp_path / "straight" / "log.csv")
    resumed = pd.read_csv(tmp_path / "resumed" / "log.csv")
    assert list(resumed["epoch"]) == [1, 2]
    # the first part was planned for 1 epoch; resumed for 2, the cosine spans both, as uninterrupted
    assert resumed["lr"].iloc[1] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    np.testing.assert_allclose(resumed["lr"], straight["lr"])
    np.testing.assert_allclose(resumed["train_loss"], straight["train_loss"], rtol=1e-5)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["modules"]["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["modules"]["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_unreadable_image_is_recorded_and_training_goes_on(synth_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_small.parent, data)
    manifest = pd.read_csv(data / "manifest.csv")
    broken = manifest.loc[0, "case_id"]
    (data / manifest.loc[0, "clinical"]).write_bytes(b"not a jpeg")
    manifest.loc[1, "clinical_mask"] = None  # no mask: skipped, not an error
    manifest.to_csv(data / "manifest.csv", index=False)
    from vitfeat.dataset import ManifestError

    with pytest.raises(ManifestError, match="row 1, column 'clinical'"):  # refused up front ...
        train_segmenter(data / "manifest.csv", tmp_path / "a", SegConfig(arch="ultralight", **SMALL), progress=False)
    from vitfeat.deep.segmentation.data import SegmentationDataset, items_from_manifest

    manifest.loc[0, "clinical"] = manifest.loc[2, "clinical"]  # ... so break it after validation
    manifest.to_csv(data / "manifest.csv", index=False)
    items, skipped = items_from_manifest(data / "manifest.csv")
    assert [s["case_id"] for s in skipped] == [manifest.loc[1, "case_id"]]
    (data / manifest.loc[2, "clinical"]).write_bytes(b"not a jpeg")
    dataset = SegmentationDataset(items, 64)
    assert {f["case_id"] for f in dataset.failures} == {broken, manifest.loc[2, "case_id"]}
    assert all("not an image" in f["error"] for f in dataset.failures)
    assert len(dataset) == len(items) - 2


def test_multiclass_masks_map_grey_values_to_classes(synth_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_small.parent, data)
    manifest = pd.read_csv(data / "manifest.csv")
    for rel in manifest["clinical_mask"]:
        lesion = read_mask(data / rel)
        grey = np.where(lesion, 255, 0).astype(np.uint8)
        grey[:8] = np.where(lesion[:8], 255, 128)  # a second class: a band of "ruler" at the top
        Image.fromarray(grey).save(data / rel)
    out = tmp_path / "mc"
    meta = train_segmenter(data / "manifest.csv", out, SegConfig(arch="ultralight", mask_mode="multiclass", **SMALL),
                           progress=False)
    assert meta["mask_values"] == [0, 128, 255] and meta["num_classes"] == 3
    assert json.loads((out / "config.json").read_text())["loss"] == "ce+dice"
    mask = load_segmenter(out).predict(read_image(data / manifest.loc[0, "clinical"]))
    assert mask.dtype == bool
    with pytest.raises(ValueError, match="does not fit"):
        SegConfig(mask_mode="multiclass", loss="bce+dice").check()


def test_trained_segmenter_is_a_mask_source_for_extract(ultralight_run, synth_small, tmp_path):
    from vitfeat.deep.mask_source import load_mask_predictor
    from vitfeat.featurize.engine import extract

    predictor = load_mask_predictor(ultralight_run)
    assert predictor.describe()["kind"] == "segmenter"
    result = extract(synth_small, tmp_path / "features.parquet", families=["shape"],
                     masks=f"model:{ultralight_run}", progress=False)
    frame = result.frame.set_index("case_id")
    manifest = pd.read_csv(synth_small)
    for row in manifest.head(3).itertuples():
        expected = predictor.predict(read_image(synth_small.parent / row.clinical), "clinical").mean()
        assert frame.loc[row.case_id, "clinical_shape_area_fraction"] == pytest.approx(expected)
    assert "segmenter" in json.dumps(result.provenance)
    from vitfeat.cli.main import main

    cli_out = tmp_path / "cli.parquet"
    assert main(["extract", str(synth_small), "-o", str(cli_out), "--families", "shape",
                 "--masks", f"model:{ultralight_run}", "--no-progress"]) == 0
    from_cli = pd.read_parquet(cli_out).set_index("case_id")
    np.testing.assert_allclose(from_cli["clinical_shape_area_fraction"], frame["clinical_shape_area_fraction"])


def test_encoder_weights_from_a_local_file(tmp_path):
    from vitfeat.deep.segmentation.models import build_model

    torch.manual_seed(5)
    source = build_model("unet", 1, "resnet18")
    torch.save(source.encoder.state_dict(), tmp_path / "enc.pt")
    loaded = build_model("unet", 1, "resnet18", encoder_weights=str(tmp_path / "enc.pt"))
    key = "layer1.0.conv1.weight"
    assert torch.equal(loaded.encoder.state_dict()[key], source.encoder.state_dict()[key])
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit the encoder"):
        build_model("deeplabv3", 1, "resnet18", encoder_weights=str(tmp_path / "bad.pt"))


def test_compare_and_info_commands(ultralight_run, synth_small, tmp_path, capsys):
    from vitfeat.cli.main import main

    other = tmp_path / "deeplabv3plus"
    train_segmenter(synth_small, other, SegConfig(arch="deeplabv3plus", **SMALL),
                    split_from=ultralight_run / "split.csv", progress=False)
    _check_run(other, "deeplabv3plus", synth_small)
    assert pd.read_csv(other / "split.csv").equals(pd.read_csv(ultralight_run / "split.csv"))
    out = tmp_path / "cmp"
    assert main(["seg", "compare", str(ultralight_run), str(other), "-o", str(out), "--cases", "2"]) == 0
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["arch"]) == ["ultralight", "deeplabv3plus"]
    assert table.loc[0, "params"] == 49_457 and table.loc[1, "gflops"] > table.loc[0, "gflops"]
    for name in ("curves.png", "overlays.png", "metrics.md"):
        assert (out / name).stat().st_size > 1000 or name == "metrics.md"
    capsys.readouterr()
    assert main(["seg", "info", "--arch", "ultralight", "--imgsz", "256", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 49_457 and 0.12 < info["gflops"] < 0.15


def test_a_segmenter_with_swapped_weights_is_refused(ultralight_run, tmp_path):
    """segmenter.json records the weights' SHA-256; a swapped best.pt is named, not loaded."""
    import shutil

    from vitfeat.artefacts import RunIntegrityError

    copy = tmp_path / "seg"
    shutil.copytree(ultralight_run, copy)
    meta = json.loads((copy / "segmenter.json").read_text())
    assert len(meta["artefacts"]["best.pt"]) == 64
    with open(copy / "best.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RunIntegrityError, match="best.pt: modified after fit"):
        load_segmenter(copy, device="cpu")
