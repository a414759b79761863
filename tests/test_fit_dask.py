"""`fit --backend dask` gives the same out-of-fold predictions as the default loky backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.distributed")

from vitfeat.evaluation.folds import make_folds  # noqa: E402
from vitfeat.pipelines.cv import cross_validate  # noqa: E402


def _tiny(n=48, p=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["stable", "active"])[np.arange(n) % 2]
    X = rng.normal(size=(n, p)) + (y == "active")[:, None] * 0.8
    ids, pids = np.array([f"c{i}" for i in range(n)]), np.array([f"p{i // 2}" for i in range(n)])
    plan = make_folds(pd.DataFrame({"case_id": ids, "patient_id": pids, "label": y}), "label", n_splits=3, seed=0)
    return X, y, ids, pids, plan


def test_dask_local_cluster_matches_loky():
    X, y, ids, pids, plan = _tiny()
    names = ["logreg", "rf"]
    loky, _, fails_loky = cross_validate(X, y, pids, ids, plan, names, n_jobs=1, progress=False)
    dask, info, fails_dask = cross_validate(X, y, pids, ids, plan, names, n_jobs=1, progress=False,
                                            backend="dask")
    assert not fails_loky and not fails_dask and len(info) == 2 * 3
    key = ["pipeline", "fold", "case_id"]
    pd.testing.assert_frame_equal(loky.sort_values(key).reset_index(drop=True),
                                  dask.sort_values(key).reset_index(drop=True))


def test_unknown_backend_is_refused():
    X, y, ids, pids, plan = _tiny()
    with pytest.raises(ValueError, match="loky or dask"):
        cross_validate(X, y, pids, ids, plan, ["logreg"], progress=False, backend="spark")


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_custom_pipelines_reach_worker_processes(backend):
    # worker processes start with an empty pipeline registry; a YAML `custom:` pipeline must still fit there
    from vitfeat.pipelines import zoo

    X, y, ids, pids, plan = _tiny()
    zoo.add_custom_pipelines({"strong_lr": {"base": "logreg", "params": {"classifier__C": 5.0}}})
    try:
        oof, info, failures = cross_validate(X, y, pids, ids, plan, ["strong_lr"], n_jobs=2, progress=False,
                                             backend=backend)
    finally:
        zoo._REGISTRY.pop("strong_lr", None)
    assert not failures and set(oof["pipeline"]) == {"strong_lr"} and len(oof) == len(ids)


def test_a_nested_dask_fit_starts_one_cluster():
    """`fit --backend dask --nested` without a scheduler: one client and one local cluster for the whole
    fit (outer CV and every inner CV of the nested selection), counted in distributed's own registry of
    default clients, which every Client(...) of a new local cluster joins."""
    import distributed.client

    from vitfeat.pipelines.selector import ModelSelector

    X, y, ids, pids, _ = _tiny()
    before = distributed.client._global_client_index[0]
    sel = ModelSelector(pipelines="logreg,rf", folds=3, nested=True, n_boot=20, backend="dask", n_jobs=1)
    sel.fit(X, y, groups=pids)
    started = distributed.client._global_client_index[0] - before
    assert "nested-selection" in set(sel.leaderboard_["pipeline"])  # the inner selection really ran
    assert started == 1, f"{started} Dask clients (local clusters) for one fit"
