"""Feature-family registry, in the spirit of timm's model registry.

A *family* is a pure function ``func(case: CaseArrays, **config) -> {column_name: float}`` plus a
version string. Column names follow ``<modality>_<family>_<feature>`` (modality: clinical, wood,
pair); the second field is the family's name except where it would repeat the modality: the
``pair`` family writes ``pair_wood_...`` (the lesion's extent under Wood's lamp) and the ``wood``
family ``wood_fluorescence_...``. Every name still splits the same way (modality, group, feature).
Bumping ``version`` invalidates the engine's per-case cache for that family only.

Parametric families (``deep:convnextv2_tiny@random``) are built on demand by a factory registered
for their prefix in :data:`FAMILY_FACTORIES`, with :func:`register_family_factory` or through the
``vitfeat.families`` entry-point group (``deep = vitfeat.deep.families:make_deep_family`` in
setup.cfg): featurize never names the packages that plug into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vitfeat.registry import Registry, UnknownNameError


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


#: Families by name (the built-in ones register on discovery of :mod:`vitfeat.featurize.families`).
FAMILIES: Registry = Registry("feature family")
#: ``prefix -> factory(spec) -> Family`` for parametric specs ``'<prefix>:...'``; entry-point group
#: ``vitfeat.families``. An entry point may also name a ready :class:`Family` (a plain plug-in family).
FAMILY_FACTORIES: Registry = Registry("family factory", "vitfeat.families")
_FAMILIES = FAMILIES._entries  # kept for tests that list the registered families
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
    FAMILY_FACTORIES.register(prefix, factory, overwrite=True)


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
    prefix, sep, _ = spec.partition(":")
    if sep and prefix in FAMILY_FACTORIES:
        family = FAMILY_FACTORIES.get(prefix)(spec)
        _BUILT[spec] = family
        return family
    if not sep and spec in FAMILY_FACTORIES and isinstance(FAMILY_FACTORIES.get(spec), Family):
        return FAMILY_FACTORIES.get(spec)
    raise UnknownNameError("feature family", spec, available_families()
                           + [f"{p}:..." for p in FAMILY_FACTORIES.names()])


def available_families() -> list[str]:
    """Names of the plain families (built-in and plug-in); parametric prefixes are in FAMILY_FACTORIES."""
    _load_builtin()
    plugged = [name for name, obj in FAMILY_FACTORIES.items() if isinstance(obj, Family)]
    return sorted({*_FAMILIES, *plugged})
