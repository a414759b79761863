"""An honest score for "the best pipeline": nested model selection.

Quoting the top leaderboard row's CV score is optimistic (the winner's curse): that score chose the
winner. The selection *procedure* is scored instead: in each outer fold, every pipeline is
cross-validated on the outer training part only (inner patient-grouped folds), the best by inner
balanced accuracy is picked, and its predictions on the untouched outer test part are kept. Those
predictions are exactly the outer OOF rows of the picked pipeline (same training data, same seed),
so only the inner fits cost extra.

By default the inner folds of outer fold ``k`` are its two *neighbours* among the outer folds
(``k - 1`` and ``k + 1``, cyclically). The inner fit that leaves out folds ``{k, k + 1}`` is trained
on neither, so it serves twice: it predicts fold ``k + 1`` for the selection of outer fold ``k`` and
fold ``k`` for the selection of outer fold ``k + 1``. With 5 outer folds that is 5 inner fits per
pipeline, each on three fifths of the cases, and each selection scores two fifths of the cases.
``inner="others"`` uses every other outer fold instead (10 fits per pipeline at 5 folds: all pairs
of folds, the same sharing; each selection scores four fifths of the cases, a steadier pick for
twice the inner fits). ``inner_folds=N`` draws N independent inner folds per outer fold (the
original scheme: 15 fits at 3 inner folds, each on 8/15 of the cases).
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from vitfeat.pipelines.cv import cross_validate
from vitfeat.pipelines.selection_metric import score_rows
from vitfeat.evaluation.folds import make_folds

NAME = "nested-selection"
DESCRIPTION = ("the selection procedure itself, scored honestly: in each outer fold the pipeline with the best "
               "inner-CV balanced accuracy on the training part predicts the untouched test part")


#: Inner schemes that reuse the outer folds (see the module docstring).
INNER_SCHEMES = ("neighbours", "others")


def nested_selection(X, y_labels, groups, case_ids, plan: pd.DataFrame, pipelines, outer_oof: pd.DataFrame, *,
                     classes, inner_folds: int | None = None, inner: str = "neighbours", search: str = "none",
                     n_iter: int = 10, n_jobs: int = 1, seed: int = 0, cache_dir=None, cache_key=None,
                     target: str = "label", prefilter: bool = False, backend: str = "loky",
                     scheduler: str | None = None, calibrate: str | None = None, metric: str = "balanced_accuracy",
                     positive: str | None = None, gbm_bins: str = "full", gbm_early_stopping: bool = False):
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
        None: the inner folds of an outer fold are outer folds of its repeat, chosen by ``inner``
        (inner fits shared between outer folds); an int: that many independent inner folds per
        outer fold. Repeats with fewer than 3 outer folds always use 3 independent inner folds.
    inner : {"neighbours", "others"}, default "neighbours"
        With ``inner_folds=None``: the two neighbouring outer folds (one inner fit per outer fold)
        or all other outer folds (one per pair of outer folds).
    classes, search, n_iter, n_jobs, seed, cache_dir, cache_key, target, prefilter, backend, scheduler, calibrate
        As for :func:`~vitfeat.pipelines.cv.cross_validate`; the inner fits are made exactly like the
        outer ones (calibrated too when ``calibrate`` is set), so the pick ranks the models it reports.
    metric, positive : str
        The selection metric (``fit --metric``, :mod:`vitfeat.pipelines.selection_metric`) maximised on
        the inner predictions, and the positive class of a binary target. The column
        ``inner_balanced_accuracy`` keeps its name and holds that metric's inner scores (``inner_metric``
        names it; loss metrics negated).
    gbm_bins : {"full", "rows"}, default "full"
        Histogram bins of the boosting pipelines, as for :func:`~vitfeat.pipelines.cv.cross_validate`.
    gbm_early_stopping : bool, default False
        In-fold early stopping of the boosting pipelines, as for :func:`~vitfeat.pipelines.cv.cross_validate`.

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
    if inner not in INNER_SCHEMES:
        raise ValueError(f"unknown inner scheme '{inner}' (use {', '.join(INNER_SCHEMES)})")
    pipelines = [name for name in pipelines if name in set(outer_oof["pipeline"])]  # failed ones are unranked
    if len(pipelines) < 2:  # nothing to choose between
        return pd.DataFrame(), pd.DataFrame()
    common = dict(classes=classes, search=search, n_iter=n_iter, n_jobs=n_jobs, seed=seed, cache_dir=cache_dir,
                  target=target, progress=False, prefilter=prefilter, backend=backend, scheduler=scheduler,
                  calibrate=calibrate, gbm_bins=gbm_bins, gbm_early_stopping=gbm_early_stopping)
    rows, choices = [], []
    for repeat, repeat_plan in plan.groupby("repeat"):
        if inner_folds is None and repeat_plan["fold"].nunique() >= 3:
            predictions = _shared_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines, inner,
                                                    dict(cache_key or {}, nested=f"{inner}-outer-folds"), common)
        else:
            predictions = _independent_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines,
                                                   inner_folds or 3, cache_key, common)
        for fold, (inner_oof, used) in predictions.items():
            if not len(inner_oof):
                continue
            scores = {name: (balanced_accuracy_score(part["y_true"], part["y_pred"]) if metric == "balanced_accuracy"
                             else score_rows(part, metric, classes, positive))
                      for name, part in inner_oof.groupby("pipeline", sort=False)}
            picked = max(scores, key=lambda name: (scores[name], -list(pipelines).index(name)))
            chosen = outer_oof[(outer_oof["pipeline"] == picked) & (outer_oof["repeat"] == repeat)
                               & (outer_oof["fold"] == fold)]
            rows.append(chosen.assign(pipeline=NAME))
            choices.append({"target": target, "repeat": int(repeat), "fold": int(fold), "picked": picked,
                            "inner_balanced_accuracy": json.dumps({k: round(v, 4) for k, v in scores.items()}),
                            "inner_folds": used, "inner_metric": metric})
    oof = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return oof, pd.DataFrame(choices)


def describe_inner(inner_folds: int | None, inner: str = "neighbours") -> str:
    """The inner folds of a nested selection in words, for ``run.json`` and the report's methods.

    Parameters
    ----------
    inner_folds, inner
        As for :func:`nested_selection`.

    Returns
    -------
    str
    """
    if inner_folds:
        return f"{inner_folds} independent patient-grouped inner folds per outer fold"
    if inner == "others":
        return "all other outer folds of the repeat as inner folds (one shared inner fit per pair of folds)"
    return ("the two neighbouring outer folds of the repeat as inner folds (one shared inner fit per outer "
            "fold)")


def inner_pairs(folds, inner: str = "neighbours") -> list[tuple[int, int]]:
    """The pairs of outer folds whose shared inner fit (trained on every other fold) the scheme needs.

    Parameters
    ----------
    folds : sequence of int
        The outer folds of one repeat, in order.
    inner : {"neighbours", "others"}
        ``neighbours``: consecutive folds, the last paired with the first (each fold in two pairs);
        ``others``: every pair.

    Returns
    -------
    list of (int, int)
    """
    folds = list(folds)
    if inner == "others" or len(folds) <= 3:  # with 3 folds the cycle is every pair
        return list(combinations(folds, 2))
    return [tuple(sorted((a, b))) for a, b in zip(folds, folds[1:] + folds[:1])]


def _shared_inner_predictions(X, y_labels, groups, case_ids, repeat_plan, pipelines, inner, cache_key,
                              common) -> dict:
    """``{outer fold: (inner OOF rows, description)}`` with outer folds as inner folds.

    One fit per pair of outer folds ``{a, b}`` (:func:`inner_pairs`), trained on every other fold,
    predicts both: its rows of fold ``b`` are inner predictions for outer fold ``a`` and vice versa.
    """
    repeat = int(repeat_plan["repeat"].iloc[0])
    fold_of = dict(zip(repeat_plan["case_id"].astype(str), repeat_plan["fold"].astype(int)))
    folds = sorted(set(fold_of.values()))
    pairs = inner_pairs(folds, inner)
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
        used = ",".join(str(f) for f in sorted({a + b - fold for a, b in pairs if fold in (a, b)}))
        out[fold] = (part.assign(fold=part["case_id"].astype(str).map(fold_of)), f"outer folds {used}")
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
