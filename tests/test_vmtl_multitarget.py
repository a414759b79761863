"""Seed 002's multi-task classifier: one backbone, one head per target, scored per target on fit's
folds, oversampling inside the training part only; and `vitfeat vmtl info`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vitfeat.cli.main import main as cli


@pytest.fixture(scope="module")
def two_targets(synth_small, tmp_path_factory):
    """synth_small copied, with a second, imbalanced target 'extent' (6 'wide' of 24) from the truth."""
    root = tmp_path_factory.mktemp("multi") / "data"
    shutil.copytree(synth_small.parent, root)
    truth = pd.read_csv(root / "truth.csv", dtype={"case_id": str})
    frame = pd.read_csv(root / "manifest.csv", dtype={"case_id": str})
    wide = set(truth.nlargest(6, "area_ratio")["case_id"])
    frame["extent"] = np.where(frame["case_id"].isin(wide), "wide", "narrow")
    frame.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_baseline_with_two_targets_trains_one_backbone_with_a_head_per_target(two_targets, tmp_path):
    from vitfeat.dataset import load_manifest
    from vitfeat.deep.vmtl.predict import load_run
    from vitfeat.evaluation.folds import make_folds, write_folds

    frame = load_manifest(two_targets, targets=["extent", "label"]).frame
    folds = write_folds(make_folds(frame, "label", n_splits=2), tmp_path / "folds.csv")
    out = tmp_path / "run"
    args = ["train", "vmtl", str(two_targets), "-o", str(out), "--folds-from", str(folds), "--variant", "baseline",
            "--backbone", "test_resnet", "--weights", "random", "--target", "extent", "--target", "label",
            "--oversample", "--epochs", "2", "--imgsz", "64", "--batch", "8", "--device", "cpu", "--threads", "1"]
    assert cli(args) == 0

    _, run, models = load_run(out, "cpu")
    assert run["targets"] == ["extent", "label"]
    model = next(iter(models.values()))
    assert [h[-1].out_features for h in model.heads] == [2, 2]  # one backbone, one head per target

    oof = pd.read_csv(out / "oof_predictions.csv", dtype={"case_id": str})
    for target in ("extent", "label"):
        part = oof[oof["target"] == target]
        assert sorted(part["case_id"]) == sorted(frame["case_id"])  # every case once per target, out of fold
        truth = frame.set_index("case_id").loc[part["case_id"], target].to_numpy()
        assert (part["y_true"].to_numpy() == truth).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["targets"]) == {"extent", "label"}
    ext = oof[oof["target"] == "extent"]
    assert metrics["targets"]["extent"]["positive"] == "wide"  # minority class when no stage name is known
    assert metrics["targets"]["extent"]["metrics"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(ext["y_true"] == "wide", ext["proba_wide"]))
    assert metrics["targets"]["label"]["original_metrics"]["positive"] == "active"
    assert len(pd.read_csv(out / "leaderboard.csv")) == 2

    plan = pd.read_csv(folds, dtype={"case_id": str})
    for fold in (0, 1):
        seen = json.loads((out / f"r0_f{fold}" / "seen.json").read_text())
        test = set(plan[plan["fold"] == fold]["case_id"])
        train, val = set(seen["train"]), set(seen["val"])
        assert not (train | val) & test and not train & val
        # oversampled: more training items drawn than distinct training cases, all from the training part
        assert seen["n_train_drawn"] > len(train)


def test_vmtl_info_reports_the_originals_counts_and_flops(capsys):
    assert cli(["vmtl", "info", "--variant", "original", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    modules = {m["name"]: m for m in info["modules"]}
    assert info["total"] == 45_004_053 and modules["cross_attention"]["parameters"] == 8_855_813
    assert info["trainable"] == (info["total"] - sum(modules["backbone"][k] for k in ("parameters",))
                                 + modules["backbone"]["trainable"])
    assert modules["backbone"]["trainable"] < modules["backbone"]["parameters"]  # stages 0-2 frozen
    # convnextv2_tiny is about 4.5 GFLOPs (MACs) per 224 px image; two images, 2 FLOPs per MAC
    assert 17e9 < info["flops_by_module"]["backbone"] < 19e9 and info["flops"] > info["flops_by_module"]["backbone"]
    assert cli(["vmtl", "info", "--variant", "baseline"]) == 0
    assert "total" in capsys.readouterr().out
    assert cli(["vmtl", "info", "--variant", "nope"]) == 2
