"""Tabular deep classifiers for the zoo: RealMLP (``realmlp``) and TabM (``tabm``), CPU, one thread per fit.

Both are scikit-learn classifiers owned by vitfeat. They see what the zoo's Pipeline hands them (imputed,
constant columns dropped, robust-scaled for RealMLP, quantile-transformed for TabM: all fitted on the
training part only) and train with early stopping on an inner, class-stratified split of that training
part (never on the fold being scored). Seeds are fixed; ``torch.set_num_threads(1)`` holds during fit
and predict only (joblib runs the folds in parallel), and the caller's thread setting is restored.

**Models.**

- ``RealMLPClassifier``: a compact RealMLP-TD (Holzmüller et al., NeurIPS 2024, as in ``pytabkit``'s
  ``RealMLP_TD_Classifier``): smooth clipping after robust scaling, PBLD numerical embeddings, a
  learnable front scale (6x learning rate), three 256-unit NTK-parametrised layers with parametric
  SELU and flat-cosine dropout 0.15, label smoothing 0.1, Adam (0.9, 0.95) at 0.04 with the
  ``coslog4`` schedule, decoupled weight decay 0.02; the epoch with the lowest inner validation
  log-loss is kept. Departures for CPU fits on short wide tables: 128 epochs instead of 256, and no
  PBLD embeddings above :data:`EMBED_MAX_FEATURES` columns (as RealMLP-TD-S). Left out: pytabkit's
  categorical one-hot/embedding (vitfeat tables are numeric) and its weight-decay schedule (flat).
- ``TabMClassifier``: the official ``tabm`` package's ``TabM`` module (Gorishniy et al., ICLR 2025;
  k = 32 BatchEnsemble members, 3 blocks of 256 (the paper's 512 for CPU), dropout 0.1), trained as
  pytabkit's ``TabM_D`` does:
  AdamW at 2e-3, batch 256, the mean cross-entropy of the k members, early stopping after 16 epochs
  without a better inner validation loss; it predicts the mean of the members' probabilities.

**Saving.** A fitted classifier holds no torch object: its weights are numpy arrays (``state_``, from
the module's ``state_dict``) and its architecture a dict of numbers (``arch_``); the module is rebuilt
from them on the first prediction after loading. A model file therefore needs no torch type in
vitfeat's skops allow-list, only these two classes (:data:`vitfeat.pipelines.persist.TRUSTED_TYPES`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

#: RealMLP's ``embed="auto"`` uses PBLD embeddings up to this many input columns.
EMBED_MAX_FEATURES = 256
#: Optional package each model needs, with the command that installs it.
INSTALL = "pip install 'vitfeat[tabular-deep]'"


@contextmanager
def one_torch_thread():
    """Run the block with one torch intra-op thread, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _inner_split(y: np.ndarray, fraction: float, seed: int):
    """Indices (train, validation) of a class-stratified split of the training part; validation is
    empty when a class has fewer than two cases (then the last epoch is kept)."""
    idx = np.arange(len(y))
    counts = np.bincount(y)
    n_val = int(round(fraction * len(y)))
    if fraction <= 0 or counts[counts > 0].min() < 2 or n_val < len(counts):
        return idx, idx[:0]
    return train_test_split(idx, test_size=n_val, stratify=y, random_state=seed)


