"""The original VMTL's 6-stage curriculum on one outer fold, selected by P*S*R on the inner split.

Stage 0 trains every task, 1 reconstruction, 2 box, 3 segmentation, 4 the contrastive term (each
with classification), 5 every task again. Each stage starts from the best weights so far (the loss
weighting and margins carry on, as in the original), builds AdamW with the stage's learning rate and
parameter-group multipliers (model x1, log-variances x0.2, margins x0.1; x0.8 / x0.1 / x0.05 in
stages 1-3), warms up over min(5, epochs // 10) epochs, then follows a cosine to 0, stepped per epoch,
and stops after ``patience`` epochs without a better stage P*S*R. The checkpoint is the global
maximum of P*S*R on the inner validation split (the initial weights set the first bar, as the
original's starting checkpoint does). Never the test fold.

Each stage trains through the one deep loop, :class:`vitfeat.deep.training.TrainingLoop` (the
stage's optimiser, scheduler, epochs and patience as its settings). State is saved after every epoch
(the loop's ``last.pt``: weights, weighting, margins, optimiser, scheduler, loop state, and the
curriculum's stage and global best in the loop state's ``extra``) with per-epoch seeds, so a killed
run resumes exactly.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from vitfeat.deep.runtime import load_checkpoint, save_checkpoint
from vitfeat.deep.training import LoopSettings, StepOutput, TrainingLoop
from vitfeat.deep.vmtl.data import PairedDataset, to_device
from vitfeat.deep.vmtl.loaders import make_loader, predict_loader
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


def stage_step(model, weighting, contrastive, cfg, device, stage: int, positive_index: int, seen: list):
    """The loss of one batch of a stage, as :class:`vitfeat.deep.training.TrainingLoop` takes it.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting (learnable log-variances).
    contrastive : SummedContrastive
        The contrastive term (learnable margins).
    cfg : VMTLConfig
        Loss settings.
    device : torch.device
        Where the model runs.
    stage : int
        Curriculum stage (0-5): its tasks, and whether the importance weights enter.
    positive_index : int
        Index of the non-stable class.
    seen : list
        The case ids of every batch are appended here.

    Returns
    -------
    callable
        ``batch -> StepOutput`` (the weighted total; each task's loss and the total as logs).
    """
    tasks = STAGE_TASKS[stage]

    def step(batch):
        seen.extend(batch["case_id"])
        b = to_device(batch, device, channels_last=device.type == "cuda")
        out = model(b["clinical"], b["wood"], b["has_wood"])
        losses = original_task_losses(out, b, tasks, cfg, contrastive, positive_index)
        total = weighting(losses, use_importance=stage in IMPORTANCE_STAGES)
        logs = {task: float(value.detach()) for task, value in {**losses, "total": total}.items()}
        return StepOutput(total, len(batch["case_id"]), logs)

    return step


def stage_settings(cfg, stage: int) -> LoopSettings:
    """How a stage trains: its epochs and patience on P*S*R (maximised), the scheduler stepped per
    epoch, bf16 on CUDA, clipping at ``cfg.clip_norm`` and the original's NaN handling (NaN gradients
    zeroed, infinite ones clamped; more than half the tensors bad skips the step; a non-finite loss
    skips the batch).

    Parameters
    ----------
    cfg : VMTLConfig
        Stage epochs, patience and clipping.
    stage : int
        Curriculum stage (0-5).

    Returns
    -------
    LoopSettings
    """
    return LoopSettings(epochs=cfg.stage_epochs[stage], first_epoch=0, precision="auto", clip_norm=cfg.clip_norm,
                        scheduler_step="epoch", monitor="val_psr", mode="max", patience=cfg.stage_patience[stage],
                        repair_grads=True)


def _stage_loop(model, weighting, contrastive, cfg, device, stage, positive_index, seen, **callbacks) -> TrainingLoop:
    model.set_stage_trainable(STAGE_TASKS[stage])
    optimizer = stage_optimizer(model, weighting, contrastive, cfg, stage)
    scheduler = stage_scheduler(optimizer, cfg.stage_epochs[stage])
    return TrainingLoop({"model": model, "weighting": weighting, "contrastive": contrastive}, optimizer, scheduler,
                        stage_settings(cfg, stage),
                        step=stage_step(model, weighting, contrastive, cfg, device, stage, positive_index, seen),
                        device=device, **callbacks)


def train_stage_epoch(model, weighting, contrastive, loader, optimizer, cfg, device, stage: int, positive_index: int):
    """One epoch of a stage's optimisation alone (benchmarks): the loop's step over ``loader``.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting (learnable log-variances).
    contrastive : SummedContrastive
        The contrastive term (learnable margins).
    loader : iterable
        Training batches.
    optimizer : torch.optim.Optimizer
        The stage's optimiser (from :func:`stage_optimizer`).
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
    seen: list[str] = []
    loop = TrainingLoop({"model": model, "weighting": weighting, "contrastive": contrastive}, optimizer, None,
                        stage_settings(cfg, stage),
                        step=stage_step(model, weighting, contrastive, cfg, device, stage, positive_index, seen),
                        make_batches=lambda epoch, seed: loader, validate=lambda epoch: {}, device=device)
    losses = loop.train_batches(loader)
    losses.pop("loss", None)
    return losses, seen


