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
