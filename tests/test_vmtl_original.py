"""The original VMTL variant: exact parameter counts and shapes, each loss against a hand computation,
the curriculum's schedule / multipliers / freezing, and a tiny run selected by P*S*R on fit's folds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from vitfeat.deep.vmtl.config import VARIANTS, preset
from vitfeat.deep.vmtl.curriculum import STAGE_TASKS, stage_optimizer, stage_scheduler
from vitfeat.deep.vmtl.losses import UncertaintyWeighting
from vitfeat.deep.vmtl.model import build_model
from vitfeat.deep.vmtl.original import SummedContrastive, box_mean_mse, original_focal_loss, recon_both_mse
from vitfeat.deep.vmtl.scores import original_metrics

# per-module counts of aaalzh/VMTL's MultiTaskModel (../shared/notes/vmtl.md, Corrections)
ORIGINAL_COUNTS = {"backbone": 27_864_960, "cross_attention": 8_855_813, "fusion_conv": 3_983_616,
                   "classifier": 74_306, "detection_head": 886_532, "segmentation_head": 1_541_505,
                   "reconstruction_head": 1_574_403, "z_c_classifier": 74_306, "z_w_classifier": 74_306,
                   "z_f_classifier": 74_306}


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(0)
    return build_model(preset("original", weights="random"), 2)


def test_original_has_the_published_parameter_counts(original):
    counts = {n: sum(p.numel() for p in c.parameters()) for n, c in original.named_children()}
    assert counts == ORIGINAL_COUNTS
    assert sum(p.numel() for p in original.parameters()) == 45_004_053
    # stages 0-2 of the backbone frozen, stem and stages_3 train
    assert not any(p.requires_grad for n, p in original.backbone.named_parameters()
                   if n.startswith(("stages_0", "stages_1", "stages_2")))
    assert all(p.requires_grad for n, p in original.backbone.named_parameters() if n.startswith(("stem", "stages_3")))


def test_original_forward_shapes_at_224(original):
    original.eval()
    with torch.no_grad():
        out = original(torch.randn(1, 3, 224, 224), torch.randn(1, 3, 224, 224))
    assert out["fused_map"].shape == (1, 768, 6, 6)
    assert [a.shape for a in out["attention"]] == [(1, 8, 9, 9)] * 2
    assert torch.allclose(out["attention"][0].sum(-1), torch.ones(1, 8, 9))  # softmax over the 9 keys
    assert out["fused"].shape == (1, 384, 6, 6)
    assert out["z_clinical"].shape == out["z_wood"].shape == (1, 768)
    assert out["logits"].shape == (1, 2) and out["detection"].shape == (1, 4, 6, 6)
    assert out["seg_wood"].shape == (1, 1, 224, 224)
    rec = out["reconstruction"]
    assert rec.shape == (1, 3, 224, 224) and rec.min() >= 0 and rec.max() <= 1


def test_z_is_the_attention_output_before_the_residual(original):
    """z_c equals the spatial mean of o_conv(attention . V) of the last clinic update."""
    att = original.cross_attention
    torch.manual_seed(1)
    c, w = torch.randn(1, 768, 7, 7), torch.randn(1, 768, 7, 7)
    with torch.no_grad():
        _, _, (zc, _, _) = att(c, w)
        for _ in range(att.iterations - 1):
            c, _, _ = att.cfe(c, w)
            w, _, _ = att.cfe(w, c)
        _, _, z = att.cfe(c, w)
        with_residual, _, _ = att.cfe(c, w)
    torch.testing.assert_close(zc, z.mean((2, 3)))
    assert not torch.allclose(zc, torch.nn.functional.avg_pool2d(with_residual, 2).mean((2, 3)))


def test_focal_loss_uses_the_original_smoothing_convention():
    logits, target = torch.tensor([[2.0, 0.0], [0.5, 1.5]]), torch.tensor([0, 0])
    expected = []
    for (a, b), t in zip(logits.tolist(), target.tolist()):
        p = [math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))]
        soft = [0.95, 0.05] if t == 0 else [0.05, 0.95]  # 1 - eps on the true class, eps/(C-1) elsewhere
        ce = -sum(s * math.log(q) for s, q in zip(soft, p))
        expected.append(2.0 * (1 - p[t]) ** 3 * ce)
    got = original_focal_loss(logits, target, alpha=2.0, gamma=3.0, smoothing=0.05)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    # in torch's convention that is label_smoothing 0.10 (not 0.05) for two classes
    ce_torch = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.10, reduction="none")
    p_t = torch.softmax(logits, 1)[[0, 1], target]
    assert got.item() == pytest.approx((2.0 * (1 - p_t) ** 3 * ce_torch).mean().item(), rel=1e-6)


def test_box_loss_compares_the_spatial_mean_and_down_weights_box_free_batches():
    det = torch.zeros(2, 4, 2, 2)
    det[0] = torch.tensor([0.4, 0.6, 0.2, 0.2])[:, None, None]
    det[1, :, 0, 0] = 4.0  # spatial mean 1.0 in every channel
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.0, 0.0, 0.0, 0.0]])
    has = torch.tensor([True, False])
    case0 = ((0.4 - 0.5) ** 2 + (0.6 - 0.5) ** 2 + 0 + (0.2 - 0.4) ** 2) / 4
    case1 = ((1 - 0.5) ** 2 + (1 - 0.5) ** 2 + 1 + 1) / 4  # compared with (0.5, 0.5, 0, 0)
    assert box_mean_mse(det, boxes, has).item() == pytest.approx((case0 + case1) / 2)
    none = torch.tensor([False, False])
    assert box_mean_mse(det, boxes, none).item() == pytest.approx(
        0.1 * (((0.4 - 0.5) ** 2 + (0.6 - 0.5) ** 2 + 0.04 + 0.04) / 4 + case1) / 2)


def test_reconstruction_loss_is_against_both_inputs():
    rec = torch.full((2, 3, 2, 2), 0.5)
    clin, wood = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    wood[1] = 2.0
    # case 0: (0.25 + 0.25) ; case 1: (0.25 + 2.25); halved mean over cases
    assert recon_both_mse(rec, clin, wood).item() == pytest.approx((0.5 + 2.5) / 4)


def test_contrastive_loss_is_the_sum_of_the_two_class_means():
    loss = SummedContrastive((0.9, 0.2))
    zc = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    zw = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # cosines 0, 0.7071, 1
    active = torch.tensor([False, False, True])
    s = [0.0, 1 / math.sqrt(2), 1.0]
    stable = ((0.9 - s[0]) ** 2 + max(0.0, 0.9 - s[1]) ** 2) / 2
    progressive = (s[2] - 0.2) ** 2
    assert loss(zc, zw, active).item() == pytest.approx(stable + progressive, rel=1e-5)
    assert loss(zc[:2], zw[:2], active[:2]).item() == pytest.approx(stable, rel=1e-5)  # absent class adds 0
    assert {n for n, p in loss.named_parameters() if p.requires_grad} == {"pos_margin", "neg_margin"}


def test_uncertainty_weighting_with_the_original_initial_values_and_importance():
    cfg = preset("original", weights="random")
    w = UncertaintyWeighting(("cls", "box", "seg", "recon", "con"), cfg.importance, cfg.log_var_init)
    losses = {"cls": torch.tensor(1.0), "box": torch.tensor(2.0), "seg": torch.tensor(0.5),
              "recon": torch.tensor(0.1), "con": torch.tensor(0.3)}
    init = {"cls": -0.3, "box": 0.5, "seg": 0.5, "recon": 0.8, "con": -0.1}
    importance = {"cls": 2.0, "con": 1.0, "box": 1.0, "seg": 1.0, "recon": 0.5}
    with_w = sum(importance[t] * math.exp(-init[t]) * float(v) + 0.5 * init[t] for t, v in losses.items())
    without = sum(math.exp(-init[t]) * float(v) + 0.5 * init[t] for t, v in losses.items())
    assert w(losses).item() == pytest.approx(with_w, rel=1e-6)
    assert w(losses, use_importance=False).item() == pytest.approx(without, rel=1e-6)


def test_curriculum_schedule_multipliers_and_freezing():
    torch.manual_seed(0)
    cfg = preset("original", backbone="test_convnext", weights="random", imgsz=64)
    model = build_model(cfg, 2)
    weighting = UncertaintyWeighting(STAGE_TASKS[0], cfg.importance, cfg.log_var_init)
    margins = SummedContrastive(cfg.margins)
    assert [len(t) for t in STAGE_TASKS] == [5, 2, 2, 2, 2, 5]
    for stage, mults in ((0, (1.0, 0.2, 0.1)), (1, (0.8, 0.1, 0.05)), (4, (1.0, 0.2, 0.1))):
        model.set_stage_trainable(STAGE_TASKS[stage])
        opt = stage_optimizer(model, weighting, margins, cfg, stage)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([cfg.stage_lrs[stage] * m for m in mults])
        assert opt.defaults["weight_decay"] == 1e-5
    model.set_stage_trainable(STAGE_TASKS[1])  # reconstruction stage
    trains = {n: any(p.requires_grad for p in c.parameters()) for n, c in model.named_children()}
    assert trains["reconstruction_head"] and trains["classifier"] and trains["cross_attention"]
    assert not trains["detection_head"] and not trains["segmentation_head"]
    assert not any(p.requires_grad for p in model.backbone.stages_2.parameters())
    model.set_stage_trainable(STAGE_TASKS[4])
    assert not any(p.requires_grad for n in ("detection_head", "segmentation_head", "reconstruction_head")
                   for p in getattr(model, n).parameters())
    # 80 epochs: 5 warm-up epochs (1/5 .. 5/5), then cosine to 0 over the remaining 75
    opt = stage_optimizer(model, weighting, margins, cfg, 0)
    sched = stage_scheduler(opt, 80)
    lrs = []
    for _ in range(80):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-5 / 5) and lrs[4] == pytest.approx(5e-5)
    assert lrs[5] == pytest.approx(5e-5) and lrs[42] == pytest.approx(5e-5 * 0.5 * (1 + math.cos(math.pi * 37 / 75)))


def test_original_metrics_match_a_hand_count():
    y = np.array(["stable", "stable", "stable", "non-stable", "non-stable"])
    pred = np.array(["stable", "stable", "non-stable", "non-stable", "stable"])
    m = original_metrics(y, pred, np.array([0.1, 0.2, 0.6, 0.9, 0.4]), "non-stable")
    assert m["specificity"] == pytest.approx(2 / 3)  # TN / (TN + FP) with non-stable positive
    assert m["recall"] == pytest.approx(3 / 5) == m["accuracy"]  # weighted recall = accuracy
    p_stable, p_ns = 2 / 3, 1 / 2
    assert m["precision"] == pytest.approx((3 * p_stable + 2 * p_ns) / 5)
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["psr"] == pytest.approx(m["precision"] * m["specificity"] * m["recall"])


def test_variants_are_registered():
    assert {"original", "vmtl", "vmsl", "baseline"} <= set(VARIANTS.names())


def test_original_trains_on_fits_folds_and_keeps_the_best_psr(synth_small, tmp_path):
    """A tiny run (every stage one epoch, the last two) on a 2-fold plan; then predict."""
    from vitfeat.dataset import load_manifest
    from vitfeat.deep.vmtl.train import train_vmtl
    from vitfeat.evaluation.folds import make_folds, write_folds

    frame = load_manifest(synth_small).frame
    folds = write_folds(make_folds(frame, "label", n_splits=2), tmp_path / "folds.csv")
    cfg = preset("original", backbone="test_convnext", weights="random", imgsz=64, hidden_dim=32, device="cpu",
                 stage_epochs=(1, 1, 1, 1, 1, 2), stage_patience=(1,) * 6, threads=1)
    run = train_vmtl(synth_small, tmp_path / "run", folds, cfg, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    block = metrics["original_metrics"]
    assert block["positive"] == "active"
    assert {"precision", "specificity", "recall", "psr", "auc"} <= set(block["pooled"])
    assert block["published"] == {"precision": 0.910, "specificity": 0.934, "recall": 0.909} and block["protocol"]
    plan = pd.read_csv(folds, dtype={"case_id": str})
    for fold in (0, 1):
        seen = json.loads((run / f"r0_f{fold}" / "seen.json").read_text())
        history = json.loads((run / f"r0_f{fold}" / "history.json").read_text())
        assert [h["stage"] for h in history] == [0, 1, 2, 3, 4, 5, 5]
        test = set(plan[plan["fold"] == fold]["case_id"])
        assert set(seen["test"]) == test and not (set(seen["train"]) | set(seen["val"])) & test
        assert seen["selection"].startswith("P*S*R")
        best = max(h["val_psr"] for h in history)
        assert seen["best_val_psr"] >= best - 1e-12  # the kept weights are the global P*S*R maximum
        if seen["best_epoch"] != "initial":
            stage, epoch = seen["best_epoch"]
            best_row = next(h for h in history if (h["stage"], h["epoch"]) == (stage, epoch))
            assert best_row["val_psr"] == seen["best_val_psr"]

    from vitfeat.deep.vmtl.predict import predict_run

    pred = predict_run(run, synth_small, tmp_path / "pred.csv", progress=False)
    assert len(pred) == 24 and {"wood_mask_pred", "clinical_box_x0", "proba_active"} <= set(pred.columns)
    assert "clinical_mask_pred" not in pred.columns  # the original segments the Wood's photo only


def test_task_losses_route_each_target_as_the_original():
    """Segmentation on the Wood's mask (cases with a Wood's photo), boxes from the clinical photo,
    reconstruction against both photos (the clinical twice when there is no Wood's photo)."""
    from vitfeat.deep.vmtl.original import original_task_losses

    torch.manual_seed(0)
    n, s = 2, 8
    out = {"logits": torch.randn(n, 2), "detection": torch.rand(n, 4, 2, 2), "seg_wood": torch.randn(n, 1, s, s),
           "reconstruction": torch.rand(n, 3, s, s), "z_clinical": torch.randn(n, 6), "z_wood": torch.randn(n, 6)}
    batch = {"label": torch.tensor([0, 1]), "has_wood": torch.tensor([True, False]),
             "clinical": torch.randn(n, 3, s, s), "wood": torch.zeros(n, 3, s, s),
             "wood_mask": (torch.rand(n, 1, s, s) > 0.5).float(), "clinical_box": torch.rand(n, 4),
             "has_clinical_box": torch.tensor([True, True])}
    batch["wood"][0] = torch.randn(3, s, s)
    cfg = preset("original", weights="random")
    margins = SummedContrastive(cfg.margins)
    losses = original_task_losses(out, batch, ("cls", "box", "seg", "recon", "con"), cfg, margins, positive_index=1)
    seg = torch.nn.functional.binary_cross_entropy_with_logits(out["seg_wood"][:1], batch["wood_mask"][:1])
    assert losses["seg"].item() == pytest.approx(seg.item())
    assert losses["box"].item() == pytest.approx(
        box_mean_mse(out["detection"], batch["clinical_box"], batch["has_clinical_box"]).item())
    wood = batch["wood"].clone()
    wood[1] = batch["clinical"][1]
    assert losses["recon"].item() == pytest.approx(
        recon_both_mse(out["reconstruction"], batch["clinical"], wood).item())
    assert losses["con"].item() == pytest.approx(
        margins(out["z_clinical"], out["z_wood"], torch.tensor([False, True])).item())
    assert set(original_task_losses(out, batch, ("recon", "cls"), cfg, margins, 1)) == {"recon", "cls"}
