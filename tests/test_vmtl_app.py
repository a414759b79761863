"""The app with a VMTL run: ``predict_pair`` answers exactly like ``vitfeat predict`` (predict_run)
on the same case. Tiny random-initialised backbone at 64 px, one epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from vitfeat.app.predict_case import AppInputError, RunInfo, predict_pair
from vitfeat.dataset import load_manifest
from vitfeat.deep.vmtl.config import VMTLConfig
from vitfeat.deep.vmtl.train import train_vmtl
from vitfeat.pipelines.demo_data import write_feature_table
from vitfeat.pipelines.predict import predict_run
from vitfeat.pipelines.select import FitConfig, fit_run

TINY = dict(backbone="test_convnext", weights="random", imgsz=64, patch=8, batch=8, epochs=1, lr=1e-3,
            warmup_epochs=1, device="cpu", threads=1)


@pytest.fixture(scope="module")
def vmtl_run(synth_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("vmtl_app")
    man = load_manifest(synth_small)
    truth = pd.read_csv(synth_small.parent / "truth.csv", dtype={"case_id": str, "patient_id": str})
    table = man.frame[["case_id", "patient_id", "label"]].merge(truth[["case_id", "area_ratio"]], on="case_id")
    table = table.rename(columns={"area_ratio": "pair_truth_area_ratio"})
    table["error"] = ""
    fit = fit_run(write_feature_table(table, root / "features.parquet"), root / "fit",
                  FitConfig(pipelines=["logreg"], folds=2, n_boot=0), progress=False)
    return train_vmtl(synth_small, root / "vmtl", fit / "folds.csv", VMTLConfig(**TINY), progress=False)


def test_app_stage_and_probabilities_equal_predict_run(vmtl_run, synth_small, tmp_path):
    data = synth_small.parent
    case = pd.read_csv(synth_small).iloc[2]
    answer = predict_pair(vmtl_run, data / case["clinical"], data / case["wood"])
    # the same photos through `vitfeat predict` on a one-row manifest (copied: synth_small is read-only)
    for column in ("clinical", "wood"):
        shutil.copy(data / case[column], tmp_path / f"{column}{Path(case[column]).suffix}")
    one = pd.DataFrame([{"case_id": "x", "patient_id": "x", "clinical": f"clinical{Path(case['clinical']).suffix}",
                         "wood": f"wood{Path(case['wood']).suffix}"}])
    one.to_csv(tmp_path / "one.csv", index=False)
    expected = predict_run(vmtl_run, tmp_path / "one.csv", tmp_path / "pred.csv").iloc[0]
    assert RunInfo(vmtl_run).kind == "vmtl"
    assert answer["stage"] == expected["y_pred"]
    assert set(answer["probabilities"]) == {"active", "stable"}
    for c, p in answer["probabilities"].items():
        assert abs(p - expected[f"proba_{c}"]) < 1e-9
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6
    assert isinstance(answer["warnings"], list)
    perf = answer["performance"]
    assert perf["positive"] == "active" and perf["pipeline"] == "vmtl:test_convnext"
    assert perf["mean"] is not None and 0 <= perf["mean"] <= 1  # the run's cross-validated score


def test_model_tab_summarises_a_vmtl_run(vmtl_run):
    from vitfeat.app.summary import model_summary

    text = model_summary(RunInfo(vmtl_run))
    assert "**label**: model vmtl:test_convnext, positive class active" in text
    assert "balanced accuracy" in text


def test_paired_vmtl_run_without_wood_photo_is_refused_or_warned(vmtl_run, synth_small):
    data = synth_small.parent
    case = pd.read_csv(synth_small).iloc[2]
    try:
        answer = predict_pair(vmtl_run, data / case["clinical"], None, details=False)
    except AppInputError as exc:
        assert "Wood" in str(exc)
    else:
        assert any("Wood" in w for w in answer["warnings"])
