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
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(dict(bundle, format=MODEL_FORMAT), tmp)
    return Path(path)


def load_model(path) -> dict:
    """Load a model file, refusing any type outside :data:`TRUSTED_MODULE_ROOTS`."""
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
    return atomic.write_json(path, obj)


def write_csv(frame: pd.DataFrame, path) -> Path:
    return atomic.write_csv(path, frame)
