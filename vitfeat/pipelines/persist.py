"""Saving/loading fitted models with skops (never pickle).

A model file is a skops dump of a plain dict::

    {"format": "vitfeat-model/1", "features": [column, ...],
     "targets": {target: {"pipeline": name, "classes": [...], "positive": str|None, "model": Pipeline}}}

so the feature schema travels with the estimators. Loading trusts only types from the libraries
vitfeat builds models with; anything else is refused with the list of offending types.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vitfeat import atomic
from vitfeat.atomic import atomic_path
from vitfeat.featurize.table import read_feature_table  # noqa: F401  (the one reader; callers import it here)

MODEL_FORMAT = "vitfeat-model/1"
TRUSTED_MODULE_ROOTS = ("sklearn", "imblearn", "lightgbm", "xgboost", "numpy", "scipy", "collections",
                        "builtins", "vitfeat")


def save_model(bundle: dict, path) -> Path:
    """Write a model bundle with skops (never pickle), atomically.

    Parameters
    ----------
    bundle : dict
        ``{"features": [...], "targets": {target: {"pipeline", "classes", "positive", "model", ...}}}``.
    path : path-like
        The ``.skops`` file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(dict(bundle, format=MODEL_FORMAT), tmp)
    return Path(path)


def load_model(path) -> dict:
    """Load a model file, refusing any type outside :data:`TRUSTED_MODULE_ROOTS`.

    Parameters
    ----------
    path : path-like
        A ``model.skops`` written by :func:`save_model`.

    Returns
    -------
    dict
        The bundle.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, a foreign type, or not a vitfeat model (each named with the path).
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    untrusted = sio.get_untrusted_types(file=path)
    foreign = [t for t in untrusted if t.split(".")[0] not in TRUSTED_MODULE_ROOTS]
    if foreign:
        raise ValueError(f"{path}: refusing to load types outside the trusted libraries: {', '.join(foreign)}")
    bundle = sio.load(path, trusted=untrusted)
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a vitfeat model file (expected format {MODEL_FORMAT})")
    return bundle


def write_json(obj, path) -> Path:
    """:func:`vitfeat.atomic.write_json` with the arguments in the run writer's order.

    Parameters
    ----------
    obj : object
        What to write.
    path : path-like
        The file.

    Returns
    -------
    pathlib.Path
    """
    return atomic.write_json(path, obj)


def write_csv(frame: pd.DataFrame, path) -> Path:
    """:func:`vitfeat.atomic.write_csv` with the arguments in the run writer's order.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : path-like
        The file.

    Returns
    -------
    pathlib.Path
    """
    return atomic.write_csv(path, frame)
