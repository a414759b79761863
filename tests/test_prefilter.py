"""The wide-table pre-filter drops near-constant and near-duplicate columns, fitted in-fold only."""

from __future__ import annotations

import numpy as np
import pytest

from vitfeat.pipelines import zoo
from vitfeat.pipelines.cv import cross_validate
from vitfeat.evaluation.folds import make_folds
from vitfeat.pipelines.prefilter import AUTO_WIDTH, NearDuplicateFilter, prefilter_active


def _table(seed=0, n=200):
    rng = np.random.default_rng(seed)
    informative = rng.normal(size=(n, 3))
    constant = np.ones((n, 1))
    almost_constant = np.zeros((n, 1))
    almost_constant[:3] = 1.0  # 1.5 % of rows differ
    duplicate = informative[:, [0]] * 2.0 + 1.0 + rng.normal(scale=1e-3, size=(n, 1))
    X = np.hstack([informative, constant, almost_constant, duplicate])
    return X


def test_drops_near_constant_and_near_duplicate_columns_only():
    filt = NearDuplicateFilter().fit(_table())
    assert filt.get_support(indices=True).tolist() == [0, 1, 2]
    assert (filt.n_near_constant_, filt.n_near_duplicate_) == (2, 1)
    assert filt.transform(_table(1)).shape == (200, 3)


def test_missing_values_are_ignored_when_judging_a_constant_column():
    X = _table()
    X[::7, 3] = np.nan  # still constant among the values it has
    assert NearDuplicateFilter().fit(X).get_support(indices=True).tolist() == [0, 1, 2]


def test_fitted_on_the_training_part_only():
    # A column that is constant in the training rows but varies in the test rows must be dropped:
    # a filter that saw the test rows (leakage) would keep it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    train, test = np.arange(80), np.arange(80, 100)
    X[train, 3] = 0.0
    X[test, 3] = rng.normal(size=20)
    assert NearDuplicateFilter().fit(X[train]).get_support().tolist() == [True, True, True, False]
    assert NearDuplicateFilter().fit(X).get_support().tolist() == [True] * 4


def test_pipeline_prefilter_is_a_step_fitted_per_fold():
    rng = np.random.default_rng(3)
    n = 80
    X = np.hstack([rng.normal(size=(n, 5)), np.zeros((n, 1))])
    y = np.array(["stable", "active"])[np.arange(n) % 2]
    ids, pids = np.array([f"c{i}" for i in range(n)]), np.array([f"p{i // 2}" for i in range(n)])
    import pandas as pd

    frame = pd.DataFrame({"case_id": ids, "patient_id": pids, "label": y})
    plan = make_folds(frame, "label", n_splits=4, seed=0)
    # in fold 0 only, the last column varies in the test rows and is constant in the training rows
    test0 = plan.loc[plan["fold"] == 0, "case_id"].to_numpy()
    in_test0 = np.isin(ids, test0)
    X[in_test0, 5] = rng.normal(size=in_test0.sum())
    pipe = zoo.make_pipeline("logreg", 0, prefilter=True)
    assert [name for name, _ in pipe.steps][:3] == ["impute", "drop_constant", "prefilter"]
    pipe.fit(X[~in_test0], y[~in_test0])
    assert pipe.named_steps["prefilter"].n_features_in_ == 5  # drop_constant removed it first
    oof, info, failures = cross_validate(X, y, pids, ids, plan, ["logreg"], progress=False, prefilter=True)
    assert not failures and len(oof) == n


@pytest.mark.parametrize("mode, width, expected", [("auto", AUTO_WIDTH + 1, True), ("auto", AUTO_WIDTH, False),
                                                   ("off", 10_000, False), ("on", 3, True)])
def test_auto_threshold(mode, width, expected):
    assert prefilter_active(mode, width) is expected


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, off, on"):
        prefilter_active("sometimes", 10)


def test_remembered_fits_are_keyed_by_content_and_settings():
    """Pipelines of one fold share the filter's work; a changed table or threshold is refitted."""
    from vitfeat.pipelines import prefilter

    X = _table()
    prefilter._RECENT.clear()
    first = NearDuplicateFilter().fit(X).get_support(indices=True).tolist()
    assert len(prefilter._RECENT) == 1
    assert NearDuplicateFilter().fit(X.copy()).get_support(indices=True).tolist() == first
    assert len(prefilter._RECENT) == 1  # same rows: remembered
    changed = X.copy()
    changed[:, 5] = np.random.default_rng(3).normal(size=len(X))  # the duplicate column is no longer one
    assert NearDuplicateFilter().fit(changed).get_support(indices=True).tolist() == [0, 1, 2, 5]
    assert NearDuplicateFilter(max_mode_fraction=0.999).fit(X).get_support(indices=True).tolist() == [0, 1, 2, 4]
    assert len(prefilter._RECENT) == 3
