"""File names derived from data: the one sanitiser every writer uses.

Case ids, patient ids, class labels, pipeline names and archive members come from files a user (or an
attacker) supplied. Any of them may hold ``../``, an absolute path, a drive letter, a UNC prefix, NUL
bytes, newlines, a reserved Windows device name or hundreds of characters. :func:`safe_filename` maps
every string to one path component that stays inside the folder it is joined to, on Linux, macOS and
Windows alike; :func:`safe_filenames` also keeps a batch of ids apart on case-insensitive file systems,
and :func:`join_inside` is the last guard before a write.

A name that had to change gets a short hash of the original appended, so two ids that sanitise to the
same text (``a/b`` and ``a_b``) never share a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

#: Longest component written (bytes of UTF-8 stay well below the common 255-byte limit).
MAX_STEM = 100

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_DOTS = re.compile(r"\.{2,}")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _clean(name: str) -> str:
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text)
    text = _DOTS.sub("_", text)
    text = text.strip(" .")
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = f"_{text}"
    return text


def safe_filename(name, *, max_length: int = MAX_STEM) -> str:
    """One safe path component for ``name``; unchanged when ``name`` already is one.

    Path separators (``/``, ``\\``), drive colons, control characters (NUL, newline), the characters
    Windows forbids and runs of dots become ``_``; leading and trailing dots and spaces go; reserved
    Windows device names (``CON``, ``NUL``, ``COM1`` ...) get a ``_`` prefix. When anything changed, or
    the name is longer than ``max_length``, ``-`` and the first 8 hex digits of the original's SHA-256
    are appended (the text truncated to fit), so distinct ids stay distinct.

    Parameters
    ----------
    name : object
        The data-derived name (converted with ``str``).
    max_length : int, default :data:`MAX_STEM`
        Longest result, in characters.

    Returns
    -------
    str
        A non-empty name without separators that resolves inside any folder it is joined to.

    Examples
    --------
    >>> safe_filename("case_01")
    'case_01'
    >>> safe_filename("../../etc/passwd")
    '_etc_passwd-...'  # doctest: +SKIP
    """
    original = str(name)
    cleaned = _clean(original)
    if cleaned == original and 0 < len(cleaned) <= max_length:
        return cleaned
    suffix = f"-{_digest(original)}"
    return (cleaned[: max_length - len(suffix)] or "_") + suffix


def safe_filenames(names) -> dict:
    """Safe, pairwise distinct file names for a batch of ids written into one folder.

    Like :func:`safe_filename`, and in addition ids whose safe names differ only in letter case
    (``Case1`` and ``case1``) get the hash suffix, because they would be one file on macOS and Windows.

    Parameters
    ----------
    names : iterable
        The ids (converted with ``str``); duplicates map to the same name.

    Returns
    -------
    dict
        ``{id: file name}`` (without extension).
    """
    originals = list(dict.fromkeys(str(n) for n in names))
    first = {n: safe_filename(n) for n in originals}
    folded: dict[str, list[str]] = {}
    for n, safe in first.items():
        folded.setdefault(safe.casefold(), []).append(n)
    out = {}
    for group in folded.values():
        for n in group:
            if len(group) == 1:
                out[n] = first[n]
            else:
                suffix = f"-{_digest(n)}"
                out[n] = (_clean(n)[: MAX_STEM - len(suffix)] or "_") + suffix
    return out


def join_inside(folder, name, suffix: str = "") -> Path:
    """``folder / (safe_filename(name) + suffix)``, checked to resolve inside ``folder``.

    Parameters
    ----------
    folder : path-like
        The output folder.
    name : object
        A data-derived name (a case id, a class label ...).
    suffix : str, default ""
        Code-chosen rest of the file name (``"_clinical.png"``); must not contain a separator.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If the result would lie outside ``folder`` (cannot happen for sanitised names; kept as the
        last line of defence should the sanitiser ever regress).
    """
    folder = Path(folder)
    if "/" in suffix or "\\" in suffix:
        raise ValueError(f"{suffix!r}: a file-name suffix may not contain a path separator")
    path = folder / (safe_filename(name) + suffix)
    root = os.path.realpath(folder)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ValueError(f"{name!r}: would be written outside {folder}")
    return path


def needs_renaming(name) -> bool:
    """Whether files derived from ``name`` get a sanitised name instead of ``name`` itself.

    Parameters
    ----------
    name : object

    Returns
    -------
    bool
    """
    return safe_filename(name) != str(name)


__all__ = ["MAX_STEM", "join_inside", "needs_renaming", "safe_filename", "safe_filenames"]
