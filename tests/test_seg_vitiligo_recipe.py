"""`train seg --recipe vitiligo`: pretrain, fine-tune with strong augmentation and TTA; a mask source."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from vitfeat.cli.main import main
from vitfeat.deep.segmentation.train import SegConfig
from vitfeat.deep.segmentation.vitiligo_recipe import StrongAugment, pretraining_manifest


def test_strong_augment_moves_image_and_mask_together():
    torch.manual_seed(3)
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 20:40] = 200
    mask = (image[..., 0] > 0).astype(np.uint8)
    aug = StrongAugment(hue=0.0, elastic_p=1.0)
    aug.jitter = 0.0
    changed = 0
    for _ in range(8):
        out_image, out_mask = aug(image, mask)
        assert out_image.shape == image.shape and set(np.unique(out_mask)) <= {0, 1}
        bright = out_image[..., 0] > 100
        # the lesion pixels of the image and of the mask stay (almost) the same pixels
        assert (bright & (out_mask == 1)).sum() / max((bright | (out_mask == 1)).sum(), 1) > 0.85
        changed += int(not np.array_equal(out_mask, mask))
    assert changed >= 6


def test_recipe_trains_one_short_epoch_offline_and_is_a_mask_source(synth_small, tmp_path, refused, capsys):
    out = tmp_path / "seg_vit"
    code = main(["train", "seg", str(synth_small), "-o", str(out), "--recipe", "vitiligo", "--arch", "ultralight",
                 "--epochs", "1", "--imgsz", "32", "--batch", "4", "--pretrain", str(synth_small),
                 "--pretrain-epochs", "1", "--device", "cpu"])
    assert code == 0 and not refused
    meta = json.loads((out / "segmenter.json").read_text())
    assert meta["recipe"] == "vitiligo" and meta["tta"] is True and meta["epochs_done"] == 1
    assert meta["config"]["augmentation"] == "strong" and meta["config"]["early_stop"] == 8
    # fine-tuning started from the pretraining run's weights
    assert meta["config"]["init_weights"] == str((out / "pretrain" / "best.pt").resolve())
    assert (out / "pretrain" / "segmenter.json").is_file()
    capsys.readouterr()
    # the directory is a mask source for extract and for seg evaluate
    assert main(["extract", str(synth_small), "-o", str(tmp_path / "f.parquet"), "--families", "shape",
                 "--masks", f"model:{out}"]) == 0
    capsys.readouterr()
    assert main(["seg", "evaluate", str(synth_small), "--masks", f"model:{out}", "--json", "--n-boot", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 24 and 0 <= summary["dice_pooled"] <= 1


def test_pretraining_manifest_reads_dataset_folders(tmp_path):
    from PIL import Image

    folder = tmp_path / "ph2"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "images" / f"im{i}.jpg")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "masks" / f"im{i}.png")
    pd.DataFrame({"image": [f"images/im{i}.jpg" for i in range(3)],
                  "mask": [f"masks/im{i}.png" for i in range(3)], "label": "x"}).to_csv(folder / "labels.csv",
                                                                                      index=False)
    frame = pd.read_csv(pretraining_manifest([folder], tmp_path / "pre.csv"))
    assert list(frame["case_id"]) == ["ph2/im0", "ph2/im1", "ph2/im2"]
    assert all(p.startswith(str(folder.resolve())) for p in frame["clinical_mask"])
    assert SegConfig(recipe="vitiligo").recipe == "vitiligo"
