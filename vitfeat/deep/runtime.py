"""Device selection and offline-safe environments for the deep libraries (timm, ultralytics).

Nothing in vitfeat may download at run time on an offline machine, and a missing weight must fail in
seconds rather than after the hub client's retries. These helpers set the environment variables that
make the libraries behave that way, before they are imported.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from vitfeat.atomic import copy_file
from vitfeat.weights import WeightsFileError, load_checkpoint  # noqa: F401  (their home before)

HUB_HOST = ("huggingface.co", 443)


def select_device(device: str | None = "auto", *, mps: bool = True) -> "torch.device":  # noqa: F821
    """``"auto"`` picks CUDA when present, then Apple MPS (unless ``mps=False``: training code
    untested there), else CPU; any torch device string passes.

    Parameters
    ----------
    device : str or None, default "auto"
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    mps : bool, default True
        Let ``auto`` pick Apple MPS.

    Returns
    -------
    torch.device
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        backend = getattr(torch.backends, "mps", None)
        if mps and backend is not None and backend.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def hub_reachable(timeout: float = 2.0) -> bool:
    """True if the Hugging Face hub answers a TCP connect within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` counts as unreachable: the user said so.

    Parameters
    ----------
    timeout : float, default 2.0
        Seconds to wait.

    Returns
    -------
    bool
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_offline():
    """Set ``HF_HUB_OFFLINE=1`` for the block, so that a missing cached weight fails at once.

    huggingface_hub reads the variable into its constants at import time, so the constant is patched
    too when the module is already imported.
    """
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    patched = []
    try:
        import huggingface_hub.constants as hf_constants

        patched.append((hf_constants, hf_constants.HF_HUB_OFFLINE))
        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:  # timm without the hub client: nothing to patch
        pass
    try:
        yield
    finally:
        for module, value in patched:
            module.HF_HUB_OFFLINE = value
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


def vitfeat_cache_dir() -> Path:
    """Where vitfeat keeps its own state (``VITFEAT_CACHE_DIR`` or ``~/.cache/vitfeat``)."""
    root = os.environ.get("VITFEAT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vitfeat"
    )
    return Path(root)


def _bundled_font() -> Path:
    """A TrueType font to give ultralytics (it otherwise downloads Arial.ttf to draw labels)."""
    asset = Path(__file__).resolve().parent.parent / "assets" / "DejaVuSans.ttf"
    if asset.is_file():
        return asset
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def ultralytics_offline_env(config_dir: str | os.PathLike | None = None) -> Path:
    """Prepare a project-owned ultralytics config dir and offline settings; call before importing it.

    - ``YOLO_OFFLINE=1``: no online checks, no asset or weight downloads, no hub calls;
    - ``YOLO_CONFIG_DIR``: vitfeat's own folder (settings.json and fonts), not the user's;
    - ``Arial.ttf`` / ``Arial.Unicode.ttf`` in it (a copy of DejaVu Sans), found before any download;
    - settings ``sync`` off (no analytics, crash reports) once ultralytics is importable.

    Parameters
    ----------
    config_dir : path-like, optional
        The folder (default: ``VITFEAT_YOLO_CONFIG_DIR`` or vitfeat's cache).

    Returns
    -------
    pathlib.Path
        The config dir.
    """
    cfg = Path(config_dir or os.environ.get("VITFEAT_YOLO_CONFIG_DIR") or vitfeat_cache_dir() / "ultralytics")
    # ultralytics keeps its files in YOLO_CONFIG_DIR/Ultralytics; fonts are looked up there first.
    user_dir = cfg / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = user_dir / name
        if not target.exists():
            copy_file(font, target)
    os.environ["YOLO_OFFLINE"] = "1"
    if os.environ.get("YOLO_CONFIG_DIR") != str(cfg):
        os.environ["YOLO_CONFIG_DIR"] = str(cfg)
        _repoint_loaded_ultralytics(user_dir)
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", True):
        SETTINGS.update({"sync": False})
    return cfg


def _repoint_loaded_ultralytics(user_dir: Path) -> None:
    """If ultralytics was imported before us, its config-dir constant is already fixed: move it."""
    import sys

    utils = sys.modules.get("ultralytics.utils")
    if utils is None:
        return
    utils.ONLINE = False
    utils.USER_CONFIG_DIR = user_dir
    checks = sys.modules.get("ultralytics.utils.checks")
    if checks is not None:
        checks.USER_CONFIG_DIR = user_dir
        checks.ONLINE = False


def save_checkpoint(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary sibling: a run killed mid-write keeps the old checkpoint.

    Parameters
    ----------
    obj : object
        State dicts and plain containers.
    path : path-like
        The checkpoint file.

    Returns
    -------
    pathlib.Path
    """
    import torch

    from vitfeat.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


#: Packages whose torch.nn.Module subclasses a full-model checkpoint (ultralytics') may rebuild.
MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.")
#: Other exact globals such a checkpoint holds: its training arguments and their paths.
CHECKPOINT_GLOBALS = frozenset({
    "collections.OrderedDict", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path",
    "types.SimpleNamespace", "ultralytics.utils.IterableSimpleNamespace", "builtins.set", "builtins.frozenset",
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
    "numpy.dtypes.Float64DType", "numpy.dtypes.Float32DType", "numpy.dtypes.Int64DType",
})


class UnsafeCheckpointError(ValueError):
    """A checkpoint whose pickle would call a function or build a type outside the allow-list."""


def check_pickled_checkpoint(path) -> list[str]:
    """Refuse a full-model checkpoint (loaded by a library with pickle) that names anything but model
    layers and plain training records, before the library unpickles it.

    Pickle runs code only through the globals a file names; ``torch.serialization`` lists those
    beyond its own safe set without executing any. Each must be a ``torch.nn.Module`` subclass from
    :data:`MODULE_PACKAGES` (rebuilt with ``__new__`` and ``__setstate__``, nothing else) or one of
    :data:`CHECKPOINT_GLOBALS`; a function such as ``os.system`` or ``builtins.exec`` is named and refused.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of str
        The globals found (all allowed).

    Raises
    ------
    UnsafeCheckpointError
        With the offending globals named, or when the file is not a torch checkpoint.
    """
    import importlib

    import torch

    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # noqa: BLE001  (zip, pickle and torch errors alike mean "not a checkpoint")
        raise UnsafeCheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    refused = []
    for name in found:
        if name in CHECKPOINT_GLOBALS:
            continue
        module, _, attr = name.rpartition(".")
        if name.startswith(MODULE_PACKAGES) and attr.isidentifier():
            obj = getattr(importlib.import_module(module), attr, None)
            if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
                continue
        refused.append(name)
    if refused:
        raise UnsafeCheckpointError(f"{path}: refusing a checkpoint that would call or build "
                                    f"{', '.join(sorted(refused))} when loaded (tampered, or not a model file)")
    return sorted(found)
