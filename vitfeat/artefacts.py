"""A run directory's ``run.json`` and the SHA-256 of the artefacts it vouches for.

Every command that writes a run (``fit``, ``train seg``, ``train vmtl``, ...) records the SHA-256 of each
artefact it wrote in ``run.json`` under ``artefacts``; every command that reads a run (``predict``,
``explain``, ``serve``, :func:`vitfeat.load_run`) calls :func:`verify_run` first, which refuses a run
whose files were modified, swapped or removed after it was written. The hashes catch accidents and
naive swaps (a model file copied from another run); they are not a signature, since whoever can
rewrite the model can rewrite ``run.json`` too. What stops a crafted model file from running code is
the exact-type allow-list of :mod:`vitfeat.pipelines.persist`.

A damaged ``run.json`` (empty, truncated, random bytes, not an object) is named, never a traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


class RunIntegrityError(ValueError):
    """A run directory that is damaged, incomplete or was modified after it was written."""


_TRUSTING = contextvars.ContextVar("vitfeat_trust_modified", default=False)


@contextlib.contextmanager
def trusting_modified(trust: bool = True):
    """Within the block, :func:`verify_run` warns instead of refusing (``--trust-modified`` of one call).

    A command verifies its run once and then hands it to code (a run kind's predictor) that verifies
    again; this carries the user's choice through without a parameter on every layer.

    Parameters
    ----------
    trust : bool, default True
    """
    token = _TRUSTING.set(bool(trust) or _TRUSTING.get())
    try:
        yield
    finally:
        _TRUSTING.reset(token)


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : path-like
    chunk : int, default 1 MiB
        Read size.

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def artefact_hashes(run_dir, names) -> dict:
    """``{relative path: sha256}`` of the named files of a run directory.

    Parameters
    ----------
    run_dir : path-like
    names : iterable of str
        Relative paths of the files the run vouches for.

    Returns
    -------
    dict
    """
    run = Path(run_dir)
    return {name: file_sha256(run / name) for name in names}


def read_run_json(run_dir) -> dict:
    """Read ``run_dir/run.json``, naming what is wrong with it.

    Parameters
    ----------
    run_dir : path-like

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        No such directory, or no ``run.json`` in it.
    RunIntegrityError
        ``run.json`` is empty, truncated, not UTF-8 JSON or not a JSON object.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: run directory not found")
    path = run / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run}: not a run directory (no {RUN_FILE})")
    raw = path.read_bytes()
    if not raw.strip():
        raise RunIntegrityError(f"{path}: empty file (the run was interrupted while writing? re-run it)")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunIntegrityError(f"{path}: damaged ({type(exc).__name__}: {exc}); not a vitfeat run file") from None
    if not isinstance(meta, dict):
        raise RunIntegrityError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def verify_run(run_dir, required=(), *, trust_modified: bool | None = None) -> dict:
    """Read ``run.json`` and check every recorded artefact against its SHA-256.

    Parameters
    ----------
    run_dir : path-like
    required : iterable of str
        Files the caller needs (``"model.skops"``); missing ones are named.
    trust_modified : bool, optional
        Warn instead of refusing when a recorded file was modified or is missing (default: False, or
        True inside :func:`trusting_modified`).

    Returns
    -------
    dict
        The run's metadata (``run.json``).

    Raises
    ------
    RunIntegrityError
        A required or recorded file is missing, or a recorded file's hash differs ("modified after fit").
    """
    run = Path(run_dir)
    trust_modified = _TRUSTING.get() if trust_modified is None else trust_modified
    meta = read_run_json(run)
    missing = [f"{run / name}: missing (the run is incomplete)" for name in required if not (run / name).is_file()]
    if missing:
        raise RunIntegrityError("; ".join(missing))
    check_artefacts(run, meta, trust_modified=trust_modified, source=run / RUN_FILE)
    return meta


def check_artefacts(directory, meta: dict, *, trust_modified: bool | None = None, source=None) -> None:
    """Check the files listed in ``meta["artefacts"]`` (``{relative path: sha256}``) inside ``directory``.

    Parameters
    ----------
    directory : path-like
        The run or model directory.
    meta : dict
        Its metadata (``run.json``, ``segmenter.json`` ...).
    trust_modified : bool, optional
        Warn instead of refusing (default: False, or True inside :func:`trusting_modified`).
    source : path-like, optional
        The metadata file, for messages.

    Raises
    ------
    RunIntegrityError
        A recorded file is missing, lies outside ``directory`` or has another SHA-256.
    """
    run = Path(directory)
    trust_modified = _TRUSTING.get() if trust_modified is None else trust_modified
    source = source or run
    shown = Path(str(source)).name
    recorded = meta.get("artefacts")
    if not isinstance(recorded, dict):
        log.warning("%s: no artefact hashes recorded (written by an older vitfeat); not verified", source)
        return
    problems = []
    for name, expected in recorded.items():
        path = run / str(name)
        if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
            raise RunIntegrityError(f"{source}: artefact {str(name)!r} lies outside the run directory")
        if not path.is_file():
            problems.append(f"{path}: missing (recorded in {shown})")
        elif file_sha256(path) != expected:
            problems.append(f"{path}: modified after fit (its SHA-256 differs from the one in {shown})")
    if problems and not trust_modified:
        raise RunIntegrityError("; ".join(problems) + " (pass --trust-modified to use it anyway)")
    if problems:
        message = "using a modified run as asked: " + "; ".join(problems)
        warnings.warn(message, stacklevel=2)
        log.warning(message)


__all__ = ["RUN_FILE", "RunIntegrityError", "artefact_hashes", "check_artefacts", "file_sha256", "read_run_json",
           "trusting_modified", "verify_run"]
