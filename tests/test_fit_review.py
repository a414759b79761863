"""fit for a reviewer (issue #28): held-out test split scored once, paired comparisons, subgroups, the
positive class and why, the selection metric, the run's own provenance, and bad input named before fitting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitfeat.evaluation.intervals import delong_paired
from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.pipelines.select import FitConfig, fit_run

FAST = dict(pipelines=["logreg", "lgbm"], folds=3, n_boot=60, nested=False)


def _table(path, n=90, seed=1, names=("normal", "vitiligo"), **extra):
    frame = make_feature_table(n, 6, n_informative=3, cases_per_patient=1, seed=seed, class_names=list(names),
                               class_sep=0.6)
    frame["site"] = np.where(np.arange(n) % 3 == 0, "clinic A", "clinic B")
    frame["original_split"] = np.where(np.arange(n) % 4 == 0, "test", "train")
    for k, v in extra.items():
        frame[k] = v(frame) if callable(v) else v
    return write_feature_table(frame, path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    table = _table(root / "t.parquet")
    config = FitConfig(test_split="original_split", subgroups=["site"], **FAST)
    return fit_run(table, root / "run", config, progress=False)


def test_the_test_split_is_held_out_and_scored_once(run):
    oof = pd.read_csv(run / "oof_predictions.csv", dtype={"case_id": str})
    test = pd.read_csv(run / "test_predictions.csv", dtype={"case_id": str})
    split = pd.read_csv(run / "test_split.csv", dtype={"case_id": str})
    held = set(split.loc[split["split"] == "test", "case_id"])
    assert set(test["case_id"]) == held and not held & set(oof["case_id"])
    assert list(test.columns) == list(oof.columns)
    assert (test["pipeline"] == json.loads((run / "run.json").read_text())["targets"]["label"]["pipeline"]).all()
    metrics = pd.read_csv(run / "test_metrics.csv")
    assert list(metrics.columns[:4]) == ["metric", "value", "ci_low", "ci_high"]
    auroc = metrics.set_index("metric").loc["auroc"]
    from sklearn.metrics import roc_auc_score

    assert auroc["value"] == pytest.approx(roc_auc_score(test["y_true"] == "vitiligo", test["proba_vitiligo"]))
    assert auroc["ci_low"] < auroc["value"] <= auroc["ci_high"] and auroc["ci_method"] == "DeLong"
    report = (run / "report.md").read_text()
    assert "Held-out test against cross-validation" in report and "Summary for clinicians" in report
    recorded = json.loads((run / "run.json").read_text())["artefacts"]
    assert {"test_metrics.csv", "comparisons.csv", "subgroup_metrics.csv"} <= set(recorded)


def test_comparisons_use_delong_on_the_same_oof_and_holm(run):
    table = pd.read_csv(run / "comparisons.csv")
    assert list(table.columns[:8]) == ["pipeline_a", "pipeline_b", "metric", "difference", "ci_low", "ci_high",
                                       "p_value", "test"]
    row = table[table["test"] == "DeLong paired"].iloc[0]
    oof = pd.read_csv(run / "oof_predictions.csv")
    a = oof[oof["pipeline"] == row["pipeline_a"]].sort_values("case_id")
    b = oof[oof["pipeline"] == row["pipeline_b"]].sort_values("case_id")
    expected = delong_paired(a["y_true"] == "vitiligo", a["proba_vitiligo"], b["proba_vitiligo"])
    assert row["difference"] == pytest.approx(expected["difference"])
    assert row["p_value"] == pytest.approx(expected["p_value"])
    assert set(table["test"]) == {"DeLong paired", "Nadeau-Bengio corrected t"}
    assert "Holm-adjusted" in (run / "report.md").read_text()


def test_subgroup_metrics_per_site(run):
    table = pd.read_csv(run / "subgroup_metrics.csv")
    assert list(table.columns[:8]) == ["subgroup_column", "subgroup", "n", "n_positive", "metric", "value",
                                       "ci_low", "ci_high"]
    cv = table[(table["source"] == "cv") & (table["metric"] == "sensitivity")]
    assert set(cv["subgroup"]) == {"clinic A", "clinic B"}
    oof = pd.read_csv(run / "oof_predictions.csv")
    frame = pd.read_parquet(run.parent / "t.parquet")
    site = oof["case_id"].map(frame.set_index("case_id")["site"])
    chosen = json.loads((run / "run.json").read_text())["targets"]["label"]["pipeline"]
    part = oof[(site == "clinic A") & (oof["pipeline"] == chosen) & (oof["y_true"] == "vitiligo")]
    assert cv.set_index("subgroup").at["clinic A", "value"] == pytest.approx((part["y_pred"] == "vitiligo").mean())


def test_positive_class_and_reason_are_recorded(run):
    meta = json.loads((run / "run.json").read_text())
    assert meta["positive_class"] == {"label": "vitiligo"}
    assert "disease" in meta["positive_reason"]["label"]
    assert "positive class 'vitiligo'" in (run / "report.md").read_text()


@pytest.mark.parametrize("config, message", [
    (dict(positive="healed"), "'healed' is not a class of any binary target"),
    (dict(subgroups=["constant"]), "has a single value"),
    (dict(test_split="lopsided"), "has no case of class"),
    (dict(metric="accuracy"), "--metric 'accuracy'"),
    (dict(test_split="original_split", test_fraction=0.2), "not both"),
    (dict(targets=["score"]), "distinct numbers, a measurement rather than classes"),
])
def test_bad_input_is_named_before_any_fit(tmp_path, config, message):
    table = _table(tmp_path / "t.parquet", constant="x", score=lambda f: np.arange(len(f)) * 0.1,
                   lopsided=lambda f: np.where(f["label"] == "normal", "train", "test"))  # one class per part
    with pytest.raises(ValueError, match=message):
        fit_run(table, tmp_path / "run", FitConfig(**dict(FAST, **config)), progress=False)
    assert not list((tmp_path / "run").glob(".cv_cache/*.npz"))  # nothing was fitted


def test_ambiguous_labels_need_positive(tmp_path):
    table = _table(tmp_path / "t.parquet", names=("high", "low"))
    with pytest.raises(ValueError, match="pass --positive"):
        fit_run(table, tmp_path / "run", FitConfig(**FAST), progress=False)
    run = fit_run(table, tmp_path / "run", FitConfig(positive="low", **FAST), progress=False)
    meta = json.loads((run / "run.json").read_text())
    assert meta["positive_class"] == {"label": "low"} and "--positive" in meta["positive_reason"]["label"]


def test_test_fraction_is_patient_grouped_stratified_and_recorded(tmp_path):
    frame = make_feature_table(120, 6, n_informative=3, cases_per_patient=2, seed=2, class_names=["normal", "vitiligo"])
    table = write_feature_table(frame, tmp_path / "t.parquet")
    run = fit_run(table, tmp_path / "run", FitConfig(test_fraction=0.25, **FAST), progress=False)
    split = pd.read_csv(run / "test_split.csv")
    assert not set(split.loc[split["split"] == "test", "patient_id"]) & set(split.loc[split["split"] == "train",
                                                                                       "patient_id"])
    share = split.merge(frame[["case_id", "label"]]).groupby("split")["label"].apply(lambda s: (s == "vitiligo").mean())
    assert share["test"] == pytest.approx(share["train"], abs=0.1)
    assert 0.15 < (split["split"] == "test").mean() < 0.35
    assert "fraction 0.25" in json.loads((run / "run.json").read_text())["test_split"]["source"]


def test_metric_ranks_the_leaderboard_and_is_stated(tmp_path):
    table = _table(tmp_path / "t.parquet")
    run = fit_run(table, tmp_path / "run", FitConfig(metric="log_loss", **FAST), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert board["log_loss_mean"].is_monotonic_increasing
    assert "--metric log_loss" in (run / "report.md").read_text()


def test_two_runs_on_different_data_each_name_their_own(tmp_path):
    runs = []
    for seed in (1, 2):
        table = _table(tmp_path / f"data{seed}.parquet", seed=seed)
        runs.append((table, fit_run(table, tmp_path / f"run{seed}", FitConfig(seed=seed, **FAST), progress=False)))
    hashes = set()
    for table, run in runs:
        prov = json.loads((run / "run.json").read_text())["provenance"]
        assert prov["data_file"] == str(Path(table).resolve())
        report = (run / "report.md").read_text()
        assert f"Data file (this run): {Path(table).resolve()}" in report
        assert prov["data_hash"] in report and prov["libraries"]["scikit-learn"] in report
        other = [t for t, _ in runs if t != table][0]
        assert str(Path(other).resolve()) not in report
        hashes.add(prov["data_hash"])
    assert len(hashes) == 2


def test_synth_writes_the_fitzpatrick_type_that_fit_reads_from_the_manifest(synth_small):
    from vitfeat.pipelines.subgroups import case_columns
    from vitfeat.synth import FITZPATRICK

    manifest = pd.read_csv(synth_small)
    truth = pd.read_csv(Path(synth_small).parent / "truth.csv")
    assert list(manifest["fitzpatrick"]) == [FITZPATRICK[t] for t in truth["skin_type"]]
    table = manifest[["case_id", "label"]]  # extract keeps ids and targets only
    with_column = case_columns(table, {"manifest": str(synth_small)}, ["fitzpatrick"])
    assert list(with_column["fitzpatrick"]) == list(manifest["fitzpatrick"])
    with pytest.raises(ValueError, match="column\\(s\\) hospital not found"):
        case_columns(table, {"manifest": str(synth_small)}, ["hospital"])


def test_an_operating_point_decides_the_leaderboard_calls(tmp_path):
    table = _table(tmp_path / "t.parquet")
    run = fit_run(table, tmp_path / "run", FitConfig(operating_point="sensitivity=0.90", **FAST), progress=False)
    oof = pd.read_csv(run / "oof_predictions.csv")
    called = oof["proba_vitiligo"] >= oof["threshold"]
    assert (oof["y_pred"] == np.where(called, "vitiligo", "normal")).all()
    board = pd.read_csv(run / "leaderboard.csv").set_index("pipeline")
    operating = pd.read_csv(run / "operating_point.csv").set_index("pipeline")
    for name in operating.index:
        assert board.at[name, "sensitivity_value"] == pytest.approx(operating.at[name, "sensitivity"])


def test_multiclass_roc_curves_average_over_all_repeats():
    import matplotlib.pyplot as plt

    from vitfeat.pipelines.report import _curves

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    rows = []
    for repeat in range(3):
        p = rng.dirichlet(np.ones(3), 60)
        rows.append(pd.DataFrame({"pipeline": "m", "repeat": repeat, "y_true": np.array(classes)[np.arange(60) % 3],
                                  **{f"proba_{c}": p[:, i] for i, c in enumerate(classes)}}))
    oof = pd.concat(rows, ignore_index=True)
    seen = []
    original = plt.Axes.plot

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        _curves(oof, pd.DataFrame({"pipeline": ["m"]}), classes, None, "roc")
    finally:
        plt.Axes.plot = original
    assert seen.count("m (3 repeats)") == 3  # one panel per class, each over the three repeats


def test_cli_flags_reach_the_run(tmp_path, capsys):
    from vitfeat.cli.main import main

    table = _table(tmp_path / "t.parquet")
    rc = main(["fit", str(table), "-o", str(tmp_path / "run"), "--pipelines", "logreg", "--folds", "3",
               "--n-boot", "20", "--no-nested", "--test-split", "original_split", "--subgroup", "site",
               "--metric", "auroc", "--ci", "bootstrap", "--calibrate", "sigmoid:ensemble"])
    assert rc == 0
    assert "held-out test (logreg" in capsys.readouterr().out
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["metric"] == "auroc" and meta["ci"] == "bootstrap" and meta["calibrate"] == "sigmoid:ensemble"
    assert (tmp_path / "run" / "subgroup_metrics.csv").is_file()
    assert main(["fit", str(table), "-o", str(tmp_path / "bad"), "--positive", "healed"]) == 2
    assert "'healed' is not a class" in capsys.readouterr().err


def test_tiny_subgroups_are_listed_not_scored_with_one_warning():
    from vitfeat.pipelines.subgroups import subgroup_metrics

    rng = np.random.default_rng(0)
    n = 60
    y = np.where(np.arange(n) % 2 == 0, "vitiligo", "normal")
    p = np.clip(rng.uniform(0, 0.6, n) + (y == "vitiligo") * 0.3, 0, 1)
    rows = pd.DataFrame({"pipeline": "m", "target": "label", "repeat": 0, "case_id": [f"c{i}" for i in range(n)],
                         "y_true": y, "y_pred": np.where(p >= 0.5, "vitiligo", "normal"),
                         "proba_vitiligo": p, "proba_normal": 1 - p})
    groups = pd.DataFrame({"case_id": rows["case_id"], "type": ["V"] * 4 + ["VI"] * 3 + ["II"] * 53})
    table, warned = subgroup_metrics(rows, groups, ["type"], ["normal", "vitiligo"], "vitiligo")
    assert table.loc[table["subgroup"] == "V", "metric"].tolist() == [""]
    assert "not scored: 4 case(s)" in table.loc[table["subgroup"] == "V", "note"].iloc[0]
    assert len(warned) == 1 and "2 group(s) too small" in warned[0]
    big = table[(table["subgroup"] == "II") & (table["metric"] == "sensitivity")].iloc[0]
    part = rows[groups["type"] == "II"]
    assert big["value"] == pytest.approx(((part["y_pred"] == "vitiligo") & (part["y_true"] == "vitiligo")).sum()
                                         / (part["y_true"] == "vitiligo").sum())
    assert big["ci_low"] < big["value"] < big["ci_high"]


@pytest.mark.parametrize("sensitivity,specificity,prevalence", [(0.87, 0.84, 0.43), (0.5, 0.5, 0.005),
                                                                 (0.999, 0.001, 0.995), (0.333, 0.667, 0.335)])
def test_per_100_patients_adds_up(sensitivity, specificity, prevalence):
    import re

    from vitfeat.pipelines.report_review import _per_100

    sick, tp, sick2, missed, fp, healthy = map(int, re.findall(r"\d+", _per_100(sensitivity, specificity,
                                                                                  prevalence))[1:7])
    assert sick == sick2 and tp + missed == sick and sick + healthy == 100 and 0 <= fp <= healthy
