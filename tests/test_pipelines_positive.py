"""The one positive-class rule: known stage names, explicit choice, minority with a warning; recorded in
run.json for every binary target and shared with included (VMTL) runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitfeat.evaluation.positive import PositiveClassWarning, positive_class
from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.pipelines.select import FitConfig, fit_run


@pytest.mark.parametrize("name", ["non-stable", "Non-Stable", "nonstable", "non_stable", "unstable", "active",
                                  "progressive", "progressing", "melanoma", "malignant"])
def test_known_stage_names_are_positive_whatever_the_counts(name, recwarn):
    classes = sorted(["stable", name]) if name.lower() != "melanoma" else ["melanoma", "nevus"]
    majority = [name] * 9 + [c for c in classes if c != name]
    assert positive_class(classes, y=majority) == name
    assert not [w for w in recwarn if issubclass(w.category, PositiveClassWarning)]


def test_explicit_choice_wins_and_must_be_a_class():
    assert positive_class(["non-stable", "stable"], explicit="stable") == "stable"
    with pytest.raises(ValueError, match="'healed' is not a class of target 'stage'"):
        positive_class(["non-stable", "stable"], explicit="healed", target="stage")


def test_unknown_names_fall_back_to_the_minority_with_a_warning():
    with pytest.warns(PositiveClassWarning, match="'high' \\(the minority class\\)"):
        assert positive_class(["high", "low"], y=["low"] * 5 + ["high"] * 2, target="activity") == "high"


def _stage_table(path, majority: str):
    frame = make_feature_table(60, 6, n_informative=2, cases_per_patient=1, seed=3, weights=[0.7, 0.3],
                               class_names=[majority, "stable" if majority == "non-stable" else "non-stable"])
    counts = frame["label"].value_counts()
    assert counts.idxmax() == majority
    return write_feature_table(frame, path)


@pytest.mark.parametrize("majority", ["non-stable", "stable"])
def test_run_json_records_non_stable_whichever_class_is_larger(tmp_path, majority):
    table = _stage_table(tmp_path / "t.parquet", majority)
    run = fit_run(table, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=0), progress=False)
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["positive_class"] == {"label": "non-stable"}
    assert recorded["targets"]["label"]["positive"] == "non-stable"


def test_an_included_run_must_use_the_same_positive_class(tmp_path):
    table = _stage_table(tmp_path / "t.parquet", "stable")
    first = fit_run(table, tmp_path / "a", FitConfig(pipelines=["logreg"], folds=3, n_boot=0), progress=False)
    vmtl = tmp_path / "vmtl"  # an included run as train vmtl writes it: same folds, own OOF and run.json
    vmtl.mkdir()
    (vmtl / "folds.csv").write_text((first / "folds.csv").read_text())
    (vmtl / "oof_predictions.csv").write_text((first / "oof_predictions.csv").read_text().replace("logreg", "vmtl"))
    (vmtl / "run.json").write_text(json.dumps({"kind": "vmtl", "positive_class": {"label": "non-stable"}}))
    config = FitConfig(pipelines=["logreg"], folds_from=str(first / "folds.csv"), include=[str(vmtl)], n_boot=0)
    both = fit_run(table, tmp_path / "b", config, progress=False)
    assert json.loads((both / "run.json").read_text())["positive_class"] == {"label": "non-stable"}

    (vmtl / "run.json").write_text(json.dumps({"kind": "vmtl", "positive_class": {"label": "stable"}}))
    with pytest.raises(ValueError, match="took 'stable' as the positive class"):
        fit_run(table, tmp_path / "c", config, progress=False)
    config.positive = "stable"  # choosing the same class explicitly makes them agree
    agreed = fit_run(table, tmp_path / "d", config, progress=False)
    assert json.loads((agreed / "run.json").read_text())["positive_class"] == {"label": "stable"}
    assert np.isfinite(json.loads((agreed / "run.json").read_text())["n_splits"])


def test_cases_with_most_features_missing_are_listed_in_the_warnings(tmp_path):
    frame = make_feature_table(60, 6, n_informative=2, cases_per_patient=1, seed=3,
                               class_names=["non-stable", "stable"])
    features = [c for c in frame.columns if c.startswith(("clinical_", "wood_"))]
    frame.loc[[4, 9], features[:4]] = np.nan  # 4 of 6 features missing
    frame.loc[[12], features[:3]] = np.nan  # exactly half: not flagged
    table = write_feature_table(frame, tmp_path / "t.parquet")
    run = fit_run(table, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=0), progress=False)
    summary = json.loads((run / "data_summary.json").read_text())
    ids = [str(frame.at[i, "case_id"]) for i in (4, 9)]
    assert sorted(c["case_id"] for c in summary["cases_mostly_missing"]) == sorted(ids)
    warning = next(w for w in summary["warnings"] if "more than half their features" in w)
    assert all(f"{i} (67%)" in warning for i in ids) and str(frame.at[12, "case_id"]) not in warning
