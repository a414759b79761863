"""Case galleries: what a feature means on the run's own patients.

For one feature, the four cases with the lowest and the four with the highest value are shown as
thumbnails (clinical photo, Wood's photo beside it where there is one) with the lesion outlined and
labelled with class and value, so that a clinician sees what "border blur" looks like on their data.
The photos are found through the manifest recorded in the feature table's provenance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402
from skimage.transform import resize  # noqa: E402

from vitfeat.atomic import atomic_path  # noqa: E402

log = logging.getLogger(__name__)

#: Height in pixels of one photo in a gallery thumbnail.
THUMB_HEIGHT = 160
OUTLINE_RGB = (255, 40, 40)


@dataclass
class CasePhotos:
    """Absolute paths of one case's photos and masks (None where the manifest has none).

    Attributes
    ----------
    clinical, wood : pathlib.Path or None
        The photos.
    clinical_mask, wood_mask : pathlib.Path or None
        Their masks.
    """

    clinical: Path
    wood: Path | None = None
    clinical_mask: Path | None = None
    wood_mask: Path | None = None


def extreme_cases(frame: pd.DataFrame, feature: str, target: str, n: int = 4) -> pd.DataFrame:
    """The ``n`` cases with the lowest and the ``n`` with the highest finite value of ``feature``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Feature table with ``case_id``, ``target`` and ``feature`` columns.
    feature : str
        The feature column ranked.
    target : str
        The class column used for the labels.
    n : int
        Cases at each end (fewer when the table has under ``2 n`` finite values).

    Returns
    -------
    pandas.DataFrame
        ``end`` (``'lowest'``/``'highest'``), ``case_id``, ``class`` and ``value``, lowest first.
    """
    values = pd.to_numeric(frame[feature], errors="coerce")
    ok = frame.loc[np.isfinite(values.to_numpy(dtype=float))].assign(value=values)
    ranked = ok.sort_values(["value", "case_id"], kind="mergesort")
    k = min(n, len(ranked) // 2)
    ends = [ranked.head(k).assign(end="lowest"), ranked.tail(k).assign(end="highest")]
    chosen = pd.concat(ends, ignore_index=True).rename(columns={target: "class"})
    chosen["class"] = chosen["class"].astype(str)
    return chosen[["end", "case_id", "class", "value"]]


def find_photos(provenance: dict, table_path) -> tuple[dict[str, CasePhotos], str | None]:
    """The photos of every case of the manifest named in a feature table's provenance.

    Returns ``(photos_by_case_id, problem)``: an empty mapping and the reason when the manifest
    cannot be found or read (a table written by hand, a moved data set).

    Parameters
    ----------
    provenance : dict
        The feature table's provenance (its ``manifest``).
    table_path : path-like
        The feature table (a relative manifest path is resolved beside it).

    Returns
    -------
    tuple
    """
    from vitfeat.dataset import load_manifest

    recorded = provenance.get("manifest")
    if not recorded:
        return {}, "the feature table records no manifest (not written by extract?)"
    candidates = [Path(recorded), Path(table_path).parent / recorded]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {}, f"the manifest recorded in the feature table is gone: {recorded}"
    try:
        man = load_manifest(path, require_targets=False, check_files=False)
    except (ValueError, OSError) as err:
        return {}, f"{path}: manifest unreadable ({err})"
    photos = {c.case_id: CasePhotos(c.clinical, c.wood, c.clinical_mask, c.wood_mask) for c in man.cases()}
    return photos, None


def _outlined(image_path: Path, mask_path: Path | None) -> np.ndarray:
    """A ``THUMB_HEIGHT``-high RGB thumbnail with the mask's boundary drawn in red."""
    from vitfeat.dataset import read_image, read_mask

    image = read_image(image_path)
    width = max(1, round(image.shape[1] * THUMB_HEIGHT / image.shape[0]))
    thumb = (resize(image, (THUMB_HEIGHT, width), anti_aliasing=True, preserve_range=True)).astype(np.uint8)
    if mask_path is not None and Path(mask_path).is_file():
        mask = resize(read_mask(mask_path).astype(float), (THUMB_HEIGHT, width), order=0) > 0.5
        # a one-pixel line just outside the lesion, so the edge itself (its blur) stays visible
        thumb[find_boundaries(mask, mode="outer")] = OUTLINE_RGB
    return thumb


def thumbnail(photos: CasePhotos) -> np.ndarray:
    """Clinical thumbnail, the Wood's one beside it (white gap) where the case has one.

    Parameters
    ----------
    photos : CasePhotos
        The case's files.

    Returns
    -------
    numpy.ndarray
    """
    parts = [_outlined(photos.clinical, photos.clinical_mask)]
    if photos.wood is not None and Path(photos.wood).is_file():
        gap = np.full((THUMB_HEIGHT, 6, 3), 255, dtype=np.uint8)
        parts += [gap, _outlined(photos.wood, photos.wood_mask)]
    return np.hstack(parts)


def draw_gallery(chosen: pd.DataFrame, photos: dict[str, CasePhotos], title: str, path) -> Path:
    """Draw the chosen cases (two rows: lowest, highest) and save the figure atomically as ``path``.

    Parameters
    ----------
    chosen : pandas.DataFrame
        :func:`extreme_cases`' table.
    photos : dict
        ``{case_id: CasePhotos}``.
    title : str
        Figure title.
    path : path-like
        The PNG.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        When a chosen case has no photo on disk (named with its case id and path).
    """
    rows = [chosen[chosen["end"] == end] for end in ("lowest", "highest")]
    ncol = max(1, max(len(r) for r in rows))
    fig, axes = plt.subplots(2, ncol, figsize=(3.2 * ncol, 4.4), squeeze=False)
    for ax_row, (end, cases) in zip(axes, zip(("lowest", "highest"), rows)):
        for ax in ax_row:
            ax.axis("off")
        for ax, (_, case) in zip(ax_row, cases.iterrows()):
            found = photos.get(case["case_id"])
            if found is None or not Path(found.clinical).is_file():
                raise FileNotFoundError(f"case {case['case_id']}: photo not found "
                                        f"({found.clinical if found else 'not in the manifest'})")
            ax.imshow(thumbnail(found))
            ax.set_title(f"{case['case_id']}\n{case['class']} · {case['value']:.3g}", fontsize=8)
        ax_row[0].text(-0.08, 0.5, end, transform=ax_row[0].transAxes, rotation=90, ha="right", va="center",
                       fontsize=10, fontweight="bold")
    fig.suptitle(title, fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
