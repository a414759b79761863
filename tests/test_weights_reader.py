"""The one weights-file reader (vitfeat.deep.runtime.load_checkpoint): torch or safetensors by suffix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import vitfeat  # noqa: E402
from vitfeat.deep.runtime import WeightsFileError, load_checkpoint, save_checkpoint  # noqa: E402


def test_reads_torch_and_safetensors_files_alike(tmp_path):
    from safetensors.torch import save_file

    state = {"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "bias": torch.ones(2)}
    save_checkpoint(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pt", "w.safetensors"):
        got = load_checkpoint(tmp_path / name)
        assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)


def test_a_damaged_or_missing_file_is_named(tmp_path):
    for name in ("bad.pt", "bad.safetensors"):
        (tmp_path / name).write_bytes(b"not weights at all")
        with pytest.raises(WeightsFileError, match=rf"{name}: cannot read"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(WeightsFileError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_no_other_module_parses_weight_files():
    """torch.load / safetensors' loaders appear only in the one reader, vitfeat.weights."""
    package = Path(vitfeat.__file__).parent
    hits = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if (node.func.attr == "load" and isinstance(owner, ast.Name) and owner.id == "torch") or \
                        node.func.attr in ("load_file", "safe_open"):
                    hits.append(path.relative_to(package).as_posix())
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("safetensors"):
                hits.append(path.relative_to(package).as_posix())
    assert sorted(set(hits)) == ["weights.py"], hits
