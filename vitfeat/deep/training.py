"""The one deep training loop of vitfeat: epochs, seeding, precision, clipping, resume, best-on-val.

Every deep model (segmenters, VMTL) trains through :class:`TrainingLoop`; what differs between
models is given as callbacks, so that resume, per-epoch seeding and best-epoch keeping are written
(and tested) once.

The caller provides:

- ``make_batches(epoch, seed)``: the training batches of an epoch (a DataLoader shuffled with
  ``seed``); called after ``torch.manual_seed(seed)``, so augmentation drawn from torch's generator
  repeats too;
- ``step(batch) -> StepOutput``: the loss of one batch (the loop runs autocast, backward,
  clipping, the optimiser and a per-batch scheduler);
- ``validate(epoch) -> dict``: fields of the epoch's log row, holding the monitored quantity
  (``"val_loss"`` unless told otherwise; lower is better unless ``mode="max"``);
- optionally ``best_state()`` (what ``best.pt`` holds; default the state_dict of the module named
  ``"model"``) and ``on_epoch(row, loop)`` (progress lines, extra logs; ``loop.state`` is the state).

A loop run for E epochs and a loop killed at any point and resumed from its ``last.pt`` with
``resume()`` give the same weights: every epoch seeds torch from ``epoch_seed(epoch)`` before it draws
anything, and ``last.pt`` (modules, optimiser, scheduler, loop state, written atomically at the end
of every epoch) holds all else. Batches whose loss or gradient norm is not finite are skipped and
counted, so one bad batch cannot poison the weights.

Example::

    loop = TrainingLoop({"model": net}, optimizer, scheduler, LoopSettings(epochs=10, clip_norm=1.0),
                        make_batches=lambda epoch, seed: loader(seed), step=my_step,
                        validate=lambda epoch: {"val_loss": my_val_loss()},
                        last_path=out / "last.pt", best_path=out / "best.pt", log_dir=out)
    loop.resume()          # no-op without last.pt
    result = loop.run()    # result.best_epoch, result.history, result.stopped_early
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from vitfeat.atomic import write_csv, write_text
from vitfeat.deep.runtime import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
SCHEDULER_STEPS = ("epoch", "batch", "plateau", "none")


@dataclass
class LoopSettings:
    """How to train (not what): see the module docstring.

    Parameters
    ----------
    epochs : int
        Epochs to run in total (a resumed loop continues up to this number; it may grow).
    first_epoch : int
        Number of the first epoch (1 for segmenters, 0 for VMTL); only names and seeds change.
    seed : int
        Base seed of the default ``epoch_seed`` (``seed * 100_003 + epoch``).
    precision : str
        ``fp32``; ``bf16`` / ``fp16`` autocast on CUDA (fp16 with a gradient scaler); ``auto``:
        bf16 on CUDA, fp32 elsewhere. On CPU every choice runs fp32.
    clip_norm : float or None
        Clip the global gradient norm of all optimised parameters to this value.
    scheduler_step : str
        ``epoch`` (``scheduler.step()`` after each epoch), ``batch`` (after each batch),
        ``plateau`` (``scheduler.step(monitored value)`` after each epoch) or ``none``.
    monitor : str
        Key of the ``validate`` row that selects the best epoch.
    mode : str
        ``min`` (lower is better) or ``max`` (higher is better) for the monitored value.
    min_delta : float
        An epoch is better only if it improves the monitored value by more than this.
    patience : int or None
        Stop after this many epochs without improvement (None: never stop early).
    repair_grads : bool
        Before clipping, replace NaN gradients by 0 and infinite ones by +-1e6, and skip the step
        only if more than half of the gradient tensors were non-finite (default False: any
        non-finite gradient norm skips the step).
    """

    epochs: int
    first_epoch: int = 1
    seed: int = 0
    precision: str = "fp32"
    clip_norm: float | None = None
    scheduler_step: str = "epoch"
    monitor: str = "val_loss"
    mode: str = "min"
    min_delta: float = 0.0
    patience: int | None = None
    repair_grads: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{self.precision}'")
        if self.scheduler_step not in SCHEDULER_STEPS:
            raise ValueError(f"scheduler_step must be one of {', '.join(SCHEDULER_STEPS)}, "
                             f"not '{self.scheduler_step}'")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not '{self.mode}'")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, not {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 epoch (or None), not {self.patience}")


@dataclass
class StepOutput:
    """What ``step(batch)`` returns: the loss to minimise, the batch size, and floats to log.

    Attributes
    ----------
    loss : torch.Tensor
        Scalar to minimise.
    n : int
        Cases in the batch (the logs are averaged by it).
    logs : dict
        ``{name: float}`` to average over the epoch.
    """

    loss: torch.Tensor
    n: int
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class LoopState:
    """Everything of the loop that ``last.pt`` carries besides modules, optimiser and scheduler.

    Attributes
    ----------
    epoch : int or None
        Last finished epoch.
    best_value : float
        Best validation value so far.
    best_epoch : int or None
        Its epoch.
    bad_epochs : int
        Epochs since it improved (early stopping).
    history : list of dict
        One row per epoch.
    extra : dict
        The caller's own resumable state.
    """

    epoch: int | None = None  # last finished epoch
    best_value: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # the caller's own resumable state (plain containers)

    def as_dict(self) -> dict:
        """The state as plain containers (what ``last.pt`` stores)."""
        return {"epoch": self.epoch, "best_value": self.best_value, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "history": self.history, "extra": self.extra}


@dataclass
class LoopResult:
    """What :meth:`TrainingLoop.run` returns.

    Attributes
    ----------
    history : list of dict
        One row per epoch.
    best_epoch : int or None
        The epoch kept.
    best_value : float
        Its validation value.
    stopped_early : bool
        Patience ran out.
    skipped_batches : int
        Batches skipped for non-finite losses or gradients.
    """

    history: list[dict]
    best_epoch: int | None
    best_value: float
    stopped_early: bool
    skipped_batches: int


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of a precision setting on a device (a no-op on CPU and for fp32).

    Parameters
    ----------
    device : torch.device
        Where the model runs.
    precision : {"auto", "bf16", "fp16", "fp32"}, default "auto"
        The setting (auto: bf16 on CUDA).

    Returns
    -------
    context manager
    """
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


