"""Device selection and offline-safe environments for the deep libraries (timm, ultralytics).

Nothing in vitfeat may download at run time on an offline machine, and a missing weight must fail in
seconds rather than after the hub client's retries. These helpers set the environment variables that
make the libraries behave that way, before they are imported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

HUB_HOST = ("huggingface.co", 443)


def select_device(device: str | None = "auto", *, mps: bool = True) -> "torch.device":  # noqa: F821
    """``"auto"`` picks CUDA when present, then Apple MPS (unless ``mps=False``: training code
    untested there), else CPU; any torch device string passes."""
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

    Returns the config dir.
    """
    cfg = Path(config_dir or os.environ.get("VITFEAT_YOLO_CONFIG_DIR") or vitfeat_cache_dir() / "ultralytics")
    # ultralytics keeps its files in YOLO_CONFIG_DIR/Ultralytics; fonts are looked up there first.
    user_dir = cfg / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = user_dir / name
        if not target.exists():
            tmp = user_dir / f".{name}.tmp"
            shutil.copyfile(font, tmp)
            os.replace(tmp, target)
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
    """``torch.save`` through a temporary sibling: a run killed mid-write keeps the old checkpoint."""
    import torch

    from vitfeat.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, device="cpu"):
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, so a tampered
    checkpoint cannot run code. Our checkpoints hold nothing else (histories are plain floats)."""
    import torch

    return torch.load(path, map_location=device, weights_only=True)
