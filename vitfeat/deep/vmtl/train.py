"""Train VMTL on a fold plan: one model per outer (repeat, fold), scored out of fold.

For every test fold of ``folds.csv`` the model trains on the other folds only; early stopping and
the checkpoint choice use an inner patient-grouped validation split of that training part. The
test fold is predicted once, by the chosen checkpoint. Each fold lives in ``RUN/r<repeat>_f<fold>/``:
``last.pt`` (full training state, saved every epoch, removed when the fold is done), ``best.pt``
(weights of the chosen epoch), ``oof.csv`` (its test-fold predictions; its presence means done) and
``seen.json`` (the case ids actually drawn in training and validation batches, for audits).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, log_loss
from tqdm.auto import tqdm

from vitfeat._version import __version__
from vitfeat.artefacts import artefact_hashes
from vitfeat.atomic import write_csv, write_text
from vitfeat.dataset import load_manifest
from vitfeat.deep.runtime import load_checkpoint, save_checkpoint, select_device
from vitfeat.deep.training import LoopSettings, StepOutput, TrainingLoop
from vitfeat.deep.vmtl.config import VMTLConfig, guess_positive
from vitfeat.deep.vmtl.data import PairedDataset, load_cases, make_roi, to_device
from vitfeat.deep.vmtl.losses import (
    UncertaintyWeighting,
    masked_recon_loss,
    task_losses,
)
from vitfeat.deep.vmtl.loaders import make_loader, predict_loader
from vitfeat.deep.vmtl.model import build_model, normalisation, random_patch_mask

log = logging.getLogger(__name__)


def inner_split(cases, val_fraction: float, seed: int):
    """Patient-grouped, label-stratified (train, val) split of a fold's training part
    (the project's one helper, :func:`vitfeat.evaluation.folds.grouped_split`).

    Parameters
    ----------
    cases : list of LoadedCase
        The fold's training part.
    val_fraction : float
        Share held out for validation.
    seed : int
        Split seed.

    Returns
    -------
    tuple
        ``(train cases, validation cases)``.
    """
    from vitfeat.evaluation.folds import grouped_split

    tr, va = grouped_split([c.patient_id for c in cases], [c.label for c in cases],
                           val_fraction=val_fraction, seed=seed)
    return [cases[i] for i in tr], [cases[i] for i in va]


def make_optimizer(model, weighting, cfg: VMTLConfig):
    """AdamW: the backbone at ``lr``, the heads at ``lr * head_lr_mult``, the log-variances slower and undecayed.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting.
    cfg : VMTLConfig
        Learning rates and weight decay.

    Returns
    -------
    torch.optim.AdamW
    """
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    groups = [{"params": backbone, "lr": cfg.lr},
              {"params": rest, "lr": cfg.lr * cfg.head_lr_mult},
              # log-variances move slowly, as in the original (x0.2), and are not decayed
              {"params": list(weighting.parameters()), "lr": cfg.lr * 0.2 * cfg.head_lr_mult, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer, cfg: VMTLConfig, steps_per_epoch: int):
    """Linear warm-up, then cosine to zero, stepped per batch.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser.
    cfg : VMTLConfig
        Epochs and warm-up.
    steps_per_epoch : int
        Batches per epoch.

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = min(cfg.warmup_epochs * steps_per_epoch, total // 2)

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _epoch_seed(cfg: VMTLConfig, repeat: int, fold: int, epoch: int) -> int:
    # Every epoch draws its randomness (shuffle, augmentation, dropout, MAE masks) from its own
    # seed, so a run resumed at an epoch boundary continues exactly as an uninterrupted one.
    return (cfg.seed * 1_000_003 + repeat * 10_007 + fold * 101 + epoch) % (2**31)


def joint_step(model, weighting, batch: dict, cfg, device, positive_index: int):
    """(weighted total, per-task losses) of one batch for the jointly trained variants.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    weighting : UncertaintyWeighting
        The task weighting.
    batch : dict
        The batch.
    cfg : VMTLConfig
        Tasks and loss settings.
    device : torch.device
        Where the model runs.
    positive_index : int
        Index of the active class.

    Returns
    -------
    tuple
    """
    tasks = set(cfg.tasks)
    b = to_device(batch, device, channels_last=device.type == "cuda")
    out = model(b["clinical"], b["wood"], b["has_wood"], dense=bool(tasks & {"seg", "box"}))
    losses = task_losses(model, out, b, cfg, positive_index)
    if "recon" in tasks:
        losses["recon"] = _recon_loss(model, b, cfg)
    return weighting(losses), losses


def joint_loop_step(model, weighting, cfg, device, positive_index, seen: list):
    """:func:`joint_step` as :class:`vitfeat.deep.training.TrainingLoop` takes it.

    Parameters
    ----------
    model, weighting
        The network and its task weighting.
    cfg : VMTLConfig
        Loss settings.
    device : torch.device
        Where the model runs.
    positive_index : int
        Index of the active class.
    seen : list
        The case ids of every batch are appended here.

    Returns
    -------
    callable
        ``batch -> StepOutput`` (the weighted total; each task's loss as logs).
    """
    def step(batch):
        seen.extend(batch["case_id"])
        total, losses = joint_step(model, weighting, batch, cfg, device, positive_index)
        return StepOutput(total, len(batch["case_id"]), {k: float(v.detach()) for k, v in losses.items()})

    return step


def joint_settings(cfg):
    """How the joint variants train: ``cfg.epochs`` with ``cfg.patience`` on the validation
    log-loss, bf16 on CUDA, clipping at ``cfg.clip_norm``, the scheduler stepped per batch.

    Parameters
    ----------
    cfg : VMTLConfig
        The run's configuration.

    Returns
    -------
    LoopSettings
    """
    return LoopSettings(epochs=cfg.epochs, first_epoch=0, precision="auto", clip_norm=cfg.clip_norm,
                        scheduler_step="batch", min_delta=1e-6, patience=cfg.patience)


def train_epoch(model, weighting, loader, optimizer, scheduler, cfg, device, positive_index):
    """One epoch's optimisation alone (benchmarks, the overfitting test): the shared loop's step
    (:meth:`vitfeat.deep.training.TrainingLoop.train_batches`) over ``loader``, no validation.

    Parameters
    ----------
    model, weighting, loader, optimizer, scheduler
        The network, task weighting, batches, optimiser and per-batch scheduler.
    cfg : VMTLConfig
        Loss settings and clipping.
    device : torch.device
        Where the model runs.
    positive_index : int
        Index of the active class.

    Returns
    -------
    tuple
        ``(mean losses, case ids seen)``; the weighted sum is ``"total"``.
    """
    seen: list[str] = []
    loop = TrainingLoop({"model": model, "weighting": weighting}, optimizer, scheduler, joint_settings(cfg),
                        make_batches=lambda epoch, seed: loader,
                        step=joint_loop_step(model, weighting, cfg, device, positive_index, seen),
                        validate=lambda epoch: {}, device=device)
    losses = loop.train_batches(loader)
    losses["total"] = losses.pop("loss")
    return losses, seen


def _recon_loss(model, b, cfg):
    hidden_c = random_patch_mask(b["clinical"].shape, cfg.patch, cfg.mask_ratio, b["clinical"].device)
    hidden_w = random_patch_mask(b["wood"].shape, cfg.patch, cfg.mask_ratio, b["wood"].device)
    rec_c, rec_w = model.reconstruct(b["clinical"] * (1 - hidden_c), b["wood"] * (1 - hidden_w), b["has_wood"])
    loss = masked_recon_loss(rec_c, b["clinical"], hidden_c)
    hw = b["has_wood"]
    if hw.any():
        loss = loss + masked_recon_loss(rec_w[hw], b["wood"][hw], hidden_w[hw])
    return loss


def oversample(cases, seed: int):
    """Random oversampling of the smaller classes of the (first) target: duplicates cases of the
    training part only, so no copy of a case can reach validation or the test fold.

    Parameters
    ----------
    cases : list of LoadedCase
        The training part.
    seed : int
        Sampling seed.

    Returns
    -------
    list of LoadedCase
    """
    from imblearn.over_sampling import RandomOverSampler

    labels = np.array([c.label for c in cases])
    if len(set(labels)) < 2:
        return list(cases)
    idx, _ = RandomOverSampler(random_state=seed).fit_resample(np.arange(len(cases))[:, None], labels)
    return [cases[i] for i in idx[:, 0]]


def _fit_joint(model, inner_train, inner_val, fold_dir, cfg, classes, positive_index, device, mean, std, *,
               seed_of, resume, progress, callback, target_classes=None) -> dict:
    """All tasks jointly (redesign, VMSL, baseline) through the shared loop
    (:class:`vitfeat.deep.training.TrainingLoop`): early stopping on the inner validation log-loss
    (mean over targets); writes ``best.pt``; returns the training state."""
    weighting = UncertaintyWeighting(cfg.tasks, cfg.importance, cfg.log_var_init).to(device)
    train_set = PairedDataset(inner_train, classes, cfg.imgsz, mean, std, train=cfg.augment,
                              target_classes=target_classes)
    val_loader = make_loader(PairedDataset(inner_val, classes, cfg.imgsz, mean, std, train=False,
                                           target_classes=target_classes), cfg, shuffle=False)
    steps = len(make_loader(train_set, cfg, shuffle=True))
    optimizer = make_optimizer(model, weighting, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps)
    per_target = target_classes or {cfg.target: classes}
    val_ys = [np.array([cl.index(c.labels.get(t, c.label)) for c in inner_val]) for t, cl in per_target.items()]
    drawn: list[str] = []  # case ids of the current epoch's training batches

    def make_batches(epoch, seed):
        drawn.clear()
        return make_loader(train_set, cfg, shuffle=True, seed=seed)

    def validate(epoch):
        val = predict_loader(model, val_loader, device)
        probas = [val[f"proba_target{t}"] for t in range(len(per_target))] if target_classes else [val["proba"]]
        with warnings.catch_warnings():  # a small validation split may lack a class
            warnings.simplefilter("ignore", UserWarning)
            loss = float(np.mean([log_loss(y, pr, labels=range(pr.shape[1])) for y, pr in zip(val_ys, probas)]))
        extra = loop.state.extra
        extra["seen_val"] = sorted(set(extra.get("seen_val", [])) | set(val["case_id"]))
        extra["seen_train"] = sorted(set(extra.get("seen_train", [])) | set(drawn))
        return {"val_loss": loss,
                "val_balanced_accuracy": float(balanced_accuracy_score(val_ys[0], probas[0].argmax(1))),
                "n_train": len(drawn)}

    def report(row, loop):
        if progress:
            tqdm.write(f"{fold_dir.name} epoch {row['epoch'] + 1}: " + " ".join(
                f"{k[6:]}={v:.3f}" for k, v in row.items() if k.startswith("train_") and k != "train_seconds")
                + f" | val_loss={row['val_loss']:.3f} val_bacc={row['val_balanced_accuracy']:.3f}")

    loop = TrainingLoop({"model": model, "weighting": weighting}, optimizer, scheduler, joint_settings(cfg),
                        make_batches=make_batches,
                        step=joint_loop_step(model, weighting, cfg, device, positive_index, drawn),
                        validate=validate, on_epoch=report,
                        best_state=lambda: {"model": model.state_dict(), "epoch": loop.state.best_epoch,
                                            "classes": classes},
                        last_path=fold_dir / "last.pt", best_path=fold_dir / "best.pt", epoch_seed=seed_of,
                        device=device)
    if resume and loop.resume():
        log.info("fold %s resumed after epoch %s", fold_dir.name, loop.state.epoch)
    for epoch in range(loop.next_epoch, loop.last_epoch + 1):
        if loop.state.bad_epochs >= cfg.patience:
            break
        loop.run_epoch(epoch)
        if callback is not None:  # after last.pt is written: an interruption here loses nothing
            callback(epoch=epoch, state=loop.state)
    st = loop.state
    return {"history": st.history, "seen_train": st.extra.get("seen_train", []),
            "seen_val": st.extra.get("seen_val", []),
            "best_epoch": -1 if st.best_epoch is None else st.best_epoch, "best_loss": st.best_value,
            "epoch": st.epoch, "selection": "validation log-loss (inner split)"}


def train_fold(train_cases, test_cases, fold_dir: Path, cfg: VMTLConfig, classes, repeat: int, fold: int,
               resume: bool = True, progress: bool = True, callback=None, target_classes: dict | None = None
               ) -> pd.DataFrame:
    """Train one outer fold and return its test-fold prediction rows (contract format).

    ``target_classes`` (several targets, baseline only) maps each target to its classes; the rows
    then hold one block per target.

    Parameters
    ----------
    train_cases, test_cases : list of LoadedCase
        The fold's parts.
    fold_dir : pathlib.Path
        Where its checkpoints go.
    cfg : VMTLConfig
        The run's configuration.
    classes : list of str
        The (first) target's classes.
    repeat, fold : int
        Which fold.
    resume : bool, default True
        Continue from the fold's checkpoint.
    progress : bool, default True
        Progress bars.
    callback : callable, optional
        Called after every epoch.
    target_classes : dict, optional
        ``{target: classes}`` for several targets.

    Returns
    -------
    pandas.DataFrame
    """
    fold_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device, mps=False)
    mean, std = normalisation(cfg.backbone)
    train_y = [c.label for c in train_cases]
    positive_index = classes.index(guess_positive(classes, cfg.positive_class, y=train_y, target=cfg.target))
    inner_train, inner_val = inner_split(train_cases, cfg.val_fraction, cfg.seed + repeat * 100 + fold)
    if cfg.oversample:
        inner_train = oversample(inner_train, cfg.seed + repeat * 100 + fold)

    torch.manual_seed(_epoch_seed(cfg, repeat, fold, -1))
    n_classes = [len(c) for c in target_classes.values()] if target_classes else len(classes)
    model = build_model(cfg, n_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    fit = _fit_joint
    extra = {"target_classes": target_classes}
    if cfg.variant == "original":
        from vitfeat.deep.vmtl.curriculum import fit_original as fit

        extra = {}
    state = fit(model, inner_train, inner_val, fold_dir, cfg, classes, positive_index, device, mean, std,
                seed_of=lambda step: _epoch_seed(cfg, repeat, fold, step), resume=resume, progress=progress,
                callback=None if callback is None else
                (lambda epoch, state: callback(repeat=repeat, fold=fold, epoch=epoch, state=state)), **extra)

    if not (fold_dir / "best.pt").exists():  # no finite validation loss in any epoch
        log.warning("fold r%d f%d: no epoch had a finite validation loss; the last weights predict the test fold",
                    repeat, fold)
        save_checkpoint({"model": model.state_dict(), "epoch": state["epoch"], "classes": classes},
                        fold_dir / "best.pt")
    model.load_state_dict(load_checkpoint(fold_dir / "best.pt", device)["model"])
    test_loader = make_loader(PairedDataset(test_cases, classes, cfg.imgsz, mean, std, train=False), cfg, shuffle=False)
    pred = predict_loader(model, test_loader, device)
    blocks = []
    for t, (target, cl) in enumerate((target_classes or {cfg.target: classes}).items()):
        proba = pred[f"proba_target{t}"] if target_classes else pred["proba"]
        rows = pd.DataFrame({"pipeline": cfg.pipeline_name, "target": target, "repeat": repeat, "fold": fold,
                             "case_id": [c.case_id for c in test_cases],
                             "patient_id": [c.patient_id for c in test_cases],
                             "y_true": [c.labels.get(target, c.label) for c in test_cases],
                             "y_pred": [cl[i] for i in proba.argmax(1)]})
        for i, c in enumerate(cl):
            rows[f"proba_{c}"] = proba[:, i]
        blocks.append(rows)
    rows = pd.concat(blocks, ignore_index=True)
    write_text(fold_dir / "history.json", json.dumps(state["history"], indent=1))
    write_text(fold_dir / "seen.json", json.dumps({
        "train": state["seen_train"], "val": state["seen_val"], "test": [c.case_id for c in test_cases],
        "n_train_drawn": state["history"][-1]["n_train"] if state["history"] else 0,
        "best_epoch": state["best_epoch"], "selection": state["selection"],
        "best_val_loss": state.get("best_loss"), "best_val_psr": state.get("best_score")}, indent=1))
    write_csv(fold_dir / "oof.csv", rows)
    (fold_dir / "last.pt").unlink(missing_ok=True)  # the optimizer state is large and no longer needed
    return rows


def _class_names(frame: pd.DataFrame, target: str) -> list[str]:
    classes = sorted(frame[target].astype(str).unique())
    if len(classes) < 2:
        raise ValueError(f"target '{target}' has a single class ({classes}); nothing to learn")
    return classes


def train_vmtl(manifest, out_dir, folds_from, config: VMTLConfig | None = None, *, resume: bool = False,
               progress: bool = True, callback=None) -> Path:
    """Train one model per outer fold of ``folds_from`` and write the run directory.

    Returns the run directory. With ``resume``, finished folds are kept and an interrupted fold
    continues from its last epoch; the configuration saved in the run is used.

    Parameters
    ----------
    manifest : path-like
        The cases.
    out_dir : path-like
        The run directory.
    folds_from : path-like
        The fold plan (``fit``'s ``folds.csv``), so the scores compare with ``fit``'s.
    config : VMTLConfig, optional
        What to train (default: the ``vmtl`` preset).
    resume : bool, default False
        Continue an interrupted run.
    progress : bool, default True
        Progress bars.
    callback : callable, optional
        Called after every epoch.

    Returns
    -------
    pathlib.Path
    """
    threads = torch.get_num_threads()
    if config is not None and config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train_vmtl(manifest, out_dir, folds_from, config, resume=resume, progress=progress, callback=callback)
    finally:
        torch.set_num_threads(threads)


def _train_vmtl(manifest, out_dir, folds_from, config, *, resume, progress, callback) -> Path:
    from vitfeat.evaluation.folds import read_folds, write_folds

    out = Path(out_dir)
    saved_cfg = out / "config.yaml"
    if resume and saved_cfg.exists():
        # how to run may change on resume; what to train may not
        device, workers, threads = (config.device, config.num_workers, config.threads) if config else ("auto", 0, None)
        cfg = VMTLConfig.from_dict(yaml.safe_load(saved_cfg.read_text()))
        cfg.device, cfg.num_workers, cfg.threads = device, workers, threads
        if config is not None:
            given, saved = config.to_dict(), cfg.to_dict()
            differ = [k for k in given if k not in ("device", "num_workers", "threads") and given[k] != saved[k]]
            if differ:
                log.warning("resuming %s with its saved configuration; ignored: %s", out,
                            ", ".join(f"{k}={given[k]!r} (run has {saved[k]!r})" for k in differ))
    else:
        if out.exists() and any(out.iterdir()) and not resume:
            raise FileExistsError(f"{out} already holds files; pass resume=True (--resume) to continue that run, "
                                  "or choose a new directory")
        cfg = config or VMTLConfig()
    out.mkdir(parents=True, exist_ok=True)
    write_text(saved_cfg, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    targets = list(cfg.all_targets)
    man = load_manifest(manifest, targets=targets)
    plan = read_folds(folds_from, man.frame)
    write_folds(plan, out / "folds.csv")
    target_classes = {t: _class_names(man.frame, t) for t in targets}
    classes = target_classes[cfg.target]
    loaded, failures = load_cases(man.cases(), cfg.imgsz, targets, roi=make_roi(cfg), progress=progress)
    if failures:
        write_csv(out / "failures.csv", pd.DataFrame(failures, columns=["case_id", "error"]))
    by_id = {c.case_id: c for c in loaded}

    parts, fold_info = [], []
    for (repeat, fold), test in plan.groupby(["repeat", "fold"]):
        fold_dir = out / f"r{repeat}_f{fold}"
        test_ids = set(test["case_id"])
        train_ids = set(plan[(plan["repeat"] == repeat) & (plan["fold"] != fold)]["case_id"])
        if (fold_dir / "oof.csv").exists():
            rows = pd.read_csv(fold_dir / "oof.csv",
                               dtype={"case_id": str, "patient_id": str, "y_true": str, "y_pred": str})
        else:
            test_cases = [by_id[i] for i in sorted(test_ids) if i in by_id]
            train_cases = [by_id[i] for i in sorted(train_ids) if i in by_id]
            rows = train_fold(train_cases, test_cases, fold_dir, cfg, classes, int(repeat), int(fold),
                              resume=resume, progress=progress, callback=callback,
                              target_classes=target_classes if cfg.targets else None)
        seen = json.loads((fold_dir / "seen.json").read_text())
        fold_info.append({"repeat": int(repeat), "fold": int(fold), "dir": fold_dir.name,
                          "best_epoch": seen["best_epoch"], "selection": seen.get("selection"),
                          "best_val_loss": seen.get("best_val_loss"), "best_val_psr": seen.get("best_val_psr"),
                          "n_train": len(seen["train"]), "n_val": len(seen["val"]), "n_test": len(rows)})
        parts.append(rows)

    oof = pd.concat(parts, ignore_index=True)
    write_csv(out / "oof_predictions.csv", oof)
    scores = write_scores(oof, target_classes, out, positive=cfg.positive_class)
    mean, std = normalisation(cfg.backbone)
    run = {"kind": "vmtl", "variant": cfg.variant, "pipeline": cfg.pipeline_name, "target": cfg.target,
           "targets": targets, "target_classes": target_classes,
           "classes": classes, "positive": scores[cfg.target].get("_positive"),
           "positive_class": {t: s["_positive"] for t, s in scores.items() if s.get("_positive")},
           "backbone": cfg.backbone, "weights": cfg.weights, "imgsz": cfg.imgsz,
           "normalisation": {"mean": list(mean), "std": list(std)}, "folds": fold_info,
           "n_cases": len(man.frame), "failed": [f[0] for f in failures],
           "manifest": str(Path(manifest).resolve()), "folds_from": str(Path(folds_from).resolve()),
           "versions": {"vitfeat": __version__, "torch": torch.__version__, "python": platform.python_version()}}
    recorded = ["config.yaml", "oof_predictions.csv"] + [f"{f['dir']}/best.pt" for f in fold_info]
    run["artefacts"] = artefact_hashes(out, [name for name in recorded if (out / name).is_file()])
    write_text(out / "run.json", json.dumps(run, indent=1, default=str))
    return out


def write_scores(oof: pd.DataFrame, target_classes, out: Path, positive: str | None = None) -> dict:
    """metrics.json and leaderboard.csv (one row per target): fit's metrics with CIs, and the
    original VMTL's metric set (weighted P/R/F1, specificity, AUC, P*S*R; non-stable positive) with
    the published figures and how the protocols differ. Returns fit's scores per target.

    Parameters
    ----------
    oof : pandas.DataFrame
        Out-of-fold predictions.
    target_classes : dict
        ``{target: classes}``.
    out : pathlib.Path
        The run directory.
    positive : str, optional
        The positive class.

    Returns
    -------
    dict
    """
    from vitfeat.deep.vmtl.scores import original_metric_block
    from vitfeat.evaluation.metrics import flatten, score_oof

    if not isinstance(target_classes, dict):  # one target, given as its class list
        target_classes = {oof["target"].iloc[0]: list(target_classes)}
    pipeline = oof["pipeline"].iloc[0]
    scores, blocks, rows = {}, {}, []
    for target, classes in target_classes.items():
        part = oof[oof["target"] == target]
        pos = (guess_positive(classes, positive if positive in classes else None, y=part["y_true"].astype(str),
                              target=target) if len(classes) == 2 else None)
        s = score_oof(part, classes, positive=pos)
        scores[target] = s
        blocks[target] = {"positive": s["_positive"], "metrics": {k: v for k, v in s.items() if not k.startswith("_")},
                          "per_fold": s["_per_fold"].to_dict(orient="records"),
                          "original_metrics": original_metric_block(part, classes, s["_positive"])}
        rows.append({"pipeline": pipeline, "target": target, **flatten(s)})
    first = next(iter(target_classes))
    doc = {"pipeline": pipeline, **blocks[first]}
    if len(target_classes) > 1:
        doc["targets"] = blocks
    write_text(out / "metrics.json", json.dumps(doc, indent=1, default=float))
    write_csv(out / "leaderboard.csv", pd.DataFrame(rows))
    return scores
