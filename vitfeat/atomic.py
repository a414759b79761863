"""Atomic file output: write to a temporary sibling, then rename over the target.

A reader (or a resumed run) sees either the old file or the complete new one, never half a file.
Every file the project writes goes through one of these helpers; libraries that insist on writing
by path (matplotlib, torch, OpenCV, pandas' parquet) get a temporary path from :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
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
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS and not isinstance(exc, DiskFullError):
            raise DiskFullError(exc.errno, f"no space left on device ({os.strerror(exc.errno)}); nothing was "
                                           "written under this name", str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


#: The errors of a write that ran out of room: a full disk, a full quota, a file-size limit.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(OSError):
    """A write ran out of room (``ENOSPC``, ``EDQUOT`` or ``EFBIG``); ``filename`` is the final path.

    Raised by :func:`atomic_path` (and so by every writer here) instead of the bare ``OSError``, whose
    filename is the temporary; the temporary is already removed, the final name is untouched.
    """

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class OutputError(ValueError):
    """An output path that cannot be written (a folder where a file is expected, read-only, ...)."""


def check_output(path, kind: str = "file") -> Path:
    """Refuse an output path that cannot be written, before any work starts.

    Refused, with the path named: a folder where a file is expected (or a file where a folder is),
    a parent path that passes through a file, and a location this process cannot write to
    (read-only file system, no permission, full disk); the check writes and removes a probe file in
    the nearest existing folder, so it also holds for root and for read-only mounts. Missing parent
    folders are fine when they can be created (the commands create them).

    Parameters
    ----------
    path : str or os.PathLike
        The output the user named.
    kind : {"file", "dir"}
        Whether the command writes one file there or a folder of files.

    Returns
    -------
    pathlib.Path
        ``path``, unchanged.

    Raises
    ------
    OutputError
        Naming the path and what is wrong with it.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir' (got {kind!r})")
    raw = os.fspath(path)
    if not str(raw).strip():
        raise OutputError("the output path is empty")
    if "\0" in str(raw):
        raise OutputError(f"{raw!r}: an output path cannot hold a NUL byte")
    path = Path(raw)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > 255 or len(os.fsencode(raw)) > 4096:
        raise OutputError(f"{str(path)[:120]}...: too long for a file name (a name may have 255 bytes, a path "
                          f"4096; this one has a {longest}-byte name and {len(os.fsencode(raw))} bytes in all)")
    if kind == "file" and path.is_dir():
        raise OutputError(f"{path}: is an existing folder, but a file is expected here "
                          f"(e.g. {path / ('output' + (path.suffix or '.parquet'))})")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is an existing file, but a folder is expected here")
    folder = path.parent if kind == "file" else path
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{path}: its parent {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vitfeat-probe-", dir=existing)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            reason = "no space left on device"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
            reason = f"read-only or not writable ({exc.strerror})"
        else:
            reason = exc.strerror or str(exc)
        where = "" if existing == folder else f" (its nearest existing parent {existing})"
        raise OutputError(f"{path}: cannot write there{where}: {reason}") from None
    os.close(fd)
    os.unlink(probe)
    return path


_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def sweep_temporaries(folder, recursive: bool = False) -> int:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writer process is gone.

    A killed process leaves its half-written temporary behind (the target itself is never torn); a
    resumed run calls this on its cache folder. Files of live processes are left alone.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to sweep.
    recursive : bool, default False
        Also sweep every folder below ``folder`` (a cache of nested folders).

    Returns
    -------
    int
        How many files were deleted.
    """
    removed = 0
    folder = Path(folder)
    for entry in (folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")):
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
