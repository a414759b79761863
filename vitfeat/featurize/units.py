"""Physical units: millimetre versions of the pixel-unit length and area features.

With a scale (manifest column ``pixels_per_mm`` or ``extract --pixels-per-mm``; pixels of the photo
as stored, before ``max_side`` shrinks it) every length feature ``<col>`` gains ``<col>_mm`` (its
value divided by the pixels per mm of the photo it was measured on) and every area feature
``<col>_mm2`` (divided by the square). The scale applies to both photos of a case. Without a scale
the pixel features stay alone and ``fit``'s report says that sizes are in pixels.

:data:`PIXEL_UNITS` declares which features of the built-in families are lengths or areas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitfeat.dataset import oriented_size

#: ``{family: {feature: "length" | "area"}}``: the built-in features measured in pixels.
PIXEL_UNITS = {
    "shape": {"pixel_area": "area", "mesh_area": "area", "perimeter": "length", "major_axis": "length",
              "minor_axis": "length", "max_diameter": "length"},
    "border": {"transition_width": "length", "crossing_width": "length", "inner_transition_width": "length"},
    "color": {"trichrome_width": "length"},
}
SUFFIX = {"length": "_mm", "area": "_mm2"}
PHYSICAL_SUFFIXES = tuple(SUFFIX.values())
MODALITIES = ("clinical", "wood")
COLUMN = "pixels_per_mm"


def pixel_unit_columns(columns) -> dict[str, tuple[str, str]]:
    """``{column: (modality, "length" | "area")}`` for the columns that hold a pixel length or area.

    Parameters
    ----------
    columns : iterable of str
        Feature columns (``<modality>_<family>_<feature>``).

    Returns
    -------
    dict
    """
    from vitfeat.featurize.registry import get_family

    prefixes = {}
    for family, feats in PIXEL_UNITS.items():
        fam = get_family(family)
        for modality in fam.modalities:
            for bare, kind in feats.items():
                prefixes[fam.prefix(modality) + bare] = (modality, kind)
    return {c: prefixes[c] for c in columns if c in prefixes}


def check_pixels_per_mm(value, where: str = "pixels_per_mm") -> float:
    """``value`` as a positive finite float, or ValueError naming ``where`` and the value.

    Parameters
    ----------
    value : object
        The scale.
    where : str
        What to name in the error (file, row, column).

    Returns
    -------
    float
    """
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: pixels_per_mm '{value}' is not a number") from None
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"{where}: pixels_per_mm must be a positive number of pixels per millimetre (got {value})")
    return scale


def _loaded_factor(path, max_side: int | None) -> float:
    """How much ``max_side`` shrank a photo (1 when it did not), as the engine's resize does."""
    if not max_side or path is None:
        return 1.0
    w, h = oriented_size(path)
    if max(w, h) <= max_side:
        return 1.0
    return max(1, round(w * max_side / max(w, h))) / w


def add_physical_units(frame: pd.DataFrame, cases, pixels_per_mm: dict, max_side: int | None = None) -> pd.DataFrame:
    """``frame`` with ``_mm``/``_mm2`` columns after each pixel length/area column.

    Parameters
    ----------
    frame : pandas.DataFrame
        The feature table (one row per case, ``case_id``).
    cases : iterable of vitfeat.dataset.Case
        The cases (their photo paths give the ``max_side`` factor).
    pixels_per_mm : dict
        ``{case_id: scale}`` (pixels per mm of the stored photo); cases without one get NaN.
    max_side : int, optional
        The extraction's ``max_side``.

    Returns
    -------
    pandas.DataFrame
    """
    units = pixel_unit_columns(frame.columns)
    if not units or not pixels_per_mm:
        return frame
    factors = {}
    for case in cases:
        scale = pixels_per_mm.get(case.case_id)
        for modality in MODALITIES:
            path = case.image(modality)
            factors[(case.case_id, modality)] = (
                scale * _loaded_factor(path, max_side) if scale is not None and path is not None else np.nan)
    ids = frame["case_id"].astype(str)
    new = {}
    for col, (modality, kind) in units.items():
        px_per_mm = ids.map(lambda cid, m=modality: factors.get((cid, m), np.nan)).to_numpy(dtype=float)
        power = 2 if kind == "area" else 1
        new[col + SUFFIX[kind]] = frame[col].to_numpy(dtype=float) / px_per_mm**power
    order = []
    for col in frame.columns:
        order.append(col)
        if col in units:
            order.append(col + SUFFIX[units[col][1]])
    return pd.concat([frame, pd.DataFrame(new, index=frame.index)], axis=1)[order]


__all__ = ["COLUMN", "PHYSICAL_SUFFIXES", "PIXEL_UNITS", "SUFFIX", "add_physical_units", "check_pixels_per_mm",
           "pixel_unit_columns"]


def case_scales(manifest, default=None) -> dict:
    """``{case_id: pixels per mm}`` from the manifest's ``pixels_per_mm`` column, ``default`` where a
    row leaves it empty (or for every row when the column is absent); empty without any scale.

    Parameters
    ----------
    manifest : vitfeat.dataset.Manifest
        A loaded (validated) manifest.
    default : float, optional
        ``extract --pixels-per-mm``.

    Returns
    -------
    dict
    """
    if default is not None:
        default = check_pixels_per_mm(default, "--pixels-per-mm")
    frame = manifest.frame
    column = frame[COLUMN] if COLUMN in frame.columns else pd.Series(np.nan, index=frame.index)
    out = {}
    for row, (cid, value) in enumerate(zip(frame["case_id"].astype(str), column), start=1):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            if default is not None:
                out[cid] = default
            continue
        out[cid] = check_pixels_per_mm(value, f"{manifest.path or 'manifest'}: row {row}, column '{COLUMN}'")
    return out
