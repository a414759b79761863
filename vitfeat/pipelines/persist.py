"""Saving/loading fitted models with skops (never pickle).

A model file is a skops dump of a plain dict::

    {"format": "vitfeat-model/1", "features": [column, ...],
     "targets": {target: {"pipeline": name, "classes": [...], "positive": str|None, "model": Pipeline}}}

so the feature schema travels with the estimators. Loading trusts only the exact types vitfeat itself
writes (:data:`TRUSTED_TYPES`); anything else is refused, with the offending types named, before any
object is constructed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vitfeat import atomic
from vitfeat.atomic import atomic_path
from vitfeat.featurize.table import read_feature_table  # noqa: F401  (the one reader; callers import it here)

MODEL_FORMAT = "vitfeat-model/1"

#: The exact types (beyond skops' own defaults) that vitfeat writes into a model file: the union over
#: every pipeline of the zoo, plain, searched, calibrated and pre-filtered, as listed by
#: ``skops.io.get_untrusted_types`` (tests/test_persist_security.py fits them all and checks this set).
#: A whole package is never trusted: numpy and builtins alone hold functions that write files or run
#: code once a pipeline calls them (``FunctionTransformer(func=builtins.exec)``).
TRUSTED_TYPES = frozenset({
    "collections.OrderedDict",
    "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.over_sampling._smote.filter.BorderlineSMOTE",
    "imblearn.pipeline.Pipeline",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
    "vitfeat.pipelines.gbm_early.EarlyStoppingLGBM",
    "vitfeat.pipelines.gbm_early.EarlyStoppingXGB",
    "vitfeat.pipelines.operating.GroupedCalibratedClassifier",
    "vitfeat.pipelines.prefilter.NearDuplicateFilter",
    # torch networks, saved as numpy arrays + numbers and rebuilt on load (no torch type is trusted)
    "vitfeat.pipelines.tabular_deep.RealMLPClassifier",
    "vitfeat.pipelines.tabular_deep.TabMClassifier",
    # training rows + checkpoint path and SHA-256 (vitfeat.pipelines.foundation), never torch objects
    "vitfeat.pipelines.foundation.TabICLLocalClassifier",
    "vitfeat.pipelines.foundation.TabPFNLocalClassifier",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
})
_EXTRA_TRUSTED: set[str] = set()


class UntrustedModelError(ValueError):
    """A model file that holds types vitfeat does not write, or is not a skops file at all."""


def trust_types(*names: str) -> None:
    """Allow more exact types in model files (for a plug-in that registers pipelines of its own).

    Parameters
    ----------
    *names : str
        Fully qualified type names as ``skops.io.get_untrusted_types`` lists them. Code calls this;
        nothing read from a file can extend the list.
    """
    _EXTRA_TRUSTED.update(names)


def trusted_types() -> frozenset:
    """The exact types a model file may hold (:data:`TRUSTED_TYPES` plus those added by plug-ins).

    Returns
    -------
    frozenset of str
    """
    return TRUSTED_TYPES | _EXTRA_TRUSTED


def save_model(bundle: dict, path) -> Path:
    """Write a model bundle as a skops file, atomically.

    Parameters
    ----------
    bundle : dict
        ``{"features": [...], "targets": {...}}`` (see the module docstring).
    path : path-like

    Returns
    -------
    pathlib.Path
    """
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(dict(bundle, format=MODEL_FORMAT), tmp)
    return Path(path)


def load_model(path) -> dict:
    """Load a model file, refusing any type outside :func:`trusted_types` before constructing anything.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        The bundle.

    Raises
    ------
    FileNotFoundError
        No such file.
    UntrustedModelError
        The file is not a skops archive (empty, truncated, random bytes) or holds untrusted types;
        the message names them.
    """
    import zipfile

    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise UntrustedModelError(f"{path}: not a readable skops model file (empty, truncated or damaged: "
                                  f"{type(exc).__name__})") from None
    foreign = sorted(set(untrusted) - trusted_types())
    if foreign:
        raise UntrustedModelError(f"{path}: refusing to load a model holding types vitfeat never writes "
                                  f"(tampered or from another tool): {', '.join(foreign)}")
    try:
        bundle = sio.load(path, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001  (a damaged archive fails anywhere inside skops)
        raise UntrustedModelError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise UntrustedModelError(f"{path}: not a vitfeat model file (expected format {MODEL_FORMAT})")
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
