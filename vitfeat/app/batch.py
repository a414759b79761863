"""Batch tab: a manifest plus a zip of its images (or a server-side folder) -> predictions CSV."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from vitfeat.app.predict_case import MAX_UPLOAD_BYTES, AppInputError

#: The images of a batch, unpacked, may take at most this many times the upload limit.
UNPACKED_FACTOR = 40


def _unzip(archive: Path, dest: Path, max_total: int) -> None:
    """Unpack ``archive`` refusing paths that leave ``dest`` and archives that expand too far."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            if total > max_total:
                raise AppInputError(f"images zip: unpacks to {total / 1e6:.0f} MB, "
                                    f"over the {max_total / 1e6:.0f} MB limit")
            root = dest.resolve()
            for m in members:
                target = (dest / m.filename).resolve()
                if not target.is_relative_to(root):
                    raise AppInputError(f"images zip: member '{m.filename}' points outside the archive")
            zf.extractall(dest)
    except zipfile.BadZipFile:
        raise AppInputError("images zip: not a zip archive") from None


def predict_batch(run, manifest, archive=None, folder=None, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Predict every case of ``manifest`` with ``run`` (a :class:`~vitfeat.app.RunInfo`).

    Image paths in the manifest are relative to the unpacked ``archive`` or to ``folder``. Returns
    the predictions CSV, written in a fresh temporary folder outside the run (the caller serves it);
    the unpacked images are removed before returning.
    """
    from vitfeat.dataset import ManifestError
    from vitfeat.pipelines.predict import predict_run

    if manifest is None:
        raise AppInputError("a manifest (.csv) is required")
    work = Path(tempfile.mkdtemp(prefix="vitfeat-batch-"))
    out_dir = Path(tempfile.mkdtemp(prefix="vitfeat-batch-out-"))
    try:
        if archive is not None:
            _unzip(Path(archive), work / "images", max_bytes * UNPACKED_FACTOR)
            root = work / "images"
        elif folder and str(folder).strip():
            root = Path(str(folder).strip()).expanduser()
            if not root.is_dir():
                raise AppInputError(f"image folder '{root}' does not exist on this server")
        else:
            raise AppInputError("give a zip of the images or a server-side image folder")
        man = root / "manifest.csv" if archive is not None else work / "manifest.csv"
        shutil.copyfile(manifest, man)
        if archive is None:  # paths relative to the folder: read the manifest against it
            import pandas as pd

            from vitfeat.dataset import read_table

            frame = read_table(man)
            for col in ("clinical", "wood", "clinical_mask", "wood_mask"):
                if col in frame.columns:
                    frame[col] = [str((root / p).resolve()) if isinstance(p, str) and p else p for p in frame[col]]
            pd.DataFrame(frame).to_csv(man, index=False)
        out = out_dir / "predictions.csv"
        try:
            predict_run(run.path, man, out)
        except (ValueError, FileNotFoundError, ManifestError) as exc:
            raise AppInputError(str(exc).replace(str(work) + "/", "")) from None
        (out_dir / "predictions.features.parquet").unlink(missing_ok=True)  # features stay private
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
