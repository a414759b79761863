"""Batch tab: a manifest plus a zip of its images (or a server-side folder) -> predictions CSV."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from vitfeat.app.predict_case import MAX_UPLOAD_BYTES, AppInputError, public_message
from vitfeat.atomic import atomic_path, write_csv

#: The images of a batch, unpacked, may take at most this many times the upload limit.
UNPACKED_FACTOR = 40


#: At most this many members in a batch archive.
MAX_MEMBERS = 10_000
#: A member that expands more than this many times its compressed size is a bomb, whatever its header says.
MAX_RATIO = 200
_CHUNK = 1 << 16


def _unzip(archive: Path, dest: Path, max_total: int) -> None:
    """Unpack ``archive`` into ``dest`` under a byte budget counted on the bytes actually inflated.

    A zip's headers may lie about sizes, so the declared sizes are only a first check; each member is
    streamed and the write stops as soon as the real total passes ``max_total`` or a member inflates
    beyond :data:`MAX_RATIO` times its compressed size. Member names are data: absolute names, ``..``
    and anything resolving outside ``dest`` are refused; links and special files are never created.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_MEMBERS:
                raise AppInputError(f"images zip: {len(members)} files, over the limit of {MAX_MEMBERS}")
            if sum(m.file_size for m in members) > max_total:
                raise AppInputError(f"images zip: unpacks to more than the {max_total / 1e6:.0f} MB limit")
            root = dest.resolve()
            targets = [_member_target(m.filename, dest, root) for m in members]  # every name checked first
            written = 0
            for m, target in zip(members, targets):
                written = _extract_member(zf, m, target, written, max_total)
    except zipfile.BadZipFile:
        raise AppInputError("images zip: not a zip archive (or a damaged one)") from None
    except (RuntimeError, NotImplementedError, zlib.error):
        raise AppInputError("images zip: encrypted or damaged members cannot be read") from None


def _member_target(name: str, dest: Path, root: Path) -> Path:
    shown = public_message(name.replace("\x00", "\\0"))[:80]
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\x00" in name:
        raise AppInputError(f"images zip: member '{shown}' points outside the archive")
    target = (dest / name.replace("\\", "/")).resolve()
    if not target.is_relative_to(root):
        raise AppInputError(f"images zip: member '{shown}' points outside the archive")
    return target


def _extract_member(zf, member, target: Path, written: int, max_total: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    limit = max(member.compress_size, 1) * MAX_RATIO
    size = 0
    with zf.open(member) as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            written += len(chunk)
            if written > max_total:
                raise AppInputError(f"images zip: unpacks to more than the {max_total / 1e6:.0f} MB limit "
                                    "(its headers understate the sizes)")
            if size > limit:
                raise AppInputError(f"images zip: member '{public_message(member.filename)[:80]}' expands "
                                    f"over {MAX_RATIO} times its packed size (a zip bomb?)")
            dst.write(chunk)
    return written


def predict_batch(run, manifest, archive=None, folder=None, *, max_bytes: int = MAX_UPLOAD_BYTES,
                  data_root=None) -> Path:
    """Predict every case of ``manifest`` with ``run`` (a :class:`~vitfeat.app.RunInfo`).

    Image paths in the manifest are relative to the unpacked ``archive`` or to ``folder``, a folder
    inside the server's ``data_root`` (``vitfeat serve --data-root``); a path leaving it is refused,
    and without a data root server folders are refused altogether. The manifest is read in memory
    with the folder as its ``data_root`` and goes through :func:`vitfeat.load_run`'s
    :meth:`~vitfeat.pipelines.runs.Run.predictions`, the code of ``vitfeat predict``. Returns the
    predictions CSV, written in a fresh temporary folder outside the run (the caller serves it); the
    unpacked images are removed before returning.

    Parameters
    ----------
    run : RunInfo
        The run.
    manifest : path-like
        The uploaded manifest.
    archive : path-like, optional
        A zip of the images.
    folder : str, optional
        A folder relative to ``data_root``.
    max_bytes : int
        Upload-size limit.
    data_root : path-like, optional
        The only server folder (and its subfolders) the batch may read.

    Returns
    -------
    pathlib.Path
    """
    from vitfeat.app.folders import check_data_root, check_manifest_paths, resolve_folder
    from vitfeat.dataset import DATA_ROOT_COLUMN, ManifestError, read_table

    if manifest is None:
        raise AppInputError("a manifest (.csv) is required")
    try:
        frame = read_table(manifest)
    except (ValueError, FileNotFoundError) as exc:
        raise AppInputError(public_message(f"manifest: {str(exc).replace(str(manifest), 'the file')}")) from None
    frame = frame.drop(columns=[DATA_ROOT_COLUMN], errors="ignore")  # the server decides where images come from
    work = Path(tempfile.mkdtemp(prefix="vitfeat-batch-"))
    out_dir = Path(tempfile.mkdtemp(prefix="vitfeat-batch-out-"))
    try:
        if archive is not None:
            root = work / "images"
            _unzip(Path(archive), root, max_bytes * UNPACKED_FACTOR)
            root = allowed = root.resolve()
        elif folder and str(folder).strip():
            allowed = check_data_root(data_root) if data_root is not None else None
            root = resolve_folder(allowed, folder)
        else:
            raise AppInputError("give a zip of the images or a server-side image folder")
        check_manifest_paths(frame, root, allowed)
        try:
            out = run.loaded.predictions(frame, data_root=root)
        except (ValueError, FileNotFoundError, ManifestError) as exc:
            raise AppInputError(public_message(str(exc).replace(str(root) + "/", ""))) from None
        return write_csv(out_dir / "predictions.csv", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
