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
    CaseArrays,
    Family,
    available_families,
    default_families,
    describe_column,
    describe_group,
    family_help,
    family_table,
    get_family,
    register_family,
    register_family_factory,
)


def __getattr__(name: str):
    if name == "DEFAULT_FAMILIES":  # computed from the families' declarations
        return default_families()
    raise AttributeError(name)


__all__ = [
    "DEFAULT_FAMILIES", "CaseArrays", "ExtractResult", "Family", "available_families", "default_families",
    "describe_column", "describe_group",
    "extract", "family_help", "family_table", "get_family",
    "load_config", "read_features", "register_family", "register_family_factory", "write_features",
]
