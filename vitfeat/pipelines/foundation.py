"""Tabular foundation models from local checkpoint files: the zoo pipelines ``tabpfn`` and ``tabicl``.

``vitfeat fit --tabpfn-checkpoint FILE`` / ``--tabicl-checkpoint FILE`` add them. TabICL (``tabicl``
package) is handled like TabPFN below: its checkpoints are ``.ckpt`` files read with
``torch.load(weights_only=True)`` (tabicl's own loader does the same), checked by
:func:`check_tabicl_checkpoint` before any fit, and a fitted model is saved by its training rows and
the checkpoint's path and SHA-256 (:class:`TabICLLocalClassifier`).

TabPFN's weights cannot be downloaded on these machines, and vitfeat never downloads anything: the user
names a checkpoint file they already have, and :func:`check_checkpoint` reads it before any fit, naming
the file and what is wrong when it is missing, damaged, not a TabPFN classifier checkpoint or of an
architecture the installed ``tabpfn`` does not know.

Accepted formats: ``.safetensors`` (TabPFN's own safe format, :func:`tabpfn.checkpoint.save_as_safetensors`;
no code can hide in it) and ``.ckpt`` only when it loads with ``torch.load(weights_only=True)`` (tensors and
plain containers); a pickled checkpoint that needs anything more is refused, never unpickled.

**Saving a TabPFN winner.** TabPFN learns in context: a fitted model is its training rows. The saved
:class:`TabPFNLocalClassifier` holds those rows (the imputed feature values of the training cases, no
images) as numpy arrays, the checkpoint's path and its SHA-256, never a torch object; on the first
prediction after loading it checks that the file at that path still has that SHA-256 (and passes
:func:`check_checkpoint`), then conditions TabPFN on the stored rows again. A run whose checkpoint moved
or changed is refused with both named.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from vitfeat.artefacts import file_sha256
from vitfeat.pipelines.tabular_deep import one_torch_thread

#: The install command named when the ``tabpfn`` package is missing.
INSTALL_TABPFN = "pip install 'vitfeat[tabpfn]'"
#: The install command named when the ``tabicl`` package is missing.
INSTALL_TABICL = "pip install 'vitfeat[tabicl]'"
#: Where a test or a user's shell may point at a real checkpoint.
CHECKPOINT_ENV = "VITFEAT_TABPFN_CHECKPOINT"


class TabPFNCheckpointError(ValueError):
    """A ``--tabpfn-checkpoint`` (or ``--tabicl-checkpoint``) that cannot be used; the message names the file
    and the problem."""


def _offline() -> None:
    """Switch every hub client tabpfn might call to offline mode (the file is local; nothing is fetched)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TABPFN_DISABLE_TELEMETRY", "1")


def _read_checkpoint(path: Path, title: str = "TabPFN") -> dict:
    from vitfeat.weights import WeightsFileError, load_checkpoint, read_safetensors_header

    if path.suffix == ".safetensors":
        try:
            meta, keys = read_safetensors_header(path)
        except WeightsFileError as exc:
            raise TabPFNCheckpointError(f"damaged {title} checkpoint: {exc}") from None
        return {"format": "safetensors", "meta": meta, "keys": keys}
    if path.suffix in (".ckpt", ".pt", ".pth"):
        try:
            data = load_checkpoint(path)
        except WeightsFileError as exc:
            why = (str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines() or [""])[0][:200]
            if "UnpicklingError" not in str(exc) or "global" not in why.lower():
                # not a refused global (an object to import): damaged bytes or no pickle at all
                raise TabPFNCheckpointError(f"damaged {title} checkpoint: {(str(exc).splitlines() or [''])[0][:300]}"
                                            ) from None
            advice = ("convert it once, on a machine you trust, with tabpfn.checkpoint.save_as_safetensors, and "
                      "pass the .safetensors file" if title == "TabPFN" else
                      "save only its 'config' and 'state_dict' on a machine you trust")
            raise TabPFNCheckpointError(
                f"{path}: refusing a pickled checkpoint that holds more than tensors and plain values (it could run "
                f"code when loaded: {why}); {advice}") from None
        if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
            raise TabPFNCheckpointError(f"{path}: not a {title} checkpoint (no 'state_dict' mapping)")
        return {"format": "ckpt", "meta": {k: v for k, v in data.items() if k != "state_dict"},
                "keys": list(data["state_dict"])}
    raise TabPFNCheckpointError(f"{path}: not a TabPFN checkpoint file (expected .safetensors or .ckpt, "
                                f"got '{path.suffix or 'no extension'}')")


