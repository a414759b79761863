"""An honest score for "the best pipeline": nested model selection.

Quoting the top leaderboard row's CV score is optimistic (the winner's curse): that score chose the
winner. The selection *procedure* is scored instead: in each outer fold, every pipeline is
cross-validated on the outer training part only (inner patient-grouped folds), the best by inner
balanced accuracy is picked, and its predictions on the untouched outer test part are kept. Those
predictions are exactly the outer OOF rows of the picked pipeline (same training data, same seed),
so only the inner fits cost extra.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from vitfeat.pipelines.cv import cross_validate
from vitfeat.evaluation.folds import make_folds

NAME = "nested-selection"
DESCRIPTION = ("the selection procedure itself, scored honestly: in each outer fold the pipeline with the best "
               "inner-CV balanced accuracy on the training part predicts the untouched test part")


def nested_selection(X, y_labels, groups, case_ids, plan: pd.DataFrame, pipelines, outer_oof: pd.DataFrame, *,
                     classes, inner_folds: int = 3, search: str = "none", n_iter: int = 10, n_jobs: int = 1,
                     seed: int = 0, cache_dir=None, cache_key=None, target: str = "label", prefilter: bool = False,
                     backend: str = "loky", scheduler: str | None = None):
    """Return ``(oof rows named NAME, choices)``; ``choices`` has one row per outer fold with the
    picked pipeline and every pipeline's inner score. Needs the outer OOF of every pipeline."""
    y_labels = np.asarray(y_labels).astype(str)
    groups, case_ids = np.asarray(groups).astype(str), np.asarray(case_ids).astype(str)
    pipelines = [name for name in pipelines if name in set(outer_oof["pipeline"])]  # failed ones are unranked
    rows, choices = [], []
    if len(pipelines) < 2:  # nothing to choose between
        return pd.DataFrame(), pd.DataFrame()
    for (repeat, fold), test in plan.groupby(["repeat", "fold"]):
        train = ~np.isin(case_ids, test["case_id"].astype(str).to_numpy())
        inner_frame = pd.DataFrame({"case_id": case_ids[train], "patient_id": groups[train], target: y_labels[train]})
        inner_plan = make_folds(inner_frame, target, n_splits=inner_folds, seed=seed + 1000 * (repeat + 1) + fold)
        inner_oof, _, _ = cross_validate(
            X[train], y_labels[train], groups[train], case_ids[train], inner_plan, pipelines, classes=classes,
            search=search, n_iter=n_iter, n_jobs=n_jobs, seed=seed, cache_dir=cache_dir,
            cache_key=dict(cache_key or {}, nested_outer=f"{repeat}/{fold}"), target=target, progress=False,
            prefilter=prefilter, backend=backend, scheduler=scheduler)
        if not len(inner_oof):
            continue
        scores = {name: balanced_accuracy_score(part["y_true"], part["y_pred"])
                  for name, part in inner_oof.groupby("pipeline", sort=False)}
        picked = max(scores, key=lambda name: (scores[name], -list(pipelines).index(name)))
        chosen = outer_oof[(outer_oof["pipeline"] == picked) & (outer_oof["repeat"] == repeat)
                           & (outer_oof["fold"] == fold)]
        rows.append(chosen.assign(pipeline=NAME))
        choices.append({"target": target, "repeat": int(repeat), "fold": int(fold), "picked": picked,
                        "inner_balanced_accuracy": json.dumps({k: round(v, 4) for k, v in scores.items()})})
    oof = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return oof, pd.DataFrame(choices)
