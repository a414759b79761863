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

    Attributes
    ----------
    case_id : str
        The case.
    clinical, wood : numpy.ndarray or None
        (H, W, 3) uint8 photos.
    clinical_mask, wood_mask : numpy.ndarray or None
        (H, W) bool lesion masks.
    mask_source : dict
        ``{modality: where its mask came from}``.
    boxes : dict
        Annotated lesion boxes in pixels of the (resized) photos.
    memo : dict
        Shared intermediates.
    """

    case_id: str
    clinical: np.ndarray
    wood: np.ndarray | None = None
    clinical_mask: np.ndarray | None = None
    wood_mask: np.ndarray | None = None
    mask_source: dict = field(default_factory=dict)
    #: Annotated lesion boxes ``{modality: (x0, y0, x1, y1)}`` in pixels of the (resized) photo.
    boxes: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def image(self, modality: str) -> np.ndarray | None:
        """The photo of ``modality``, or None.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        numpy.ndarray or None
        """
        return getattr(self, modality)

    def mask(self, modality: str) -> np.ndarray | None:
        """The lesion mask of ``modality``, or None.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        numpy.ndarray or None
        """
        return getattr(self, f"{modality}_mask")

    def box(self, modality: str) -> tuple[float, float, float, float] | None:
        """The manifest's lesion box for ``modality`` (preferred to a mask's bounding box), or None.

        Parameters
        ----------
        modality : {"clinical", "wood"}
            Which photo.

        Returns
        -------
        tuple of float or None
        """
        return self.boxes.get(modality)


@dataclass(frozen=True)
class Family:
    """A feature family.

    Declared families (``features`` given) compute ONE modality: ``func(case, modality, **config)``
    returns bare feature names, and :meth:`__call__` loops over ``modalities``, adds the
    ``<modality>_<column_group>_`` prefixes, fills NaN where the photo is missing (the Wood's one
    for ``needs_wood`` families) and checks the returned names against the declared ones.
    Parametric families (``deep:...``) leave ``features`` empty and return full column names.

    Attributes
    ----------
    name, version : str
        The family's name and version (recorded in the feature table's provenance).
    modalities : tuple of str
        The modalities it computes.
    func : callable
        ``func(case, modality, **config) -> {name: value}``.
    needs_wood : bool
        Whether it needs the Wood's-lamp photo (NaN without one).
    batch_func : callable or None
        ``batch_func(list of CaseArrays, **config) -> list of dict`` for models run in batches.
    defaults : dict
        Its options and their defaults.
    description : str
        One line in plain words.
    column_prefixes : tuple of str
        Prefixes of the columns a parametric family writes.
    features : dict, callable or None
        ``{bare name: description}``, or ``config -> that dict``.
    column_group : str
        The column name's second field.
    order : int
        Position in the default set and output order.
    default : bool
        Whether it runs without being asked for.
    """

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
    #: ``{bare name: one-line description}``, or ``config -> that dict`` when names depend on the
    #: configuration (wavelet levels).
    features: dict | Callable[[dict], dict] | None = None
    #: The column name's second field; the family name unless that would repeat the modality.
    column_group: str = ""
    #: Position in the default set and output order; ``default=False`` families run only on request.
    order: int = 100
    default: bool = True

    def feature_descriptions(self, config: dict | None = None) -> dict:
        """``{bare name: description}`` for ``config`` (the defaults updated by it).

        Parameters
        ----------
        config : dict, optional
            Options that differ from the family's defaults.

        Returns
        -------
        dict
        """
        if self.features is None:
            return {}
        if callable(self.features):
            return dict(self.features({**self.defaults, **(config or {})}))
        return dict(self.features)

    def prefix(self, modality: str) -> str:
        """The column prefix ``<modality>_<group>_`` of this family's columns for ``modality``.

        Parameters
        ----------
        modality : str
            ``clinical``, ``wood`` or ``pair``.

        Returns
        -------
        str
        """
        return f"{modality}_{self.column_group or self.name}_"

    def columns(self, config: dict | None = None) -> list[str]:
        """The full column names this family writes for ``config`` (declared families only).

        Parameters
        ----------
        config : dict, optional
            Options that differ from the family's defaults.

        Returns
        -------
        list of str
        """
        names = list(self.feature_descriptions(config))
        return [self.prefix(m) + n for m in self.modalities for n in names]

    def __call__(self, case: CaseArrays, **config) -> dict:
        config = {**self.defaults, **config}
        if self.features is None:
            return self.func(case, **config)
        declared = list(self.feature_descriptions(config))
        out = {}
        for modality in self.modalities:
            if not _has_inputs(case, modality, self.needs_wood):
                values = dict.fromkeys(declared, float("nan"))
            else:
                values = self.func(case, modality, **config)
                _check_names(self.name, modality, declared, values)
            prefix = self.prefix(modality)
            out.update({prefix + n: values[n] for n in declared})
        return out


def _has_inputs(case: CaseArrays, modality: str, needs_wood: bool) -> bool:
    if needs_wood and case.wood is None:
        return False
    return modality == "pair" or case.image(modality) is not None


def _check_names(family: str, modality: str, declared: list, values: dict) -> None:
    if len(values) == len(declared) and all(n in values for n in declared):
        return  # the usual case, without building two sets per call
    missing, extra = set(declared) - set(values), set(values) - set(declared)
    if missing or extra:
        raise ValueError(f"family '{family}' ({modality}) returned names other than it declares: "
                         f"missing {sorted(missing) or 'none'}, extra {sorted(extra) or 'none'}")


#: Families by name (the built-in ones register on discovery of :mod:`vitfeat.featurize.families`).
FAMILIES: Registry = Registry("feature family")
#: ``prefix -> factory(spec) -> Family`` for parametric specs ``'<prefix>:...'``; entry-point group
#: ``vitfeat.families``. An entry point may also name a ready :class:`Family` (a plain plug-in family).
FAMILY_FACTORIES: Registry = Registry("family factory", "vitfeat.families")
_FAMILIES = FAMILIES._entries  # kept for tests that list the registered families
_BUILT: dict[str, Family] = {}

def default_families() -> tuple[str, ...]:
    """The families ``vitfeat extract`` runs by default, in output-column order (their ``order``)."""
    _load_builtin()
    chosen = [f for f in _FAMILIES.values() if f.default]
    return tuple(f.name for f in sorted(chosen, key=lambda f: (f.order, f.name)))


def __getattr__(name: str):
    # DEFAULT_FAMILIES is computed from the declarations, after the family modules are discovered.
    if name == "DEFAULT_FAMILIES":
        return default_families()
    raise AttributeError(name)


def register_family(name: str, version: str, modalities=("clinical", "wood"), *, needs_wood: bool = False,
                    batch_func=None, defaults: dict | None = None, features=None, column_group: str = "",
                    order: int = 100, default: bool = True):
    """Decorator registering ``func`` as family ``name``; the docstring's first line describes it.

    With ``features`` (``{bare name: description}`` or ``config -> that dict``) ``func`` is
    ``func(case, modality, **config) -> {bare name: value}`` for one modality (see :class:`Family`).

    Parameters
    ----------
    name : str
        The family's name (``--families``) and, unless ``column_group`` says otherwise, the
        second field of its column names.
    version : str
        Bump it whenever the values change: it keys the per-case cache and is checked by ``predict``.
    modalities : tuple of str, default ("clinical", "wood")
        Which modalities it runs on (``pair`` for pair-level features).
    needs_wood : bool, default False
        Give NaN for cases without a Wood's photo.
    batch_func : callable, optional
        ``batch_func(list of CaseArrays, **config) -> list of dict`` for models run in batches.
    defaults : dict, optional
        Its options and their defaults (``family_config`` overrides them).
    features : dict or callable, optional
        The declared features, ``{bare name: one-line description}`` (or ``config -> that dict``).
    column_group : str, optional
        The columns' second field when it differs from ``name``.
    order : int, default 100
        Position in the default set and in the table.
    default : bool, default True
        Part of the default families (else only on request).

    Returns
    -------
    callable
        The decorator; it returns ``func`` unchanged.
    """

    def decorate(func):
        if name in _FAMILIES and _FAMILIES[name].func is not func:
            raise ValueError(f"feature family '{name}' is already registered")
        doc = (func.__doc__ or "").strip().splitlines()
        _FAMILIES[name] = Family(name=name, version=str(version), modalities=tuple(modalities), func=func,
                                 needs_wood=needs_wood, batch_func=batch_func, defaults=dict(defaults or {}),
                                 description=doc[0] if doc else "", features=features,
                                 column_group=column_group, order=order, default=default)
        return func

    return decorate


def register_family_factory(prefix: str, factory: Callable[[str], Family]) -> None:
    """Resolve specs ``'<prefix>:...'`` by calling ``factory(spec)`` (the result is memoised).

    Parameters
    ----------
    prefix : str
        The spec prefix (``deep``).
    factory : callable
        ``factory(spec) -> Family``.
    """
    FAMILY_FACTORIES.register(prefix, factory, overwrite=True)


def _load_builtin() -> None:
    # Importing the family modules registers them; done lazily so that the registry imports fast.
    from vitfeat.featurize import families  # noqa: F401


def get_family(spec: str) -> Family:
    """Return the family for a name (``'shape'``) or a parametric spec (``'deep:resnet50@random'``).

    Parameters
    ----------
    spec : str
        A family name or parametric spec.

    Returns
    -------
    Family

    Raises
    ------
    vitfeat.registry.UnknownNameError
        Listing the valid names.
    """
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


# ---------------------------------------------------------------------------------------------
# Plain-language descriptions, generated from the declarations (CLI help, explain, docs)
# ---------------------------------------------------------------------------------------------

_MODALITY_TEXT = {"clinical": "daylight photo", "wood": "Wood's-lamp photo", "pair": "daylight vs Wood's pair"}


def _declared_families() -> list[Family]:
    _load_builtin()
    plugged = [obj for _, obj in FAMILY_FACTORIES.items() if isinstance(obj, Family)]
    families = {f.name: f for f in [*_FAMILIES.values(), *plugged]}
    return sorted(families.values(), key=lambda f: (not f.default, f.order, f.name))


def family_table() -> list[dict]:
    """One row per plain family: name, version, modalities, default, description, number of columns
    (at the default configuration), and a line for each parametric prefix (``deep:...``)."""
    rows = [{"family": f.name, "version": f.version, "modalities": ", ".join(f.modalities),
             "default": f.default, "description": f.description, "n_columns": len(f.columns())}
            for f in _declared_families()]
    for prefix, factory in FAMILY_FACTORIES.items():
        if not isinstance(factory, Family):
            doc = (getattr(factory, "__doc__", "") or "").strip().splitlines()
            rows.append({"family": f"{prefix}:...", "version": "per spec", "modalities": "per spec",
                         "default": False, "description": doc[0] if doc else "", "n_columns": None})
    return rows


def family_help() -> str:
    """The family list of ``vitfeat extract --help``, one line per family."""
    rows = family_table()
    width = max(len(r["family"]) for r in rows) + 2
    return "\n".join(f"  {r['family']:<{width}}{r['description']}" for r in rows)


def _match(column: str) -> tuple[Family, str, str] | None:
    for family in _declared_families():
        for modality in family.modalities:
            prefix = family.prefix(modality)
            if column.startswith(prefix):
                return family, modality, column[len(prefix):]
    return None


def column_family(column: str) -> tuple[str, str]:
    """``(family, modality)`` of a feature column: the declaring family's name, else the name's
    second field (``clinical_deep_resnet50_007`` -> ``('deep', 'clinical')``).

    Parameters
    ----------
    column : str
        A ``<modality>_<family>_<feature>`` column.

    Returns
    -------
    tuple of str
    """
    found = _match(column)
    if found is not None:
        return found[0].name, found[1]
    parts = column.split("_")
    return (parts[1] if len(parts) > 2 else "unknown"), parts[0]


def describe_group(modality: str, family: str) -> str:
    """Plain-language description of a ``<modality>_<family>_`` column group (``'wood', 'shape'``).

    Parameters
    ----------
    modality : str
        ``clinical``, ``wood`` or ``pair``.
    family : str
        The column group (the columns' second field).

    Returns
    -------
    str
    """
    for fam in _declared_families():
        if modality in fam.modalities and (fam.column_group or fam.name) == family:
            return f"{fam.description.rstrip('.')} ({_MODALITY_TEXT.get(modality, modality)})"
    if family == "deep":
        return f"deep embedding dimensions of the lesion crop ({_MODALITY_TEXT.get(modality, modality)})"
    raise KeyError(f"no feature family writes columns '{modality}_{family}_*'")


def describe_column(column: str) -> str:
    """The plain-language description of a feature column (``'wood_shape_solidity'``).

    Parameters
    ----------
    column : str
        A feature column name.

    Returns
    -------
    str

    Raises
    ------
    KeyError
        When no declared family writes such a column.
    """
    for suffix, unit in (("_mm2", "mm²"), ("_mm", "mm")):  # physical units (vitfeat.featurize.units)
        if column.endswith(suffix):
            return f"{describe_column(column[:-len(suffix)]).replace('(px)', '').replace('  ', ' ')}, in {unit}"
    found = _match(column)
    if found is not None:
        family, modality, bare = found
        for config in (None, *_name_configs(family, bare)):
            text = family.feature_descriptions(config).get(bare)
            if text is not None:
                return f"{text} ({_MODALITY_TEXT.get(modality, modality)})"
    parts = column.split("_")
    if len(parts) >= 4 and parts[1] == "deep" and parts[-1].isdigit():
        return (f"dimension {int(parts[-1])} of the {'_'.join(parts[2:-1])} embedding of the lesion crop "
                f"({_MODALITY_TEXT.get(parts[0], parts[0])})")
    raise KeyError(f"no feature family declares the column '{column}'")


def _name_configs(family: Family, bare: str) -> list[dict]:
    # Names that depend on an integer option (texture's wavelet levels): try the option up to the
    # level the name mentions.
    levels = [int(tok[1:]) for tok in bare.split("_") if tok[:1] == "L" and tok[1:].isdigit()]
    return [{"levels": n} for n in levels] if levels and "levels" in family.defaults else []


def features_markdown() -> str:
    """The feature reference of docs/extract.md: one table per family, from the declarations
    (default configuration), columns written with ``<modality>`` standing for each modality."""
    parts = []
    for family in _declared_families():
        modalities = " / ".join(f"`{family.prefix(m)}`" for m in family.modalities)
        parts += [f"### `{family.name}` (version {family.version}{'' if family.default else ', on request'})",
                  "", f"{family.description} Columns: {modalities} + feature.", "",
                  "| feature | meaning |", "|---|---|"]
        parts += [f"| `{name}` | {text} |" for name, text in family.feature_descriptions().items()]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
