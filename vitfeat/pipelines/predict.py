"""Apply a fitted run to new cases: a feature table, or a manifest whose features are extracted
with the run's recorded extraction configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.artefacts import read_run_json, trusting_modified, verify_run
from vitfeat.dataset import PATH_COLUMNS
from vitfeat.pipelines.cv import MODALITY_PREFIXES
from vitfeat.pipelines.persist import load_model, read_feature_table, write_csv
from vitfeat.pipelines.run_kinds import RUN_KINDS

log = logging.getLogger(__name__)


class SchemaError(ValueError):
    """The input's feature columns do not match the model's schema."""


def _feature_like(columns) -> list[str]:
    """Columns named like features; the manifest's mask-path columns share the prefixes."""
    return [c for c in columns if str(c).startswith(MODALITY_PREFIXES) and c not in PATH_COLUMNS]


def _is_manifest(frame: pd.DataFrame) -> bool:
    return "clinical" in frame.columns and not _feature_like(frame.columns)


def _peek(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path).head(0)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise ValueError(f"{path}: not a readable Parquet table (truncated, damaged or not Parquet): "
                             f"{exc}") from None
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, nrows=0, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    raise ValueError(f"{path}: input must be a manifest (.csv/.parquet) or a feature table (.parquet/.csv)")


def extract_like_run(manifest_path, extraction: dict, out_path, *, jobs: int = 1) -> Path:
    """Extract features for ``manifest_path`` with the families, family options, mask source and
    ``max_side`` recorded in a run's feature table (Parquet metadata key ``vitfeat``).

    Parameters
    ----------
    manifest_path : path-like
        The new cases' manifest.
    extraction : dict
        The run's ``run.json`` ``extraction`` entry.
    out_path : path-like
        Where the feature table goes.
    jobs : int, default 1
        Parallel worker processes.

    Returns
    -------
    pathlib.Path
        The feature table.
    """
    from vitfeat.dataset import load_manifest

    load_manifest(manifest_path, require_targets=False)  # every manifest problem at once, before work
    from vitfeat.featurize import extract

    recorded = extraction.get("families") or {}
    kwargs = {"masks": extraction.get("masks", "given"), "jobs": jobs, "max_side": extraction.get("max_side"),
              "pixels_per_mm": extraction.get("pixels_per_mm")}  # extract --pixels-per-mm (issue #29)
    if recorded:
        kwargs["families"] = list(recorded)
        kwargs["family_config"] = {name: dict(entry.get("config") or {}) for name, entry in recorded.items()
                                   if isinstance(entry, dict)}
    _check_family_versions(recorded)  # before extracting: a mismatch would waste the whole run
    result = extract(manifest_path, out_path, **kwargs)
    _check_family_versions(recorded, result.provenance)
    return Path(result.path or out_path)


def _check_family_versions(recorded: dict, provenance: dict | None = None) -> None:
    """Refuse to predict when a family's code version differs from the one the run was fitted on."""
    for name, entry in recorded.items():
        then_v = entry.get("version") if isinstance(entry, dict) else None
        if provenance is not None:
            now_v = ((provenance.get("families") or {}).get(name) or {}).get("version")
        else:
            try:
                from vitfeat.featurize import get_family

                now_v = get_family(name).version
            except Exception:  # noqa: BLE001  (unknown here; the post-extraction check catches it)
                now_v = None
        if then_v and now_v and str(then_v) != str(now_v):
            raise ValueError(f"feature family '{name}' was version {then_v} when the run was fitted but is "
                             f"version {now_v} now: its features may differ; re-fit the run")


def check_schema(frame: pd.DataFrame, schema: list[str], source, *, allow_extra: bool = False) -> None:
    """Refuse a table whose feature columns differ from the model's, naming the columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        The input table.
    schema : list of str
        The model's feature columns.
    source : str or path-like
        How the message names the input.
    allow_extra : bool, default False
        Accept feature columns the model was not trained on.

    Raises
    ------
    SchemaError
        Listing the missing (and, unless allowed, the extra) columns.
    """
    present = _feature_like(frame.columns)
    missing = [c for c in schema if c not in frame.columns]
    extra = [c for c in present if c not in set(schema)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} feature column(s) the model needs are missing: "
                        f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if extra and not allow_extra:
        problems.append(f"{len(extra)} feature column(s) the model was not trained on: "
                        f"{', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''} "
                        "(extracted with other settings? pass allow_extra / --allow-extra to ignore them)")
    if problems:
        raise SchemaError(f"{source}: " + "; ".join(problems))