class TrainingLoop:
    """Train ``modules`` with ``optimizer`` (and ``scheduler``) under ``settings``; see the module doc.

    Parameters
    ----------
    modules : dict of str to nn.Module
        Everything whose state is trained and checkpointed (``{"model": net, "weighting": w}``);
        all are put in train mode for an epoch. ``validate`` switches to eval mode itself.
    optimizer, scheduler
        The optimiser (over any of the modules' parameters) and an optional LR scheduler.
    settings : LoopSettings
    make_batches, step, validate, best_state, on_epoch : callables
        See the module docstring.
    last_path, best_path : path or None
        Where the resumable state and the best epoch's ``best_state()`` go (None: not written).
    log_dir : path or None
        If given, ``log.csv`` and ``log.json`` (one row per epoch) are rewritten there every epoch.
    epoch_seed : callable or None
        ``epoch -> seed``; default ``settings.seed * 100_003 + epoch``.
    device : torch.device or None
        For autocast and checkpoint loading; default the device of the first parameter.
    """

    def __init__(self, modules: dict[str, nn.Module], optimizer, scheduler=None, settings: LoopSettings = None, *,
                 make_batches: Callable[[int, int], Iterable], step: Callable[[Any], StepOutput],
                 validate: Callable[[int], dict], best_state: Callable[[], Any] | None = None,
                 on_epoch: Callable[[dict, "TrainingLoop"], None] | None = None,
                 last_path=None, best_path=None, log_dir=None,
                 epoch_seed: Callable[[int], int] | None = None, device: torch.device | None = None):
        if settings is None:
            raise ValueError("settings (LoopSettings) are required")
        self.modules, self.optimizer, self.scheduler, self.settings = modules, optimizer, scheduler, settings
        self.make_batches, self.step, self.validate = make_batches, step, validate
        self.best_state = best_state or (lambda: self.modules["model"].state_dict())
        self.on_epoch = on_epoch
        self.last_path = Path(last_path) if last_path is not None else None
        self.best_path = Path(best_path) if best_path is not None else None
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.epoch_seed = epoch_seed or (lambda epoch: settings.seed * 100_003 + epoch)
        if device is None:
            first = next((p for m in modules.values() for p in m.parameters()), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device = device
        self.state = LoopState()
        self.skipped_batches = 0
        use_scaler = settings.precision == "fp16" and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    # -- resume --------------------------------------------------------------------------------

    def resume(self, path=None) -> bool:
        """Load ``last.pt`` (or ``path``) if it exists; returns whether it did.

        Parameters
        ----------
        path : path-like, optional
            Another checkpoint.

        Returns
        -------
        bool
        """
        path = Path(path) if path is not None else self.last_path
        if path is None or not path.is_file():
            return False
        ckpt = load_checkpoint(path, self.device)
        missing = [name for name in self.modules if name not in ckpt.get("modules", {})]
        if missing:
            raise ValueError(f"{path}: checkpoint lacks module(s) {missing}; it was written by another model")
        for name, module in self.modules.items():
            module.load_state_dict(ckpt["modules"][name])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = LoopState(**ckpt["loop"])
        log.info("resuming from %s after epoch %s", path, self.state.epoch)
        return True

    def checkpoint(self) -> dict:
        """The resumable state as written to ``last.pt``."""
        return {"modules": {name: m.state_dict() for name, m in self.modules.items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "loop": self.state.as_dict()}

    # -- training ------------------------------------------------------------------------------

    @property
    def next_epoch(self) -> int:
        return self.settings.first_epoch if self.state.epoch is None else self.state.epoch + 1

    @property
    def last_epoch(self) -> int:
        return self.settings.first_epoch + self.settings.epochs - 1

    def run(self) -> LoopResult:
        """Train from the next epoch to the last one (or an early stop); returns the history."""
        stopped = False
        for epoch in range(self.next_epoch, self.last_epoch + 1):
            if self.settings.patience is not None and self.state.bad_epochs >= self.settings.patience:
                stopped = True
                break
            self.run_epoch(epoch)
        return LoopResult(self.state.history, self.state.best_epoch, self.state.best_value, stopped,
                          self.skipped_batches)

    def run_epoch(self, epoch: int) -> dict:
        """One epoch: seeded training, validation, best keeping, scheduler, checkpoint, log row.

        Parameters
        ----------
        epoch : int
            The epoch number (its seed derives from it).

        Returns
        -------
        dict
            The epoch's log row.
        """
        started = time.perf_counter()
        seed = self.epoch_seed(epoch)
        torch.manual_seed(seed)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this epoch starts with
        train_logs = self._train_epoch(self.make_batches(epoch, seed))
        train_seconds = time.perf_counter() - started
        val = self.validate(epoch)
        if self.settings.monitor not in val:
            raise KeyError(f"validate() returned no '{self.settings.monitor}' (got {sorted(val)})")
        value = float(val[self.settings.monitor])
        row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in train_logs.items()}, **val,
               "train_seconds": train_seconds}
        if math.isfinite(value) and self._improves(value):
            self.state.best_value, self.state.best_epoch, self.state.bad_epochs = value, epoch, 0
            if self.best_path is not None:
                save_checkpoint(self.best_state(), self.best_path)
        else:
            self.state.bad_epochs += 1
        if self.scheduler is not None and self.settings.scheduler_step == "epoch":
            self.scheduler.step()
        elif self.scheduler is not None and self.settings.scheduler_step == "plateau":
            self.scheduler.step(value)
        row["epoch_seconds"] = time.perf_counter() - started
        self.state.history.append(row)
        self.state.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(row, self)
        if self.log_dir is not None:
            write_history(self.log_dir, self.state.history)
        if self.last_path is not None:
            save_checkpoint(self.checkpoint(), self.last_path)
        return row

    def _improves(self, value: float) -> bool:
        if self.state.best_epoch is None or not math.isfinite(self.state.best_value):
            return True
        if self.settings.mode == "max":
            return value > self.state.best_value + self.settings.min_delta
        return value < self.state.best_value - self.settings.min_delta

    def _parameters(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def train_batches(self, batches: Iterable) -> dict[str, float]:
        """Optimise over ``batches`` once (no seeding, validation or checkpoint): the loop's step.

        For benchmarks and tests that time or drive the optimisation alone; :meth:`run_epoch`
        uses it too.

        Parameters
        ----------
        batches : iterable
            What ``step`` takes.

        Returns
        -------
        dict
            The mean of each logged value over the cases.
        """
        return self._train_epoch(batches)

    def _train_epoch(self, batches: Iterable) -> dict[str, float]:
        for module in self.modules.values():
            module.train()
        sums: dict[str, float] = {}
        count, skipped = 0, 0
        params = self._parameters()
        for batch in batches:
            with autocast(self.device, self.settings.precision):
                out = self.step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(out.loss.detach()):
                skipped += 1
            else:
                if self.scaler is not None:
                    self.scaler.scale(out.loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    out.loss.backward()
                finite = _repair_gradients(params) if self.settings.repair_grads else True
                if finite and self.settings.clip_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_(params, self.settings.clip_norm)
                    finite = bool(torch.isfinite(norm))
                if self.scaler is not None:  # the scaler skips non-finite steps itself
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                elif finite:
                    self.optimizer.step()
                else:
                    skipped += 1
            if self.scheduler is not None and self.settings.scheduler_step == "batch":
                self.scheduler.step()
            count += out.n
            logs = {"loss": float(out.loss.detach()), **out.logs} if "loss" not in out.logs else dict(out.logs)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value) * out.n
        if skipped:
            log.warning("%d batch(es) had a non-finite loss or gradient and were skipped", skipped)
            self.skipped_batches += skipped
        return {k: v / max(count, 1) for k, v in sums.items()}


def _repair_gradients(params: list[torch.Tensor]) -> bool:
    """NaN gradients to 0, infinite ones to +-1e6; False if none or more than half were non-finite."""
    grads = [p.grad for p in params if p.grad is not None]
    bad = 0
    for g in grads:
        if not torch.isfinite(g).all():
            bad += 1
            g.nan_to_num_(nan=0.0, posinf=1e6, neginf=-1e6)
    return bool(grads) and bad <= 0.5 * len(grads)


def write_history(directory, history: list[dict]) -> None:
    """``log.csv`` and ``log.json`` (one row per epoch), each written atomically.

    Parameters
    ----------
    directory : path-like
        The run folder.
    history : list of dict
        One row per epoch.
    """
    import pandas as pd

    directory = Path(directory)
    write_csv(directory / "log.csv", pd.DataFrame(history))
    write_text(directory / "log.json", json.dumps(history, indent=2))
