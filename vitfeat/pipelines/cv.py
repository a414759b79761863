"""The cross-validation engine: every (pipeline, repeat, fold) is fitted on the training part only.

Hyperparameter search, when asked for, is a RandomizedSearchCV over patient-grouped inner folds
of the *training part*; the test fold never influences a choice. Results of finished tasks are
cached on disk, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection import RandomizedSearchCV
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from vitfeat.dataset import PATH_COLUMNS
from vitfeat.names import safe_filename
from vitfeat.pipelines import zoo
from vitfeat.atomic import atomic_path, sweep_temporaries
from vitfeat.evaluation.folds import grouped_kfold
from vitfeat.evaluation.metrics import proba_columns
from vitfeat.pipelines.operating import GroupedCalibratedClassifier, choose_threshold

log = logging.getLogger(__name__)

MODALITY_PREFIXES = ("clinical_", "wood_", "pair_")


def _refuse_text_in_numeric_columns(frame: pd.DataFrame) -> None:
    """A feature column of numbers with some text in it would otherwise be dropped silently."""
    for c in frame.columns:
        if (not str(c).startswith(MODALITY_PREFIXES) or c in PATH_COLUMNS
                or pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])):
            continue
        numbers = pd.to_numeric(frame[c], errors="coerce")
        bad = frame[c].notna() & numbers.isna()
        if numbers.notna().any() and bad.any():
            first = bad.idxmax()
            case = f"case '{frame.at[first, 'case_id']}'" if "case_id" in frame.columns else f"row {first}"
            raise ValueError(f"feature column '{c}': {case} holds text {frame.at[first, c]!r} where a number is "
                             f"expected ({int(bad.sum())} such value(s)); fix the table or blank them to mark missing")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns named ``<modality>_<family>_<feature>``; targets and ids never qualify."""
    cols = [c for c in frame.columns
            if str(c).startswith(MODALITY_PREFIXES) and c not in PATH_COLUMNS
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]
    _refuse_text_in_numeric_columns(frame)
    if not cols:
        raise ValueError("the table has no numeric feature columns named <modality>_<family>_<feature> "
                         "(modality clinical, wood or pair)")
    return cols


@dataclass
class Task:
    pipeline: str
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def build_estimator(name: str, search: str, n_iter: int, seed: int, n_classes_min: int, prefilter: bool = False,
                    n_rows: int | None = None, early_stopping: bool = False, bins_rule: str = "rows"):
    pipe = zoo.make_pipeline(name, seed, prefilter=prefilter, n_rows=n_rows, early_stopping=early_stopping,
                             bins_rule=bins_rule)
    space = zoo.search_space(name)
    if search == "none" or not space:
        return pipe
    if search != "random":
        raise ValueError(f"unknown search '{search}' (none or random)")
    inner = grouped_kfold(max(2, min(3, n_classes_min)), seed)
    return RandomizedSearchCV(pipe, space, n_iter=n_iter, cv=inner, scoring="balanced_accuracy",
                              random_state=seed, n_jobs=1, error_score=np.nan)


def fit_estimator(name: str, X, y, groups, *, search="none", n_iter=10, seed=0, prefilter=False,
                  calibrate=None, gbm_bins="full", gbm_early_stopping=False):
    """Fit pipeline ``name`` (with nested search if asked) on X, y; return (estimator, params).

    ``calibrate`` (``sigmoid``/``isotonic``) wraps the (searched) pipeline in
    :class:`~vitfeat.pipelines.operating.GroupedCalibratedClassifier`, whose calibration folds are
    grouped by these ``groups`` (patients of this training part only). ``gbm_bins``
    (:data:`~vitfeat.pipelines.zoo.GBM_BINS`): ``full`` keeps the libraries' 255 histogram bins,
    ``rows`` sizes them to the training rows (:func:`~vitfeat.pipelines.zoo.gbm_bins`; faster, and
    it cost the boosting pipelines AUROC, issue #31). ``gbm_early_stopping`` stops the boosting
    classifiers on a validation split of these training rows (:mod:`~vitfeat.pipelines.gbm_early`).
    """
    min_patients = min(len(np.unique(groups[y == k])) for k in np.unique(y))
    est = build_estimator(name, search, n_iter, seed, min_patients, prefilter, n_rows=len(y),
                          early_stopping=gbm_early_stopping, bins_rule=gbm_bins)
    params = {}
    if isinstance(est, RandomizedSearchCV):
        est.fit(X, y, groups=groups)
        est, params = est.best_estimator_, {k: _plain(v) for k, v in est.best_params_.items()}
    elif not calibrate:
        est.fit(X, y)
    if calibrate:
        est = GroupedCalibratedClassifier(clone(est), calibrate, seed=seed).fit(X, y, groups=groups)
    return est, params


