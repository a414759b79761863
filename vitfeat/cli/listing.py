"""`vitfeat list KIND`: print a registry (the names a command accepts, with one line each)."""

from __future__ import annotations

from vitfeat.cli._common import add_command

#: kind -> (module that fills the registry, its attribute); every pluggable kind of vitfeat.
KINDS = {
    "family": ("vitfeat.featurize.registry", "FAMILIES"),
    "mask-source": ("vitfeat.featurize.masks", "MASK_SOURCES"),
    "classifier": ("vitfeat.pipelines.zoo", "CLASSIFIERS"),
    "sampler": ("vitfeat.pipelines.zoo", "SAMPLERS"),
    "selector": ("vitfeat.pipelines.zoo", "SELECTORS"),
    "run-kind": ("vitfeat.pipelines.predict", "RUN_KINDS"),
    "backbone": ("vitfeat.deep.embedders", "BACKBONES"),
    "segmentation": ("vitfeat.deep.segmentation.models", "ARCHITECTURES"),
    "vmtl-variant": ("vitfeat.deep.vmtl.config", "VARIANTS"),
    "layout": ("vitfeat.importers", "IMPORT_LAYOUTS"),
}

DESCRIPTION = """\
Print the members of one of vitfeat's registries: the names its commands and options accept.
Each registry is extensible (Registry.register in Python, or a package entry point), and every
member passes the kind's contract tests (tests/test_registries.py).

Kinds: {kinds}

Examples:
  vitfeat list classifier
  vitfeat list family
  vitfeat list segmentation
"""


def registry(kind: str):
    """The :class:`~vitfeat.registry.Registry` of ``kind`` (a key of :data:`KINDS`), filled.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    vitfeat.registry.Registry
    """
    from importlib import import_module

    module, attr = KINDS[kind]
    if kind == "family":
        from vitfeat.featurize.registry import available_families

        available_families()  # the built-in families register on discovery
    return getattr(import_module(module), attr)


def register(subparsers) -> None:
    """Add ``vitfeat list`` to the command line.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``vitfeat`` command's subcommands.
    """
    p = add_command(subparsers, "list", "print a registry: families, classifiers, samplers, backbones, ...",
                    DESCRIPTION.replace("{kinds}", ", ".join(KINDS)))
    p.add_argument("kind", choices=list(KINDS), help="which registry")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the registry ``args.kind``: one line per member, name and description.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (``kind``).

    Returns
    -------
    int
        Exit status.
    """
    reg = registry(args.kind)
    names = reg.list()
    width = max((len(n) for n in names), default=0)
    print(f"{len(names)} {reg.kind}(s):")
    for name in names:
        print(f"  {name:<{width}}  {reg.describe(name)}".rstrip())
    return 0
