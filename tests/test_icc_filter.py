"""fit --feature-icc FILE --min-icc X (issue #29): features below the threshold are dropped first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vitfeat.pipelines.icc_filter import filter_by_icc
from vitfeat.pipelines.select import FitConfig, fit_run

FEATURES = ["clinical_shape_perimeter", "clinical_shape_solidity", "clinical_color_L_mean", "wood_shape_perimeter",
            "clinical_texture_glcm_contrast", "pair_wood_area_ratio", "clinical_shape_perimeter_mm"]


def _icc_file(path, values: dict):
    frame = pd.DataFrame({"feature": list(values), "family": "x", "modality": "clinical", "icc": list(values.values()),
                          "icc_low": 0.0, "icc_high": 1.0, "n_cases": 10, "n_perturbations": 3})
    frame.to_csv(path, index=False)
    return path


ICC = {"clinical_shape_perimeter": 0.80, "clinical_shape_solidity": 0.74999, "clinical_color_L_mean": 0.75,
       "wood_shape_perimeter": 0.2, "clinical_texture_glcm_contrast": np.nan, "pair_wood_area_ratio": 0.95,
       "clinical_extra_feature": 0.1}


def test_drops_exactly_the_features_below_the_threshold(tmp_path):
    path = _icc_file(tmp_path / "icc.csv", ICC)
    kept, record = filter_by_icc(FEATURES, path, 0.75)
    # 0.75 itself is kept, undefined ICC kept, the _mm column follows its pixel column, extra ICC rows ignored
    assert kept == ["clinical_shape_perimeter", "clinical_color_L_mean", "clinical_texture_glcm_contrast",
                    "pair_wood_area_ratio", "clinical_shape_perimeter_mm"]
    assert record["dropped"] == ["clinical_shape_solidity", "wood_shape_perimeter"]
    assert record["dropped_per_family"] == {"shape": 2} and record["n_undefined_kept"] == 1
    kept9, _ = filter_by_icc(FEATURES, path, 0.9)
    assert kept9 == ["clinical_texture_glcm_contrast", "pair_wood_area_ratio"]


def test_an_icc_file_of_another_feature_set_is_named(tmp_path):
    path = _icc_file(tmp_path / "other.csv", {"clinical_shape_perimeter": 0.9})
    with pytest.raises(ValueError, match=r"other\.csv: no ICC for 5 of the table's 6 features .*another feature set"):
        filter_by_icc(FEATURES[:6], path, 0.75)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"feature": ["a"], "value": [1]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv: ICC file lacks column\(s\) icc"):
        filter_by_icc(FEATURES, bad)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        filter_by_icc(FEATURES, tmp_path / "missing.csv")


def test_fit_drops_them_before_anything_and_records_it(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    table = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                          "label": np.repeat(["stable", "active"], n // 2), "error": ""})
    for col in FEATURES[:6]:
        table[col] = rng.normal(size=n)
    table.to_parquet(tmp_path / "features.parquet", index=False)
    icc = _icc_file(tmp_path / "icc.csv", ICC)
    config = FitConfig(pipelines=["logreg"], folds=3, n_boot=20, nested=False, feature_icc=str(icc), min_icc=0.75)
    run = fit_run(tmp_path / "features.parquet", tmp_path / "run", config, progress=False)
    meta = json.loads((run / "run.json").read_text())
    assert meta["feature_columns"] == ["clinical_shape_perimeter", "clinical_color_L_mean",
                                       "clinical_texture_glcm_contrast", "pair_wood_area_ratio"]
    assert meta["feature_icc"]["n_dropped"] == 2 and meta["feature_icc"]["min_icc"] == 0.75
    report = (run / "report.md").read_text()
    assert "2 of 6 features dropped" in report and "shape 2" in report and "not leakage" in report
    assert "Sizes are in pixels" in report
    with pytest.raises(ValueError, match="min_icc needs feature_icc"):
        fit_run(tmp_path / "features.parquet", tmp_path / "run2", FitConfig(pipelines=["logreg"], min_icc=0.5),
                progress=False)


def test_cli_fit_flags(tmp_path, capsys):
    from vitfeat.cli.main import main

    rng = np.random.default_rng(1)
    n = 30
    table = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "label": np.repeat(["stable", "active"], n // 2)})
    for col in FEATURES[:6]:
        table[col] = rng.normal(size=n)
    table.to_parquet(tmp_path / "f.parquet", index=False)
    icc = _icc_file(tmp_path / "icc.csv", ICC)
    args = ["fit", str(tmp_path / "f.parquet"), "-o", str(tmp_path / "run"), "--pipelines", "logreg", "--folds", "3",
            "--n-boot", "20", "--no-nested", "--feature-icc", str(icc), "--min-icc", "0.9"]
    assert main(args) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["feature_columns"] == ["clinical_texture_glcm_contrast", "pair_wood_area_ratio"]
    _icc_file(icc, {"clinical_shape_perimeter": 0.9})
    assert main(args[:-4] + ["--feature-icc", str(icc)]) == 2
    assert "no ICC for 5 of the table's 6 features" in capsys.readouterr().err