def fold_threshold(name: str, X, y, groups, positive: int, rule: str, *, search="none", n_iter=10, seed=0,
                   prefilter=False, calibrate=None, gbm_bins="full", gbm_early_stopping=False) -> float:
    """Operating-point threshold for pipeline ``name`` from patient-grouped inner folds of this
    training part (X, y, groups), each inner model fitted exactly like the outer one."""
    def fit_model(X_in, y_in, groups_in):
        return fit_estimator(name, X_in, y_in, groups_in, search=search, n_iter=n_iter, seed=seed,
                             prefilter=prefilter, calibrate=calibrate, gbm_bins=gbm_bins,
                             gbm_early_stopping=gbm_early_stopping)[0]

    return choose_threshold(None, X, y, groups, str(positive), rule, seed=seed, fit_model=fit_model)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _run_task(task: Task, X, y, groups, n_classes, search, n_iter, seed, threads=1, prefilter=False,
              registered=None, calibrate=None, operating_point=None, positive=None, gbm_bins="full",
              gbm_early_stopping=False):
    zoo.restore_registered(registered)  # custom pipelines registered in the main process
    start, cpu = time.perf_counter(), time.process_time()
    try:
        # One BLAS/OpenMP thread per fit unless cores are left over: joblib already runs one fit
        # per core, and OpenMP spin-waiting on a busy machine is far slower than one thread.
        with threadpool_limits(threads):
            est, params = fit_estimator(task.pipeline, X[task.train], y[task.train], groups[task.train],
                                        search=search, n_iter=n_iter, seed=seed + task.repeat,
                                        prefilter=prefilter, calibrate=calibrate, gbm_bins=gbm_bins,
                                        gbm_early_stopping=gbm_early_stopping)
            threshold = np.nan
            if operating_point and positive is not None:  # chosen on the training part only
                threshold = fold_threshold(task.pipeline, X[task.train], y[task.train], groups[task.train],
                                           positive, operating_point, search=search, n_iter=n_iter,
                                           seed=seed + task.repeat, prefilter=prefilter, calibrate=calibrate,
                                           gbm_bins=gbm_bins, gbm_early_stopping=gbm_early_stopping)
        fitted = time.perf_counter() - start
        params = dict(params, _cpu_s=round(time.process_time() - cpu, 3))
        raw = est.predict_proba(X[task.test])
        # A training part may lack a class: put each column where its class belongs.
        proba = np.zeros((len(task.test), n_classes))
        proba[:, np.asarray(est.classes_, dtype=int)] = raw
        return {"proba": proba, "fit_time": fitted, "params": params, "error": None, "threshold": threshold}
    except Exception as exc:  # noqa: BLE001  (a failing pipeline must not stop the others)
        return {"proba": None, "fit_time": time.perf_counter() - start, "params": {},
                "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)}


def _cache_path(cache_dir: Path | None, key: dict) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()
    return cache_dir / f"{safe_filename(key['pipeline'])}-r{key['repeat']}f{key['fold']}-{digest}.npz"


def _load_cached(path: Path | None):
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return {"proba": z["proba"], "fit_time": meta["fit_time"], "params": meta["params"], "error": None,
                    "threshold": meta.get("threshold", np.nan)}
    except Exception:  # noqa: BLE001  (a torn cache file is recomputed, not trusted)
        return None


def _save_cached(path: Path | None, result: dict) -> None:
    if path is None or result["error"]:
        return
    meta = json.dumps({"fit_time": result["fit_time"], "params": result["params"],
                       "threshold": result.get("threshold", np.nan)}, default=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez adds no suffix
        np.savez(fh, proba=result["proba"], meta=np.array(meta))


def cross_validate(X: np.ndarray, y_labels, groups, case_ids, plan: pd.DataFrame, pipelines, *,
                   classes=None, search: str = "none", n_iter: int = 10, n_jobs: int = 1, seed: int = 0,
                   cache_dir=None, cache_key: dict | None = None, target: str = "label",
                   progress: bool = True, prefilter: bool = False, backend: str = "loky",
                   scheduler: str | None = None, calibrate: str | None = None,
                   operating_point: str | None = None, positive: str | None = None, gbm_bins: str = "full",
                   gbm_early_stopping: bool = False):
    """Run every pipeline on every (repeat, fold) of ``plan``.

    ``calibrate`` wraps each fold's pipeline in patient-grouped calibration; ``operating_point``
    (with the binary target's ``positive`` class) chooses a threshold inside each training part,
    written to the ``threshold`` column of ``oof``. ``gbm_bins`` and ``gbm_early_stopping`` as for
    :func:`fit_estimator`.

    Returns ``(oof, fold_info, failures)``: ``oof`` in the ``oof_predictions.csv`` format,
    ``fold_info`` with fit time and chosen hyperparameters per task, ``failures`` a list of dicts.
    """
    y_labels = np.asarray(y_labels).astype(str)
    classes = sorted(np.unique(y_labels)) if classes is None else [str(c) for c in classes]
    y = np.searchsorted(classes, y_labels)
    groups = np.asarray(groups).astype(str)
    case_ids = np.asarray(case_ids).astype(str)
    position = {c: i for i, c in enumerate(case_ids)}
    zoo.check_gbm_bins(gbm_bins)  # an unknown rule fails before any fit
    positive_index = classes.index(str(positive)) if positive is not None and len(classes) == 2 else None
    cache_dir = Path(cache_dir) if cache_dir else None
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if swept := sweep_temporaries(cache_dir):
            log.info("removed %d half-written cache file(s) of an interrupted run", swept)

    tasks = []
    for (repeat, fold), part in plan.groupby(["repeat", "fold"]):
        in_test = np.zeros(len(case_ids), dtype=bool)
        in_test[[position[c] for c in part["case_id"] if c in position]] = True
        if not in_test.any():
            continue
        for name in pipelines:
            tasks.append(Task(name, int(repeat), int(fold), np.flatnonzero(~in_test), np.flatnonzero(in_test)))

    # the pipeline's definition is part of the cache key: an edited custom pipeline is refitted
    specs = {name: str(zoo.make_pipeline(name, seed, prefilter=prefilter, early_stopping=gbm_early_stopping))
             for name in pipelines}
    results, todo = {}, []
    for i, task in enumerate(tasks):
        key = dict(cache_key or {}, target=target, pipeline=task.pipeline, repeat=task.repeat, fold=task.fold,
                   spec=specs[task.pipeline], rows_per_bin=zoo.ROWS_PER_BIN,
                   search=search, n_iter=n_iter, seed=seed, test=hashlib.md5(task.test.tobytes()).hexdigest())
        key.update(gbm_bins=gbm_bins)  # the bins change the fits; keys before issue #31 (sized bins) miss
        if gbm_early_stopping:  # also in the spec (the stopping classes); named for clarity
            key.update(gbm_early_stopping=True)
        if calibrate or operating_point:  # only then: earlier caches stay valid
            key.update(calibrate=calibrate, operating_point=operating_point, positive=positive)
        path = _cache_path(cache_dir, key)
        cached = _load_cached(path)
        if cached is not None:
            results[i] = cached
        else:
            todo.append((i, path))
    if len(results):
        log.info("resuming: %d of %d fits taken from the cache", len(results), len(tasks))

    paths = dict(todo)
    todo.sort(key=lambda item: -zoo.relative_cost(tasks[item[0]].pipeline, gbm_bins))  # slowest first
    bar = tqdm(total=len(tasks), initial=len(results), desc=f"fit {target}", unit="fit", disable=not progress)
    with fit_backend(backend, scheduler, n_jobs) as (n_jobs, threads):
        runner = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        jobs = (delayed(_indexed)(i, _run_task, tasks[i], X, y, groups, len(classes), search, n_iter, seed, threads,
                                  prefilter, zoo.registered_factories(), calibrate, operating_point,
                                  positive_index, gbm_bins, gbm_early_stopping) for i, _ in todo)
        for i, result in runner(jobs) if todo else []:
            _save_cached(paths[i], result)
            results[i] = result
            bar.update(1)
    bar.close()

    oof_parts, info, failures = [], [], []
    for i, task in enumerate(tasks):
        res = results[i]
        params = dict(res["params"])
        cpu_s = params.pop("_cpu_s", np.nan)
        info.append({"target": target, "pipeline": task.pipeline, "repeat": task.repeat, "fold": task.fold,
                     "fit_time": res["fit_time"], "cpu_time": cpu_s, "params": json.dumps(params, default=str),
                     "error": res["error"] or ""})
        if res["error"]:
            failures.append({"target": target, "pipeline": task.pipeline, "repeat": task.repeat,
                             "fold": task.fold, "error": res["error"]})
            log.warning("%s / %s repeat %d fold %d failed: %s", target, task.pipeline, task.repeat,
                        task.fold, res["error"])
            continue
        part = pd.DataFrame({"pipeline": task.pipeline, "target": target, "repeat": task.repeat,
                             "fold": task.fold, "case_id": case_ids[task.test], "patient_id": groups[task.test],
                             "y_true": y_labels[task.test],
                             "y_pred": np.asarray(classes)[res["proba"].argmax(1)]})
        part[proba_columns(classes)] = res["proba"]
        if operating_point and positive_index is not None:
            part["threshold"] = res.get("threshold", np.nan)
            if np.isfinite(part["threshold"].iloc[0]):  # the in-fold threshold decides, not argmax
                called = res["proba"][:, positive_index] >= part["threshold"].iloc[0]
                part["y_pred"] = np.where(called, classes[positive_index], classes[1 - positive_index])
        oof_parts.append(part)
    oof = pd.concat(oof_parts, ignore_index=True) if oof_parts else pd.DataFrame()
    failed = {f["pipeline"] for f in failures}
    if len(oof) and failed:  # a pipeline scored on some folds only is not comparable
        oof = oof[~oof["pipeline"].isin(failed)].reset_index(drop=True)
    return oof, pd.DataFrame(info), failures


BACKENDS = ("loky", "dask")


def _is_dask_client(scheduler) -> bool:
    if scheduler is None or isinstance(scheduler, str):
        return False
    from dask.distributed import Client

    return isinstance(scheduler, Client)


@contextmanager
def _dask_client(scheduler: str | None, n_jobs: int):
    """A new Dask client: of the cluster at ``scheduler``, or of a new local cluster of ``n_jobs``
    single-threaded worker processes when no address is given; both closed on exit."""
    from dask.distributed import Client, LocalCluster

    with ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=max(1, effective_n_jobs(n_jobs)),
                                                       threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        yield client


@contextmanager
def run_scheduler(backend: str, scheduler, n_jobs: int):
    """The one Dask client of a run: enter it once per fit and pass what it yields down as ``scheduler``.

    With ``backend="dask"`` it opens a client (of the cluster at the ``scheduler`` address, or of a
    local cluster when there is none) and yields it; every :func:`cross_validate` and
    :func:`~vitfeat.pipelines.nested.nested_selection` call that gets it as ``scheduler`` reuses it,
    so a fit with several targets and nested selection starts one local cluster, not one per call.
    Otherwise (loky, or ``scheduler`` already a client) it yields ``scheduler`` unchanged.

    Parameters
    ----------
    backend : {"loky", "dask"}
        The fit's joblib backend.
    scheduler : str, dask.distributed.Client or None
        A scheduler address, a client, or None (a local cluster for ``dask``).
    n_jobs : int
        Worker processes of a local cluster.

    Yields
    ------
    str, dask.distributed.Client or None
        What to pass as ``scheduler`` to the fits of the run.
    """
    if backend != "dask" or _is_dask_client(scheduler):
        yield scheduler
        return
    with _dask_client(scheduler, n_jobs) as client:
        yield client


@contextmanager
def fit_backend(backend: str, scheduler, n_jobs: int):
    """Yield ``(n_jobs, threads per fit)`` inside the joblib backend that runs the CV fits.

    ``dask`` sends every (pipeline, repeat, fold) fit to the Dask cluster of ``scheduler``: a client
    (from :func:`run_scheduler`, reused and left open), an address, or None for a local cluster of
    ``n_jobs`` single-threaded worker processes (both opened for this call only).

    Parameters
    ----------
    backend : {"loky", "dask"}
        The joblib backend.
    scheduler : str, dask.distributed.Client or None
        Where ``dask`` fits run.
    n_jobs : int
        Parallel fits (loky) or local-cluster workers (dask without a scheduler).

    Yields
    ------
    tuple of int
        ``(n_jobs for joblib.Parallel, BLAS threads per fit)``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (use {' or '.join(BACKENDS)})")
    if backend == "loky":
        from vitfeat.lifecycle import loky_workers_exit_with_parent

        with loky_workers_exit_with_parent():  # no worker outlives a killed main process
            yield n_jobs, max(1, (os.cpu_count() or 1) // max(1, effective_n_jobs(n_jobs)))
        return
    from joblib import parallel_config

    with ExitStack() as stack:
        client = scheduler if _is_dask_client(scheduler) else stack.enter_context(_dask_client(scheduler, n_jobs))
        stack.enter_context(parallel_config(backend="dask", client=client))
        # one thread per fit: a worker runs as many fits at once as it has threads
        log.info("fit on Dask scheduler %s", client.scheduler.address)
        yield -1, 1


def _indexed(i, func, *args):
    from vitfeat.lifecycle import exit_with_parent

    exit_with_parent()  # in a worker process: gone with the main process, even after kill -9
    return i, func(*args)
