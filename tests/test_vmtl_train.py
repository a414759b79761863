"""VMTL training on fit's folds: fold discipline, resume, OOF accepted by fit, predict, embedding family,
variants, overfitting 16 synth cases. Tiny random-initialised backbones at 64 px."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from vitfeat.cli.main import main as cli
from vitfeat.dataset import load_manifest, read_image
from vitfeat.deep.vmtl.config import VMTLConfig, preset
from vitfeat.deep.vmtl.data import PairedDataset, load_cases
from vitfeat.deep.vmtl.losses import UncertaintyWeighting
from vitfeat.deep.vmtl.model import build_model
from vitfeat.deep.vmtl.train import make_optimizer, make_scheduler, predict_loader, train_epoch, train_vmtl
from vitfeat.pipelines.demo_data import write_feature_table
from vitfeat.pipelines.select import FitConfig, fit_run

TINY = dict(backbone="test_convnext", weights="random", imgsz=64, patch=8, batch=8, epochs=2, lr=1e-3,
            warmup_epochs=1, device="cpu", threads=1)


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def setup(synth_small, tmp_path_factory):
    """A fit run on a tiny feature table (its folds.csv is the plan), then a VMTL run on those folds."""
    root = tmp_path_factory.mktemp("vmtl")
    man = load_manifest(synth_small)
    truth = pd.read_csv(synth_small.parent / "truth.csv", dtype={"case_id": str, "patient_id": str})
    table = man.frame[["case_id", "patient_id", "label"]].merge(
        truth[["case_id", "area_ratio", "blur_px"]], on="case_id")
    table = table.rename(columns={"area_ratio": "pair_truth_area_ratio", "blur_px": "clinical_truth_blur_px"})
    table["error"] = ""
    features = write_feature_table(table, root / "features.parquet")
    fit = fit_run(features, root / "fit", FitConfig(pipelines=["logreg"], folds=2, n_boot=0), progress=False)
    run = train_vmtl(synth_small, root / "vmtl", fit / "folds.csv", VMTLConfig(**TINY), progress=False)
    return {"root": root, "manifest": synth_small, "features": features, "fit": fit, "run": run}


def test_no_test_fold_case_is_ever_seen_in_training_or_early_stopping(setup):
    run, plan = setup["run"], pd.read_csv(setup["fit"] / "folds.csv", dtype={"case_id": str, "patient_id": str})
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "vmtl" and len(meta["folds"]) == 2
    pid = dict(zip(plan["case_id"], plan["patient_id"]))
    for info in meta["folds"]:
        seen = json.loads((run / info["dir"] / "seen.json").read_text())
        part = plan[(plan["repeat"] == info["repeat"])]
        test = set(part[part["fold"] == info["fold"]]["case_id"])
        train, val = set(seen["train"]), set(seen["val"])
        assert set(seen["test"]) == test
        assert train and val
        assert not (train | val) & test
        assert not train & val
        # grouped by patient at both levels
        assert not {pid[c] for c in train | val} & {pid[c] for c in test}
        assert not {pid[c] for c in train} & {pid[c] for c in val}
        assert train | val == set(part["case_id"]) - test
    oof = pd.read_csv(run / "oof_predictions.csv", dtype={"case_id": str})
    assert sorted(oof["case_id"]) == sorted(plan["case_id"])  # every case predicted once, out of fold


def test_oof_predictions_go_into_fits_leaderboard_and_report(setup):
    run = setup["run"]
    oof = pd.read_csv(run / "oof_predictions.csv")
    assert list(oof.columns) == ["pipeline", "target", "repeat", "fold", "case_id", "patient_id", "y_true", "y_pred",
                                 "proba_active", "proba_stable"]
    np.testing.assert_allclose(oof[["proba_active", "proba_stable"]].sum(1), 1.0, rtol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert {"balanced_accuracy", "auroc"} <= set(metrics) and "ci_low" in metrics["auroc"]

    both = fit_run(setup["features"], setup["root"] / "fit_with_vmtl",
                   FitConfig(pipelines=["logreg"], folds_from=str(setup["fit"] / "folds.csv"), include=[str(run)],
                             n_boot=0), progress=False)
    board = pd.read_csv(both / "leaderboard.csv").set_index("pipeline")
    assert {"logreg", "vmtl:test_convnext"} <= set(board.index)
    from sklearn.metrics import roc_auc_score

    assert board.loc["vmtl:test_convnext", "auroc_value"] == pytest.approx(
        roc_auc_score(oof["y_true"] == "active", oof["proba_active"]))
    assert "vmtl:test_convnext" in (both / "report.md").read_text()


def test_resume_after_interruption_equals_an_uninterrupted_run(setup):
    out = setup["root"] / "vmtl_resumed"

    def stop(repeat, fold, epoch, state):
        if (repeat, fold, epoch) == (0, 1, 0):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_vmtl(setup["manifest"], out, setup["fit"] / "folds.csv", VMTLConfig(**TINY), progress=False,
                   callback=stop)
    assert (out / "r0_f0" / "oof.csv").exists() and (out / "r0_f1" / "last.pt").exists()
    assert not (out / "oof_predictions.csv").exists()
    args = ["train", "vmtl", str(setup["manifest"]), "-o", str(out), "--folds-from", str(setup["fit"] / "folds.csv"),
            "--resume", "--device", "cpu", "--threads", "1"]
    assert cli(args + ["--epochs", "5"]) == 2  # a resumed run keeps its configuration
    assert not (out / "oof_predictions.csv").exists()
    assert cli(args) == 0
    a = pd.read_csv(setup["run"] / "oof_predictions.csv").sort_values("case_id").reset_index(drop=True)
    b = pd.read_csv(out / "oof_predictions.csv").sort_values("case_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)
    assert not (out / "r0_f1" / "last.pt").exists()  # optimizer state dropped once the fold is done


def test_predict_gives_probability_mask_and_box(setup, tmp_path):
    from vitfeat.pipelines.predict import predict_run  # fit's predict dispatches on run.json kind

    out = predict_run(setup["run"], setup["manifest"], tmp_path / "pred.csv")
    assert len(out) == 24 and (out["error"].fillna("") == "").all()
    np.testing.assert_allclose(out[["proba_active", "proba_stable"]].sum(1), 1.0, rtol=1e-5)
    man = load_manifest(setup["manifest"]).frame.set_index("case_id")
    row = out.iloc[0]
    h, w = read_image(man.loc[row["case_id"], "clinical"]).shape[:2]
    mask = read_image(row["clinical_mask_pred"])
    assert mask.shape[:2] == (h, w)
    assert 0 <= row["clinical_box_x0"] <= row["clinical_box_x1"] <= w
    assert 0 <= row["clinical_box_y0"] <= row["clinical_box_y1"] <= h
    assert pd.read_csv(tmp_path / "pred.csv").shape == out.shape


def test_embedding_family_is_out_of_fold(setup):
    from vitfeat.featurize.registry import CaseArrays, get_family

    fam = get_family(f"deep:vmtl@{setup['run']}")
    assert fam.batch_func is not None and fam.version.startswith("vmtl-")
    case = next(load_manifest(setup["manifest"]).cases())
    clin, wood = read_image(case.clinical), read_image(case.wood)
    rows = fam.batch_func([CaseArrays(case.case_id, clin, wood), CaseArrays("unseen", clin, wood)])
    assert list(rows[0])[0] == "pair_deep_vmtl_0000" and all(np.isfinite(list(r.values())).all() for r in rows)
    # a case of the plan: its own fold model only; an unseen case: the mean over fold models
    assert rows[0] != rows[1]
    emb = fam.func.embed([CaseArrays("unseen", clin, wood)])
    np.testing.assert_allclose(list(rows[1].values()), emb[0], rtol=1e-4, atol=1e-6)


def test_vmsl_and_baseline_variants_train_on_the_same_folds(setup):
    folds = setup["fit"] / "folds.csv"
    base = train_vmtl(setup["manifest"], setup["root"] / "base", folds,
                      preset("baseline", **{**TINY, "backbone": "test_resnet", "epochs": 1}), progress=False)
    vmsl = train_vmtl(setup["manifest"], setup["root"] / "vmsl", folds, preset("vmsl", **{**TINY, "epochs": 1}),
                      progress=False)
    for run, name in ((base, "baseline:test_resnet"), (vmsl, "vmsl:test_convnext")):
        oof = pd.read_csv(run / "oof_predictions.csv")
        assert set(oof["pipeline"]) == {name} and len(oof) == 24
        assert pd.read_csv(run / "folds.csv").equals(pd.read_csv(folds))


def test_tiny_model_overfits_16_synth_cases(synth_small):
    torch.manual_seed(0)
    cfg = VMTLConfig(**{**TINY, "batch": 16, "dropout": 0.0, "lr": 3e-3, "head_lr_mult": 1.0, "epochs": 40})
    cases, _ = load_cases(list(load_manifest(synth_small).cases())[:16], 64, "label", progress=False)
    classes = ["active", "stable"]
    data = PairedDataset(cases, classes, 64, (0.5,) * 3, (0.5,) * 3, train=False)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    model = build_model(cfg, 2)
    weighting = UncertaintyWeighting(cfg.tasks, cfg.importance, cfg.log_var_init)
    opt = make_optimizer(model, weighting, cfg)
    sched = make_scheduler(opt, cfg, len(loader))
    y = np.array([classes.index(c.label) for c in cases])
    acc = 0.0
    for epoch in range(cfg.epochs):
        train_epoch(model, weighting, loader, opt, sched, cfg, torch.device("cpu"), positive_index=0)
        if epoch % 3 == 2:
            loader = torch.utils.data.DataLoader(data, batch_size=16)
            proba = predict_loader(model, loader, torch.device("cpu"))["proba"]
            acc = float((proba.argmax(1) == y).mean())
            if acc == 1.0:
                break
    assert acc == 1.0


def test_vmsl_crops_come_from_a_mask_model(synth_small, monkeypatch):
    import vitfeat.deep.mask_source as mask_source
    from vitfeat.deep.roi import select_roi
    from vitfeat.deep.vmtl.data import load_case, make_roi

    class Square:  # stands in for a trained YOLO segment model
        def predict(self, image, modality):
            m = np.zeros(image.shape[:2], bool)
            m[10:70, 30:90] = True
            return m

    monkeypatch.setattr(mask_source, "load_mask_predictor", lambda path: Square())
    cfg = preset("vmsl", roi={"clinical": "model:yolo.pt", "wood": "masks"}, roi_margin=0.0)
    case = next(load_manifest(synth_small).cases())
    loaded = load_case(case, 64, "label", roi=make_roi(cfg))
    assert loaded.crop_boxes["clinical"] == (30, 10, 90, 70)
    wood = read_image(case.wood)
    from vitfeat.dataset import read_mask

    assert loaded.crop_boxes["wood"] == select_roi(wood.shape, read_mask(case.wood_mask), margin=0.0).box
    assert loaded.images["clinical"].shape == (64, 64, 3)


def test_clinical_only_real_images_train(shared_data, tmp_path):
    """PH2 dermoscopy: no Wood's photo, three classes, given masks (copied beside a manifest)."""
    import shutil

    from vitfeat.evaluation.folds import make_folds, write_folds

    labels = pd.read_csv(shared_data / "ph2" / "labels.csv").groupby("label").head(4).reset_index(drop=True)
    for col in ("image", "mask"):
        (tmp_path / f"{col}s").mkdir()
        for rel in labels[col]:
            shutil.copy(shared_data / "ph2" / rel, tmp_path / rel)
    frame = pd.DataFrame({"case_id": labels["image"].str.extract(r"(IMD\d+)")[0], "clinical": labels["image"],
                          "clinical_mask": labels["mask"], "label": labels["label"]})
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    plan = make_folds(load_manifest(tmp_path / "manifest.csv").frame, "label", n_splits=2)
    folds = write_folds(plan, tmp_path / "folds.csv")
    run = train_vmtl(tmp_path / "manifest.csv", tmp_path / "run", folds, VMTLConfig(**{**TINY, "epochs": 1}),
                     progress=False)
    oof = pd.read_csv(run / "oof_predictions.csv")
    assert len(oof) == 12 and {f"proba_{c}" for c in labels["label"].unique()} <= set(oof.columns)
    history = json.loads((run / "r0_f0" / "history.json").read_text())[0]
    assert history["train_seg"] > 0 and history["train_recon"] > 0  # clinical masks and pixels used
    assert "train_con" not in history  # no Wood's photo, no contrastive pair
