"""Contract suite over every registered family, and the one-file plug-in path for a new family.

In the spirit of scikit-learn's ``parametrize_with_checks``: whatever family is registered, it
returns exactly the columns it declares, gives NaN where the photo it needs is missing, carries a
version and is deterministic.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from vitfeat.dataset import load_manifest
from vitfeat.featurize import available_families, describe_column, extract, family_table, get_family
from vitfeat.featurize import families as families_pkg
from vitfeat.featurize.engine import _mask_plan, load_case_arrays
from vitfeat.featurize.registry import _FAMILIES, CaseArrays, register_family

FAMILY_NAMES = available_families()


@pytest.fixture(scope="module")
def case_arrays(synth_small):
    man = load_manifest(synth_small)
    case = next(iter(man.cases()))
    plan = _mask_plan(case, "given", None, {"clinical": True, "wood": True})
    return load_case_arrays(case, plan)


def _fresh(arrays: CaseArrays, wood: bool = True) -> CaseArrays:
    return CaseArrays(arrays.case_id, arrays.clinical, arrays.wood if wood else None, arrays.clinical_mask,
                      arrays.wood_mask if wood else None)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_returns_its_declared_columns(name, case_arrays):
    family = get_family(name)
    values = family(_fresh(case_arrays))
    assert list(values) == family.columns()
    assert family.features is not None and all(family.feature_descriptions().values())
    assert np.isfinite(np.array(list(values.values()), float)).any(), f"{name}: every value NaN on a lesion"


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_gives_nan_without_a_woods_photo(name, case_arrays):
    family = get_family(name)
    values = family(_fresh(case_arrays, wood=False))
    assert list(values) == family.columns()
    needs_wood = [c for c in values if family.needs_wood or c.startswith("wood_")]
    assert needs_wood, f"{name} writes no column that depends on the Wood's photo"
    assert all(np.isnan(values[c]) for c in needs_wood)
    if not family.needs_wood:  # the daylight half is still computed
        assert not all(np.isnan(v) for c, v in values.items() if c.startswith("clinical_"))


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_has_a_version_and_is_deterministic(name, case_arrays):
    family = get_family(name)
    assert isinstance(family.version, str) and family.version.strip()
    first, second = family(_fresh(case_arrays)), family(_fresh(case_arrays))
    np.testing.assert_array_equal(np.array(list(first.values())), np.array(list(second.values())))


def test_a_family_returning_undeclared_names_is_refused_by_name(case_arrays):
    def sloppy(case, modality):
        return {"size": 1.0, "colour": 2.0}

    try:
        register_family("sloppy_probe", version="1", features={"size": "a size", "shape": "a shape"})(sloppy)
        with pytest.raises(ValueError, match=r"family 'sloppy_probe' \(clinical\).*missing \['shape'\], "
                                             r"extra \['colour'\]"):
            get_family("sloppy_probe")(_fresh(case_arrays))
    finally:
        _FAMILIES.pop("sloppy_probe", None)


NEW_FAMILY = '''
"""Brightness of the lesion: a family written as one file, for the plug-in test."""

import numpy as np

from vitfeat.featurize.registry import register_family
from vitfeat.featurize.views import view


@register_family("brightprobe", version="1", features={
    "mean": "mean grey level inside the lesion",
    "share": "share of the photo covered by the lesion",
}, order=999)
def brightprobe(case, modality):
    """Lesion brightness probe (mean grey level, lesion share)."""
    v = view(case, modality)
    return {"mean": float(v.grey_u8[v.mask].mean()), "share": float(np.mean(v.mask))}
'''


@pytest.fixture()
def one_new_family_file(tmp_path):
    """Drop one file into an extra families folder; remove every trace of it afterwards."""
    folder = tmp_path / "more_families"
    folder.mkdir()
    (folder / "brightprobe.py").write_text(textwrap.dedent(NEW_FAMILY))
    families_pkg.__path__.append(str(folder))
    try:
        families_pkg.discover()
        yield "brightprobe"
    finally:
        families_pkg.__path__.remove(str(folder))
        _FAMILIES.pop("brightprobe", None)
        sys.modules.pop("vitfeat.featurize.families.brightprobe", None)


def test_one_new_file_adds_a_family_everywhere(one_new_family_file, synth_small, capsys):
    from vitfeat.cli.main import main

    name = one_new_family_file
    assert name in available_families()
    result = extract(synth_small, None, families=["shape", name], progress=False)
    assert result.n_failed == 0
    assert {"clinical_brightprobe_mean", "wood_brightprobe_share"} <= set(result.frame.columns)
    assert result.frame["clinical_brightprobe_mean"].between(0, 255).all()
    assert describe_column("wood_brightprobe_mean") == "mean grey level inside the lesion (Wood's-lamp photo)"
    assert any(row["family"] == name for row in family_table())
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    assert "Lesion brightness probe" in capsys.readouterr().out


def test_the_new_family_left_no_trace():
    """Runs after the plug-in test (file order): nothing of it leaked."""
    assert "brightprobe" not in available_families()
    with pytest.raises(KeyError):
        describe_column("wood_brightprobe_mean")


def test_every_default_column_is_described(synth_small):
    frame = extract(synth_small, None, progress=False).frame
    columns = [c for c in frame.columns if c.split("_")[0] in ("clinical", "wood", "pair")]
    assert len(columns) > 200
    for column in columns:
        assert describe_column(column).strip()


def test_docs_feature_reference_is_generated_from_the_declarations():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "features_table.py"
    spec = importlib.util.spec_from_file_location("features_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/extract.md is stale: run python docs/features_table.py"
    assert "| `transition_width` |" in text and "### `pair`" in text
