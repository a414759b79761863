"""Print the package picture: which vitfeat package imports which (every import, deferred ones too).

    python benchmarks/layers.py            # package -> packages it imports
    python benchmarks/layers.py --modules  # module -> vitfeat modules it imports
    python benchmarks/layers.py --root /tmp/old/vitfeat   # another checkout's picture
    python benchmarks/layers.py --cycles   # modules that import each other (directly or in a circle)

Reads the sources with ``ast`` (nothing is imported): top-level and function-level ``import`` /
``from ... import``, and string literals passed to ``importlib.import_module`` / ``import_module``
or shaped like entry-point values (``"vitfeat.x.y:attr"``); imports under ``if TYPE_CHECKING:`` (annotations
only, never run) are not counted. ``tests/test_architecture.py`` checks
the arrows against the layers with the same reader.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vitfeat"
_ENTRY_POINT_LIKE = re.compile(r"^(vitfeat(?:\.\w+)+)(?::\w+)?$")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, level: int, target: str | None, is_package: bool) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[str, str, int]]:
    """``[(imported module, imported name or '', line)]`` for every import in a source file."""
    module = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    type_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = _resolve_relative(module, node.level, node.module, path.name == "__init__.py")
            found += [(source, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                found.append((str(node.args[0].value), "", node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _ENTRY_POINT_LIKE.match(node.value.strip())
            if match:
                found.append((match.group(1), "", node.lineno))
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks: imports for annotations only, never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one module."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_edges_from((module, target) for module, targets in graph.items() for target in targets)
    return sorted((c for c in nx.strongly_connected_components(g) if len(c) > 1), key=lambda c: sorted(c))


def all_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def package_of(module: str) -> str:
    """``vitfeat.deep.vmtl.train`` -> ``deep``; top-level modules keep their own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vitfeat"


def resolved_imports(root: Path = ROOT) -> dict[str, list[tuple[str, str, int]]]:
    """Per module, its imports of vitfeat modules that exist: ``(module, name, line)``.

    ``from vitfeat.deep import yolo`` counts as importing ``vitfeat.deep.yolo``; strings that name
    no vitfeat module (an entry-point group such as ``vitfeat.families``) are not imports.
    """
    modules = all_modules(root)
    out: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for module, path in modules.items():
        for target, name, line in imports_of(path, root):
            if target.split(".")[0] != "vitfeat":
                continue
            if name and f"{target}.{name}" in modules:
                target, name = f"{target}.{name}", ""
            if target in modules and target != module:
                out[module].append((target, name, line))
    return out


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {module: {t for t, _, _ in targets} for module, targets in resolved_imports(root).items()}


def package_picture(root: Path = ROOT) -> dict[str, set[str]]:
    picture: dict[str, set[str]] = defaultdict(set)
    for module, targets in module_graph(root).items():
        for target in targets:
            if package_of(target) != package_of(module) and target != "vitfeat":
                picture[package_of(module)].add(package_of(target))
    return picture


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else ROOT
    if "--cycles" in argv:
        for cycle in strongly_connected(module_graph(root)):
            print(" <-> ".join(sorted(cycle)))
        return 0
    graph = module_graph(root) if "--modules" in argv else package_picture(root)
    for source in sorted(graph):
        print(f"{source:24s} -> {', '.join(sorted(graph[source]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
