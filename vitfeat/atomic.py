"""Atomic file output: write to a temporary sibling, then rename over the target.

A reader (or a resumed run) sees either the old file or the complete new one, never half a file.
Every file the project writes goes through one of these helpers; libraries that insist on writing
by path (matplotlib, torch, OpenCV, pandas' parquet) get a temporary path from :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The temporary name is unique per call (process id plus a random part), so two writers of the same
    target - two processes or two threads - never share a half-written file; the last rename wins.
    The suffix is kept (``.x.<id>.tmp.png``) so that writers choosing a format by extension still work.

    Parameters
    ----------
    path : str or os.PathLike
        The final file. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where the caller writes the content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def sweep_temporaries(folder) -> int:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writer process is gone.

    A killed process leaves its half-written temporary behind (the target itself is never torn); a
    resumed run calls this on its cache folder. Files of live processes are left alone.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to sweep (not recursive).

    Returns
    -------
    int
        How many files were deleted.
    """
    removed = 0
    for entry in Path(folder).glob(".*.tmp*"):
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file() and not _process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file (its folder must exist).
    data : bytes
        The content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    text : str
        The content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (non-JSON values through ``str``) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    obj : object
        What to write (dicts, lists, numbers, strings; anything else as its ``str``).
    indent : int or None, default 2
        JSON indentation (None: one line).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_text(path, json.dumps(obj, indent=indent, default=str))


def write_csv(path, frame, **to_csv_kwargs) -> Path:
    """Write a DataFrame as CSV atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    frame : pandas.DataFrame
        The table.
    **to_csv_kwargs
        Passed to ``DataFrame.to_csv`` (``index=False`` unless given).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    to_csv_kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **to_csv_kwargs)
    return Path(path)


def write_table(path, frame) -> Path:
    """Write a DataFrame without its index atomically: Parquet for ``.parquet``/``.pq``, else CSV.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its suffix picks the format.
    frame : pandas.DataFrame
        The table.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return Path(path)
    return write_csv(path, frame)


def write_figure(path, fig, **savefig_kwargs) -> Path:
    """``fig.savefig`` atomically (the format follows ``path``'s suffix unless given).

    The figure is left open; closing it is the caller's business.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    fig : matplotlib.figure.Figure
        The figure.
    **savefig_kwargs
        Passed to ``Figure.savefig`` (``dpi``, ``format``, ...).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(path)


def copy_file(src, dst) -> Path:
    """Copy ``src`` over ``dst`` atomically.

    Parameters
    ----------
    src : str or os.PathLike
        The file to copy.
    dst : str or os.PathLike
        Where the copy goes (replaced whole, never torn).

    Returns
    -------
    pathlib.Path
        ``dst``.
    """
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
