"""The built-in feature families, one module each, found by listing this folder.

A new family is one new file here: a function decorated with
:func:`vitfeat.featurize.registry.register_family` declaring its name, version, modalities,
defaults and features. Nothing else names it: the engine, ``vitfeat extract --help``,
:func:`vitfeat.featurize.describe_column` and docs/extract.md's table all read the declarations.
"""

import importlib
import pkgutil


def discover() -> list[str]:
    """Import every module of this folder (each registers its family); returns their names."""
    names = [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


discover()
