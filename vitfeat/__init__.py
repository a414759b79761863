"""vitfeat: staging vitiligo from paired clinical and Wood's-lamp photographs.

The library a notebook holds (see docs/api.md)::

    from vitfeat import FeatureExtractor, ModelSelector, load_run

``FeatureExtractor`` (manifest DataFrame -> feature table, a scikit-learn transformer),
``ModelSelector`` (feature table -> leaderboard, best model, ``save(dir)``) and ``load_run(dir)``
(-> ``predict``, ``predict_proba``, ``explain``). They are imported on first use, so that
``import vitfeat`` stays cheap; this package module is the facade above every layer and no vitfeat
module imports it (the version lives in :mod:`vitfeat._version`).
"""

from vitfeat._version import __version__

_API = {
    "FeatureExtractor": "vitfeat.featurize.extractor",
    "ModelSelector": "vitfeat.pipelines.selector",
    "load_run": "vitfeat.pipelines.runs",
    "Run": "vitfeat.pipelines.runs",
}


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'vitfeat' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))


__all__ = ["FeatureExtractor", "ModelSelector", "Run", "__version__", "load_run"]
