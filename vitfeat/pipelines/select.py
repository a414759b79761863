"""`fit_run`: compare pipelines on one fold plan, write the run directory, refit the winner.

Run directory: ``folds.csv``, ``oof_predictions.csv``, ``fold_scores.csv``, ``leaderboard.csv``
(one block of rows per target), ``config.yaml``, ``data_summary.json``, ``model.skops``,
``run.json`` (``{"kind": "sklearn", ...}``), ``report.html``, ``report.md``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from joblib import Parallel, delayed

from vitfeat._version import __version__
from vitfeat.artefacts import artefact_hashes
from vitfeat.atomic import write_text
from vitfeat.pipelines import fit_extras, nested, zoo
from vitfeat.pipelines.cv import cross_validate, feature_columns, fit_estimator, fold_threshold, run_scheduler
from vitfeat.pipelines.operating import operating_point_table, parse_calibrate, parse_rule
from vitfeat.evaluation.folds import make_folds, read_folds, same_folds, write_folds
from vitfeat.evaluation.metrics import HEADLINE, flatten, proba_columns, score_oof
from vitfeat.evaluation.positive import positive_class
from vitfeat.pipelines.nested import INNER_SCHEMES, describe_inner, nested_selection
from vitfeat.pipelines.icc_filter import apply_icc_filter
from vitfeat.pipelines.prefilter import AUTO_WIDTH, prefilter_active
from vitfeat.pipelines.selection_metric import leaderboard_order
from vitfeat.featurize.table import as_feature_table, frame_hash
from vitfeat.pipelines.persist import (
    save_model,
    write_csv,
    write_json,
)

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Everything that decides a run; written to ``config.yaml`` and accepted from ``--config``."""

    targets: list = field(default_factory=lambda: ["label"])
    pipelines: list = field(default_factory=lambda: ["all"])
    folds: int = 5
    repeats: int = 1
    folds_from: str | None = None
    include: list = field(default_factory=list)
    search: str = "none"
    n_iter: int = 10
    nested: bool = True  # score the selection procedure itself (see vitfeat.pipelines.nested)
    inner_folds: int | None = None  # None: outer folds as inner folds (inner fits shared, see nested.py)
    inner_scheme: str = "neighbours"  # which outer folds: the two neighbours, or all others (nested.py)
    jobs: int = 1
    seed: int = 0
    n_boot: int = 500
    positive: str | None = None  # positive class of binary targets; None: vitfeat.evaluation.positive's rule
    custom: dict = field(default_factory=dict)
    prefilter: str = "auto"  # in-fold near-constant/near-duplicate filter (vitfeat.pipelines.prefilter)
    backend: str = "loky"  # or "dask" (scheduler: address, or a local cluster when None)
    scheduler: str | None = None
    calibrate: str | None = None  # sigmoid or isotonic: patient-grouped CalibratedClassifierCV
    operating_point: str | None = None  # sensitivity=0.90, specificity=0.90 or youden (binary targets)
    feature_icc: str | None = None  # feature_icc.csv of vitfeat robustness: drop features below min_icc first
    min_icc: float | None = None  # default 0.75 with feature_icc (vitfeat.pipelines.icc_filter)
    coverage: float = 0.9  # conformal prediction sets (vitfeat.pipelines.conformal)
    metric: str = "balanced_accuracy"  # ranks the leaderboard, nested selection maximises it (selection_metric)
    ci: str = "auto"  # intervals: auto, analytic (DeLong/Wilson) or bootstrap (vitfeat.evaluation.analytic)
    test_split: str | None = None  # column with train/test values: fit on train, score the chosen model on test
    test_fraction: float | None = None  # or a drawn patient-grouped, stratified test split of this share
    subgroups: list = field(default_factory=list)  # columns for subgroup_metrics.csv
    tabpfn_checkpoint: str | None = None  # local TabPFN checkpoint: adds the 'tabpfn' pipeline (foundation)
    tabicl_checkpoint: str | None = None  # local TabICL checkpoint: adds the 'tabicl' pipeline
    gbm_bins: str = "full"  # GBM histogram bins: full (255) or rows (sized to the rows: faster, less AUROC; zoo)
    gbm_early_stopping: bool = False  # GBMs stop on a validation split of each training part (gbm_early)

    @classmethod
    def from_yaml(cls, path, **overrides) -> "FitConfig":
        """Options from a YAML file (``--config``, or a run's ``config.yaml``), overridden by flags.

        Parameters
        ----------
        path : path-like
            A YAML mapping of options.
        **overrides
            Options that replace the file's (None values are ignored).

        Returns
        -------
        FitConfig

        Raises
        ------
        ValueError
            Naming the file, for a non-mapping or unknown keys.
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of options")
        try:
            return cls.from_yaml_dict(data, **overrides)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_yaml_dict(cls, data: dict, **overrides) -> "FitConfig":
        """Options from a parsed mapping: ``target`` is read as ``targets``, comma-separated text as
        lists, and the keys ``fit`` adds to its ``config.yaml`` are dropped.

        Parameters
        ----------
        data : dict
            The options.
        **overrides
            Options that replace ``data``'s (None values are ignored).

        Returns
        -------
        FitConfig

        Raises
        ------
        ValueError
            For unknown keys (the valid ones are listed).
        """
        data = dict(data)
        for written_by_fit in ("pipelines_expanded", "features"):  # a run's config.yaml can be reused
            data.pop(written_by_fit, None)
        if "target" in data:
            data["targets"] = data.pop("target")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(cls.__dataclass_fields__)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("targets", "pipelines", "include", "subgroups"):
            if isinstance(data.get(key), str):
                data[key] = [s.strip() for s in data[key].split(",") if s.strip()]
        return cls(**data)


def summarize_data(frame: pd.DataFrame, features: list[str], targets: list[str], failed: pd.DataFrame) -> dict:
    """``data_summary.json``: cases, patients, class counts, missing values, constant features.

    Parameters
    ----------
    frame : pandas.DataFrame
        The usable cases.
    features : list of str
        The feature columns.
    targets : list of str
        The target columns.
    failed : pandas.DataFrame
        Cases whose extraction failed (``case_id``, ``error``).

    Returns
    -------
    dict
    """
    X = frame[features]
    missing = X.isna().mean()
    # a column empty in every case (e.g. wood_* when no case has a Wood's photo) is reported once, by
    # the table check, not again as constant, as often missing and in every case's missing share
    empty = set(missing.index[missing == 1.0])
    constant = [c for c in features if c not in empty and X[c].nunique(dropna=True) <= 1]
    missing = missing[[c not in empty for c in missing.index]]
    summary = {
        "n_cases": int(len(frame)), "n_patients": int(frame["patient_id"].nunique()),
        "n_features": len(features),
        "failed_cases": [{"case_id": r.case_id, "error": str(r.error)} for r in failed.itertuples()],
        "class_counts": {t: frame[t].dropna().astype(str).value_counts().sort_index().to_dict() for t in targets},
        "patients_per_class": {t: frame.dropna(subset=[t]).groupby(frame[t].dropna().astype(str))["patient_id"]
                               .nunique().to_dict() for t in targets},
        "missing_fraction_overall": float(missing.mean()) if len(missing) else 0.0,
        "features_with_missing": {c: float(v) for c, v in missing[missing > 0].sort_values(ascending=False)
                                  .head(30).items()},
        "constant_features": constant,
        "cases_mostly_missing": mostly_missing_cases(frame, [c for c in features if c not in empty]),
        "empty_features": sorted(empty),
        "modalities": sorted({c.split("_", 1)[0] for c in features}),
    }
    return summary


def mostly_missing_cases(frame: pd.DataFrame, features: list[str]) -> list[dict]:
    """Cases with more than half their features missing (e.g. no Wood's photo, a failed mask):
    ``[{"case_id", "missing_fraction"}]``, worst first. Their predictions rest on imputed values.
    Give the columns the models use: a column empty in every case is left out by them and would
    make every case look sparse.

    Parameters
    ----------
    frame : pandas.DataFrame
        The cases (with ``case_id``).
    features : list of str
        The feature columns.

    Returns
    -------
    list of dict
    """
    if not features:
        return []
    share = frame[features].isna().mean(axis=1)
    worst = share[share > 0.5].sort_values(ascending=False, kind="stable")
    return [{"case_id": str(frame.at[i, "case_id"]), "missing_fraction": round(float(v), 3)} for i, v in worst.items()]


def warnings_for(summary: dict, n_splits: int, n_pipelines: int, failures: list,
                 board: pd.DataFrame | None = None) -> list[str]:
    """The report's warnings about the data and the comparison (small classes, constant or missing
    features, failed cases and pipelines, a perfect score, the winner's curse).

    Parameters
    ----------
    summary : dict
        :func:`summarize_data`'s result.
    n_splits : int
        Folds per repeat.
    n_pipelines : int
        Pipelines compared.
    failures : list of dict
        Failed fits (``target``, ``pipeline``, ``error``).
    board : pandas.DataFrame, optional
        The leaderboard (for the perfect-score warning).

    Returns
    -------
    list of str
    """
    out = []
    if board is not None and len(board):
        perfect = board[board["balanced_accuracy_value"] >= 0.999]
        for target, part in perfect.groupby("target"):
            out.append(f"Target '{target}': {len(part)} pipeline(s) classify every case correctly. Either the "
                       "classes are trivially separable in this data or a feature encodes the label (leakage, "
                       "e.g. a file name or a measurement made after labelling); check the top features in explain.")
    for target, counts in summary["patients_per_class"].items():
        for cls, n in counts.items():
            if n < 2 * n_splits:
                out.append(f"Target '{target}': class '{cls}' has only {n} patient(s) for {n_splits} folds; "
                           "its per-fold scores are unstable and some test folds may lack it.")
    if summary["constant_features"]:
        names = ", ".join(summary["constant_features"][:8])
        more = len(summary["constant_features"]) - 8
        out.append(f"{len(summary['constant_features'])} feature(s) have no variance and carry no information: "
                   f"{names}{f' and {more} more' if more > 0 else ''}.")
    heavy = [c for c, v in summary["features_with_missing"].items() if v > 0.2]
    if heavy:
        out.append(f"{len(heavy)} feature(s) are missing in more than 20 % of cases (imputed with the "
                   f"training-fold median), e.g. {', '.join(heavy[:5])}.")
    sparse = summary.get("cases_mostly_missing") or []
    if sparse:
        listed = ", ".join(f"{c['case_id']} ({c['missing_fraction']:.0%})" for c in sparse[:10])
        more = f" and {len(sparse) - 10} more (data_summary.json lists all)" if len(sparse) > 10 else ""
        out.append(f"{len(sparse)} case(s) lack more than half their features, so their predictions rest mostly "
                   f"on imputed values: {listed}{more}.")
    if summary["failed_cases"]:
        out.append(f"{len(summary['failed_cases'])} case(s) failed feature extraction and were left out.")
    if summary["n_patients"] < summary["n_cases"]:
        out.append(f"{summary['n_cases']} cases come from {summary['n_patients']} patients; folds keep each "
                   "patient's cases together.")
    for f in {(f["target"], f["pipeline"]): f for f in failures}.values():
        out.append(f"Pipeline '{f['pipeline']}' failed for target '{f['target']}' and is not ranked: {f['error']}")
    if n_pipelines > 1:
        out.append(f"The top of the leaderboard was chosen among {n_pipelines} pipelines on these same folds, "
                   "so its score is optimistic (winner's curse); overlapping confidence intervals mean the "
                   "difference is not established. The 'nested-selection' row (when present) scores the "
                   "selection procedure without that bias. Confirm the chosen pipeline on independent patients.")
    return out


#: At most this many of the extraction's warnings are repeated in the fit's report (all are in the table's provenance).
MAX_EXTRACTION_WARNINGS = 20


def extraction_warnings(provenance: dict) -> list[str]:
    """The warnings ``vitfeat extract`` raised about the manifest (masks, images, targets), so that
    the fit's report shows them beside its own; the first :data:`MAX_EXTRACTION_WARNINGS`, then a count.

    Parameters
    ----------
    provenance : dict
        The feature table's provenance (its ``manifest_warnings``).

    Returns
    -------
    list of str
        Each prefixed with ``Extraction:``.
    """
    found = [str(w) for w in (provenance or {}).get("manifest_warnings") or []]
    out = [f"Extraction: {w}" for w in found[:MAX_EXTRACTION_WARNINGS]]
    if len(found) > MAX_EXTRACTION_WARNINGS:
        out.append(f"Extraction: {len(found) - MAX_EXTRACTION_WARNINGS} more warning(s) in the feature table's "
                   "provenance (manifest_warnings)")
    return out


def leaderboard_rows(oof: pd.DataFrame, info: pd.DataFrame, target: str, classes, positive, n_boot, seed,
                     n_jobs: int = 1, ci: str = "auto", metric: str = "balanced_accuracy"):
    """Leaderboard rows and per-fold scores of every pipeline in ``oof``; the rows' patient
    bootstraps are independent of each other, so they run ``n_jobs`` at a time.

    Parameters
    ----------
    oof : pandas.DataFrame
        Out-of-fold predictions of every pipeline for ``target``.
    info : pandas.DataFrame
        Per-fit records with ``pipeline`` and ``fit_time`` (may be empty).
    target : str
        The target scored.
    classes : list
        Its classes, in probability-column order.
    positive : str or None
        The positive class of a binary target.
    n_boot, seed : int
        Patient-bootstrap resamples and their seed.
    n_jobs : int, default 1
        Pipelines scored at a time.
    ci : str, default "auto"
        Interval method (see :data:`vitfeat.evaluation.analytic.CI_CHOICES`).
    metric : str, default "balanced_accuracy"
        The metric the leaderboard is ranked by.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(leaderboard, fold_scores)``.
    """
    rows, fold_rows = [], []
    parts = list(oof.groupby("pipeline", sort=False))
    all_scores = Parallel(n_jobs=min(n_jobs, len(parts)) or 1)(
        delayed(score_oof)(part, classes, positive=positive, n_boot=n_boot, seed=seed, ci=ci) for _, part in parts)
    for (name, part), scores in zip(parts, all_scores):
        times = info.loc[info["pipeline"] == name, "fit_time"] if len(info) else pd.Series(dtype=float)
        row = {"target": target, "pipeline": name,
               "description": nested.DESCRIPTION if name == nested.NAME
               else zoo.describe(name) if _known(name) else "included run",
               "n_cases": int(part["case_id"].nunique()),
               "fit_time_mean": float(times.mean()) if len(times) else np.nan,
               "fit_time_sd": float(times.std(ddof=1)) if len(times) > 1 else np.nan}
        row.update(flatten(scores))
        rows.append(row)
        per_fold = scores["_per_fold"].copy()
        keys = part.groupby(["repeat", "fold"]).size().index.to_frame(index=False)
        fold_rows.append(pd.concat([keys, per_fold], axis=1).assign(target=target, pipeline=name))
    board = pd.DataFrame(rows)
    if len(board):
        board = leaderboard_order(board, metric)
    return board, pd.concat(fold_rows, ignore_index=True) if fold_rows else pd.DataFrame()


def _known(name: str) -> bool:
    try:
        zoo.make_pipeline(name)
        return True
    except ValueError:
        return False


def binary_positive(classes, y, explicit: str | None, target: str) -> str | None:
    """The positive class of a binary target (None for more classes); an explicit ``positive``
    that is not a class of this target is ignored for it (it may name another target's class).

    Parameters
    ----------
    classes : list of str
        The target's classes.
    y : array-like
        Its labels (for :func:`~vitfeat.evaluation.positive.positive_class`'s rule).
    explicit : str or None
        The ``--positive`` class.
    target : str
        The target's name, for messages.

    Returns
    -------
    str or None
    """
    if len(classes) != 2:
        return None
    return positive_class(classes, y, explicit=explicit if explicit in classes else None, target=target,
                          strict=True)


def check_included_positive(run_dir, target: str, positive: str | None) -> None:
    """Refuse an included run (e.g. VMTL) whose ``run.json`` records another positive class for
    ``target``: its sensitivity and specificity would refer to the other class.

    Parameters
    ----------
    run_dir : path-like
        The included run (nothing is checked without its ``run.json``).
    target : str
        The target.
    positive : str or None
        This fit's positive class (None: nothing to check).

    Raises
    ------
    ValueError
        When the recorded positive class differs.
    """
    path = Path(run_dir) / "run.json"
    if positive is None or not path.is_file():
        return
    import json

    recorded = (json.loads(path.read_text()).get("positive_class") or {}).get(target)
    if recorded is not None and str(recorded) != positive:
        raise ValueError(f"{path}: the included run took '{recorded}' as the positive class of '{target}', "
                         f"this fit takes '{positive}'; re-run one of them with --positive so both agree")


def read_included(run_dir, target: str, classes, plan: pd.DataFrame) -> pd.DataFrame:
    """OOF rows of another run (e.g. VMTL) for ``target``, after checking it used the same folds.

    Parameters
    ----------
    run_dir : path-like
        The included run (with ``oof_predictions.csv`` and ``folds.csv``).
    target : str
        The target.
    classes : list
        Its classes (their probability columns must be present).
    plan : pandas.DataFrame
        This fit's fold plan.

    Returns
    -------
    pandas.DataFrame
        The OOF rows with the identifying columns and ``proba_<class>``.

    Raises
    ------
    FileNotFoundError
        Without either file.
    ValueError
        For another fold plan or missing probability columns.
    """
    run_dir = Path(run_dir)
    oof_path, folds_path = run_dir / "oof_predictions.csv", run_dir / "folds.csv"
    for p in (oof_path, folds_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: --include needs a run directory with oof_predictions.csv and folds.csv")
    other = read_folds(folds_path)
    common = set(plan["case_id"]) & set(other["case_id"])
    if not same_folds(plan[plan["case_id"].isin(common)], other[other["case_id"].isin(common)]) or not common:
        raise ValueError(f"{folds_path}: the included run used a different fold plan; re-run it with "
                         "--folds-from this run's folds.csv (scores on different folds are not comparable)")
    oof = pd.read_csv(oof_path, dtype={"case_id": str, "patient_id": str, "y_true": str, "y_pred": str})
    oof = oof[oof["target"].astype(str) == target]
    missing = [c for c in proba_columns(classes) if c not in oof.columns]
    if missing:
        raise ValueError(f"{oof_path}: lacks probability column(s) {', '.join(missing)} for target '{target}'")
    keep = ["pipeline", "target", "repeat", "fold", "case_id", "patient_id", "y_true", "y_pred"]
    return oof[keep + proba_columns(classes)]


@dataclass
class FitResult:
    """What :func:`compute_fit` found, before anything is written (:func:`write_fit` writes it).

    Attributes
    ----------
    plan : pandas.DataFrame
        The fold plan (``folds.csv``).
    config : dict
        ``config.yaml``.
    oof : pandas.DataFrame
        ``oof_predictions.csv``.
    leaderboard, fold_scores, fold_fits : pandas.DataFrame
        The ranked pipelines, their per-fold scores and per-fit records.
    nested_selection : pandas.DataFrame or None
        The pipeline the nested selection picked in each outer fold (None without nested selection).
    model : dict
        ``model.skops``: ``{"features", "targets"}``.
    summary : dict
        ``data_summary.json`` with ``warnings``.
    run : dict
        ``run.json``.
    operating_point : pandas.DataFrame or None
        ``operating_point.csv`` (``fit --operating-point``).
    scope : dict or None
        The applicability check and conformal sets.
    tables : dict
        More CSV files by name (comparisons, test split, subgroups).
    """

    plan: pd.DataFrame  # folds.csv
    config: dict  # config.yaml
    oof: pd.DataFrame  # oof_predictions.csv
    leaderboard: pd.DataFrame
    fold_scores: pd.DataFrame
    fold_fits: pd.DataFrame
    nested_selection: pd.DataFrame | None
    model: dict  # model.skops: {"features", "targets"}
    summary: dict  # data_summary.json, with "warnings"
    run: dict  # run.json
    operating_point: pd.DataFrame | None = None  # operating_point.csv (fit --operating-point)
    scope: dict | None = None  # applicability check + conformal sets (vitfeat.pipelines.applicability)
    tables: dict = field(default_factory=dict)  # more CSV files: comparisons, test split, subgroups (fit_extras)


def compute_fit(features, config: FitConfig, cache_dir, *, progress: bool = True) -> FitResult:
    """Cross-validate ``config.pipelines`` on the feature table and refit the winners; writes only
    the fold-result cache under ``cache_dir`` (see :func:`write_fit` for the run directory).

    Parameters
    ----------
    features : path-like or pandas.DataFrame
        Feature table from ``vitfeat extract``, or one held in memory (``ModelSelector``).
    config : FitConfig
        What to run.
    cache_dir : path-like or None
        Where finished fold fits are cached, so that an interrupted run resumes (None: no cache).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    FitResult
    """
    # one Dask client (and at most one local cluster) for every CV and nested-selection call of the fit
    with run_scheduler(config.backend, config.scheduler, config.jobs) as scheduler:
        return _compute_fit(features, config, cache_dir, progress=progress, scheduler=scheduler)


def _compute_fit(features, config: FitConfig, cache_dir, *, progress: bool, scheduler) -> FitResult:
    started = time.time()
    config.calibrate = parse_calibrate(config.calibrate)  # sigmoid -> sigmoid:single (the measured default)
    if config.inner_scheme not in INNER_SCHEMES:
        raise ValueError(f"inner_scheme {config.inner_scheme!r}: use {' or '.join(INNER_SCHEMES)}")
    if config.operating_point:
        parse_rule(config.operating_point)  # a bad rule fails before any fit
    if not 0 < float(config.coverage) < 1:
        raise ValueError(f"coverage {config.coverage!r}: the conformal coverage lies between 0 and 1 (e.g. 0.9)")
    zoo.add_custom_pipelines(config.custom)
    for kind in ("tabpfn", "tabicl"):  # local checkpoints: missing, damaged, other version named before any fit
        if getattr(config, f"{kind}_checkpoint"):
            from vitfeat.pipelines.foundation import register_checkpoint

            register_checkpoint(kind, getattr(config, f"{kind}_checkpoint"))
            config.pipelines = list(config.pipelines) + [kind] * (kind not in config.pipelines)
    pipelines = zoo.expand_names(config.pipelines)

    table, provenance, features, features_path = as_feature_table(features)
    for t in config.targets:
        if t not in table.columns:
            others = ", ".join(c for c in table.columns if not c.startswith(("clinical_", "wood_", "pair_")))
            raise ValueError(f"{features}: target column '{t}' not found (non-feature columns: {others})")
    error = (table["error"].fillna("").astype(str).str.strip() if "error" in table.columns
             else pd.Series("", index=table.index))
    failed = table.loc[error != "", ["case_id"]].assign(error=error[error != ""])
    frame = table[error == ""].reset_index(drop=True)
    frame = frame.dropna(subset=config.targets, how="all").reset_index(drop=True)
    frame, held_out, split_record = fit_extras.prepare(frame, provenance, config, source=str(features))
    try:
        features_cols = feature_columns(frame)
    except ValueError as exc:
        raise ValueError(f"{features}: {exc}") from None
    from vitfeat.pipelines.table_checks import check_fit_table  # issue #25: named before any fit

    table_warnings = check_fit_table(table, frame, features, config.targets, features_cols,
                                     None if config.folds_from else config.folds)
    features_cols, icc_filter, icc_key = apply_icc_filter(features_cols, config.feature_icc, config.min_icc)
    use_prefilter = prefilter_active(config.prefilter, len(features_cols))
    X = frame[features_cols].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan  # inf from a division-by-zero feature is treated as missing

    if config.folds_from:
        plan = read_folds(config.folds_from, frame)
    else:
        plan = make_folds(frame, config.targets, n_splits=config.folds, repeats=config.repeats, seed=config.seed)
    config_dict = asdict(config)
    config_dict["pipelines_expanded"] = pipelines
    config_dict["features"] = features_path

    from vitfeat.dataset import file_hash

    table_hash = file_hash(features_path) if features_path else frame_hash(table)
    n_splits = int(plan["fold"].max()) + 1
    oofs, infos, boards, fold_scores, failures, models = [], [], [], [], [], {}
    nested_picks, operating = [], []
    for target in config.targets:
        has = frame[target].notna().to_numpy()
        y = frame.loc[has, target].astype(str).to_numpy()
        classes = sorted(np.unique(y))
        if len(classes) < 2:
            raise ValueError(f"target '{target}' has a single class ({classes[0]}); nothing to learn")
        positive = binary_positive(classes, y, config.positive, target)
        if config.operating_point and positive is None:
            log.warning("target %s has %d classes: --operating-point applies to binary targets only; "
                        "it is predicted by argmax", target, len(classes))
        sub_plan = plan[plan["case_id"].isin(set(frame.loc[has, "case_id"]))]
        oof, info, fails = cross_validate(
            X[has], y, frame.loc[has, "patient_id"], frame.loc[has, "case_id"], sub_plan, pipelines,
            classes=classes, search=config.search, n_iter=config.n_iter, n_jobs=config.jobs, seed=config.seed,
            cache_dir=cache_dir, cache_key={"table": table_hash, "features": len(features_cols), **icc_key},
            target=target, progress=progress, prefilter=use_prefilter, backend=config.backend,
            scheduler=scheduler, calibrate=config.calibrate, operating_point=config.operating_point,
            positive=positive, gbm_bins=config.gbm_bins, gbm_early_stopping=config.gbm_early_stopping)
        failures += fails
        if config.operating_point and positive is not None and len(oof):
            operating.append(operating_point_table(oof, positive, config.operating_point, n_boot=config.n_boot,
                                                   seed=config.seed).assign(target=target))
        if config.nested and len(pipelines) > 1 and len(oof):
            nested_oof, picks = nested_selection(
                X[has], y, frame.loc[has, "patient_id"], frame.loc[has, "case_id"], sub_plan, pipelines, oof,
                classes=classes, inner_folds=config.inner_folds, inner=config.inner_scheme, search=config.search,
                n_iter=config.n_iter, n_jobs=config.jobs, seed=config.seed, cache_dir=cache_dir,
                cache_key={"table": table_hash, "features": len(features_cols), **icc_key}, target=target,
                prefilter=use_prefilter, backend=config.backend, scheduler=scheduler,
                calibrate=config.calibrate, metric=config.metric, positive=positive, gbm_bins=config.gbm_bins,
                gbm_early_stopping=config.gbm_early_stopping)
            if len(nested_oof):
                oof = pd.concat([oof, nested_oof], ignore_index=True)
                nested_picks.append(picks)
        for run_dir in config.include:
            check_included_positive(run_dir, target, positive)
            oof = pd.concat([oof, read_included(run_dir, target, classes, sub_plan)], ignore_index=True)
        if not len(oof):
            raise RuntimeError(f"every pipeline failed for target '{target}': {fails[0]['error'] if fails else ''}")
        board, per_fold = leaderboard_rows(oof, info, target, classes, positive, config.n_boot, config.seed,
                                           n_jobs=config.jobs if config.backend == "loky" else 1, ci=config.ci,
                                           metric=config.metric)
        oofs.append(oof), infos.append(info), boards.append(board), fold_scores.append(per_fold)

        best = next(n for n in board["pipeline"] if n in pipelines)
        est, params = fit_estimator(best, X[has], np.searchsorted(classes, y), frame.loc[has, "patient_id"]
                                    .astype(str).to_numpy(), search=config.search, n_iter=config.n_iter,
                                    seed=config.seed, prefilter=use_prefilter, calibrate=config.calibrate,
                                    gbm_bins=config.gbm_bins, gbm_early_stopping=config.gbm_early_stopping)
        models[target] = {"pipeline": best, "classes": classes, "positive": positive, "model": est,
                          "params": params, "calibrate": config.calibrate}
        if config.operating_point and positive is not None:  # chosen on all data like in each fold
            models[target]["operating_point"] = config.operating_point
            models[target]["threshold"] = fold_threshold(
                best, X[has], np.searchsorted(classes, y), frame.loc[has, "patient_id"].astype(str).to_numpy(),
                classes.index(positive), config.operating_point, search=config.search, n_iter=config.n_iter,
                seed=config.seed, prefilter=use_prefilter, calibrate=config.calibrate, gbm_bins=config.gbm_bins,
                gbm_early_stopping=config.gbm_early_stopping)
        log.info("target %s: best pipeline %s", target, best)

    boards_all = pd.concat(boards, ignore_index=True)
    from vitfeat.pipelines.applicability import fit_for_run

    scope = fit_for_run(frame, X, features_cols, plan, provenance, pd.concat(oofs, ignore_index=True), models,
                        coverage=config.coverage)
    summary = summarize_data(frame, features_cols, config.targets, failed)
    summary["warnings"] = warnings_for(summary, n_splits, len(pipelines) + len(config.include), failures, boards_all)
    summary["warnings"] += extraction_warnings(provenance) + table_warnings
    from vitfeat.pipelines.speed_options import speed_option_warnings  # issue #31: named when on

    summary["warnings"] += speed_option_warnings(config)
    extras = fit_extras.finish(config, frame=frame, test=held_out, split_record=split_record, models=models,
                               features=features_cols, board=boards_all, oof=pd.concat(oofs, ignore_index=True),
                               fold_scores=pd.concat(fold_scores, ignore_index=True),
                               nested_picks=pd.concat(nested_picks, ignore_index=True) if nested_picks else None)
    summary["warnings"] += extras.warnings
    run_meta = {
        "kind": "sklearn", "vitfeat_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(time.time() - started, 1), "features_path": features_path,
        "features_hash": table_hash, "feature_columns": features_cols,
        "targets": {t: {k: v for k, v in m.items() if k != "model"} for t, m in models.items()},
        "positive_class": {t: m["positive"] for t, m in models.items() if m["positive"] is not None},
        "n_splits": n_splits, "repeats": int(plan["repeat"].nunique()),
        "extraction": provenance, "failures": failures, "headline_metrics": HEADLINE,
        "prefilter": {"mode": config.prefilter, "active": use_prefilter, "auto_width": AUTO_WIDTH},
        "calibrate": config.calibrate, "operating_point": config.operating_point, "gbm_bins": config.gbm_bins,
        "gbm_early_stopping": config.gbm_early_stopping,
        "nested_inner": describe_inner(config.inner_folds, config.inner_scheme) if nested_picks else None,
        "feature_icc": icc_filter,
        "applicability": scope["run_json"], "conformal": scope["conformal"],
        **extras.meta, "provenance": fit_extras.run_provenance(config, features_path or features, table_hash),
    }
    return FitResult(
        plan=plan, config=config_dict, oof=pd.concat(oofs, ignore_index=True), leaderboard=boards_all,
        fold_scores=pd.concat(fold_scores, ignore_index=True), fold_fits=pd.concat(infos, ignore_index=True),
        nested_selection=pd.concat(nested_picks, ignore_index=True) if nested_picks else None,
        model={"features": features_cols, "targets": models}, summary=summary, run=run_meta,
        operating_point=pd.concat(operating, ignore_index=True) if operating else None, scope=scope,
        tables=extras.tables)


#: The files of a run whose SHA-256 ``run.json`` records (``predict``/``explain``/``serve`` verify them).
RUN_ARTEFACTS = ("folds.csv", "config.yaml", "oof_predictions.csv", "leaderboard.csv", "fold_scores.csv",
                 "fold_fits.csv", "nested_selection.csv", "operating_point.csv", "model.skops", "data_summary.json",
                 "applicability.npz", "applicability_oof.csv", "conformal_oof.csv")


def write_fit(result: FitResult, out_dir) -> Path:
    """Write a computed fit into the run directory (every file through vitfeat.atomic).

    Parameters
    ----------
    result : FitResult
        From :func:`compute_fit`.
    out_dir : path-like
        The run directory (created).

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_folds(result.plan, out / "folds.csv")
    write_text(out / "config.yaml", yaml.safe_dump(result.config, sort_keys=False))
    write_csv(result.oof, out / "oof_predictions.csv")
    write_csv(result.leaderboard, out / "leaderboard.csv")
    write_csv(result.fold_scores, out / "fold_scores.csv")
    write_csv(result.fold_fits, out / "fold_fits.csv")
    if result.nested_selection is not None:
        write_csv(result.nested_selection, out / "nested_selection.csv")
    if result.operating_point is not None:
        write_csv(result.operating_point, out / "operating_point.csv")
    for name, table in result.tables.items():
        write_csv(table, out / name)
    save_model(result.model, out / "model.skops")
    if result.scope is not None:
        from vitfeat.pipelines.applicability import write_scope

        write_scope(result.scope, out)
    write_json(result.summary, out / "data_summary.json")
    written = [name for name in RUN_ARTEFACTS if (out / name).is_file()] + list(result.tables)
    write_json(dict(result.run, artefacts=artefact_hashes(out, written)), out / "run.json")
    return out


def fit_run(features, out_dir, config: FitConfig | None = None, *, progress: bool = True) -> Path:
    """Cross-validate ``config.pipelines`` on the feature table and write the run directory and its report.

    Parameters
    ----------
    features : path-like
        Feature table from ``vitfeat extract``.
    out_dir : path-like
        The run directory; an interrupted run in it resumes from ``.cv_cache``.
    config : FitConfig, optional
        What to run (defaults: :class:`FitConfig`).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    from vitfeat.pipelines.report import write_report

    result = compute_fit(features, config or FitConfig(), Path(out_dir) / ".cv_cache", progress=progress)
    out = write_fit(result, out_dir)
    write_report(out)
    return out
