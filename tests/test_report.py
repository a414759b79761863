"""The report's calibration section (issue #14)."""

import html
import json

import pandas as pd
from sklearn.metrics import brier_score_loss

from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.pipelines.select import FitConfig, fit_run


def test_report_shows_calibration_scores_that_match_the_oof_predictions(tmp_path):
    table = make_feature_table(80, 8, n_informative=3, cases_per_patient=2, seed=1)
    path = write_feature_table(table, tmp_path / "features.parquet", {"vitfeat_version": "test"})
    run = fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=20), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    row = board.iloc[0]
    oof = pd.read_csv(run / "oof_predictions.csv", dtype={"y_true": str})
    oof = oof[(oof["pipeline"] == row["pipeline"]) & (oof["target"] == row["target"])]
    positive = json.loads((run / "run.json").read_text())["targets"][row["target"]]["positive"]
    expected = brier_score_loss((oof["y_true"] == positive).astype(int), oof[f"proba_{positive}"])
    assert abs(row["brier_value"] - expected) < 1e-9
    page = html.unescape((run / "report.html").read_text())
    for label in ("Brier score", "Log loss", "ECE (10 bins)", "Calibration slope", "Calibration intercept"):
        assert label in page
    assert f"{row['brier_mean']:.3f}" in page
    md = (run / "report.md").read_text()
    assert "### Calibration" in md
    assert "Decision curves" in page and "| treat all |" in md


def test_roc_curve_is_averaged_over_all_repeats_with_a_band():
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import roc_curve

    from vitfeat.pipelines.report import _curve_over_repeats

    rng = np.random.default_rng(0)
    y = np.array(["a", "b"] * 20)
    frames = []
    for repeat in range(3):
        score = (y == "a") * 0.3 + rng.uniform(size=40)
        frames.append(pd.DataFrame({"repeat": repeat, "y_true": y, "proba_a": score}))
    part = pd.concat(frames)
    fig, ax = plt.subplots()
    _curve_over_repeats(part, "a", "roc", "m", ax)
    grid = np.linspace(0, 1, 101)
    per_repeat = []
    for f in frames:
        fpr, tpr, _ = roc_curve(f["y_true"] == "a", f["proba_a"])
        per_repeat.append(np.interp(grid, fpr, tpr))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.mean(per_repeat, axis=0))
    assert "3 repeats" in ax.lines[0].get_label()
    assert len(ax.collections) == 1  # the min-max band
    plt.close(fig)


def test_explain_states_family_importance_per_feature(tmp_path):
    from vitfeat.pipelines.explain import explain_run

    table = make_feature_table(60, 8, n_informative=3, cases_per_patient=2, seed=2)
    path = write_feature_table(table, tmp_path / "features.parquet", {"vitfeat_version": "test"})
    run = fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=10), progress=False)
    out = explain_run(run, n_repeats=2, progress=False)
    groups = pd.read_csv(out / "importance_groups.csv")
    assert (groups["importance_per_feature"] * groups["n_features"]).round(12).equals(
        groups["permutation_importance"].round(12))
    page = (out / "explain.html").read_text()
    assert "divided by the number of features" in page
    # fits a laptop screen: long cells wrap, the tables and galleries are folded (issue #28)
    assert "td{overflow-wrap:anywhere}" in page and page.count("<details>") >= 4
    assert "<details><summary>Table of the 40 strongest clusters</summary>" in page


def test_tripod_section_and_model_card_are_filled_from_the_run(tmp_path):
    table = make_feature_table(60, 8, n_informative=3, cases_per_patient=2, seed=3)
    path = write_feature_table(table, tmp_path / "features.parquet", {"vitfeat_version": "test"})
    run = fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=10), progress=False)
    meta = json.loads((run / "run.json").read_text())
    summary = json.loads((run / "data_summary.json").read_text())
    md = (run / "report.md").read_text()
    assert "## TRIPOD+AI items" in md
    target, positive = next(iter(meta["positive_class"].items()))
    assert f"positive class '{positive}'" in md
    assert f"{summary['n_cases']} cases from {summary['n_patients']} patients" in md
    smallest = min(summary["class_counts"][target].values())
    assert f"{smallest / summary['n_features']:.2f} events per candidate predictor" in md
    assert "For the author to fill in" in md and "Ethics approval" in md
    assert meta["nested_inner"] is None and "no nested selection" in md  # one pipeline: nothing was selected
    page = html.unescape((run / "report.html").read_text())
    assert "<h2>TRIPOD+AI items</h2><table" in page and f"positive class '{positive}'" in page
    card = (run / "model_card.md").read_text()
    board = pd.read_csv(run / "leaderboard.csv")
    assert "## Performance and calibration" in card and f"{board['brier_value'].iloc[0]:.3f}" in card


def test_report_repeats_the_extraction_warnings(tmp_path):
    """What extract warned about (masks, images) reaches the fit's report and data_summary.json,
    capped with a count of the rest."""
    from vitfeat.pipelines.select import MAX_EXTRACTION_WARNINGS

    table = make_feature_table(60, 6, n_informative=3, cases_per_patient=2, seed=2)
    said = [f"row {i + 2} (case C{i:05d}): clinical mask is empty" for i in range(MAX_EXTRACTION_WARNINGS + 3)]
    path = write_feature_table(table, tmp_path / "features.parquet",
                               {"vitfeat_version": "test", "families": {}, "manifest_warnings": said})
    run = fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], folds=3, n_boot=10), progress=False)
    page = html.unescape((run / "report.html").read_text())
    md = (run / "report.md").read_text()
    for warning in said[:MAX_EXTRACTION_WARNINGS]:
        assert f"Extraction: {warning}" in page and f"Extraction: {warning}" in md
    assert said[-1] not in page
    assert "Extraction: 3 more warning(s)" in page
    summary = json.loads((run / "data_summary.json").read_text())
    assert sum(w.startswith("Extraction: ") for w in summary["warnings"]) == MAX_EXTRACTION_WARNINGS + 1