def check_checkpoint(path) -> dict:
    """Check a local TabPFN checkpoint before any fit: exists, readable, a classifier of a known architecture.

    The model is built from it once with tabpfn's own loader, so weights that do not fit the
    architecture its config describes (another version's file) are caught here too.

    Parameters
    ----------
    path : path-like
        The checkpoint (``.safetensors``, or a weights-only ``.ckpt``).

    Returns
    -------
    dict
        ``path`` (absolute), ``sha256``, ``format``, ``architecture``, ``tabpfn_version``.

    Raises
    ------
    TabPFNCheckpointError
        Naming the file: missing, damaged, unsafe, not TabPFN, a regression-only checkpoint, an unknown
        architecture or weights that do not match it; or the ``tabpfn`` package is not installed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TabPFNCheckpointError(f"{path}: TabPFN checkpoint not found (vitfeat never downloads one: pass the "
                                    f"path of a checkpoint file you have)")
    try:
        import tabpfn
        from tabpfn.architectures import ARCHITECTURES
        from tabpfn.model_loading import load_model
    except ImportError:
        raise TabPFNCheckpointError(f"{path}: the tabpfn pipeline needs the tabpfn package: {INSTALL_TABPFN}") \
            from None
    _offline()
    info = _read_checkpoint(path)
    meta = info["meta"]
    if "config" not in meta or not isinstance(meta["config"], dict) or not info["keys"]:
        raise TabPFNCheckpointError(f"{path}: not a TabPFN checkpoint (it has no model 'config' and weights)")
    arch = meta.get("architecture_name", "tabpfn_v2")
    arch = "tabpfn_v2_5" if arch == "base" else arch
    version = getattr(tabpfn, "__version__", None) or _dist_version("tabpfn")
    if arch not in ARCHITECTURES:
        raise TabPFNCheckpointError(f"{path}: a checkpoint of architecture '{arch}', which tabpfn {version} does "
                                    f"not know (it knows {', '.join(sorted(ARCHITECTURES))}): another TabPFN version")
    if int(meta["config"].get("max_num_classes", -1) or -1) <= 0:
        raise TabPFNCheckpointError(f"{path}: a TabPFN regression checkpoint (its config has no classes); "
                                    f"vitfeat needs a classifier checkpoint")
    try:
        with one_torch_thread():
            load_model(path=path.resolve(), estimator_type="classifier")
    except Exception as exc:  # noqa: BLE001  (tabpfn raises many types for a mismatched file)
        raise TabPFNCheckpointError(f"{path}: the checkpoint does not load as a '{arch}' model in tabpfn {version} "
                                    f"(another version's file?): {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300]}") from None
    return {"path": str(path.resolve()), "sha256": file_sha256(path), "format": info["format"],
            "architecture": arch, "tabpfn_version": version}


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


class _LocalCheckpointClassifier(ClassifierMixin, BaseEstimator):
    """In-context classifier from a local checkpoint, CPU, one torch thread; saved as its training rows plus
    the checkpoint's path and SHA-256, never a torch object (subclasses name the checker and estimator)."""

    def __init__(self, checkpoint: str = "", sha256: str | None = None, n_estimators: int = 4,
                 random_state: int = 0):
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.n_estimators = n_estimators
        self.random_state = random_state

    @staticmethod
    def _check(path) -> dict:
        raise NotImplementedError

    def _estimator(self, path: str):
        raise NotImplementedError

    def _model(self):
        model = getattr(self, "_fitted", None)
        if model is not None:
            return model
        info = self._check(self.checkpoint)
        expected = getattr(self, "checkpoint_sha256_", None) or self.sha256
        if expected and info["sha256"] != expected:
            raise TabPFNCheckpointError(f"{self.checkpoint}: the checkpoint changed since the model was "
                                        f"fitted (SHA-256 {info['sha256'][:12]}..., expected {expected[:12]}...)")
        self.checkpoint_sha256_ = info["sha256"]
        model = self._estimator(info["path"])
        with one_torch_thread():
            model.fit(self.X_train_, self.y_train_)
        self._fitted = model
        return model

    def fit(self, X, y):
        """Keep the training rows and condition the model on them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.X_train_, self.y_train_ = X, y_idx.astype(np.int64)
        self._fitted = None
        self._model()
        return self

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "X_train_")
        X = check_array(X, dtype=np.float32)
        model = self._model()
        with one_torch_thread():
            raw = model.predict_proba(X)
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, np.asarray(model.classes_, dtype=int)] = raw
        return proba

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
        state.pop("_fitted", None)  # rebuilt from the checkpoint file (SHA-256 checked) and X_train_
        return state


class TabPFNLocalClassifier(_LocalCheckpointClassifier):
    """TabPFN (``tabpfn.TabPFNClassifier``) from a local checkpoint, CPU, one torch thread; saved without torch.

    Parameters
    ----------
    checkpoint : str
        Path of the checkpoint (checked by :func:`check_checkpoint`).
    sha256 : str, optional
        The checkpoint's expected SHA-256 (set by :func:`register_tabpfn`); a file that no longer
        matches is refused.
    n_estimators : int, default 4
        TabPFN's ensemble of preprocessings.
    random_state : int, default 0
        TabPFN's seed.
    """

    @staticmethod
    def _check(path) -> dict:
        return check_checkpoint(path)

    def _estimator(self, path):
        from tabpfn import TabPFNClassifier

        return TabPFNClassifier(model_path=path, device="cpu", n_estimators=int(self.n_estimators),
                                random_state=int(self.random_state), ignore_pretraining_limits=True,
                                n_preprocessing_jobs=1)


class TabICLLocalClassifier(_LocalCheckpointClassifier):
    """TabICL (``tabicl.TabICLClassifier``) from a local checkpoint, CPU, one torch thread; saved without torch.

    Parameters
    ----------
    checkpoint : str
        Path of the checkpoint (checked by :func:`check_tabicl_checkpoint`).
    sha256 : str, optional
        The checkpoint's expected SHA-256; a file that no longer matches is refused.
    n_estimators : int, default 4
        TabICL's ensemble of column/class permutations.
    random_state : int, default 0
        TabICL's seed.
    """

    @staticmethod
    def _check(path) -> dict:
        return check_tabicl_checkpoint(path)

    def _estimator(self, path):
        from tabicl import TabICLClassifier

        return TabICLClassifier(model_path=path, allow_auto_download=False, device="cpu",
                                n_estimators=int(self.n_estimators), random_state=int(self.random_state))


def check_tabicl_checkpoint(path) -> dict:
    """Check a local TabICL checkpoint before any fit: exists, weights only, builds a TabICL model.

    Parameters
    ----------
    path : path-like
        The ``.ckpt`` file (``{"config": ..., "state_dict": ...}``, as tabicl saves it).

    Returns
    -------
    dict
        ``path`` (absolute), ``sha256``, ``format``, ``architecture``, ``tabicl_version``.

    Raises
    ------
    TabPFNCheckpointError
        Naming the file: missing, damaged, unsafe, not a TabICL checkpoint or weights that do not fit
        its config (another version); or the ``tabicl`` package is not installed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TabPFNCheckpointError(f"{path}: TabICL checkpoint not found (vitfeat never downloads one: pass the "
                                    f"path of a checkpoint file you have)")
    try:
        from tabicl._model.tabicl import TabICL
    except ImportError:
        raise TabPFNCheckpointError(f"{path}: the tabicl pipeline needs the tabicl package: {INSTALL_TABICL}") \
            from None
    _offline()
    if path.suffix not in (".ckpt", ".pt", ".pth"):
        raise TabPFNCheckpointError(f"{path}: not a TabICL checkpoint file (expected .ckpt, got "
                                    f"'{path.suffix or 'no extension'}')")
    info = _read_checkpoint(path, "TabICL")
    config = info["meta"].get("config")
    version = _dist_version("tabicl")
    if not isinstance(config, dict):
        raise TabPFNCheckpointError(f"{path}: not a TabICL checkpoint (no 'config' mapping beside the weights)")
    try:
        from vitfeat.weights import load_checkpoint

        with one_torch_thread():
            model = TabICL(**config)
            state = load_checkpoint(path)["state_dict"]
            model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001  (unknown config keys, shape mismatches: another version's file)
        raise TabPFNCheckpointError(f"{path}: the checkpoint does not load as a TabICL model in tabicl {version} "
                                    f"(another version's file?): {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300]}") from None
    return {"path": str(path.resolve()), "sha256": file_sha256(path), "format": "ckpt", "architecture": "tabicl",
            "tabicl_version": version}


def register_tabpfn(checkpoint) -> dict:
    """Check the checkpoint and (re)register the zoo classifier ``tabpfn`` loading it.

    Parameters
    ----------
    checkpoint : path-like
        A local TabPFN classifier checkpoint.

    Returns
    -------
    dict
        What :func:`check_checkpoint` found.

    Raises
    ------
    TabPFNCheckpointError
        Naming the file and what is wrong with it.
    """
    return register_checkpoint("tabpfn", checkpoint)


#: ``kind: (checker, classifier class, install command, model name)`` of the checkpoint pipelines.
KINDS = {"tabpfn": (check_checkpoint, TabPFNLocalClassifier, INSTALL_TABPFN, "TabPFN"),
         "tabicl": (check_tabicl_checkpoint, TabICLLocalClassifier, INSTALL_TABICL, "TabICL")}


def register_checkpoint(kind: str, checkpoint) -> dict:
    """Check a local checkpoint and (re)register the zoo classifier ``kind`` (``tabpfn`` or ``tabicl``) on it.

    Parameters
    ----------
    kind : {"tabpfn", "tabicl"}
        Which foundation model.
    checkpoint : path-like
        Its local checkpoint file.

    Returns
    -------
    dict
        What the checker found (path, SHA-256, architecture, package version).

    Raises
    ------
    TabPFNCheckpointError
        Naming the file and what is wrong with it.
    """
    from vitfeat.pipelines import zoo

    check, cls, install, title = KINDS[kind]
    info = check(checkpoint)
    path, digest = info["path"], info["sha256"]

    def make(rs, _path=path, _digest=digest, _cls=cls):
        return _cls(checkpoint=_path, sha256=_digest, random_state=rs)

    zoo.CLASSIFIERS.register(kind, zoo.Part(
        kind, "classifier", make, f"{title} foundation model from the local checkpoint {Path(path).name}",
        cost=3.0, requires=((kind, install),)), overwrite=True)
    return info
