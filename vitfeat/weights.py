"""The project's one reader of weight files (checkpoints, state dicts, safetensors).

A weights file comes from outside: a tampered one must not run code when read. ``.safetensors``
files hold tensors and a JSON header only; everything else is read with
``torch.load(weights_only=True)``, which refuses any pickled object that is not a tensor or a plain
container. Every caller (the deep models, the segmenters, the tabular foundation models) reads
weights through this module; ``tests/test_weights_reader.py`` checks that no other module does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class WeightsFileError(ValueError):
    """A weights file that is missing, empty, truncated or not a torch/safetensors file; names the file."""


def load_checkpoint(path: str | os.PathLike, device="cpu"):
    """Read a weights file: the project's one reader of checkpoints and state dicts.

    ``.safetensors`` files go through ``safetensors.torch.load_file`` (a flat state dict, no code);
    everything else through ``torch.load(weights_only=True)``: tensors and plain containers only,
    so a tampered checkpoint cannot run code. Our checkpoints hold nothing else (histories are plain
    floats).

    Parameters
    ----------
    path : path-like
        The checkpoint or weights file (``.pt``, ``.pth``, ``.bin``, ``.safetensors``).
    device : str or torch.device, default "cpu"
        Where tensors are loaded.

    Returns
    -------
    object
        The checkpoint (a state dict for ``.safetensors``).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    WeightsFileError
        The file cannot be read as weights (the reader's many error types become this one, naming
        the file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device=str(device))
        return torch.load(path, map_location=device, weights_only=True)
    # torch.load raises many types for a bad file (UnpicklingError, RuntimeError, EOFError, ...) and
    # safetensors its own SafetensorError: all become one error naming the file
    except Exception as exc:  # noqa: BLE001
        kind = "safetensors" if path.suffix.lower() == ".safetensors" else "torch"
        raise WeightsFileError(f"{path}: cannot read as a {kind} weights file ({type(exc).__name__}: {exc})") from None


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict, list[str]]:
    """The JSON metadata and tensor names of a ``.safetensors`` file, without reading its tensors.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file.

    Returns
    -------
    metadata : dict
        The header's ``__metadata__`` entries, each JSON-decoded when it is JSON (kept as text otherwise).
    keys : list of str
        The tensor names.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    WeightsFileError
        The file is not a readable safetensors file (names the file).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = handle.metadata() or {}
            keys = list(handle.keys())
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for damaged files)
        raise WeightsFileError(f"{path}: cannot read as a safetensors weights file "
                               f"({type(exc).__name__}: {exc})") from None
    return {k: _json_or_text(v) for k, v in raw.items()}, keys


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value
