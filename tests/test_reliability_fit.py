"""Fit-side malformed inputs (issue 13): NaN and inf in a feature table, text in a numeric column,
a one-class target, classes smaller than the folds, cases with most features missing. Each test
asserts the message and what it names, or that the input is handled correctly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vitfeat.pipelines.demo_data import write_feature_table
from vitfeat.pipelines.select import FitConfig, fit_run

CHEAP = dict(pipelines=["logreg"], folds=3, n_boot=0, nested=False)


def _table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    label = np.array(["active", "stable"] * (n // 2))
    frame = pd.DataFrame({"case_id": [f"c{i:02d}" for i in range(n)], "patient_id": [f"p{i:02d}" for i in range(n)],
                          "label": label, "error": ""})
    for j in range(4):
        frame[f"clinical_shape_f{j}"] = rng.normal(size=n) + (label == "active") * (j + 1)
    return frame


def _fit(frame, tmp_path, fmt="parquet", **config):
    path = write_feature_table(frame, tmp_path / f"features.{fmt}")
    return fit_run(path, tmp_path / "run", FitConfig(**{**CHEAP, **config}), progress=False)


def _summary(run):
    return json.loads((run / "data_summary.json").read_text())


def test_nan_and_inf_are_missing_values_not_fed_to_the_model(tmp_path):
    frame = _table()
    frame.loc[3, "clinical_shape_f0"] = np.inf
    frame.loc[4, "clinical_shape_f0"] = -np.inf
    frame.loc[5, "clinical_shape_f1"] = np.nan
    run = _fit(frame, tmp_path)
    oof = pd.read_csv(run / "oof_predictions.csv")
    proba = oof[[c for c in oof.columns if "proba" in c]].to_numpy(dtype=float)
    assert np.isfinite(proba).all() and set(frame["case_id"]) <= set(oof["case_id"].astype(str))
    # the same table with the infinities written as NaN gives the same predictions: inf == missing
    as_nan = frame.replace([np.inf, -np.inf], np.nan)
    (tmp_path / "nan").mkdir()
    other = _fit(as_nan, tmp_path / "nan")
    pd.testing.assert_frame_equal(oof, pd.read_csv(other / "oof_predictions.csv"))


def test_text_in_a_numeric_feature_column_is_named(tmp_path):
    frame = _table()
    frame["clinical_shape_f2"] = frame["clinical_shape_f2"].astype(object)
    frame.loc[7, "clinical_shape_f2"] = "n/a?"
    with pytest.raises(ValueError) as info:
        _fit(frame, tmp_path, fmt="csv")
    message = str(info.value)
    assert "clinical_shape_f2" in message and "n/a?" in message and "c07" in message


def test_one_class_target_is_refused_with_its_name(tmp_path):
    frame = _table()
    frame["label"] = "stable"
    with pytest.raises(ValueError, match="target 'label' has a single class \\(stable\\)"):
        _fit(frame, tmp_path)


def test_class_smaller_than_the_folds_is_warned_and_named(tmp_path):
    frame = _table()
    frame["label"] = "stable"
    frame.loc[[0, 1, 2, 3], "label"] = "active"  # 4 patients < 2 x 3 folds
    frame.loc[[0, 1, 2, 3], "clinical_shape_f0"] += 3
    run = _fit(frame, tmp_path)
    warnings = _summary(run)["warnings"]
    assert any("class 'active' has only 4 patient(s) for 3 folds" in w for w in warnings)


def test_cases_with_most_features_missing_are_warned_and_listed(tmp_path):
    frame = _table()
    features = [c for c in frame.columns if c.startswith("clinical_")]
    frame.loc[5, features[:3]] = np.nan  # 75 % missing
    frame.loc[9, features] = np.nan  # 100 % missing
    frame.loc[11, features[:2]] = np.nan  # 50 %: not more than half
    run = _fit(frame, tmp_path)
    summary = _summary(run)
    listed = {c["case_id"]: c["missing_fraction"] for c in summary["cases_mostly_missing"]}
    assert listed == {"c09": 1.0, "c05": 0.75}
    assert any("2 case(s) lack more than half their features" in w and "c09 (100%)" in w and "c05 (75%)" in w
               for w in summary["warnings"])


def test_a_clinical_only_table_is_not_called_sparse_because_of_its_empty_wood_columns(tmp_path):
    frame = _table()
    for j in range(6):  # more empty Wood's columns than clinical ones, as in a clinical-only extract
        frame[f"wood_shape_f{j}"] = np.nan
    frame.loc[5, ["clinical_shape_f0", "clinical_shape_f1", "clinical_shape_f2"]] = np.nan  # 3 of 4 used: sparse
    summary = _summary(_fit(frame, tmp_path))
    assert [c["case_id"] for c in summary["cases_mostly_missing"]] == ["c05"]
    assert summary["empty_features"] == [f"wood_shape_f{j}" for j in range(6)]
    assert summary["constant_features"] == []
    assert not any(c.startswith("wood_") for c in summary["features_with_missing"])
    said = [w for w in summary["warnings"] if "wood_shape_f0" in w]
    assert len(said) == 1 and "empty in every case" in said[0], said
