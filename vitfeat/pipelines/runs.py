"""`load_run`: a fitted run directory as an object that predicts and explains in memory.

>>> from vitfeat import load_run
>>> run = load_run("artifacts/run")  # doctest: +SKIP
>>> run.predict_proba(features_df)   # or a manifest DataFrame, extracted like the run's table  # doctest: +SKIP

Predictions go through :func:`vitfeat.pipelines.predict.predict_features`, the function behind
``vitfeat predict`` and the app, so that the three give the same numbers for the same inputs.
"""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path

import pandas as pd

from vitfeat.artefacts import verify_run
from vitfeat.pipelines.persist import load_model
from vitfeat.pipelines.predict import features_like_run, is_manifest, predict_features, predict_run


class Run:
    """A fitted run directory (``vitfeat fit``, :meth:`ModelSelector.save`, or another run kind).

    Parameters
    ----------
    path : path-like
        The run directory (it has a ``run.json``).
    trust_modified : bool, default False
        Use a run whose files changed after it was written (with a warning) instead of refusing it.

    Attributes
    ----------
    path : pathlib.Path
        The directory.
    metadata : dict
        ``run.json``: kind, targets with their pipeline, classes and positive class, feature
        columns, the extraction that made the training table, versions.
    """

    def __init__(self, path, *, trust_modified: bool = False):
        self.path = Path(path)
        self.trust_modified = trust_modified
        # the SHA-256 of every artefact against run.json, as `vitfeat predict` does
        self.metadata = verify_run(self.path, trust_modified=trust_modified)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.kind!r}, targets={self.targets})"

    @property
    def kind(self) -> str:
        """The run kind (``sklearn`` for feature runs)."""
        return str(self.metadata.get("kind"))

    @property
    def targets(self) -> list[str]:
        """The targets the run predicts, in order."""
        targets = self.metadata.get("targets") or []
        if isinstance(targets, dict):
            return list(targets)
        return [str(t) for t in targets] or [str(self.metadata.get("target") or "label")]

    @cached_property
    def bundle(self) -> dict:
        """The model file's content (feature schema, per-target pipelines); sklearn runs only."""
        if self.kind != "sklearn":
            raise ValueError(f"{self.path}: a '{self.kind}' run has no model.skops bundle")
        if not (self.path / "model.skops").is_file():
            raise FileNotFoundError(f"{self.path / 'model.skops'}: missing (the run is incomplete; re-run fit)")
        return load_model(self.path / "model.skops")

    @property
    def feature_columns(self) -> list[str]:
        """The columns the model reads."""
        return list(self.metadata.get("feature_columns") or self.bundle["features"])

    def classes(self, target: str | None = None) -> list[str]:
        """The classes of ``target`` (default: the first), in the order of :meth:`predict_proba`'s columns.

        Parameters
        ----------
        target : str, optional
            A target of the run.

        Returns
        -------
        list of str
        """
        target = self._target(target)
        entry = (self.metadata.get("targets") or {})
        if isinstance(entry, dict) and isinstance(entry.get(target), dict) and entry[target].get("classes"):
            return [str(c) for c in entry[target]["classes"]]
        return [str(c) for c in self.bundle["targets"][target]["classes"]]

    def _target(self, target: str | None) -> str:
        if target is None:
            return self.targets[0]
        if target not in self.targets:
            raise ValueError(f"{self.path}: no model for target '{target}' (targets: {', '.join(self.targets)})")
        return target

    def features(self, X: pd.DataFrame, *, data_root=None, jobs: int = 1) -> pd.DataFrame:
        """The feature table of ``X``: itself when it is one, else a manifest's features extracted like the run's.

        Parameters
        ----------
        X : pandas.DataFrame
            A feature table, or a manifest (photo paths, no feature columns).
        data_root : path-like, optional
            Folder a manifest's paths are relative to (default: its ``data_root`` column).
        jobs : int, default 1
            Parallel extraction workers.

        Returns
        -------
        pandas.DataFrame
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a feature table or manifest DataFrame, not {type(X).__name__}")
        if is_manifest(X):
            return features_like_run(X, self.metadata.get("extraction") or {}, data_root=data_root, jobs=jobs)
        if "case_id" not in X.columns:
            X = X.assign(case_id=[str(i) for i in X.index])
        return X

    def predictions(self, X: pd.DataFrame, *, data_root=None, allow_extra: bool = False, explain: bool = False,
                    jobs: int = 1, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
        """The table ``vitfeat predict`` writes, computed in memory.

        Parameters
        ----------
        X : pandas.DataFrame
            A feature table or a manifest (see :meth:`features`).
        data_root : path-like, optional
            Folder a manifest's paths are relative to.
        allow_extra : bool, default False
            Ignore feature columns the model was not trained on.
        explain : bool, default False
            Add ``<target>_why`` columns.
        jobs : int, default 1
            Parallel extraction workers.
        manifest : pandas.DataFrame, optional
            The cases' manifest when ``X`` is their feature table: the applicability check's image gates
            re-read its photos (a manifest ``X`` is used itself).

        Returns
        -------
        pandas.DataFrame
            ``case_id, patient_id, error``, then per target ``<target>_pred`` and ``<target>_proba_<class>``
            (and ``in_scope``, ``scope_reason``, ``<target>_prediction_set`` for runs with the check).
        """
        if self.kind != "sklearn":
            return self._predict_other_kind(X, data_root)
        table = self.features(X, data_root=data_root, jobs=jobs)
        source = X if is_manifest(X) else manifest
        if source is not None:  # the image gates of the applicability check re-read these photos
            from vitfeat.dataset import load_manifest

            manifest = load_manifest(source, root=data_root, require_targets=False).frame
        return predict_features(self.bundle, table, "input DataFrame", allow_extra=allow_extra, explain=explain,
                                run_dir=self.path, meta=self.metadata, provenance=table.attrs.get("vitfeat"),
                                manifest_frame=manifest)

    def _predict_other_kind(self, X: pd.DataFrame, data_root) -> pd.DataFrame:
        """Other run kinds (VMTL) predict from files: a private temporary manifest, removed afterwards."""
        from vitfeat.atomic import write_csv

        with tempfile.TemporaryDirectory(prefix="vitfeat-run-") as tmp:
            frame = X.copy()
            if data_root is not None:
                frame["data_root"] = str(Path(data_root).resolve())
            path = write_csv(Path(tmp) / "manifest.csv", frame)
            return predict_run(self.path, path, trust_modified=self.trust_modified)

    def predict_proba(self, X: pd.DataFrame, target: str | None = None, **kwargs) -> pd.DataFrame:
        """Class probabilities of every case, one column per class (NaN for a case that failed).

        Parameters
        ----------
        X : pandas.DataFrame
            A feature table or a manifest.
        target : str, optional
            Which target (default: the first).
        **kwargs
            ``data_root``, ``allow_extra``, ``jobs`` of :meth:`predictions`.

        Returns
        -------
        pandas.DataFrame
            Columns: the classes; index: ``case_id``.
        """
        target = self._target(target)
        out = self.predictions(X, **kwargs)
        prefix = f"{target}_proba_" if f"{target}_pred" in out.columns else "proba_"
        classes = [c[len(prefix):] for c in out.columns if str(c).startswith(prefix)]
        proba = out[[prefix + c for c in classes]].set_axis(classes, axis=1)
        return proba.set_axis(pd.Index(out["case_id"].astype(str), name="case_id"), axis=0)

    def predict(self, X: pd.DataFrame, target: str | None = None, **kwargs) -> pd.Series:
        """The predicted class of every case (the saved operating point applies when the run has one).

        Parameters
        ----------
        X : pandas.DataFrame
            A feature table or a manifest.
        target : str, optional
            Which target (default: the first).
        **kwargs
            ``data_root``, ``allow_extra``, ``jobs`` of :meth:`predictions`.

        Returns
        -------
        pandas.Series
            Indexed by ``case_id``; None for a case that failed.
        """
        target = self._target(target)
        out = self.predictions(X, **kwargs)
        column = f"{target}_pred" if f"{target}_pred" in out.columns else "y_pred"
        return pd.Series(out[column].to_numpy(), index=pd.Index(out["case_id"].astype(str), name="case_id"),
                         name=target)

    def explain(self, case, target: str | None = None, **kwargs):
        """Why the model predicts what it does for a case, in words (strongest features first).

        Parameters
        ----------
        case : pandas.Series or pandas.DataFrame
            One case (a row of a feature table or manifest) or several.
        target : str, optional
            Which target (default: the first).
        **kwargs
            ``data_root``, ``allow_extra``, ``jobs`` of :meth:`predictions`.

        Returns
        -------
        str or pandas.Series
            The explanation of one case, or a Series of them indexed by ``case_id``.
        """
        target = self._target(target)
        single = isinstance(case, pd.Series)
        frame = case.to_frame().T.infer_objects() if single else case
        out = self.predictions(frame, explain=True, **kwargs)
        why = pd.Series(out[f"{target}_why"].to_numpy(), index=pd.Index(out["case_id"].astype(str), name="case_id"))
        return str(why.iloc[0]) if single else why

    def explanation(self, target: str | None = None, **kwargs):
        """The run-level explanation ``vitfeat explain`` writes, computed in memory (nothing written).

        Parameters
        ----------
        target : str, optional
            Which target (default: the first).
        **kwargs
            Options of :func:`vitfeat.pipelines.explain.compute_explanation` (``n_repeats``, ...).

        Returns
        -------
        vitfeat.pipelines.explain.Explanation
        """
        from vitfeat.pipelines.explain import compute_explanation

        return compute_explanation(self.path, self._target(target), **kwargs)


def load_run(path, *, trust_modified: bool = False) -> Run:
    """Open a fitted run directory for prediction and explanation in memory.

    Its artefacts are checked against the SHA-256 recorded in ``run.json`` first, as by ``vitfeat predict``.

    Parameters
    ----------
    path : path-like
        The run directory (from ``vitfeat fit``, :meth:`vitfeat.ModelSelector.save`, or a VMTL run).
    trust_modified : bool, default False
        Use a run whose files changed after it was written (with a warning) instead of refusing it.

    Returns
    -------
    Run
    """
    return Run(path, trust_modified=trust_modified)


__all__ = ["Run", "load_run"]
