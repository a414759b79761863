"""An honest score for "the best pipeline": nested model selection.

Quoting the top leaderboard row's CV score is optimistic (the winner's curse): that score chose the
winner. The selection *procedure* is scored instead: in each outer fold, every pipeline is
cross-validated on the outer training part only (inner patient-grouped folds), the best by inner
balanced accuracy is picked, and its predictions on the untouched outer test part are kept. Those
predictions are exactly the outer OOF rows of the picked pipeline (same training data, same seed),
so only the inner fits cost extra.

By default the inner folds of outer fold ``k`` are the *other outer folds*. The inner fit that
leaves out folds ``{k, j}`` then serves twice: it predicts fold ``j`` for the selection of outer
fold ``k`` and fold ``k`` for the selection of outer fold ``j``, both times trained on neither.
With 5 outer folds that is 10 inner fits per pipeline instead of 15 (3 independent inner folds per
outer fold) or 20 (4), and each one trains on three fifths of the cases. ``inner_folds=N`` draws N
independent inner folds per outer fold instead (the earlier scheme).
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from vitfeat.pipelines.cv import cross_validate
from vitfeat.evaluation.folds import make_folds

NAME = "nested-selection"
DESCRIPTION = ("the selection procedure itself, scored honestly: in each outer fold the pipeline with the best "
               "inner-CV balanced accuracy on the training part predicts the untouched test part")


def nested_selection(X, y_labels, groups, case_ids, plan: pd.DataFrame, pipelines, outer_oof: pd.DataFrame, *,
                     classes, inner_folds: int | None = None, search: str = "none", n_iter: int = 10,
                     n_jobs: int = 1, seed: int = 0, cache_dir=None, cache_key=None, target: str = "label",
                     prefilter: bool = False, backend: str = "loky", scheduler: str | None = None,
                     calibrate: str | None = None):
    """Score the selection procedure in every outer fold of ``plan``.

    Parameters
    ----------
    X, y_labels, groups, case_ids
        The cases of ``plan`` (features, labels, patient ids, case ids).
    plan : DataFrame
        The outer fold plan (``case_id``, ``repeat``, ``fold``).
    pipelines : list of str
        Candidates; those missing from ``outer_oof`` (failed) are not ranked.
    outer_oof : DataFrame
        Outer out-of-fold predictions of every pipeline (:func:`~vitfeat.pipelines.cv.cross_validate`).
    inner_folds : int or None, default None
        None: the inner folds of an outer fold are the other outer folds of its repeat (inner fits
        shared between outer folds); an int: that many independent inner folds per outer fold.
        Repeats with fewer than 3 outer folds always use 3 independent inner folds.
    classes, search, n_iter, n_jobs, seed, cache_dir, cache_key, target, prefilter, backend, scheduler, calibrate
        As for :func:`~vitfeat.pipelines.cv.cross_validate`; the inner fits are made exactly like the
        outer ones (calibrated too when ``calibrate`` is set), so the pick ranks the models it reports.

    Returns
    -------
    oof : DataFrame
        The picked pipeline's outer OOF rows in each outer fold, ``pipeline`` set to :data:`NAME`.
    choices : DataFrame
        One row per outer fold: the picked pipeline, every pipeline's inner balanced accuracy and
        the inner folds used.
    """
    y_labels = np.asarray(y_labels).astype(str)
    groups, case_ids = np.asarray(groups).astype(str), np.asarray(case_ids).astype(str)
    pipelines = [name for name in pipelines if name in set(outer_oof["pipeline"])]  # failed ones are unranked
    if len(pipelines) < 2:  # nothing to choose between
        return pd.DataFrame(), pd.DataFrame()
    common = dict(classes=classes, search=search, n_iter=n_iter, n_jobs=n_jobs, seed=seed, cache_dir=cache_dir,
                  target=target, progress=False, prefilter=prefilter, backend=backend, scheduler=scheduler,
                  calibrate=calibrate)
    rows, choices = [], []
    for repeat, repeat_plan in plan.groupby("repeat"):
        if inner_folds is None and repeat_plan["fold"].nunique() >= 3:
            inner = _shared_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines,
                                              dict(cache_key or {}, nested="other-outer-folds"), common)
        else:
            inner = _independent_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines,
                                                   inner_folds or 3, cache_key, common)
        for fold, (inner_oof, used) in inner.items():
            if not len(inner_oof):
                continue
            scores = {name: balanced_accuracy_score(part["y_true"], part["y_pred"])
                      for name, part in inner_oof.groupby("pipeline", sort=False)}
            picked = max(scores, key=lambda name: (scores[name], -list(pipelines).index(name)))
            chosen = outer_oof[(outer_oof["pipeline"] == picked) & (outer_oof["repeat"] == repeat)
                               & (outer_oof["fold"] == fold)]
            rows.append(chosen.assign(pipeline=NAME))
            choices.append({"target": target, "repeat": int(repeat), "fold": int(fold), "picked": picked,
                            "inner_balanced_accuracy": json.dumps({k: round(v, 4) for k, v in scores.items()}),
                            "inner_folds": used})
    oof = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return oof, pd.DataFrame(choices)


def _shared_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines, cache_key, common) -> dict:
    """``{outer fold: (inner OOF rows, description)}`` with the other outer folds as inner folds.

    One fit per pair of outer folds ``{a, b}``, trained on every other fold, predicts both: its rows
    of fold ``b`` are inner predictions for outer fold ``a`` and vice versa.
    """
    repeat = int(repeat_plan["repeat"].iloc[0])
    fold_of = dict(zip(repeat_plan["case_id"].astype(str), repeat_plan["fold"].astype(int)))
    folds = sorted(set(fold_of.values()))
    pairs = list(combinations(folds, 2))
    pair_plan = pd.concat([repeat_plan[repeat_plan["fold"].isin(pair)].assign(fold=index)
                           for index, pair in enumerate(pairs)], ignore_index=True)
    pair_oof, _, _ = cross_validate(X, y_labels, groups, case_ids, pair_plan, pipelines,
                                    cache_key=cache_key, **common)
    if not len(pair_oof):
        return {}
    pair_oof = pair_oof.assign(case_fold=pair_oof["case_id"].astype(str).map(fold_of))
    # a prediction of a case in fold a by the {a, b} fit serves the choice in outer fold b, and back
    pair_oof["outer_fold"] = [a + b - own for (a, b), own in zip((pairs[p] for p in pair_oof["fold"]),
                                                                  pair_oof["case_fold"])]
    pair_oof = pair_oof.assign(repeat=repeat)
    out = {}
    for fold in folds:
        part = pair_oof[pair_oof["outer_fold"] == fold].drop(columns=["case_fold", "outer_fold"])
        others = ",".join(str(f) for f in folds if f != fold)
        out[fold] = (part.assign(fold=part["case_id"].astype(str).map(fold_of)), f"outer folds {others}")
    return out


def _independent_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines, n_inner, cache_key,
                                   common) -> dict:
    """``{outer fold: (inner OOF rows, description)}`` with ``n_inner`` fresh grouped inner folds."""
    out = {}
    target = common["target"]
    for (repeat, fold), test in repeat_plan.groupby(["repeat", "fold"]):
        train = ~np.isin(case_ids, test["case_id"].astype(str).to_numpy())
        inner_frame = pd.DataFrame({"case_id": case_ids[train], "patient_id": groups[train], target: y_labels[train]})
        inner_plan = make_folds(inner_frame, target, n_splits=n_inner, seed=common["seed"] + 1000 * (repeat + 1) + fold)
        inner_oof, _, _ = cross_validate(
            X[train], y_labels[train], groups[train], case_ids[train], inner_plan, pipelines,
            cache_key=dict(cache_key or {}, nested_outer=f"{repeat}/{fold}"), **common)
        out[int(fold)] = (inner_oof, f"{n_inner} independent folds")
    return out