def predict_run(run_dir, input_path, out_path=None, *, allow_extra: bool = False,
                explain: bool = False, trust_modified: bool = False) -> pd.DataFrame:
    """Predict every target of the run for the cases in ``input_path``; write ``out_path`` if given.

    The run's artefacts are checked against the SHA-256 recorded in its ``run.json`` first.

    Parameters
    ----------
    run_dir : path-like
        Run directory (``fit``, ``train vmtl``, ...).
    input_path : path-like
        Manifest or feature table of the new cases.
    out_path : path-like, optional
        Output CSV.
    allow_extra : bool, default False
        Ignore feature columns the model does not use.
    explain : bool, default False
        Add ``<target>_why``.
    trust_modified : bool, default False
        Use a run whose files changed after it was written (with a warning) instead of refusing it.

    Returns
    -------
    pandas.DataFrame
        ``case_id, patient_id, error``, then per target ``<target>_pred`` and ``<target>_proba_<class>``
        (and ``<target>_why`` with ``explain``).
    """
    run, input_path = Path(run_dir), Path(input_path)
    kind = verify_run(run, trust_modified=trust_modified).get("kind")
    try:
        predictor = RUN_KINDS.get(str(kind))
    except KeyError as exc:
        raise ValueError(f"{run / 'run.json'}: {exc}") from None
    with trusting_modified(trust_modified):
        return predictor(run, input_path, out_path, allow_extra=allow_extra, explain=explain)


@RUN_KINDS.register("sklearn")
def predict_sklearn_run(run_dir, input_path, out_path=None, *, allow_extra: bool = False,
                        explain: bool = False) -> pd.DataFrame:
    """Predict with a run written by ``fit`` (``run.json`` kind ``sklearn``); see :func:`predict_run`.

    Parameters
    ----------
    run_dir, input_path, out_path, allow_extra, explain
        As for :func:`predict_run`.

    Returns
    -------
    pandas.DataFrame
    """
    run, input_path = Path(run_dir), Path(input_path)
    meta = read_run_json(run)
    if not (run / "model.skops").is_file():
        raise FileNotFoundError(f"{run / 'model.skops'}: missing (the run is incomplete; re-run fit)")
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: input not found")

    bundle = load_model(run / "model.skops")  # a broken run fails before any extraction
    if _is_manifest(_peek(input_path)):
        features_path = Path(out_path or input_path).with_suffix(".features.parquet")
        log.info("extracting features for %s into %s", input_path, features_path)
        features_path = extract_like_run(input_path, meta.get("extraction") or {}, features_path)
    else:
        features_path = input_path
    frame, table_provenance = read_feature_table(features_path)
    from vitfeat.pipelines.table_checks import check_table_matches_run  # issue #25: same names, same meaning

    check_table_matches_run(table_provenance, meta.get("extraction") or {}, features_path, run)
    out = predict_features(bundle, frame, features_path, allow_extra=allow_extra, explain=explain,
                           run_dir=run, meta=meta, provenance=table_provenance)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        write_csv(out, out_path)
    return out


