"""Every file the package writes goes through :mod:`vitfeat.atomic` (issue #26, "one home per concept").

The package source is parsed and every call that writes a file by itself (``open(..., "w")``,
``Path.write_text``, ``DataFrame.to_csv(path)``, ``torch.save``, ``savefig``, ``os.replace``,
``shutil.copyfile``, ``cv2.imwrite``, ``Image.save``, ...) must either sit inside a
``with atomic_path(...)`` block (it writes the temporary that atomic_path renames), write into an
in-memory ``io.BytesIO``/``StringIO`` made in the same function, or be on the allow-list below with
its reason. Tests may write directly; only the package is checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vitfeat

PACKAGE = Path(vitfeat.__file__).parent

#: ``"path/relative/to/vitfeat.py::function"`` -> why the direct write is fine there.
ALLOWED = {
    "atomic.py::atomic_path": "the one rename every atomic write ends with",
}

_WRITE_METHODS = {"write_text", "write_bytes", "to_csv", "to_parquet", "to_feather", "to_excel", "to_pickle",
                  "savefig", "imwrite", "savez", "savez_compressed", "copyfile", "copy2", "copytree", "move"}
_MODULE_WRITERS = {("os", "replace"), ("os", "rename"), ("shutil", "copy"), ("torch", "save"), ("np", "save"),
                   ("numpy", "save"), ("pickle", "dump"), ("joblib", "dump")}


def _write_mode(call: ast.Call, mode_pos: int) -> bool:
    mode = call.args[mode_pos] if len(call.args) > mode_pos else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _is_direct_write(call: ast.Call) -> str | None:
    """The name of the write ``call`` does, or None when it writes no file."""
    func = call.func
    if isinstance(func, ast.Name):
        return "open" if func.id == "open" and _write_mode(call, 1) else None
    if not isinstance(func, ast.Attribute):
        return None
    name = func.attr
    if name == "open" and _write_mode(call, 0):  # Path.open("w")
        return "Path.open"
    if name == "to_csv" and not call.args and not any(kw.arg == "path_or_buf" for kw in call.keywords):
        return None  # returns the CSV as a string
    if name in _WRITE_METHODS:
        return name
    owner = func.value
    if isinstance(owner, ast.Name) and (owner.id, name) in _MODULE_WRITERS:
        return f"{owner.id}.{name}"
    if name == "save" and isinstance(owner, ast.Call):  # Image.fromarray(...).save(path)
        return "save"
    return None


def _opens_atomic_path(node: ast.With) -> bool:
    for item in node.items:
        expr = item.context_expr
        if isinstance(expr, ast.Call):
            f = expr.func
            if (isinstance(f, ast.Name) and f.id == "atomic_path") or (
                    isinstance(f, ast.Attribute) and f.attr == "atomic_path"):
                return True
    return False


def _memory_buffers(func: ast.AST) -> set[str]:
    """Names assigned ``io.BytesIO()`` / ``io.StringIO()`` in ``func``: writing into them writes no file."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            f = node.value.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called in ("BytesIO", "StringIO"):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def direct_writes(source: str, where: str) -> list[str]:
    """``"where::function: writer (line N)"`` for every write in ``source`` outside ``atomic_path``."""
    found: list[str] = []

    def visit(node: ast.AST, func: str, buffers: set[str], guarded: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func, buffers = node.name, _memory_buffers(node)
        if isinstance(node, (ast.With, ast.AsyncWith)) and _opens_atomic_path(node):
            guarded = True
        if isinstance(node, ast.Call) and not guarded:
            writer = _is_direct_write(node)
            into_memory = bool(node.args) and isinstance(node.args[0], ast.Name) and node.args[0].id in buffers
            if writer and not into_memory:
                found.append(f"{where}::{func}: {writer} (line {node.lineno})")
        for child in ast.iter_child_nodes(node):
            visit(child, func, buffers, guarded)

    visit(ast.parse(source), "<module>", set(), False)
    return found


def test_the_scanner_sees_direct_writes_and_accepts_atomic_ones():
    bad = ("def f(p, df, fig, torch, os):\n"
           "    open(p, 'w').write('x')\n    p.write_text('x')\n    df.to_csv(p)\n    fig.savefig(p)\n"
           "    torch.save({}, p)\n    os.replace(p, p)\n    p.open(mode='wb')\n")
    assert [hit.split(": ")[1].split(" ")[0] for hit in direct_writes(bad, "m.py")] == [
        "open", "write_text", "to_csv", "savefig", "torch.save", "os.replace", "Path.open"]
    good = ("def g(p, df, fig):\n    with atomic_path(p) as tmp:\n        fig.savefig(tmp)\n"
            "        open(tmp, 'wb').write(b'')\n    text = df.to_csv(index=False)\n    open(p).read()\n"
            "    buf = io.BytesIO()\n    fig.savefig(buf, format='png')\n")
    assert direct_writes(good, "m.py") == []


def test_every_package_write_goes_through_vitfeat_atomic():
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        hits += direct_writes(path.read_text(encoding="utf-8"), rel)
    offending = [hit for hit in hits if hit.split(": ")[0] not in ALLOWED]
    assert not offending, ("files written without vitfeat.atomic (use atomic.write_* / copy_file / atomic_path, "
                           "or add the place to ALLOWED with a reason):\n" + "\n".join(offending))
    used = {hit.split(": ")[0] for hit in hits}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"allow-list entries that no longer write anything (remove them): {stale}"
