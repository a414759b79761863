"""Feature-family registry, in the spirit of timm's model registry.

A *family* is a pure function ``func(case: CaseArrays, **config) -> {column_name: float}`` plus a
version string. Column names follow ``<modality>_<family>_<feature>`` (modality: clinical, wood,
pair); the second field is the family's name except where it would repeat the modality: the
``pair`` family writes ``pair_wood_...`` (the lesion's extent under Wood's lamp) and the ``wood``
family ``wood_fluorescence_...``. Every name still splits the same way (modality, group, feature).
Bumping ``version`` invalidates the engine's per-case cache for that family only.

Parametric families (``deep:convnextv2_tiny@random``) are built on demand by a factory registered
for their prefix with :func:`register_family_factory`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class CaseArrays:
    """Everything a family may look at for one case; ``wood`` and masks may be ``None``.

    ``memo`` holds intermediates (grey, CIELAB, distance transforms, rings) that several families
    share, so each is computed once per case and image (see :mod:`vitfeat.featurize.views`).
    """

    case_id: str
    clinical: np.ndarray
    wood: np.ndarray | None = None
    clinical_mask: np.ndarray | None = None
    wood_mask: np.ndarray | None = None
    mask_source: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def image(self, modality: str) -> np.ndarray | None:
        return getattr(self, modality)

    def mask(self, modality: str) -> np.ndarray | None:
        return getattr(self, f"{modality}_mask")


@dataclass(frozen=True)
class Family:
    name: str
    version: str
    modalities: tuple[str, ...]
    func: Callable[..., dict]
    needs_wood: bool = False
    batch_func: Callable[..., list] | None = None
    defaults: dict = field(default_factory=dict)
    description: str = ""
    #: Prefixes of the columns a parametric family writes, so that two specs that would write the
    #: same columns (``deep:resnet50`` twice with different crops) are refused before any work.
    column_prefixes: tuple[str, ...] = ()

    def __call__(self, case: CaseArrays, **config) -> dict:
        return self.func(case, **{**self.defaults, **config})


_FAMILIES: dict[str, Family] = {}
_FACTORIES: dict[str, Callable[[str], Family]] = {}
_BUILT: dict[str, Family] = {}

#: The handcrafted set, in output-column order; what ``vitfeat extract`` runs by default.
DEFAULT_FAMILIES = ("shape", "border", "pair", "wood", "color", "satellites", "texture", "firstorder")


def register_family(name: str, version: str, modalities=("clinical", "wood"), *, needs_wood: bool = False,
                    batch_func=None, defaults: dict | None = None):
    """Decorator registering ``func`` as family ``name``; the docstring's first line describes it."""

    def decorate(func):
        if name in _FAMILIES and _FAMILIES[name].func is not func:
            raise ValueError(f"feature family '{name}' is already registered")
        doc = (func.__doc__ or "").strip().splitlines()
        _FAMILIES[name] = Family(name=name, version=str(version), modalities=tuple(modalities), func=func,
                                 needs_wood=needs_wood, batch_func=batch_func, defaults=dict(defaults or {}),
                                 description=doc[0] if doc else "")
        return func

    return decorate


def register_family_factory(prefix: str, factory: Callable[[str], Family]) -> None:
    """Resolve specs ``'<prefix>:...'`` by calling ``factory(spec)`` (the result is memoised)."""
    _FACTORIES[prefix] = factory


def _load_builtin() -> None:
    # Importing the family modules registers them; done lazily so that the registry imports fast.
    from vitfeat.featurize import families  # noqa: F401


def get_family(spec: str) -> Family:
    """Return the family for a name (``'shape'``) or a parametric spec (``'deep:resnet50@random'``)."""
    _load_builtin()
    spec = spec.strip()
    if spec in _FAMILIES:
        return _FAMILIES[spec]
    if spec in _BUILT:
        return _BUILT[spec]
    prefix = spec.split(":", 1)[0]
    if ":" in spec and prefix not in _FACTORIES:
        _try_import_factory(prefix)
    if ":" in spec and prefix in _FACTORIES:
        family = _FACTORIES[prefix](spec)
        _BUILT[spec] = family
        return family
    known = ", ".join(available_families())
    raise KeyError(f"unknown feature family '{spec}' (available: {known}; parametric: "
                   f"{', '.join(p + ':...' for p in sorted(_FACTORIES)) or 'none registered'})")


def _try_import_factory(prefix: str) -> None:
    # Deep families live in vitfeat.deep and register their factory on import.
    import importlib

    for module in (f"vitfeat.deep.{prefix}_family", "vitfeat.deep.embed", "vitfeat.deep"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but a dependency of it is missing: say so
                raise
            continue
        if prefix in _FACTORIES:
            return


def available_families() -> list[str]:
    _load_builtin()
    return sorted(_FAMILIES)