def predict_features(bundle: dict, frame: pd.DataFrame, source="features", *, allow_extra: bool = False,
                     explain: bool = False, run_dir=None, meta: dict | None = None, provenance: dict | None = None,
                     manifest_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predict every target of a loaded model for the cases of a feature table held in memory.

    The one predict path: ``vitfeat predict``, :func:`vitfeat.load_run` and the app all end here.

    Parameters
    ----------
    bundle : dict
        A model file's content (:func:`~vitfeat.pipelines.persist.load_model`).
    frame : pandas.DataFrame
        Feature table with ``case_id`` (``patient_id`` and ``error`` optional) and the model's columns.
    source : str or path-like
        How schema errors name the input.
    allow_extra : bool, default False
        Ignore feature columns the model was not trained on instead of raising :class:`SchemaError`.
    explain : bool, default False
        Add ``<target>_why``: each case's strongest features, in words.
    run_dir : path-like, optional
        The run; with ``meta``, its applicability check and conformal sets add ``in_scope``,
        ``scope_reason`` and ``<target>_prediction_set`` (:mod:`vitfeat.pipelines.applicability`).
    meta : dict, optional
        The run's ``run.json``.
    provenance : dict, optional
        The table's provenance (its manifest, whose photos the image gates re-read).
    manifest_frame : pandas.DataFrame, optional
        The cases' loaded manifest (absolute paths), when they come from memory rather than a file.

    Returns
    -------
    pandas.DataFrame
        ``case_id, patient_id, error``, then per target ``<target>_pred`` and ``<target>_proba_<class>``
        (and the scope columns with ``run_dir`` and ``meta``).
    """
    schema = bundle["features"]
    check_schema(frame, schema, source, allow_extra=allow_extra)
    if "patient_id" not in frame.columns:
        frame = frame.assign(patient_id=frame["case_id"])

    error = frame["error"].fillna("").astype(str) if "error" in frame.columns else pd.Series("", index=frame.index)
    ok = (error.str.strip() == "").to_numpy()
    X = frame.loc[ok, schema].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    out = pd.DataFrame({"case_id": frame["case_id"], "patient_id": frame["patient_id"], "error": error})
    for target, entry in bundle["targets"].items():
        classes = entry["classes"]
        proba = np.full((len(frame), len(classes)), np.nan)
        if ok.any():
            raw = entry["model"].predict_proba(X)
            proba[np.ix_(ok, np.asarray(entry["model"].classes_, dtype=int))] = raw
        pred = np.where(ok, np.asarray(classes, dtype=object)[np.nan_to_num(proba, nan=-1).argmax(1)], None)
        if entry.get("threshold") is not None and entry.get("positive") in classes and len(classes) == 2:
            # fit --operating-point: positive when its probability reaches the threshold saved with the model
            pos = classes.index(entry["positive"])
            called = np.asarray(classes, dtype=object)[np.where(proba[:, pos] >= entry["threshold"], pos, 1 - pos)]
            pred = np.where(ok, called, None)
        out[f"{target}_pred"] = pred
        for k, c in enumerate(classes):
            out[f"{target}_proba_{c}"] = proba[:, k]
        if explain:
            from vitfeat.pipelines.explain import explain_cases

            why = np.full(len(frame), "", dtype=object)
            if ok.any():
                why[ok] = explain_cases(bundle, target, X)
            out[f"{target}_why"] = why
    if run_dir is not None and meta is not None:
        from vitfeat.pipelines.applicability import add_scope_columns

        add_scope_columns(out, run_dir, meta, frame, schema, provenance, manifest_frame=manifest_frame)
    return out


def is_manifest(frame: pd.DataFrame) -> bool:
    """Whether a table is a manifest (photo paths, no feature columns) rather than a feature table.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table (its columns are enough).

    Returns
    -------
    bool
    """
    return _is_manifest(frame)


def features_like_run(frame: pd.DataFrame, extraction: dict, *, data_root=None, jobs: int = 1) -> pd.DataFrame:
    """The feature table of a manifest held in memory, extracted as the run's table was (in memory).

    The families, family options, mask source and ``max_side`` come from the run's recorded
    extraction, and the family versions must match, exactly as for :func:`extract_like_run`.

    Parameters
    ----------
    frame : pandas.DataFrame
        A manifest (``case_id``, ``clinical``, optional ``wood`` and masks).
    extraction : dict
        The run's ``run.json`` ``extraction`` entry (the training table's provenance).
    data_root : path-like, optional
        Folder the manifest's paths are relative to (default: its ``data_root`` column).
    jobs : int, default 1
        Parallel worker processes.

    Returns
    -------
    pandas.DataFrame
        The feature table, as ``vitfeat extract`` would write it.
    """
    from vitfeat.featurize.extractor import FeatureExtractor

    recorded = extraction.get("families") or {}
    _check_family_versions(recorded)
    options = {"masks": extraction.get("masks", "given"), "max_side": extraction.get("max_side")}
    if recorded:
        options["families"] = list(recorded)
        options["family_config"] = {name: dict(entry.get("config") or {}) for name, entry in recorded.items()
                                    if isinstance(entry, dict)}
    extractor = FeatureExtractor(data_root=data_root, n_jobs=jobs, **options)
    table = extractor.fit_transform(frame)
    _check_family_versions(recorded, extractor.provenance_)
    return table