def _val_scores(model, val_loader, device, val_y, positive_index) -> dict:
    proba = predict_loader(model, val_loader, device)["proba"]
    return original_metrics(val_y, proba.argmax(1), proba[:, positive_index], positive_index)


def fit_original(model, inner_train, inner_val, fold_dir, cfg, classes, positive_index, device, mean, std, *,
                 seed_of, resume: bool, progress: bool, callback=None) -> dict:
    """Run the curriculum on ``model`` (already on ``device``); writes ``best.pt``; returns the state.

    Each stage is one :class:`vitfeat.deep.training.TrainingLoop` (its own optimiser, scheduler,
    epochs and patience; ``last.pt`` is the loop's, with the curriculum's state in ``extra``).
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
        Called after every epoch, once ``last.pt`` is written (tests interrupt through it).

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

    resumed = resume and last.exists()
    if resumed:
        ckpt = load_checkpoint(last, device)
        if "curriculum" not in ckpt.get("loop", {}).get("extra", {}):
            raise ValueError(f"{last}: not a checkpoint of the original VMTL's curriculum (written by another "
                             "model or an older version); delete it to start the fold over")
        curriculum = ckpt["loop"]["extra"]["curriculum"]
        del ckpt
    else:
        initial = _val_scores(model, val_loader, device, val_y, positive_index)
        curriculum = {"stage": 0, "best_score": initial["psr"], "best_epoch": "initial", "history": [],
                      "seen_train": [], "seen_val": sorted(c.case_id for c in inner_val)}
        save_checkpoint({"model": model.state_dict(), "epoch": "initial", "classes": classes}, best)

    drawn: list[str] = []  # case ids of the current epoch's training batches

    def make_batches(epoch, seed):
        drawn.clear()
        return make_loader(train_set, cfg, shuffle=True, seed=seed)

    def validate(epoch):
        return {f"val_{k}": v for k, v in _val_scores(model, val_loader, device, val_y, positive_index).items()}

    loop = None
    for stage in range(curriculum["stage"], len(STAGE_TASKS)):
        continuing = resumed and stage == curriculum["stage"]
        if not continuing:  # every stage starts from the best weights so far
            model.load_state_dict(load_checkpoint(best, device)["model"])

        def on_epoch(row, loop, stage=stage):
            curriculum = loop.state.extra["curriculum"]
            psr = row["val_psr"]
            if psr > curriculum["best_score"]:
                curriculum.update(best_score=psr, best_epoch=[stage, row["epoch"]])
                save_checkpoint({"model": model.state_dict(), "epoch": [stage, row["epoch"]], "classes": classes},
                                best)
            curriculum["seen_train"] = sorted(set(curriculum["seen_train"]) | set(drawn))
            curriculum["history"].append({"stage": stage, **row, "seconds": row["epoch_seconds"],
                                          "n_train": len(drawn)})
            if progress:
                tqdm.write(f"{fold_dir.name} stage {stage} epoch {row['epoch'] + 1}: "
                           + " ".join(f"{k[6:]}={v:.3f}" for k, v in row.items()
                                      if k.startswith("train_") and k not in ("train_loss", "train_seconds"))
                           + f" | val P*S*R={psr:.3f} (best {curriculum['best_score']:.3f})")

        loop = _stage_loop(model, weighting, contrastive, cfg, device, stage, positive_index, drawn,
                           make_batches=make_batches, validate=validate, on_epoch=on_epoch, last_path=last,
                           epoch_seed=lambda epoch, stage=stage: seed_of(stage * 1000 + epoch))
        if continuing:
            loop.resume()
            curriculum = loop.state.extra["curriculum"]
        curriculum["stage"] = stage
        loop.state.extra["curriculum"] = curriculum
        for epoch in range(loop.next_epoch, loop.last_epoch + 1):
            if loop.state.bad_epochs >= cfg.stage_patience[stage]:
                break
            loop.run_epoch(epoch)
            if callback is not None:  # after last.pt is written: an interruption here loses nothing
                callback(epoch=(stage, epoch), state=curriculum)
    state = dict(curriculum, epoch=None if loop is None else loop.state.epoch,
                 selection="P*S*R (inner validation split)")
    return state
