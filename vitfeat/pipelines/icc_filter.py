"""``fit --feature-icc FILE --min-icc 0.75``: keep only features robust to re-photographing.

The ICC file comes from ``vitfeat robustness`` (perturbed images, no labels), so choosing features
by it before cross-validation uses no information about the targets: it is not leakage, unlike a
selection by association with the label, which must happen inside the training folds.

Also the report's notes on units (sizes in pixels, or in millimetres when the table has them).
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.dataset import file_hash
from vitfeat.featurize.registry import column_family
from vitfeat.featurize.units import PHYSICAL_SUFFIXES, pixel_unit_columns

DEFAULT_MIN_ICC = 0.75


def read_feature_icc(path) -> pd.DataFrame:
    """Read ``feature_icc.csv`` (from ``vitfeat robustness``), checked.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    pandas.DataFrame
        With at least ``feature`` and ``icc`` (``icc`` numeric, NaN where undefined).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing columns, duplicate or non-numeric values (named with the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ICC file not found (write one with `vitfeat robustness`)")
    frame = pd.read_csv(path)
    missing = [c for c in ("feature", "icc") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: ICC file lacks column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(map(str, frame.columns))}); "
                         "expected the feature_icc.csv of vitfeat robustness")
    dup = frame["feature"][frame["feature"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: feature '{dup.iloc[0]}' appears more than once")
    values = pd.to_numeric(frame["icc"], errors="coerce")
    bad = frame.index[values.isna() & frame["icc"].notna()]
    if len(bad):
        raise ValueError(f"{path}: row {int(bad[0]) + 2}, column 'icc': '{frame.at[bad[0], 'icc']}' is not a number")
    return frame.assign(icc=values)


def filter_by_icc(features: list[str], icc_path, min_icc: float = DEFAULT_MIN_ICC) -> tuple[list[str], dict]:
    """Drop the features whose ICC is below ``min_icc``.

    A ``_mm``/``_mm2`` column (physical units) without its own ICC takes its pixel column's. Features
    whose ICC is undefined (constant under every perturbation) are kept and counted.

    Parameters
    ----------
    features : list of str
        The table's feature columns.
    icc_path : path-like
        ``feature_icc.csv`` from ``vitfeat robustness``.
    min_icc : float, default 0.75
        Keep features with ICC >= this (Koo & Li: 0.75 good, 0.9 excellent).

    Returns
    -------
    kept : list of str
        The features kept, in their order.
    record : dict
        What ``run.json`` and the report show: the file and its hash, ``min_icc``, counts, the dropped
        features and the count dropped per family.

    Raises
    ------
    ValueError
        ``min_icc`` outside [-1, 1]; a table feature without an ICC (an ICC file from another
        feature set), or every feature dropped.
    """
    if not -1.0 <= float(min_icc) <= 1.0:
        raise ValueError(f"min_icc must lie between -1 and 1 (got {min_icc})")
    icc_frame = read_feature_icc(icc_path)
    icc = dict(zip(icc_frame["feature"].astype(str), icc_frame["icc"]))
    values, unknown = {}, []
    for col in features:
        base = _pixel_column(col)
        if col in icc:
            values[col] = icc[col]
        elif base in icc:
            values[col] = icc[base]
        else:
            unknown.append(col)
    if unknown:
        raise ValueError(f"{icc_path}: no ICC for {len(unknown)} of the table's {len(features)} features "
                         f"(e.g. {', '.join(unknown[:5])}); the ICC file comes from another feature set - "
                         "run `vitfeat robustness` with the families the table was extracted with")
    dropped = [c for c in features if np.isfinite(values[c]) and values[c] < min_icc]
    kept = [c for c in features if c not in set(dropped)]
    if not kept:
        raise ValueError(f"{icc_path}: every feature has ICC < {min_icc}; nothing left to fit")
    per_family = Counter(column_family(c)[0] for c in dropped)
    record = {"file": str(Path(icc_path).resolve()), "hash": file_hash(icc_path), "min_icc": float(min_icc),
              "n_features_before": len(features), "n_dropped": len(dropped), "n_kept": len(kept),
              "n_undefined_kept": int(sum(not np.isfinite(values[c]) for c in kept)),
              "dropped_per_family": dict(sorted(per_family.items())), "dropped": dropped}
    return kept, record


def _pixel_column(col: str) -> str:
    for suffix in PHYSICAL_SUFFIXES:
        if col.endswith(suffix):
            return col[: -len(suffix)]
    return col


def report_sections(meta: dict) -> tuple[list[str], list[str]]:
    """HTML parts and Markdown lines for a run's report: the ICC filter and the units of sizes.

    Parameters
    ----------
    meta : dict
        The run's ``run.json``.

    Returns
    -------
    tuple of list of str
    """
    parts, md = [], []
    rec = meta.get("feature_icc")
    if rec:
        fams = ", ".join(f"{k} {v}" for k, v in rec["dropped_per_family"].items()) or "none"
        text = (f"Robustness filter: {rec['n_dropped']} of {rec['n_features_before']} features dropped before "
                f"anything else for ICC(1,1) < {rec['min_icc']:g} under image perturbations ({rec['file']}); per "
                f"family: {fams}. The ICC comes from perturbed images, not from labels, so the filter is not "
                "leakage.")
        parts.append(f"<h2>Feature robustness</h2><p>{html.escape(text)}</p>")
        md.append(f"## Feature robustness\n\n{text}\n")
    columns = meta.get("feature_columns") or []
    if any(c.endswith(PHYSICAL_SUFFIXES) for c in columns):
        text = "Sizes: the table has millimetre versions (_mm, _mm2) of length and area features (pixels_per_mm)."
    elif pixel_unit_columns(columns):
        text = ("Sizes are in pixels: no pixels_per_mm was given at extraction, so areas and lengths depend on "
                "the camera's distance and resolution.")
    else:
        return parts, md
    parts.append(f"<p class=note>{html.escape(text)}</p>")
    md.append(f"{text}\n")
    return parts, md


__all__ = ["DEFAULT_MIN_ICC", "apply_icc_filter", "filter_by_icc", "read_feature_icc", "report_sections"]


def apply_icc_filter(features: list[str], icc_path, min_icc) -> tuple[list[str], dict | None, dict]:
    """``fit``'s hook: :func:`filter_by_icc` when ``icc_path`` is set, else the features unchanged.

    Parameters
    ----------
    features : list of str
        The table's feature columns.
    icc_path : path-like or None
        ``FitConfig.feature_icc``.
    min_icc : float or None
        ``FitConfig.min_icc`` (None: 0.75).

    Returns
    -------
    kept : list of str
    record : dict or None
        For ``run.json`` (None without a filter).
    cache_key : dict
        Extra key of the CV cache (empty without a filter, so that earlier caches stay valid).

    Raises
    ------
    ValueError
        ``min_icc`` without ``icc_path``, and :func:`filter_by_icc`'s errors.
    """
    if not icc_path:
        if min_icc is not None:
            raise ValueError("min_icc needs feature_icc (the feature_icc.csv written by vitfeat robustness)")
        return features, None, {}
    kept, record = filter_by_icc(features, icc_path, DEFAULT_MIN_ICC if min_icc is None else float(min_icc))
    return kept, record, {"feature_icc": record["hash"], "min_icc": record["min_icc"]}
