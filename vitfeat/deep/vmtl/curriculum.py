"""The original VMTL's 6-stage curriculum on one outer fold, selected by P*S*R on the inner split.

Stage 0 trains every task, 1 reconstruction, 2 box, 3 segmentation, 4 the contrastive term (each
with classification), 5 every task again. Each stage starts from the best weights so far (the loss
weighting and margins carry on, as in the original), builds AdamW with the stage's learning rate and
parameter-group multipliers (model x1, log-variances x0.2, margins x0.1; x0.8 / x0.1 / x0.05 in
stages 1-3), warms up over min(5, epochs // 10) epochs, then follows a cosine to 0, stepped per epoch,
and stops after ``patience`` epochs without a better stage P*S*R. The checkpoint is the global
maximum of P*S*R on the inner validation split (the initial weights set the first bar, as the
original's starting checkpoint does). Never the test fold.

State is saved after every epoch (``last.pt``: weights, weighting, margins, optimiser, scheduler,
stage, epoch) with per-epoch seeds, so a killed run resumes exactly.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from vitfeat.deep.runtime import load_checkpoint, save_checkpoint
from vitfeat.deep.vmtl.data import PairedDataset, to_device
from vitfeat.deep.vmtl.loaders import autocast, make_loader, predict_loader
from vitfeat.deep.vmtl.losses import UncertaintyWeighting
from vitfeat.deep.vmtl.original import SummedContrastive, original_task_losses
from vitfeat.deep.vmtl.scores import original_metrics

log = logging.getLogger(__name__)

ALL_TASKS = ("cls", "box", "seg", "recon", "con")
STAGE_TASKS = (ALL_TASKS, ("recon", "cls"), ("box", "cls"), ("seg", "cls"), ("cls", "con"), ALL_TASKS)
IMPORTANCE_STAGES = (0, 5)  # the importance weights w_t enter only where every task trains


def stage_multipliers(stage: int) -> tuple[float, float, float]:
    """Learning-rate multipliers (model, log-variances, margins) of a stage.

    Parameters
    ----------
    stage : int
        Curriculum stage (0-5).

    Returns
    -------
    tuple of float
    """
    return (1.0, 0.2, 0.1) if stage in (0, 4, 5) else (0.8, 0.1, 0.05)


def stage_optimizer(model, weighting, contrastive, cfg, stage: int) -> torch.optim.AdamW:
    """AdamW over the trainable model parameters, log-variances and margins, each at the stage's rate.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting (learnable log-variances).
    contrastive : SummedContrastive
        The contrastive term (learnable margins).
    cfg : VMTLConfig
        Stage learning rates and weight decay.
    stage : int
        Curriculum stage (0-5).

    Returns
    -------
    torch.optim.AdamW
    """
    lr = cfg.stage_lrs[stage]
    model_mult, logvar_mult, margin_mult = stage_multipliers(stage)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr * model_mult},
              {"params": list(weighting.parameters()), "lr": lr * logvar_mult},
              {"params": list(contrastive.parameters()), "lr": lr * margin_mult}]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def stage_scheduler(optimizer, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over min(5, epochs // 10) epochs, then cosine to 0; stepped per epoch.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The stage's optimiser.
    epochs : int
        The stage's epochs.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
    """
    warm = min(5, epochs // 10)

    def factor(epoch):
        if epoch < warm:
            return (epoch + 1) / max(1, warm)
        return 0.5 * (1 + math.cos(math.pi * (epoch - warm) / max(1, epochs - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_stage_epoch(model, weighting, contrastive, loader, optimizer, cfg, device, stage: int, positive_index: int):
    """One epoch of a stage: the original's NaN handling (a non-finite loss skips the batch; NaN
    gradients are zeroed, infinite ones clamped; more than half the tensors bad skips the step),
    gradient clipping at ``cfg.clip_norm`` over every optimised tensor.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting (learnable log-variances).
    contrastive : SummedContrastive
        The contrastive term (learnable margins).
    loader : torch.utils.data.DataLoader
        Training batches.
    optimizer : torch.optim.Optimizer
        The stage's optimiser.
    cfg : VMTLConfig
        Loss settings and clipping.
    device : torch.device
        Where the model runs.
    stage : int
        Curriculum stage (0-5).
    positive_index : int
        Index of the non-stable class.

    Returns
    -------
    tuple
        ``(mean losses, case ids seen)``.
    """
    model.train()
    tasks = STAGE_TASKS[stage]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    sums, count, seen, skipped = {}, 0, [], 0
    for batch in loader:
        seen.extend(batch["case_id"])
        b = to_device(batch, device, channels_last=device.type == "cuda")
        with autocast(device):
            out = model(b["clinical"], b["wood"], b["has_wood"])
            losses = original_task_losses(out, b, tasks, cfg, contrastive, positive_index)
            total = weighting(losses, use_importance=stage in IMPORTANCE_STAGES)
        if not torch.isfinite(total):
            skipped += 1
            continue
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        grads = [p.grad for p in params if p.grad is not None]
        bad = 0
        for g in grads:
            if not torch.isfinite(g).all():
                bad += 1
                g.nan_to_num_(nan=0.0, posinf=1e6, neginf=-1e6)
        if not grads or bad > 0.5 * len(grads):
            skipped += 1
            continue
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        optimizer.step()
        n = len(batch["case_id"])
        count += n
        for task, value in {**losses, "total": total}.items():
            sums[task] = sums.get(task, 0.0) + float(value.detach()) * n
    if skipped:
        log.warning("stage %d: %d batch(es) skipped for non-finite losses or gradients", stage, skipped)
    return {k: v / max(count, 1) for k, v in sums.items()}, seen


def _val_scores(model, val_loader, device, val_y, positive_index) -> dict:
    proba = predict_loader(model, val_loader, device)["proba"]
    return original_metrics(val_y, proba.argmax(1), proba[:, positive_index], positive_index)


def fit_original(model, inner_train, inner_val, fold_dir, cfg, classes, positive_index, device, mean, std, *,
                 seed_of, resume: bool, progress: bool, callback=None) -> dict:
    """Run the curriculum on ``model`` (already on ``device``); writes ``best.pt``; returns the state.

    ``seed_of(step)`` gives the seed of a global epoch step (stage * 1000 + epoch).

    Parameters
    ----------
    model : torch.nn.Module
        The original network, on ``device``.
    inner_train, inner_val : list
        Training and validation cases of the fold.
    fold_dir : pathlib.Path
        Where ``best.pt`` and the checkpoints go.
    cfg : VMTLConfig
        The run's configuration.
    classes : list of str
        The two classes.
    positive_index : int
        Index of the non-stable class.
    device : torch.device
        Where the model runs.
    mean, std : tuple of float
        The backbone's normalisation.
    seed_of : callable
        Seed of a global epoch step.
    resume : bool
        Continue from the fold's checkpoint.
    progress : bool
        Progress bars.
    callback : callable, optional
        Called after every epoch (tests interrupt through it).

    Returns
    -------
    dict
    """
    if len(classes) != 2:
        raise ValueError(f"the original VMTL is binary (stable / non-stable); this target has {len(classes)} "
                         f"classes ({', '.join(classes)})")
    weighting = UncertaintyWeighting(ALL_TASKS, cfg.importance, cfg.log_var_init).to(device)
    contrastive = SummedContrastive(cfg.margins).to(device)
    train_set = PairedDataset(inner_train, classes, cfg.imgsz, mean, std, train=cfg.augment)
    val_loader = make_loader(PairedDataset(inner_val, classes, cfg.imgsz, mean, std, train=False), cfg, shuffle=False)
    val_y = np.array([classes.index(c.label) for c in inner_val])
    last, best = fold_dir / "last.pt", fold_dir / "best.pt"

    ckpt = load_checkpoint(last, device) if resume and last.exists() else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        weighting.load_state_dict(ckpt["weighting"])
        contrastive.load_state_dict(ckpt["contrastive"])
        state = ckpt["state"]
        log.info("fold %s resumed in stage %d after epoch %d", fold_dir.name, state["stage"], state["epoch"])
    else:
        initial = _val_scores(model, val_loader, device, val_y, positive_index)
        state = {"stage": 0, "epoch": -1, "stage_best": -math.inf, "bad_epochs": 0, "best_score": initial["psr"],
                 "best_epoch": "initial", "history": [], "seen_train": [],
                 "seen_val": sorted(c.case_id for c in inner_val)}
        save_checkpoint({"model": model.state_dict(), "epoch": "initial", "classes": classes}, best)

    for stage in range(state["stage"], len(STAGE_TASKS)):
        continuing = ckpt is not None and stage == ckpt["state"]["stage"]
        if not continuing:
            model.load_state_dict(load_checkpoint(best, device)["model"])
            state.update(stage=stage, epoch=-1, stage_best=-math.inf, bad_epochs=0)
        model.set_stage_trainable(STAGE_TASKS[stage])
        optimizer = stage_optimizer(model, weighting, contrastive, cfg, stage)
        scheduler = stage_scheduler(optimizer, cfg.stage_epochs[stage])
        if continuing:
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
        for epoch in range(state["epoch"] + 1, cfg.stage_epochs[stage]):
            if state["bad_epochs"] >= cfg.stage_patience[stage]:
                break
            torch.manual_seed(seed_of(stage * 1000 + epoch))
            started = time.perf_counter()
            loader = make_loader(train_set, cfg, shuffle=True, seed=seed_of(stage * 1000 + epoch))
            lr = optimizer.param_groups[0]["lr"]
            losses, seen = train_stage_epoch(model, weighting, contrastive, loader, optimizer, cfg, device, stage,
                                             positive_index)
            scores = _val_scores(model, val_loader, device, val_y, positive_index)
            if scores["psr"] > state["best_score"]:
                state.update(best_score=scores["psr"], best_epoch=[stage, epoch])
                save_checkpoint({"model": model.state_dict(), "epoch": [stage, epoch], "classes": classes}, best)
            if scores["psr"] > state["stage_best"]:
                state.update(stage_best=scores["psr"], bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            scheduler.step()
            state["epoch"] = epoch
            state["seen_train"] = sorted(set(state["seen_train"]) | set(seen))
            state["history"].append({"stage": stage, "epoch": epoch, **{f"train_{k}": v for k, v in losses.items()},
                                     **{f"val_{k}": v for k, v in scores.items()}, "lr": lr,
                                     "seconds": time.perf_counter() - started, "n_train": len(seen)})
            save_checkpoint({"model": model.state_dict(), "weighting": weighting.state_dict(),
                             "contrastive": contrastive.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "state": state}, last)
            if progress:
                tqdm.write(f"{fold_dir.name} stage {stage} epoch {epoch + 1}: "
                           + " ".join(f"{k}={v:.3f}" for k, v in losses.items())
                           + f" | val P*S*R={scores['psr']:.3f} (best {state['best_score']:.3f})")
            if callback is not None:
                callback(epoch=(stage, epoch), state=state)
        ckpt = None
    state["selection"] = "P*S*R (inner validation split)"
    return state
