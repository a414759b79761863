"""UltraLight's original recipe (LR curve, per-image Dice, BCE + Dice), official checkpoints, and
resume after a SIGKILL mid-epoch through the shared training loop."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vitfeat.deep.segmentation import data as segdata
from vitfeat.deep.segmentation.official import from_official, import_official, to_official
from vitfeat.deep.segmentation.train import (
    PerImageBceDiceLoss,
    SegConfig,
    _make_scheduler,
    dice_loss_per_image,
    train_segmenter,
)
from vitfeat.deep.segmentation.ultralight import UltraLightVMUNet

NOTES = Path(__file__).resolve().parents[2] / "shared" / "notes" / "ultralight_state_dict.txt"


def _original(**kw) -> SegConfig:
    config = SegConfig(arch="ultralight", recipe="original", **kw)
    config.check()
    return config


def test_original_learning_rate_is_periodic():
    config = _original()
    assert (config.epochs, config.batch, config.seed, config.val_batch) == (250, 8, 42, 1)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(200):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == 1e-3
    assert rates[50] == pytest.approx(1e-5, abs=1e-12)  # at eta_min after T_max epochs
    assert rates[100] == pytest.approx(1e-3, rel=1e-9)  # and back up: periodic, not one cosine
    assert rates[150] == pytest.approx(1e-5, abs=1e-12) and rates[200] == pytest.approx(1e-3, rel=1e-9)
    assert rates[25] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5, rel=1e-9)


def test_original_recipe_refuses_settings_it_fixes():
    with pytest.raises(ValueError, match="scheduler='plateau'"):
        SegConfig(arch="ultralight", recipe="original", scheduler="plateau").check()
    with pytest.raises(ValueError, match="arch='unet'|arch='deeplabv3'"):
        SegConfig(arch="deeplabv3", recipe="original").check()


def test_per_image_dice_by_hand():
    probs = torch.tensor([[[[0.9, 0.1], [0.8, 0.0]]], [[[0.8, 0.8], [0.0, 0.0]]]])
    truth = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    # image 1: (2 * 1.7 + 1) / (1.8 + 2 + 1) = 4.4 / 4.8; image 2: (0 + 1) / (1.6 + 0 + 1) = 1 / 2.6
    expected = 1 - (4.4 / 4.8 + 1 / 2.6) / 2
    assert float(dice_loss_per_image(probs, truth)) == pytest.approx(expected, rel=1e-6)
    # smp's Dice of the vitfeat recipe pools the batch, without smoothing: another value
    import segmentation_models_pytorch as smp

    pooled = smp.losses.DiceLoss("binary", from_logits=False)(probs, truth)
    assert float(pooled) == pytest.approx(1 - 2 * 1.7 / (3.4 + 2), rel=1e-4)
    assert abs(expected - float(pooled)) > 0.01


def test_bce_plus_dice_loss_by_hand():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, -3.0]]]])
    truth = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])  # soft truth, as bilinear masks give
    p = [1 / (1 + math.exp(-v)) for v in (2.0, -1.0, 0.0, -3.0)]
    g = [1.0, 0.5, 0.0, 0.0]
    bce = -sum(gi * math.log(pi) + (1 - gi) * math.log(1 - pi) for pi, gi in zip(p, g)) / 4
    dice = (2 * sum(pi * gi for pi, gi in zip(p, g)) + 1) / (sum(p) + sum(g) + 1)
    assert float(PerImageBceDiceLoss()(logits, truth)) == pytest.approx(bce + 1 - dice, rel=1e-6)


def test_split_zscore_then_per_image_range():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    out = segdata.split_minmax255(images)
    assert out.dtype == np.float32
    for img, raw in zip(out, images.astype(float)):
        assert img.min() == pytest.approx(0, abs=1e-4) and img.max() == pytest.approx(255, abs=1e-3)
        np.testing.assert_allclose(img, (raw - raw.min()) / (raw.max() - raw.min()) * 255, atol=1e-3)


def test_ordered_split_and_soft_masks(synth_small, tmp_path):
    items, _ = segdata.items_from_manifest(synth_small)
    with pytest.warns(UserWarning, match="not used"):
        frame = segdata.ordered_split(items, (10, 4, 6))
    assert list(frame["split"][:10]) == ["train"] * 10 and list(frame["split"][20:]) == ["unused"] * 4
    with pytest.raises(ValueError, match="needs 30 cases"):
        segdata.ordered_split(items, (20, 5, 5))
    dataset = segdata.OriginalRecipeDataset(items[:4], 32)
    masks = dataset.masks
    assert masks.dtype == np.float32 and ((masks > 0) & (masks < 1)).any()  # bilinear edges stay soft
    assert dataset.images.min() >= 0 and dataset.images.max() == pytest.approx(255, abs=1e-3)


def test_original_recipe_trains_and_predicts(synth_small, tmp_path):
    out = tmp_path / "orig"
    meta = train_segmenter(synth_small, out, SegConfig(arch="ultralight", recipe="original", epochs=2, imgsz=32,
                                                       split="ordered:16,4,4"), progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["loss"] == "bce+dice-per-image" and config["val_batch"] == 1 and config["seed"] == 42
    split = pd.read_csv(out / "split.csv")
    assert list(split["split"]) == ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    log = pd.read_csv(out / "log.csv")
    expected_lr = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 50)) / 2 for e in (0, 1)]
    np.testing.assert_allclose(log["lr"], expected_lr, rtol=1e-9)
    assert meta["best_epoch"] == int(log.loc[log["val_loss"].idxmin(), "epoch"])
    assert meta["resize"] == "bilinear" and meta["test_metrics"]["n_images"] == 4


def _official_file_names() -> list[tuple[str, tuple]]:
    if not NOTES.is_file():
        pytest.skip(f"{NOTES} is absent")
    rows = []
    for line in NOTES.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split()
            rows.append((name, tuple(int(v) for v in shape.split("x"))))
    return rows


def test_mapping_gives_the_129_official_names_and_shapes():
    official = _official_file_names()
    mapped = {k: tuple(v.shape) for k, v in to_official(UltraLightVMUNet().state_dict()).items()}
    assert len(official) == 129 and mapped == dict(official)


def test_official_checkpoint_round_trip(synth_small, tmp_path):
    torch.manual_seed(11)
    source = UltraLightVMUNet()
    with torch.no_grad():  # no parameter at its init value, so a swapped pair of tensors shows
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {f"module.{k}": v for k, v in to_official(source.state_dict()).items()}  # DataParallel naming
    torch.save(state, tmp_path / "best.pth")
    meta = import_official(tmp_path / "best.pth", tmp_path / "imported", imgsz=32, evaluate=synth_small)
    assert meta["test_metrics"]["n_images"] == 24 and meta["params"] == 49_457
    from vitfeat.deep.segmentation import load_segmenter

    seg = load_segmenter(tmp_path / "imported", device="cpu")
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(torch.sigmoid(seg.model(x)), source(x))
    # a checkpoint of another model is refused with the offending tensors named
    bad = dict(state)
    bad["module.final.weight"] = torch.zeros(2, 8, 1, 1)
    del bad["module.ebn1.bias"]
    with pytest.raises(ValueError, match=r"ebn1\.bias.*final\.weight \(2, 8, 1, 1\)"):
        from_official(bad)
    from vitfeat.cli.main import main

    torch.save(bad, tmp_path / "bad.pth")
    assert main(["seg", "import-official", str(tmp_path / "bad.pth"), "-o", str(tmp_path / "x")]) == 2


def _cli(manifest, out, *extra):
    return [sys.executable, "-m", "vitfeat.cli.main", "train", "seg", str(manifest), "-o", str(out),
            "--arch", "ultralight", "--recipe", "original", "--epochs", "3", "--imgsz", "64", "--batch", "2",
            "--threads", "1", *extra]


def test_train_seg_killed_mid_epoch_resumes_to_the_uninterrupted_run(synth_small, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(synth_small, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "last.pt").is_file():  # epoch 1 finished: epoch 2 is starting
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    state = torch.load(killed / "last.pt", weights_only=True)
    assert state["loop"]["epoch"] == 1  # killed inside epoch 2
    assert not (killed / "segmenter.json").exists()
    resumed = subprocess.run(_cli(synth_small, killed, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = tmp_path / "straight"
    done = subprocess.run(_cli(synth_small, straight), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = pd.read_csv(killed / "log.csv"), pd.read_csv(straight / "log.csv")
    assert list(a["epoch"]) == [1, 2, 3]
    for column in ("lr", "train_loss", "val_loss", "val_pooled_dice"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-6, err_msg=column)
    wa = torch.load(killed / "best.pt", weights_only=True)
    wb = torch.load(straight / "best.pt", weights_only=True)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
