"""``fit --calibrate`` and ``fit --operating-point`` wired through the CV engine, the saved model
and ``predict`` (issue #14)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from vitfeat.cli.main import main
from vitfeat.evaluation.folds import make_folds
from vitfeat.pipelines.cv import cross_validate, feature_columns, fit_estimator
from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table
from vitfeat.pipelines.operating import GroupedCalibratedClassifier
from vitfeat.pipelines.persist import load_model, save_model
from vitfeat.pipelines.predict import predict_run

POS = "active"


def _table(n=96, seed=3):
    return make_feature_table(n, 6, n_informative=2, cases_per_patient=2, seed=seed)


def _cv(table, **kwargs):
    plan = make_folds(table, ["label"], n_splits=3, seed=0)
    X = table[feature_columns(table)].to_numpy(float)
    oof, _, failures = cross_validate(X, table["label"], table["patient_id"], table["case_id"], plan, ["logreg"],
                                      progress=False, **kwargs)
    assert not failures
    return oof.sort_values("case_id").reset_index(drop=True), plan


def test_calibrate_changes_the_out_of_fold_probabilities():
    table = _table()
    plain, _ = _cv(table)
    calibrated, _ = _cv(table, calibrate="sigmoid")
    assert not np.allclose(plain[f"proba_{POS}"], calibrated[f"proba_{POS}"])
    assert np.allclose(calibrated[["proba_active", "proba_stable"]].sum(axis=1), 1)


def test_calibration_folds_keep_each_patient_on_one_side():
    table = _table()
    X = table[feature_columns(table)].to_numpy(float)
    y = np.searchsorted(["active", "stable"], table["label"].to_numpy())
    groups = table["patient_id"].astype(str).to_numpy()
    est, _ = fit_estimator("logreg", X, y, groups, calibrate="isotonic")
    assert isinstance(est, GroupedCalibratedClassifier) and est.method == "isotonic"
    assert len(est.splits_) == 3
    for train, test in est.splits_:
        assert not set(groups[train]) & set(groups[test])


def test_fold_threshold_never_sees_its_test_fold():
    table = _table()
    base, plan = _cv(table, operating_point="sensitivity=0.9", positive=POS)
    test_cases = set(plan.loc[plan["fold"] == 0, "case_id"])
    altered = table.copy()
    rows = altered["case_id"].isin(test_cases).to_numpy()
    cols = feature_columns(altered)
    rng = np.random.default_rng(1)
    altered.loc[rows, cols] = rng.normal(scale=5, size=(rows.sum(), len(cols)))
    changed, _ = _cv(altered, operating_point="sensitivity=0.9", positive=POS)
    per_fold = base.groupby("fold")["threshold"].first(), changed.groupby("fold")["threshold"].first()
    assert per_fold[0][0] == per_fold[1][0]  # fold 0's threshold came from its training part only
    # the altered rows sit in the other folds' training parts, so their thresholds move: the test can fail
    assert (per_fold[0][[1, 2]] != per_fold[1][[1, 2]]).any()
    # ... while fold 0's test predictions did change
    assert not np.allclose(base.loc[rows, f"proba_{POS}"], changed.loc[rows, f"proba_{POS}"])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("opfit")
    table = _table(120, seed=5)
    path = write_feature_table(table, root / "features.parquet")
    assert main(["fit", str(path), "-o", str(root / "run"), "--pipelines", "logreg", "--folds", "3",
                 "--n-boot", "50", "--no-nested", "--calibrate", "sigmoid",
                 "--operating-point", "sensitivity=0.90", "--positive", POS]) == 0
    return root, path


def test_fit_records_calibration_and_the_operating_point(fitted):
    root, _ = fitted
    run = json.loads((root / "run" / "run.json").read_text())
    assert run["calibrate"] == "sigmoid" and run["operating_point"] == "sensitivity=0.90"
    threshold = run["targets"]["label"]["threshold"]
    assert 0 <= threshold <= 1
    board = pd.read_csv(root / "run" / "operating_point.csv")
    row = board[board["pipeline"] == "logreg"].iloc[0]
    oof = pd.read_csv(root / "run" / "oof_predictions.csv")
    oof = oof[oof["pipeline"] == "logreg"]
    assert oof["threshold"].notna().all()
    # the pooled out-of-fold sensitivity, recomputed by hand from each fold's own threshold
    truth, called = oof["y_true"] == POS, oof[f"proba_{POS}"] >= oof["threshold"]
    assert row["sensitivity"] == pytest.approx((truth & called).sum() / truth.sum())
    assert row["npv"] == pytest.approx((~truth & ~called).sum() / (~called).sum())
    assert row["sensitivity_ci_low"] <= row["sensitivity"] <= row["sensitivity_ci_high"]
    bundle = load_model(root / "run" / "model.skops")
    assert isinstance(bundle["targets"]["label"]["model"], GroupedCalibratedClassifier)
    assert bundle["targets"]["label"]["threshold"] == threshold
    card = (root / "run" / "model_card.md").read_text()
    assert f"at least {threshold:.3f}" in card and f"sensitivity {row['sensitivity']:.2f}" in card
    report = (root / "run" / "report.html").read_text()
    section = report[report.index("<h3>Operating point</h3>"):]
    assert f"{row['sensitivity']:.2f} [{row['sensitivity_ci_low']:.2f}–" in section.split("</table>")[0]
    assert "### Operating point" in (root / "run" / "report.md").read_text()


def test_predict_uses_the_saved_threshold(fitted, tmp_path):
    root, path = fitted
    run_dir = shutil.copytree(root / "run", tmp_path / "run")
    bundle = load_model(run_dir / "model.skops")
    before = predict_run(run_dir, path)
    p = before[f"label_proba_{POS}"].to_numpy()
    assert (before["label_pred"] == np.where(p >= bundle["targets"]["label"]["threshold"], POS, "stable")).all()
    # a threshold below 0.5: cases with 0.3 <= p < 0.5 are called positive although argmax says otherwise
    cut = float(np.quantile(p, 0.2))
    assert ((p >= cut) & (p < 0.5)).any()
    bundle["targets"]["label"]["threshold"] = cut
    save_model(bundle, run_dir / "model.skops")
    with pytest.warns(UserWarning, match="modified after fit"):  # edited by hand after fit: run.json's hash differs
        after = predict_run(run_dir, path, trust_modified=True)
    middle = (p >= cut) & (p < 0.5)
    assert (after.loc[middle, "label_pred"] == POS).all()
    assert (after["label_pred"] == np.where(p >= cut, POS, "stable")).all()


def test_a_bad_rule_or_method_is_refused_before_any_fit(tmp_path):
    from vitfeat.pipelines.select import FitConfig, fit_run

    path = write_feature_table(_table(40), tmp_path / "features.parquet")
    with pytest.raises(ValueError, match="sensitivity=0.90, specificity=0.90 or youden"):
        fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], operating_point="accuracy=0.9"),
                progress=False)
    with pytest.raises(ValueError, match="sigmoid or isotonic"):
        fit_run(path, tmp_path / "run", FitConfig(pipelines=["logreg"], calibrate="platt"), progress=False)
    assert not (tmp_path / "run" / ".cv_cache").exists()
