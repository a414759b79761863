"""Nested selection: the best pipeline's quoted score is never computed on the data that chose it."""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def test_inner_selection_never_sees_the_outer_test_fold(monkeypatch):
    X, y, ids, pids, plan = _noise(0)
    seen = []

    def spy(X_, y_, groups, case_ids, *args, **kwargs):
        seen.append(set(np.asarray(case_ids).astype(str)))
        return cross_validate(X_, y_, groups, case_ids, *args, **kwargs)

    outer, _, _ = cross_validate(X, y, pids, ids, plan, FAST[:3], progress=False)
    monkeypatch.setattr(nested_module, "cross_validate", spy)
    oof, picks = nested_selection(X, y, pids, ids, plan, FAST[:3], outer, classes=["active", "stable"])
    assert len(seen) == plan["fold"].nunique() == len(picks)
    for (_, fold), test in plan.groupby(["repeat", "fold"]):
        test_cases, test_patients = set(test["case_id"]), set(test["patient_id"])
        inner_cases = seen[fold]
        assert not inner_cases & test_cases
        assert not {p for c, p in zip(ids, pids) if c in inner_cases} & test_patients
    # every case is predicted once, by the pipeline picked for its fold, exactly as in the outer CV
    assert sorted(oof["case_id"]) == sorted(ids) and set(oof["pipeline"]) == {NAME}
    for pick in picks.itertuples():
        rows = oof[oof["fold"] == pick.fold].drop(columns="pipeline").reset_index(drop=True)
        same = outer[(outer["pipeline"] == pick.picked) & (outer["fold"] == pick.fold)]
        pd.testing.assert_frame_equal(rows, same.drop(columns="pipeline").reset_index(drop=True))



def test_fit_run_reports_the_nested_row(tmp_path):
    X, y, ids, pids, _ = _noise(1, n=80)
    table = pd.DataFrame(X, columns=[f"clinical_shape_f{i}" for i in range(X.shape[1])])
    table.insert(0, "case_id", ids)
    table.insert(1, "patient_id", pids)
    table.insert(2, "label", y)
    table.to_parquet(tmp_path / "features.parquet")
    run = fit_run(tmp_path / "features.parquet", tmp_path / "run",
                  FitConfig(pipelines=["logreg", "svm"], n_boot=50), progress=False)
    board = pd.read_csv(run / "leaderboard.csv")
    assert NAME in set(board["pipeline"])
    picks = pd.read_csv(run / "nested_selection.csv")
    assert len(picks) == 5 and set(picks["picked"]) <= {"logreg", "svm"}
    assert "nested selection" in (run / "report.html").read_text()
    single = fit_run(tmp_path / "features.parquet", tmp_path / "one", FitConfig(pipelines=["logreg"], n_boot=50),
                     progress=False)
    assert NAME not in set(pd.read_csv(single / "leaderboard.csv")["pipeline"])  # nothing was selected
