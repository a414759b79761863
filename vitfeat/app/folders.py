"""The Batch tab's server-side folders: only those under the ``--data-root`` the server was started with.

A folder choice and every path of the uploaded manifest are data: absolute paths, ``..`` and
anything whose real location (symlinks followed) leaves the data root are refused with a plain
message that names the row and column but never a server path.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pandas as pd

from vitfeat.app.predict_case import AppInputError, public_message

#: The folder list offered in the page stops at this depth below the data root ...
LIST_DEPTH = 3
#: ... and at this many folders.
LIST_MAX = 500
#: Shown in the Batch tab when the server has no data root.
NO_DATA_ROOT = ("Server folders are off: this server was started without `--data-root`, so only a zip of the "
                "images can be used here.")


def check_data_root(data_root) -> Path | None:
    """The resolved data root, or None when there is none.

    Parameters
    ----------
    data_root : path-like or None
        The folder given to ``vitfeat serve --data-root``.

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    FileNotFoundError
        The folder does not exist (a start-up error, shown to whoever starts the server).
    """
    if data_root is None or not str(data_root).strip():
        return None
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {data_root}: no such folder")
    return root


def list_folders(data_root: Path | None, depth: int = LIST_DEPTH, limit: int = LIST_MAX) -> list[str]:
    """The folders under ``data_root`` the page offers, relative (``.`` is the root itself).

    Hidden folders and symlinked folders are not listed (nor followed).

    Parameters
    ----------
    data_root : pathlib.Path or None
        The resolved data root.
    depth : int
        How deep to list.
    limit : int
        At most this many folders.

    Returns
    -------
    list of str
    """
    if data_root is None:
        return []
    out = ["."]
    for here, dirs, _ in os.walk(data_root, followlinks=False):
        rel = Path(here).relative_to(data_root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(here) / d).is_symlink())
        if len(rel.parts) >= depth:
            dirs[:] = []
        out += [(rel / d).as_posix() for d in dirs]
        if len(out) >= limit:
            return out[:limit]
    return out


def _inside(data_root: Path, relative: str, what: str) -> Path:
    text = str(relative).strip().replace("\\", "/")
    shown = public_message(text)[:80]  # never echo a server path, even one the user typed
    if not text:
        raise AppInputError(f"{what}: empty")
    if "\0" in text:
        raise AppInputError(f"{what}: holds a NUL byte")
    if text.startswith("/") or text.startswith("~") or (len(text) > 1 and text[1] == ":"):
        raise AppInputError(f"{what} '{shown}' is an absolute path: give it relative to the server's data folder")
    if ".." in PurePosixPath(text).parts:
        raise AppInputError(f"{what} '{shown}' uses '..': only folders inside the server's data folder can be read")
    path = (data_root / text).resolve()
    if not path.is_relative_to(data_root):
        raise AppInputError(f"{what} '{shown}' leads outside the server's data folder (a link?): not read")
    return path


def resolve_folder(data_root: Path | None, choice) -> Path:
    """The folder ``choice`` (relative to ``data_root``) as an absolute path inside it.

    Parameters
    ----------
    data_root : pathlib.Path or None
        The resolved data root (None: server folders are off).
    choice : str
        The folder picked or typed in the page.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    AppInputError
        Server folders are off, or the choice leaves the data root or does not exist.
    """
    if data_root is None:
        raise AppInputError(NO_DATA_ROOT.replace("`", ""))
    folder = _inside(data_root, choice, "image folder")
    if not folder.is_dir():
        raise AppInputError(f"image folder '{str(choice).strip()[:80]}' does not exist in the server's data folder")
    return folder


def check_manifest_paths(frame: pd.DataFrame, folder: Path, data_root: Path) -> None:
    """Refuse a manifest whose photo or mask paths leave ``folder`` (and so the data root).

    Parameters
    ----------
    frame : pandas.DataFrame
        The uploaded manifest.
    folder : pathlib.Path
        The resolved folder its paths are relative to.
    data_root : pathlib.Path
        The resolved data root (``folder`` lies inside it).

    Raises
    ------
    AppInputError
        Naming the first offending row and column.
    """
    from vitfeat.dataset import PATH_COLUMNS

    for col in PATH_COLUMNS:
        if col not in frame.columns:
            continue
        for row, value in enumerate(frame[col], start=1):
            if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
                continue
            path = _inside(folder, str(value), f"manifest row {row}, column {col}: path")
            if not path.is_relative_to(data_root):  # folder is inside data_root, so this cannot happen
                raise AppInputError(f"manifest row {row}, column {col}: path leaves the server's data folder")
