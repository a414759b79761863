"""`ModelSelector`: ``vitfeat fit`` as a scikit-learn estimator held in memory.

>>> from vitfeat import ModelSelector
>>> sel = ModelSelector(pipelines=["logreg", "lgbm+smote"], folds=5).fit(table, "label")  # doctest: +SKIP
>>> sel.leaderboard_.head()                                                               # doctest: +SKIP
>>> sel.save("artifacts/run")  # what `vitfeat fit` writes; `vitfeat predict/explain/serve` take it  # doctest: +SKIP

``fit`` calls :func:`vitfeat.pipelines.select.compute_fit`, the function behind ``vitfeat fit``:
the same patient-grouped (nested) cross-validation, leaderboard and refit of the winner; ``save``
calls the same :func:`~vitfeat.pipelines.select.write_fit` and report. Predictions go through
:func:`vitfeat.pipelines.predict.predict_features`, the one predict path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from vitfeat.pipelines.cv import MODALITY_PREFIXES
from vitfeat.pipelines.predict import predict_features
from vitfeat.pipelines.select import FitConfig, compute_fit, write_fit

#: Columns of an ``extract`` table that are never features.
ID_COLUMNS = ("case_id", "patient_id", "error")


class ModelSelector(ClassifierMixin, BaseEstimator):
    """Compare the pipeline zoo under patient-grouped (nested) CV and keep the winner, in memory.

    The parameters are ``vitfeat fit``'s options under scikit-learn names.

    Parameters
    ----------
    pipelines : list of str or str, default "all"
        Pipeline names (``logreg``, ``lgbm+smote``, ...; ``vitfeat list pipeline``) or ``"all"``.
    folds : int, default 5
        Outer folds (grouped by patient, stratified by class).
    repeats : int, default 1
        Repetitions of the CV with reshuffled folds.
    nested : bool, default True
        Also score the selection itself (the ``nested-selection`` leaderboard row).
    search : {"none", "random"}, default "none"
        Hyperparameter search on inner folds.
    n_iter : int, default 10
        Random-search candidates.
    inner_folds : int, optional
        Independent inner folds for nested selection (default: the outer folds, shared).
    inner_scheme : {"neighbours", "others"}, default "neighbours"
        Which outer folds serve as inner folds.
    n_jobs : int, default 1
        Parallel fits.
    random_state : int, default 0
        Seed of the folds, searches and bootstrap.
    n_boot : int, default 500
        Patient-bootstrap resamples of the confidence intervals.
    positive : str, optional
        Positive class of a binary target (default: vitfeat's positive-class rule).
    prefilter : {"auto", "on", "off"}, default "auto"
        In-fold filter of near-constant and near-duplicate columns.
    calibrate : {"sigmoid", "isotonic"}, optional
        Calibrate every pipeline's probabilities inside the training folds.
    operating_point : str, optional
        Decision threshold rule of a binary target (``sensitivity=0.90``, ``specificity=0.90``, ``youden``).
    gbm_bins : {"full", "rows"}, default "full"
        Histogram bins of the gradient-boosting pipelines: the libraries' 255, or sized to the training
        rows (``rows``: faster, and it cost AUROC on the bench, issue #31; recorded in run.json).
    gbm_early_stopping : bool, default False
        The boosting pipelines stop on a validation split of each training part (recorded in run.json).
    custom : dict, optional
        Named custom pipelines, ``{name: {"base": ..., "params": {...}}}``.
    backend : {"loky", "dask"}, default "loky"
        Where the CV fits run.
    scheduler : str, optional
        Dask scheduler address.
    target : str, default "label"
        The target's name when ``y`` is an array (a Series' name or a column name wins).
    cache_dir : path-like, optional
        Cache of finished fold fits (an interrupted fit resumes); None: no cache.
    progress : bool, default False
        Show progress bars.
    tabpfn_checkpoint : path-like, optional
        A local TabPFN classifier checkpoint: adds the ``tabpfn`` pipeline (``fit --tabpfn-checkpoint``).
    tabicl_checkpoint : path-like, optional
        A local TabICL checkpoint: adds the ``tabicl`` pipeline (``fit --tabicl-checkpoint``).

    Attributes
    ----------
    leaderboard_ : pandas.DataFrame
        ``leaderboard.csv``: one row per pipeline (and ``nested-selection``), ranked.
    best_pipeline_ : str
        The winner's name.
    best_estimator_ : sklearn.pipeline.Pipeline
        The winner refitted on every case (it predicts class indices into ``classes_``).
    classes_ : numpy.ndarray
        The classes in the user's labels, in the order of :meth:`predict_proba`'s columns.
    feature_names_in_ : numpy.ndarray of str
        The feature columns the model reads.
    oof_predictions_ : pandas.DataFrame
        Out-of-fold predictions of every pipeline.
    folds_ : pandas.DataFrame
        The fold plan (``folds.csv``).
    result_ : vitfeat.pipelines.select.FitResult
        Everything ``save`` writes.
    """

    def __init__(self, pipelines="all", folds: int = 5, repeats: int = 1, nested: bool = True, search: str = "none",
                 n_iter: int = 10, inner_folds=None, inner_scheme: str = "neighbours", n_jobs: int = 1,
                 random_state: int = 0, n_boot: int = 500, positive=None, prefilter: str = "auto", calibrate=None,
                 operating_point=None, custom=None, backend: str = "loky", scheduler=None, target: str = "label",
                 cache_dir=None, progress: bool = False, tabpfn_checkpoint=None, tabicl_checkpoint=None,
                 gbm_bins: str = "full", gbm_early_stopping: bool = False):
        self.pipelines = pipelines
        self.folds = folds
        self.repeats = repeats
        self.nested = nested
        self.search = search
        self.n_iter = n_iter
        self.inner_folds = inner_folds
        self.inner_scheme = inner_scheme
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.n_boot = n_boot
        self.positive = positive
        self.prefilter = prefilter
        self.calibrate = calibrate
        self.operating_point = operating_point
        self.custom = custom
        self.backend = backend
        self.scheduler = scheduler
        self.target = target
        self.cache_dir = cache_dir
        self.progress = progress
        self.tabpfn_checkpoint = tabpfn_checkpoint
        self.tabicl_checkpoint = tabicl_checkpoint
        self.gbm_bins = gbm_bins
        self.gbm_early_stopping = gbm_early_stopping

    def fit_config(self, target: str | None = None) -> FitConfig:
        """The :class:`~vitfeat.pipelines.select.FitConfig` these parameters make (``fit.yaml``'s content).

        Parameters
        ----------
        target : str, optional
            The target column (default: the ``target`` parameter).

        Returns
        -------
        FitConfig
        """
        pipelines = self.pipelines
        if isinstance(pipelines, str):
            pipelines = [p.strip() for p in pipelines.split(",") if p.strip()]
        return FitConfig(targets=[target or self.target], pipelines=list(pipelines), folds=int(self.folds),
                         repeats=int(self.repeats), search=self.search, n_iter=int(self.n_iter),
                         nested=bool(self.nested), inner_folds=self.inner_folds, inner_scheme=self.inner_scheme,
                         jobs=int(self.n_jobs), seed=int(self.random_state), n_boot=int(self.n_boot),
                         positive=self.positive, custom=dict(self.custom or {}), prefilter=self.prefilter,
                         backend=self.backend, scheduler=self.scheduler, calibrate=self.calibrate,
                         operating_point=self.operating_point, gbm_bins=self.gbm_bins,
                         gbm_early_stopping=bool(self.gbm_early_stopping),
                         tabpfn_checkpoint=str(self.tabpfn_checkpoint) if self.tabpfn_checkpoint else None,
                         tabicl_checkpoint=str(self.tabicl_checkpoint) if self.tabicl_checkpoint else None)

    def _table(self, X, y, groups) -> tuple[pd.DataFrame, str]:
        """The feature table ``compute_fit`` reads: ids, the target (as text) and the features."""
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
        else:  # scikit-learn's checks: 2-D, real numbers, not sparse, at least one row and column
            arr = check_array(X, dtype=float, ensure_all_finite="allow-nan")
            frame = pd.DataFrame(arr, columns=[f"clinical_array_{j}" for j in range(arr.shape[1])])
        target = self.target
        if isinstance(y, str):  # a column of X
            if y not in frame.columns:
                raise ValueError(f"target column '{y}' not found in X (columns: {', '.join(map(str, frame.columns))})")
            target, values = y, frame[y]
        else:
            if y is None:
                raise ValueError("ModelSelector requires y to be passed, but the target y is None "
                                 "(give the labels, or the name of a column of X)")
            if isinstance(y, pd.Series) and y.name is not None and not str(y.name).startswith(MODALITY_PREFIXES):
                target = str(y.name)
            labels = column_or_1d(np.asarray(y), warn=True)
            check_classification_targets(labels)  # "Unknown label type" for a continuous target
            values = pd.Series(labels.astype(object))
            if len(values) != len(frame):
                raise ValueError(f"y has {len(values)} value(s) but X has {len(frame)} row(s)")
        values = pd.Series(np.asarray(values, dtype=object), index=frame.index)
        present = values[values.notna()]
        texts = present.astype(str)
        if texts.nunique() != pd.Series(list(present)).nunique():
            raise ValueError("y has labels that read the same as text (e.g. 1 and '1'); use one type")
        self._labels = dict(zip(texts, present))
        frame[target] = values.where(values.isna(), values.astype(str))
        if "case_id" not in frame.columns:
            index = frame.index.astype(str)
            frame.insert(0, "case_id", index if index.is_unique else [str(i) for i in range(len(frame))])
        if groups is not None:
            groups = np.asarray(groups, dtype=object).ravel()
            if len(groups) != len(frame):
                raise ValueError(f"groups has {len(groups)} value(s) but X has {len(frame)} row(s); "
                                 "give one patient id per case")
            frame["patient_id"] = [str(g) for g in groups]
        elif "patient_id" not in frame.columns:
            warnings.warn("no groups given: each case is its own patient, so cases of one patient may fall "
                          "on both sides of a fold (pass groups=patient ids)", UserWarning, stacklevel=3)
        return frame, target

    def fit(self, X, y, groups=None):
        """Cross-validate the pipelines, rank them and refit the winner on every case.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Features named ``<modality>_<family>_<feature>`` (an ``extract`` table, ids and targets
            included, or only its feature columns); an array's columns are named ``clinical_array_<j>``.
        y : array-like or str
            The labels (any hashable type; kept in ``classes_``), or the name of a column of ``X``.
        groups : array-like, optional
            Patient id of each case (the CV groups); default: ``X``'s ``patient_id`` column, else
            each case its own patient (with a warning).

        Returns
        -------
        ModelSelector
            ``self``.

        Raises
        ------
        ValueError
            ``y`` with one class, ``groups`` of the wrong length, no feature columns (the messages of ``vitfeat fit``).
        """
        frame, target = self._table(X, y, groups)
        result = compute_fit(frame, self.fit_config(target), self.cache_dir, progress=self.progress)
        entry = result.model["targets"][target]
        self.result_ = result
        self.target_ = target
        self.leaderboard_ = result.leaderboard
        self.oof_predictions_ = result.oof
        self.folds_ = result.plan
        self.best_pipeline_ = entry["pipeline"]
        self.best_estimator_ = entry["model"]
        self.classes_ = np.asarray([self._labels[c] for c in entry["classes"]], dtype=object)
        try:
            self.classes_ = self.classes_.astype(np.result_type(*[type(c) for c in self.classes_]))
        except TypeError:
            pass
        self.feature_names_in_ = np.asarray(result.model["features"], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self._frame = frame
        return self

    def _features(self, X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            frame = X
        else:
            arr = check_array(X, dtype=float, ensure_all_finite="allow-nan")
            if arr.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {arr.shape[1]} features, but ModelSelector is expecting "
                                 f"{self.n_features_in_} features as input")
            frame = pd.DataFrame(arr, columns=self.feature_names_in_)
        if "case_id" not in frame.columns:
            frame = frame.assign(case_id=[str(i) for i in range(len(frame))])
        return frame

    def predictions(self, X, *, explain: bool = False) -> pd.DataFrame:
        """The table ``vitfeat predict`` writes for ``X``, with the classes as text.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Cases with the model's feature columns (extra columns are ignored).
        explain : bool, default False
            Add ``<target>_why``.

        Returns
        -------
        pandas.DataFrame
        """
        check_is_fitted(self, "result_")
        return predict_features(self.result_.model, self._features(X), "X", allow_extra=True, explain=explain)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_`` (NaN rows for failed cases).

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Cases with the model's feature columns.

        Returns
        -------
        numpy.ndarray of shape (n_cases, n_classes)
        """
        out = self.predictions(X)
        classes = self.result_.model["targets"][self.target_]["classes"]
        return out[[f"{self.target_}_proba_{c}" for c in classes]].to_numpy(dtype=float)

    def predict(self, X) -> np.ndarray:
        """Predicted classes in the user's labels (the operating point applies when one was chosen).

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Cases with the model's feature columns.

        Returns
        -------
        numpy.ndarray
        """
        out = self.predictions(X)
        labels = dict(zip(self.result_.model["targets"][self.target_]["classes"], self.classes_))
        return np.asarray([labels.get(p) for p in out[f"{self.target_}_pred"]], dtype=self.classes_.dtype)

    def save(self, run_dir, *, report: bool = True) -> Path:
        """Write the run directory ``vitfeat fit`` writes, with the training table beside it.

        ``vitfeat predict``, ``explain`` and ``serve`` accept it; ``features.parquet`` (the table
        fitted on, recorded in ``run.json`` with its hash) is what ``explain`` and the app read.

        Parameters
        ----------
        run_dir : path-like
            The run directory (created).
        report : bool, default True
            Also write ``report.html`` and ``report.md``.

        Returns
        -------
        pathlib.Path
            The run directory.
        """
        from vitfeat.dataset import file_hash
        from vitfeat.featurize.table import write_features

        check_is_fitted(self, "result_")
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        table = out / "features.parquet"
        write_features(self._frame, table, self.result_.run.get("extraction") or {})
        self.result_.run.update(features_path=str(table.resolve()), features_hash=file_hash(table))
        self.result_.config["features"] = str(table.resolve())
        write_fit(self.result_, out)
        if report:
            from vitfeat.pipelines.report import write_report

            write_report(out)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = False
        return tags


__all__ = ["ModelSelector"]