class _TorchTabular(ClassifierMixin, BaseEstimator):
    """Shared fit/predict/persistence of the torch tabular classifiers (subclasses build the module)."""

    def _arch(self, n_features: int, n_classes: int) -> dict:
        raise NotImplementedError

    @staticmethod
    def _build(arch: dict):
        raise NotImplementedError

    def _logits(self, module, xb):
        """Logits of shape (batch, members, classes)."""
        out = module(xb)
        return out if out.ndim == 3 else out[:, None, :]

    def _loss(self, logits, yb, torch):
        k = logits.shape[1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat_interleave(k),
                                                 label_smoothing=self._label_smoothing())

    def _label_smoothing(self) -> float:
        return 0.0

    def _optimizer(self, module, torch):
        return torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def _schedule(self, step_fraction: float) -> float:
        return 1.0

    def _epoch_hook(self, module, fraction: float) -> None:
        return None

    def fit(self, X, y):
        """Train on ``X, y`` with early stopping on an inner split of these rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Preprocessed features (no missing values).
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self
        """
        import torch

        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = max(2, len(self.classes_))
        seed = int(self.random_state or 0)
        train, val = _inner_split(y_idx, self.val_fraction, seed)
        self.arch_ = self._arch(X.shape[1], n_classes)
        with one_torch_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build(self.arch_)
            opt = self._optimizer(module, torch)
            base_lrs = [g["lr"] for g in opt.param_groups]
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y_idx.astype(np.int64))
            gen = torch.Generator().manual_seed(seed)
            n_batches = max(1, math.ceil(len(train) / self.batch_size))
            total = self.max_epochs * n_batches
            best, best_state, since, step = np.inf, None, 0, 0
            self.n_epochs_ = 0
            for epoch in range(self.max_epochs):
                module.train()
                self._epoch_hook(module, epoch / self.max_epochs)
                order = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
                for b in range(n_batches):
                    batch = order[b * self.batch_size:(b + 1) * self.batch_size]
                    if len(batch) < 2 and n_batches > 1:
                        continue  # a lone row breaks batch statistics and adds nothing
                    for group, lr in zip(opt.param_groups, base_lrs):
                        group["lr"] = lr * self._schedule(step / total)
                    opt.zero_grad(set_to_none=True)
                    self._loss(self._logits(module, Xt[batch]), yt[batch], torch).backward()
                    opt.step()
                    step += 1
                self.n_epochs_ = epoch + 1
                if not len(val):
                    continue
                module.eval()
                with torch.no_grad():
                    proba = torch.softmax(self._logits(module, Xt[val]), -1).mean(1)
                    loss = float(torch.nn.functional.nll_loss(torch.log(proba.clamp_min(1e-7)), yt[val]))
                if loss < best - 1e-6:
                    best, since, self.best_epoch_ = loss, 0, epoch + 1
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    since += 1
                    if self.patience is not None and since >= self.patience:
                        break
            if best_state is not None:
                module.load_state_dict(best_state)
            else:
                self.best_epoch_ = self.n_epochs_
        self.state_ = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        self.val_loss_ = float(best) if np.isfinite(best) else None
        self._module = module.eval()
        return self

    def _module_for_predict(self):
        module = getattr(self, "_module", None)
        if module is None:  # loaded from a model file: rebuild from the architecture and the arrays
            import torch

            module = self._build(self.arch_)
            module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state_.items()}, strict=True)
            self._module = module.eval()
        return module

    def predict_proba(self, X):
        """Class probabilities (the mean over ensemble members for TabM).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
        """
        import torch

        check_is_fitted(self, "state_")
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; the model was fitted on {self.n_features_in_}")
        with one_torch_thread(), torch.no_grad():
            module = self._module_for_predict()
            proba = torch.softmax(self._logits(module, torch.from_numpy(X)), -1).mean(1).numpy()
        proba = proba.astype(np.float64)[:, :len(self.classes_)]
        return proba / proba.sum(1, keepdims=True)

    def predict(self, X):
        """Most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_module", None)  # torch never enters a model file: state_ and arch_ rebuild it
        return state


# --- RealMLP ---------------------------------------------------------------------------------------


def _realmlp_module(arch: dict):
    import torch
    from torch import nn

    class NTKLinear(nn.Module):
        """Linear layer in NTK parametrisation: weights ~ N(0, 1), scaled by 1/sqrt(fan_in) in forward."""

        def __init__(self, d_in, d_out, zero=False):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(d_in, d_out) if zero else torch.randn(d_in, d_out))
            self.bias = nn.Parameter(torch.zeros(d_out))
            self.factor = 1.0 / math.sqrt(d_in)

        def forward(self, x):
            return x @ self.weight * self.factor + self.bias

    class ParametricSELU(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.alpha = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x + self.alpha * (torch.selu(x) - x)

    class PBLD(nn.Module):
        """Periodic-bias-linear-densenet numerical embedding: [x, linear(cos(2 pi (w x + b)))] per feature."""

        def __init__(self, n, d_hidden, d_out, sigma):
            super().__init__()
            self.w1 = nn.Parameter(sigma * torch.randn(n, d_hidden))
            self.b1 = nn.Parameter(torch.rand(n, d_hidden) * 2 - 1)
            self.w2 = nn.Parameter(torch.randn(n, d_hidden, d_out) / math.sqrt(d_hidden))
            self.b2 = nn.Parameter(torch.zeros(n, d_out))

        def forward(self, x):
            h = torch.cos(2 * math.pi * (x[..., None] * self.w1 + self.b1))
            h = torch.einsum("bnh,nho->bno", h, self.w2) + self.b2
            return torch.cat([x[..., None], h], -1).flatten(1)

    class RealMLP(nn.Module):
        def __init__(self, n_features, n_classes, hidden, d_emb, p_drop, sigma):
            super().__init__()
            self.embed = PBLD(n_features, 16, d_emb - 1, sigma) if d_emb > 1 else None
            self.scale = nn.Parameter(torch.ones(n_features * d_emb))
            layers, d = [], n_features * d_emb
            for width in hidden:
                layers.append(nn.ModuleDict({"lin": NTKLinear(d, width), "act": ParametricSELU(width)}))
                d = width
            self.blocks = nn.ModuleList(layers)
            self.dropout = nn.Dropout(p_drop)
            self.out = NTKLinear(d, n_classes, zero=True)

        def forward(self, x):
            x = x / torch.sqrt(1 + (x / 3) ** 2)  # smooth clipping of the robust-scaled inputs
            h = (self.embed(x) if self.embed is not None else x) * self.scale
            for block in self.blocks:
                h = self.dropout(block["act"](block["lin"](h)))
            return self.out(h)

    return RealMLP(arch["n_features"], arch["n_classes"], list(arch["hidden"]), arch["d_emb"], arch["p_drop"],
                   arch["sigma"])


class RealMLPClassifier(_TorchTabular):
    """Compact RealMLP-TD classifier (see the module docstring), CPU, one thread.

    Parameters
    ----------
    hidden : tuple of int, default (256, 256, 256)
        Widths of the hidden layers.
    embed : {"auto", "pbld", "none"}, default "auto"
        PBLD numerical embeddings; ``auto`` uses them up to :data:`EMBED_MAX_FEATURES` input columns
        (they multiply the first layer's width by four).
    max_epochs : int, default 128
        Epochs (the ``coslog4`` learning-rate schedule spans them); the best one on the inner
        validation split is kept.
    batch_size : int, default 256
        Rows per step.
    lr : float, default 0.04
        Adam learning rate (NTK parametrisation).
    weight_decay : float, default 0.02
        Decoupled weight decay of the weights (not biases, scales or activations).
    p_drop : float, default 0.15
        Dropout, flat then cosine-decayed to 0 over the epochs.
    label_smoothing : float, default 0.1
        Label smoothing of the training loss.
    val_fraction : float, default 0.2
        Share of the training rows held out (stratified) to choose the epoch.
    patience : int, optional
        Stop after this many epochs without a better validation loss (None: train all epochs).
    random_state : int, default 0
        Seed of initialisation, batches and the inner split.
    """

    def __init__(self, hidden=(256, 256, 256), embed: str = "auto", max_epochs: int = 128, batch_size: int = 256,
                 lr: float = 0.04, weight_decay: float = 0.02, p_drop: float = 0.15, label_smoothing: float = 0.1,
                 val_fraction: float = 0.2, patience=None, random_state: int = 0):
        self.hidden = hidden
        self.embed = embed
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.p_drop = p_drop
        self.label_smoothing = label_smoothing
        self.val_fraction = val_fraction
        self.patience = patience
        self.random_state = random_state

    def _arch(self, n_features, n_classes):
        if self.embed not in ("auto", "pbld", "none"):
            raise ValueError(f"embed {self.embed!r}: use auto, pbld or none")
        pbld = self.embed == "pbld" or self.embed == "auto" and n_features <= EMBED_MAX_FEATURES
        return {"n_features": int(n_features), "n_classes": int(n_classes), "hidden": [int(h) for h in self.hidden],
                "d_emb": 4 if pbld else 1, "p_drop": float(self.p_drop), "sigma": 0.1}

    @staticmethod
    def _build(arch):
        return _realmlp_module(arch)

    def _label_smoothing(self):
        return float(self.label_smoothing)

    def _optimizer(self, module, torch):
        decay, bias, scale = [], [], []
        for name, p in module.named_parameters():
            if name == "scale":
                scale.append(p)
            elif name.endswith("weight") or name.startswith("embed.w"):
                decay.append(p)
            else:
                bias.append(p)
        groups = [{"params": decay, "lr": self.lr, "weight_decay": self.weight_decay},
                  {"params": bias, "lr": self.lr * 0.1, "weight_decay": 0.0},
                  {"params": scale, "lr": self.lr * 6.0, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, betas=(0.9, 0.95))

    def _schedule(self, t):
        # pytabkit's coslog4: four cosine cycles on a log time axis, ending at 0
        return 0.5 - 0.5 * math.cos(2 * math.pi * math.log2(1 + 15 * t))

    def _epoch_hook(self, module, fraction):
        # flat_cos: constant for the first half, then cosine down to 0
        factor = 1.0 if fraction < 0.5 else 0.5 + 0.5 * math.cos(math.pi * (fraction - 0.5) / 0.5)
        module.dropout.p = self.p_drop * factor


# --- TabM ------------------------------------------------------------------------------------------


def _tabm_module(arch: dict):
    from tabm import TabM

    return TabM.make(n_num_features=arch["n_features"], d_out=arch["n_classes"], k=arch["k"],
                     n_blocks=arch["n_blocks"], d_block=arch["d_block"], dropout=arch["dropout"])


class TabMClassifier(_TorchTabular):
    """TabM (the official ``tabm`` package's module) trained like pytabkit's ``TabM_D``, CPU, one thread.

    Parameters
    ----------
    k : int, default 32
        Ensemble members (BatchEnsemble).
    n_blocks : int, default 3
        MLP blocks.
    d_block : int, default 256
        Width of the blocks (the paper's 512 costs about three times the CPU for no gain on vitfeat's
        small tables, docs/tabular_deep.md).
    dropout : float, default 0.1
        Dropout in the blocks.
    max_epochs : int, default 200
        Upper bound on epochs (early stopping usually ends sooner).
    patience : int, default 16
        Stop after this many epochs without a better inner validation loss.
    batch_size : int, default 256
        Rows per step.
    lr : float, default 0.002
        AdamW learning rate.
    weight_decay : float, default 0.0
        AdamW weight decay.
    val_fraction : float, default 0.2
        Share of the training rows held out (stratified) for early stopping.
    random_state : int, default 0
        Seed of initialisation, batches and the inner split.
    """

    def __init__(self, k: int = 32, n_blocks: int = 3, d_block: int = 256, dropout: float = 0.1,
                 max_epochs: int = 200, patience: int = 16, batch_size: int = 256, lr: float = 0.002,
                 weight_decay: float = 0.0, val_fraction: float = 0.2, random_state: int = 0):
        self.k = k
        self.n_blocks = n_blocks
        self.d_block = d_block
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.random_state = random_state

    def _arch(self, n_features, n_classes):
        return {"n_features": int(n_features), "n_classes": int(n_classes), "k": int(self.k),
                "n_blocks": int(self.n_blocks), "d_block": int(self.d_block), "dropout": float(self.dropout)}

    @staticmethod
    def _build(arch):
        return _tabm_module(arch)
