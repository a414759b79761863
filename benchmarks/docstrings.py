"""Measure numpydoc coverage: public functions, classes and methods with a ``Parameters`` section.

    python benchmarks/docstrings.py            # the figure
    python benchmarks/docstrings.py --missing  # and every public callable that lacks one

Reads the sources with ``ast`` (nothing is imported). Public: not ``_``-prefixed, in a module whose
path has no ``_``-prefixed part (``__init__`` aside). A function or method that takes arguments
(besides ``self``/``cls``) needs a numpydoc ``Parameters`` section; one without arguments needs a
docstring. A class needs a ``Parameters`` (or, for a plain record, ``Attributes``) section when its
constructor takes arguments, else a docstring. Properties, overloads and nested functions are not
counted. ``tests/test_docstrings.py`` holds the figure to a floor.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vitfeat"
_SECTION = r"^\s*{}\s*\n\s*-{{3,}}\s*$"
PARAMETERS = re.compile(_SECTION.format("Parameters"), re.MULTILINE)
ATTRIBUTES = re.compile(_SECTION.format("Attributes"), re.MULTILINE)


@dataclass(frozen=True)
class Item:
    """One public callable and whether its docstring is complete."""

    module: str
    qualname: str
    line: int
    ok: bool
    why: str


def _public_module(path: Path, root: Path) -> bool:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return not any(p.startswith("_") and p != "__init__" for p in parts)


def _arguments(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    return names


def _decorators(node) -> set[str]:
    out = set()
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        out.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return out


def _check_function(node, method: bool) -> tuple[bool, str]:
    doc = ast.get_docstring(node) or ""
    if not _arguments(node, method):
        return bool(doc), "no docstring"
    return bool(PARAMETERS.search(doc)), "no Parameters section" if doc else "no docstring"


def _is_dataclass_or_plain(node: ast.ClassDef) -> list[str]:
    """Constructor arguments of a class: its ``__init__``'s, or a dataclass's annotated fields."""
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "__init__":
            return _arguments(item, method=True)
    if "dataclass" in _decorators(node):
        return [i.target.id for i in node.body if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)]
    return []


def _check_class(node: ast.ClassDef) -> tuple[bool, str]:
    doc = ast.get_docstring(node) or ""
    if not _is_dataclass_or_plain(node):
        return bool(doc), "no docstring"
    ok = bool(PARAMETERS.search(doc) or ATTRIBUTES.search(doc))
    return ok, "no Parameters/Attributes section" if doc else "no docstring"


def items(root: Path = ROOT) -> list[Item]:
    """Every public function, class and method under ``root`` with its verdict.

    Parameters
    ----------
    root : pathlib.Path
        The package folder.

    Returns
    -------
    list of Item
    """
    out = []
    for path in sorted(root.rglob("*.py")):
        if not _public_module(path, root):
            continue
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                if "overload" in _decorators(node):
                    continue
                ok, why = _check_function(node, method=False)
                out.append(Item(module, node.name, node.lineno, ok, why))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                ok, why = _check_class(node)
                out.append(Item(module, node.name, node.lineno, ok, why))
                for item in node.body:
                    if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_")
                            and not _decorators(item) & {"property", "cached_property", "overload", "setter"}):
                        ok, why = _check_function(item, method="staticmethod" not in _decorators(item))
                        out.append(Item(module, f"{node.name}.{item.name}", item.lineno, ok, why))
    return out


def coverage(root: Path = ROOT) -> tuple[int, int]:
    """``(complete, total)`` over :func:`items`.

    Parameters
    ----------
    root : pathlib.Path
        The package folder.

    Returns
    -------
    tuple of int
    """
    found = items(root)
    return sum(i.ok for i in found), len(found)


def main(argv=None) -> int:
    """Print the coverage (and with ``--missing`` what lacks a section).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    found = items()
    done = sum(i.ok for i in found)
    print(f"numpydoc coverage: {done} of {len(found)} public functions, classes and methods "
          f"({100 * done / max(len(found), 1):.1f} %)")
    if "--missing" in argv:
        for i in found:
            if not i.ok:
                print(f"  {i.module}:{i.line} {i.qualname}: {i.why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
