"""numpydoc docstrings: every public callable of the library API is complete, and the package's
coverage never falls (``python benchmarks/docstrings.py --missing`` lists what is left)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docstrings", REPO / "benchmarks" / "docstrings.py")
docstrings = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("docstrings", docstrings)  # its dataclass looks its module up
_spec.loader.exec_module(docstrings)

#: Share of public functions, classes and methods with a complete numpydoc docstring (a Parameters
#: section where they take arguments). Raise it as docstrings are added; it may never fall. The
#: issue's target is 0.95.
FLOOR = 0.96
#: Modules that must be complete: the API a notebook imports and the registries.
COMPLETE = ("vitfeat.featurize.extractor", "vitfeat.pipelines.selector", "vitfeat.pipelines.runs",
            "vitfeat.registry", "vitfeat.featurize.table", "vitfeat.atomic", "vitfeat.evaluation.metrics")


def test_the_library_api_is_fully_documented():
    missing = [f"{i.module}.{i.qualname}: {i.why}" for i in docstrings.items() if i.module in COMPLETE and not i.ok]
    assert missing == []


def test_docstring_coverage_never_falls():
    done, total = docstrings.coverage()
    assert total > 500 and done / total >= FLOOR, f"numpydoc coverage {done}/{total} = {done / total:.1%}"


def test_the_checker_tells_complete_from_incomplete(tmp_path):
    pkg = tmp_path / "vitfeat"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        'def good(x):\n    """Do.\n\n    Parameters\n    ----------\n    x : int\n        A number.\n    """\n\n'
        'def prose(x):\n    """Do ``x``."""\n\n'
        'def bare():\n    """Nothing to take."""\n\n'
        'def _private(x):\n    pass\n\n'
        'class Thing:\n    """A thing."""\n\n    def __init__(self, a):\n        self.a = a\n\n'
        '    def run(self):\n        pass\n\n    @property\n    def size(self):\n        return 1\n')
    verdict = {i.qualname: i.ok for i in docstrings.items(pkg)}
    assert verdict == {"good": True, "prose": False, "bare": True, "Thing": False, "Thing.run": False}
