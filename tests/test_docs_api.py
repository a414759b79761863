"""docs/api.md is a notebook: its Python blocks run in order, in one namespace, in a fresh folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.slow
def test_the_api_walkthrough_runs(tmp_path, monkeypatch):
    from vitfeat.pipelines.zoo import CLASSIFIERS

    blocks = code_blocks(DOC.read_text())
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_api"}
    try:
        for i, block in enumerate(blocks, start=1):
            exec(compile(block, f"{DOC.name} block {i}", "exec"), namespace)  # noqa: S102 - the doc's own code
    finally:
        CLASSIFIERS.unregister("knn")  # the walkthrough's one-file classifier must not leak into other tests
    # what the walkthrough claims, checked
    assert namespace["table"]["error"].eq("").all()
    assert set(namespace["selector"].classes_) == {0, 1}
    assert (Path(namespace["run_dir"]) / "model.skops").is_file()
    assert set(namespace["knn"].leaderboard_["pipeline"]) == {"knn", "knn+smote"}
    assert "knn" not in CLASSIFIERS


def test_code_blocks_are_found():
    assert code_blocks("text\n```python\nx = 1\n```\nmore\n```python\ny = 2\n```\n") == ["x = 1\n", "y = 2\n"]
