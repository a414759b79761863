"""docs/features.md is generated (issue #29): up to date, and its hand-kept tables name real features."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vitfeat.featurize import get_family
from vitfeat.featurize.units import PIXEL_UNITS

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("features_doc", REPO / "docs" / "features_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_features_md_is_current():
    assert _module().render() == (REPO / "docs" / "features.md").read_text(), \
        "docs/features.md is stale: run python docs/features_doc.py"


def test_hand_kept_names_are_declared_features():
    module = _module()
    for family, feature in [*module.IBSI, *((f, n) for f, names in PIXEL_UNITS.items() for n in names)]:
        assert feature in get_family(family).feature_descriptions(), (family, feature)
    for source, (file, _cmd) in module.SOURCES.items():
        path = REPO / "docs" / "robustness" / file
        if path.is_file():  # the ICC tables name the current features
            import pandas as pd

            names = set(pd.read_csv(path)["feature"])
            assert "clinical_shape_solidity" in names, source
