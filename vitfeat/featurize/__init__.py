"""Feature families and the extraction engine.

>>> from vitfeat.featurize import extract
>>> result = extract("data/synth/manifest.csv", "artifacts/features.parquet", jobs=2)  # doctest: +SKIP
>>> print(result.summary())  # doctest: +SKIP
"""

from vitfeat.featurize.engine import (
    ExtractResult,
    extract,
    load_config,
    read_features,
    write_features,
)
from vitfeat.featurize.registry import (
    DEFAULT_FAMILIES,
    CaseArrays,
    Family,
    available_families,
    get_family,
    register_family,
    register_family_factory,
)

__all__ = [
    "DEFAULT_FAMILIES", "CaseArrays", "ExtractResult", "Family", "available_families", "extract", "get_family",
    "load_config", "read_features", "register_family", "register_family_factory", "write_features",
]
