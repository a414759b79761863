"""Nested selection: the best pipeline's quoted score is never computed on the data that chose it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vitfeat.pipelines import nested as nested_module
from vitfeat.pipelines.cv import cross_validate
from vitfeat.evaluation.folds import make_folds
from vitfeat.pipelines.nested import NAME, nested_selection
from vitfeat.pipelines.select import FitConfig, fit_run

FAST = ["logreg", "logreg+ros", "svm"]


def _noise(seed, n=60, p=20, patients=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = np.array(["stable", "active"])[rng.permutation(np.arange(n) % 2)]
    ids = np.array([f"C{seed}_{i}" for i in range(n)])
    pids = np.array([f"P{i % patients}" for i in range(n)])
    frame = pd.DataFrame({"case_id": ids, "patient_id": pids, "label": y})
    return X, y, ids, pids, make_folds(frame, "label", n_splits=5, seed=seed)


def _picks_match_outer_rows(oof, picks, outer):
    """Every case is predicted once, by the pipeline picked for its fold, exactly as in the outer CV."""
    assert sorted(oof["case_id"]) == sorted(outer["case_id"].unique()) and set(oof["pipeline"]) == {NAME}
    for pick in picks.itertuples():
        rows = oof[oof["fold"] == pick.fold].drop(columns="pipeline").reset_index(drop=True)
        same = outer[(outer["pipeline"] == pick.picked) & (outer["fold"] == pick.fold)]
        pd.testing.assert_frame_equal(rows, same.drop(columns="pipeline").reset_index(drop=True))


def test_independent_inner_folds_never_see_the_outer_test_fold(monkeypatch):
    X, y, ids, pids, plan = _noise(0)
    seen = []

    def spy(X_, y_, groups, case_ids, *args, **kwargs):
        seen.append(set(np.asarray(case_ids).astype(str)))
        return cross_validate(X_, y_, groups, case_ids, *args, **kwargs)

    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST[:3], progress=False)
    monkeypatch.setattr(nested_module, "cross_validate", spy)
    oof, picks = nested_selection(X, y, pids, ids, plan, FAST[:3], outer, classes=["active", "stable"],
                                  inner_folds=3)
    assert len(seen) == plan["fold"].nunique() == len(picks)
    assert set(picks["inner_folds"]) == {"3 independent folds"}
    for (_, fold), test in plan.groupby(["repeat", "fold"]):
        test_cases, test_patients = set(test["case_id"]), set(test["patient_id"])
        inner_cases = seen[fold]
        assert not inner_cases & test_cases
        assert not {p for c, p in zip(ids, pids) if c in inner_cases} & test_patients
    _picks_match_outer_rows(oof, picks, outer)


def _shuffle_fold(X, y, plan, fold, seed):
    """Features and labels of one outer test fold replaced by noise and shuffled labels."""
    rng = np.random.default_rng(seed)
    X, y = X.copy(), y.copy()
    in_fold = np.isin(np.arange(len(y)), plan.index[plan["fold"] == fold])
    X[in_fold] = rng.normal(size=(in_fold.sum(), X.shape[1])) * 5
    y[in_fold] = rng.permutation(["active", "stable"] * (in_fold.sum() // 2 + 1))[:in_fold.sum()]
    return X, y


def test_inner_pairs_of_each_scheme():
    """Neighbours: one pair per fold, every fold in exactly two pairs; others: every pair."""
    from collections import Counter
    from itertools import chain

    neighbours = nested_module.inner_pairs(range(5), "neighbours")
    assert len(neighbours) == len(set(neighbours)) == 5
    assert set(Counter(chain(*neighbours)).values()) == {2}
    assert sorted(nested_module.inner_pairs(range(5), "others")) == [(a, b) for a in range(5) for b in range(a + 1, 5)]
    assert sorted(nested_module.inner_pairs(range(3), "neighbours")) == [(0, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize("inner, used", [("neighbours", "outer folds 1,4"), ("others", "outer folds 1,2,3,4")])
def test_shared_inner_folds_pick_without_the_outer_test_fold(inner, used):
    """With outer folds as inner folds (each inner fit shared by two outer folds), wrecking an
    outer test fold's features and labels leaves that fold's inner scores and pick unchanged:
    nothing of it took part in choosing its pipeline."""
    X, y, ids, pids, plan = _noise(0)
    plan = plan.set_index("case_id").loc[ids].reset_index()  # row i of the plan is case i
    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST, progress=False)
    oof, picks = nested_selection(X, y, pids, ids, plan, FAST, outer, classes=["active", "stable"], inner=inner)
    assert len(picks) == plan["fold"].nunique()
    assert picks["inner_folds"].iloc[0] == used
    _picks_match_outer_rows(oof, picks, outer)
    for fold in (0, 3):
        X2, y2 = _shuffle_fold(X, y, plan, fold, seed=fold)
        outer2, _, _ = cross_validate(X2, y2, pids, ids, plan, FAST, progress=False)
        _, picks2 = nested_selection(X2, y2, pids, ids, plan, FAST, outer2, classes=["active", "stable"],
                                     inner=inner)
        mine, mine2 = picks[picks["fold"] == fold].iloc[0], picks2[picks2["fold"] == fold].iloc[0]
        assert mine2["inner_balanced_accuracy"] == mine["inner_balanced_accuracy"]
        assert mine2["picked"] == mine["picked"]
        other = picks2[picks2["fold"] != fold]["inner_balanced_accuracy"]  # the others did see it
        assert (other.to_numpy() != picks[picks["fold"] != fold]["inner_balanced_accuracy"].to_numpy()).any()


def _inner_scores(calibrate, inner="neighbours"):
    X, y, ids, pids, plan = _noise(2, n=90, patients=60)
    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST[:2], progress=False, calibrate=calibrate)
    _, picks = nested_selection(X, y, pids, ids, plan, FAST[:2], outer, classes=["active", "stable"],
                                calibrate=calibrate, inner=inner)
    k = 2
    keep = ~plan.set_index("case_id").loc[ids, "fold"].eq(k).to_numpy()
    inner_plan = plan[plan["fold"] != k]
    inner_oof, _, _ = cross_validate(X[keep], y[keep], pids[keep], ids[keep], inner_plan, FAST[:2], progress=False,
                                     calibrate=calibrate)
    # The plain CV on the other folds predicts fold j from all folds but j and k: the shared fit of
    # the pair {j, k}. The neighbours scheme scores folds k - 1 and k + 1 only.
    scored = [1, 3] if inner == "neighbours" else [0, 1, 3, 4]
    inner = inner_oof[inner_oof["fold"].isin(scored)]
    expected = {name: round(float(np.mean([
        (part["y_pred"][part["y_true"] == c] == c).mean() for c in ("active", "stable")])), 4)
        for name, part in inner.groupby("pipeline")}
    return json.loads(picks.loc[picks["fold"] == k, "inner_balanced_accuracy"].iloc[0]), expected


def test_shared_inner_scores_equal_an_explicit_cross_validation():
    """The shared inner predictions of outer fold k are those of a plain CV on the other folds (on
    the folds the scheme scores), fitted like the outer models: calibrated ones too when the run
    calibrates."""
    plain, expected_plain = _inner_scores(None)
    assert plain == expected_plain
    others, expected_others = _inner_scores(None, "others")
    assert others == expected_others
    assert others != plain  # four folds scored instead of two: the check tells the schemes apart
    calibrated, expected_calibrated = _inner_scores("sigmoid")
    assert calibrated == expected_calibrated
    assert calibrated != plain  # calibration changes the inner predictions, so the check has teeth


def _noise_table(path, seed, n):
    """:func:`_noise` cases written as a feature table at ``path``."""
    X, y, ids, pids, _ = _noise(seed, n=n)
    table = pd.DataFrame(X, columns=[f"clinical_shape_f{i}" for i in range(X.shape[1])])
    table.insert(0, "case_id", ids)
    table.insert(1, "patient_id", pids)
    table.insert(2, "label", y)
    table.to_parquet(path)
    return path


def test_fit_run_reports_the_nested_row(tmp_path):
    _noise_table(tmp_path / "features.parquet", 1, 80)
    run = fit_run(tmp_path / "features.parquet", tmp_path / "run",
                  FitConfig(pipelines=["logreg", "svm"], n_boot=50), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert NAME in set(board["pipeline"])
    picks = pd.read_csv(run / "nested_selection.csv")
    assert len(picks) == 5 and set(picks["picked"]) <= {"logreg", "svm"}
    assert "nested selection" in (run / "report.html").read_text()
    inner = json.loads((run / "run.json").read_text())["nested_inner"]
    assert "two neighbouring outer folds" in inner
    assert f"nested selection with {inner}" in (run / "report.md").read_text()  # the methods line says how
    single = fit_run(tmp_path / "features.parquet", tmp_path / "one", FitConfig(pipelines=["logreg"], n_boot=50),
                     progress=False)
    assert NAME not in set(pd.read_csv(single / "leaderboard.csv")["pipeline"])  # nothing was selected


@pytest.mark.parametrize("inner, fits", [("neighbours", 5), ("others", 10)])
def test_inner_fits_per_pipeline(monkeypatch, inner, fits):
    """Neighbours: one shared inner fit per outer fold; others: one per pair of outer folds."""
    X, y, ids, pids, plan = _noise(3)
    planned = []

    def spy(X_, y_, groups, case_ids, fold_plan, *args, **kwargs):
        planned.append(fold_plan["fold"].nunique())
        return cross_validate(X_, y_, groups, case_ids, fold_plan, *args, **kwargs)

    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST[:2], progress=False)
    monkeypatch.setattr(nested_module, "cross_validate", spy)
    nested_selection(X, y, pids, ids, plan, FAST[:2], outer, classes=["active", "stable"], inner=inner)
    assert planned == [fits]


def test_unknown_inner_scheme_fails_before_any_fit(tmp_path):
    _noise_table(tmp_path / "features.parquet", 1, 40)
    with pytest.raises(ValueError, match="inner_scheme 'all'"):
        fit_run(tmp_path / "features.parquet", tmp_path / "run", FitConfig(pipelines=["logreg", "svm"],
                                                                           inner_scheme="all"), progress=False)
    assert not (tmp_path / "run" / "leaderboard.csv").exists()


def test_every_repeat_uses_the_chosen_inner_scheme(monkeypatch):
    """With repeated CV each repeat gets its own shared inner fits, by the same scheme."""
    X, y, ids, pids, _ = _noise(4)
    frame = pd.DataFrame({"case_id": ids, "patient_id": pids, "label": y})
    plan = make_folds(frame, "label", n_splits=5, seed=4, repeats=2)
    planned = []

    def spy(X_, y_, groups, case_ids, fold_plan, *args, **kwargs):
        planned.append(fold_plan["fold"].nunique())
        return cross_validate(X_, y_, groups, case_ids, fold_plan, *args, **kwargs)

    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST[:2], progress=False)
    monkeypatch.setattr(nested_module, "cross_validate", spy)
    _, picks = nested_selection(X, y, pids, ids, plan, FAST[:2], outer, classes=["active", "stable"], inner="others")
    assert planned == [10, 10]
    assert set(picks["inner_folds"].str.count(",")) == {3}  # four other outer folds in every repeat
