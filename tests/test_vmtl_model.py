"""VMTL network, losses and data pipeline on tiny random-initialised backbones (no weights, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitfeat.deep.vmtl.config import VMTLConfig, preset
from vitfeat.deep.vmtl.data import LoadedCase, PairedDataset, mask_to_box
from vitfeat.deep.vmtl.losses import UncertaintyWeighting, focal_loss, masked_recon_loss, task_losses
from vitfeat.deep.vmtl.model import build_model, random_patch_mask

S = 64
TINY = dict(backbone="test_convnext", weights="random", imgsz=S, patch=8)


def _batch(n=6, has_wood=(True, True, False, True, True, False), seed=0):
    g = torch.Generator().manual_seed(seed)
    clin, wood = torch.randn(n, 3, S, S, generator=g), torch.randn(n, 3, S, S, generator=g)
    masks = torch.zeros(n, 1, S, S)
    for i in range(n):
        x0, y0 = 8 + 3 * i, 10 + 2 * i
        masks[i, :, y0:y0 + 20 + i, x0:x0 + 24] = 1
        clin[i, :, y0:y0 + 20 + i, x0:x0 + 24] += 2.0  # a visible "lesion" the seg/box heads can find
    hw = torch.tensor(has_wood[:n])
    boxes = torch.stack([mask_to_box(m) for m in masks])
    return {"clinical": clin, "wood": wood * hw[:, None, None, None], "has_wood": hw,
            "clinical_mask": masks, "wood_mask": masks.clone(), "has_clinical_mask": torch.ones(n, dtype=torch.bool),
            "has_wood_mask": hw.clone(), "clinical_box": boxes, "wood_box": boxes.clone(),
            "has_clinical_box": torch.ones(n, dtype=torch.bool), "has_wood_box": hw.clone(),
            "label": torch.arange(n) % 2}


def test_forward_shapes_of_every_head():
    torch.manual_seed(0)
    model = build_model(VMTLConfig(**TINY), n_classes=3).eval()
    b = _batch()
    with torch.no_grad():
        out = model(b["clinical"], b["wood"], b["has_wood"])
        rec_c, rec_w = model.reconstruct(b["clinical"], b["wood"], b["has_wood"])
    n = len(b["label"])
    assert out["logits"].shape == out["aux_clinical"].shape == out["aux_wood"].shape == (n, 3)
    assert out["embedding"].shape == (n, model.embedding_dim)
    assert out["z_clinical"].shape == out["z_wood"].shape == (n, 64)
    for mod in ("clinical", "wood"):
        assert out[f"seg_{mod}"].shape == (n, 1, S, S)
        assert out[f"box_{mod}"].shape == (n, 4)
        assert ((out[f"box_{mod}"] >= 0) & (out[f"box_{mod}"] <= 1)).all()
    assert rec_c.shape == rec_w.shape == (n, 3, S, S)
    assert all(torch.isfinite(v).all() for v in out.values())

    base = build_model(preset("baseline", backbone="test_resnet", weights="random", imgsz=S), n_classes=2).eval()
    with torch.no_grad():
        bo = base(b["clinical"], b["wood"], b["has_wood"])
    assert bo["logits"].shape == (n, 2) and bo["embedding"].shape == (n, base.embedding_dim)
    assert torch.all(bo["z_wood"][~b["has_wood"]] == 0)


def test_clinical_only_cases_ignore_the_placeholder_wood_pixels():
    torch.manual_seed(0)
    model = build_model(VMTLConfig(**TINY), n_classes=2).eval()
    b = _batch()
    with torch.no_grad():
        a = model(b["clinical"], b["wood"], b["has_wood"])["logits"]
        noisy = b["wood"] + 5 * torch.randn_like(b["wood"])
        c = model(b["clinical"], noisy, b["has_wood"])["logits"]
    only = ~b["has_wood"]
    torch.testing.assert_close(a[only], c[only])
    assert not torch.allclose(a[~only], c[~only])  # paired cases do use their Wood's photo


def test_every_task_loss_is_finite_and_decreases():
    torch.manual_seed(0)
    cfg = VMTLConfig(**TINY, dropout=0.0)
    model = build_model(cfg, n_classes=2)
    weighting = UncertaintyWeighting(cfg.tasks, cfg.importance, cfg.log_var_init)
    opt = torch.optim.AdamW(list(model.parameters()) + list(weighting.parameters()), lr=2e-3)
    b = _batch()
    history = []
    for step in range(8):
        torch.manual_seed(step)
        out = model(b["clinical"], b["wood"], b["has_wood"])
        losses = task_losses(model, out, b, cfg, positive_index=1)
        hidden = random_patch_mask(b["clinical"].shape, cfg.patch, cfg.mask_ratio)
        rec_c, _ = model.reconstruct(b["clinical"] * (1 - hidden), b["wood"], b["has_wood"])
        losses["recon"] = masked_recon_loss(rec_c, b["clinical"], hidden)
        history.append({k: float(v.detach()) for k, v in losses.items()})
        opt.zero_grad()
        weighting(losses).backward()
        opt.step()
    assert set(history[0]) == {"cls", "seg", "box", "recon", "con"}
    for task in history[0]:
        values = [h[task] for h in history]
        assert np.isfinite(values).all(), task
        assert np.mean(values[-2:]) < values[0], (task, values)


def test_focal_loss_reduces_to_cross_entropy_and_weighting_learns_log_variances():
    logits, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    torch.testing.assert_close(focal_loss(logits, y, gamma=0.0, smoothing=0.0),
                               torch.nn.functional.cross_entropy(logits, y))
    assert focal_loss(logits, y, gamma=3.0) < focal_loss(logits, y, gamma=0.0)  # easy cases down-weighted
    w = UncertaintyWeighting(["cls", "seg"], {"cls": 2.0}, {"cls": -0.3})
    total = w({"cls": torch.tensor(1.0), "seg": torch.tensor(0.5)})
    expected = 2.0 * np.exp(0.3) * 1.0 + 0.5 * -0.3 + 1.0 * 0.5 + 0.0
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)


def test_patch_mask_hides_the_requested_share_and_boxes_follow_masks():
    m = random_patch_mask((4, 3, 64, 64), 8, 0.75)
    assert m.shape == (4, 1, 64, 64)
    assert torch.allclose(m.mean((1, 2, 3)), torch.full((4,), 0.75))
    mask = np.zeros((40, 80), bool)
    mask[10:20, 20:60] = True
    np.testing.assert_allclose(mask_to_box(mask).numpy(), [0.5, 0.375, 0.5, 0.25])
    assert mask_to_box(np.zeros((5, 5), bool)) is None


def test_augmentation_in_training_only_and_one_normalisation():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (S, S, 3), dtype=np.uint8)
    mask = np.zeros((S, S), bool)
    mask[20:40, 10:30] = True
    case = LoadedCase("c1", "p1", "stable", {"clinical": img}, {"clinical": mask}, {}, {})
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    val = PairedDataset([case], ["active", "stable"], S, mean, std, train=False)
    a, b = val[0], val[0]
    torch.testing.assert_close(a["clinical"], b["clinical"])
    ref = ((torch.from_numpy(img).permute(2, 0, 1).float() / 255 - torch.tensor(mean)[:, None, None])
           / torch.tensor(std)[:, None, None])
    torch.testing.assert_close(a["clinical"], ref)
    assert a["label"] == 1 and a["has_clinical_mask"] and not a["has_wood"]
    np.testing.assert_allclose(a["clinical_box"].numpy(), mask_to_box(mask).numpy())

    train = PairedDataset([case], ["active", "stable"], S, mean, std, train=True)
    torch.manual_seed(1)
    draws = [train[0] for _ in range(4)]
    assert any(not torch.allclose(d["clinical"], a["clinical"]) for d in draws)
    for d in draws:  # the box is re-derived from the augmented mask
        box = mask_to_box(d["clinical_mask"])
        assert box is not None and torch.allclose(d["clinical_box"], box)


def test_config_rejects_bad_variants_and_tasks():
    with pytest.raises(ValueError, match="variant"):
        VMTLConfig(variant="vmxl")
    with pytest.raises(ValueError, match="unknown task"):
        VMTLConfig(tasks=("cls", "depth"))
    with pytest.raises(ValueError, match="baseline"):
        VMTLConfig(variant="baseline", tasks=("cls", "seg"))
    cfg = preset("vmsl", backbone="x")
    assert cfg.tasks == ("cls", "con") and cfg.roi == {"clinical": "masks", "wood": "masks"}
    assert VMTLConfig.from_dict(cfg.to_dict()) == cfg


def test_local_weight_file_is_loaded_into_the_shared_encoder(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    saved = timm.create_model("test_convnext", pretrained=False)
    save_file(saved.state_dict(), tmp_path / "w.safetensors")
    model = build_model(VMTLConfig(**{**TINY, "weights": str(tmp_path / "w.safetensors")}), n_classes=2)
    ref = saved.state_dict()
    loaded = model.backbone.state_dict()
    # timm's feature wrapper flattens the first level of names (stem.0 -> stem_0)
    same = [torch.equal(v, ref[k] if k in ref else ref[k.replace("_", ".", 1)]) for k, v in loaded.items()]
    assert len(same) > 10 and all(same)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model(VMTLConfig(**{**TINY, "weights": str(tmp_path / "missing.pth")}), n_classes=2)
