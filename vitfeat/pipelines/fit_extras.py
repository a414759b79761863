"""What ``fit`` adds around its cross-validation for a reviewer (issue #28), kept out of select.py:

* :func:`prepare` — checks the options against the data before any fit (a ``--positive`` that is no
  label, a metric that does not fit, a subgroup column with one value, a test split without every
  class) and splits off the held-out test rows (:mod:`vitfeat.pipelines.holdout`);
* :func:`finish` — after the fits: the paired comparisons (:mod:`vitfeat.pipelines.compare`), the test
  split scored once, the subgroup tables (:mod:`vitfeat.pipelines.subgroups`), the positive class and why,
  and the run's own provenance (:func:`run_provenance`).
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata

import pandas as pd

from vitfeat.evaluation.positive import positive_reason
from vitfeat.pipelines import compare, holdout, subgroups
from vitfeat.pipelines.nested import NAME as NESTED
from vitfeat.pipelines.selection_metric import check_metric

#: Libraries whose versions the report names.
LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "statsmodels", "lightgbm", "xgboost",
             "imbalanced-learn", "skops")

#: A numeric target with more distinct values than this looks like a measurement, not classes.
MAX_NUMERIC_CLASSES = 20


@dataclass
class Extras:
    """Tables, warnings and run.json entries that :func:`finish` adds to a fit.

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        Extra tables by file name.
    warnings : list of str
        Warnings for the run's report.
    meta : dict
        Entries merged into run.json.
    """

    tables: dict = field(default_factory=dict)  # file name -> DataFrame
    warnings: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def prepare(frame: pd.DataFrame, provenance: dict, config, source: str = "the feature table"):
    """Check the options against ``frame`` and split off the test rows (see the module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        The usable cases of the feature table.
    provenance : dict
        The table's provenance (its ``manifest`` supplies columns the table lacks).
    config : FitConfig
        The run's options (``positive``, ``metric``, ``subgroups``, ``test_split``, ``test_fraction``).
    source : str
        The table's name, for the messages.

    Returns
    -------
    tuple
        ``(train_frame, test_frame or None, split record or None)``; the frames keep the subgroup columns.
    """
    needed = list(config.subgroups or []) + ([config.test_split] if config.test_split else [])
    frame = subgroups.case_columns(frame, provenance, needed, source)
    classes = {t: sorted(frame[t].dropna().astype(str).unique()) for t in config.targets}
    for t in config.targets:
        numeric = pd.to_numeric(frame[t].dropna(), errors="coerce")
        if numeric.notna().all() and len(classes[t]) > MAX_NUMERIC_CLASSES:
            raise ValueError(f"{source}: target '{t}' has {len(classes[t])} distinct numbers, a measurement rather "
                             f"than classes; --metric {config.metric} scores classification")
    check_metric(config.metric)
    if config.positive is not None:
        binary = {t: c for t, c in classes.items() if len(c) == 2}
        if not any(str(config.positive) in c for c in binary.values()):
            listed = "; ".join(f"{t}: {', '.join(c)}" for t, c in binary.items()) or "no binary target"
            raise ValueError(f"--positive '{config.positive}' is not a class of any binary target ({listed})")
    subgroups.check_subgroup_columns(frame, config.subgroups or [])
    return holdout.split_frame(frame, config.targets, column=config.test_split, fraction=config.test_fraction,
                               seed=config.seed, source=source)


def run_provenance(config, features, table_hash: str) -> dict:
    """The run's own provenance: data file and hash, command line, versions, seed, date.

    Parameters
    ----------
    config : FitConfig
        The run's options (``seed``, ``metric`` and ``ci`` are recorded).
    features : path-like
        The feature table the run was fitted on.
    table_hash : str
        Its content hash.

    Returns
    -------
    dict
        ``data_file``, ``data_hash``, ``command``, ``vitfeat_version``, ``python``, ``libraries``
        (installed versions), ``seed``, ``date`` (UTC), ``metric`` and ``ci``.
    """
    from vitfeat._version import __version__

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"data_file": str(features), "data_hash": table_hash,
            "command": " ".join(shlex.quote(a) for a in sys.argv) if sys.argv and sys.argv[0] else "",
            "vitfeat_version": __version__, "python": platform.python_version(), "libraries": versions,
            "seed": config.seed, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metric": config.metric, "ci": config.ci}


def finish(config, *, frame: pd.DataFrame, test: pd.DataFrame | None, split_record: dict | None, models: dict,
           features: list[str], board: pd.DataFrame, oof: pd.DataFrame, fold_scores: pd.DataFrame,
           nested_picks: pd.DataFrame | None) -> Extras:
    """Everything :mod:`vitfeat.pipelines.select` writes beside its leaderboard for issue #28.

    Parameters
    ----------
    config : FitConfig
        The run's options.
    frame, test : pandas.DataFrame
        Training cases (with subgroup columns) and the held-out test cases (or None).
    split_record : dict or None
        From :func:`prepare`.
    models : dict
        ``{target: model entry}`` as in ``model.skops``.
    features : list of str
        Feature columns of the models.
    board, oof, fold_scores : pandas.DataFrame
        Leaderboard, out-of-fold predictions and fold scores of all targets.
    nested_picks : pandas.DataFrame or None
        ``nested_selection.csv``.

    Returns
    -------
    Extras
    """
    out = Extras()
    comparisons = []
    for target, entry in models.items():
        tboard = board[board["target"] == target]
        toof, tfolds = oof[oof["target"] == target], fold_scores[fold_scores["target"] == target]
        table = compare.compare_pipelines(toof, tfolds, tboard, positive=entry.get("positive"), metric=config.metric,
                                          exclude=[NESTED] + [n for n in tboard["pipeline"]
                                                              if n not in set(tfolds["pipeline"])])
        comparisons.append(table)
    if comparisons:
        out.tables["comparisons.csv"] = pd.concat(comparisons, ignore_index=True)
    out.meta["positive_reason"] = {t: positive_reason(m["classes"], m["positive"], config.positive)
                                   for t, m in models.items() if m.get("positive") is not None}
    out.meta["metric"] = config.metric
    out.meta["ci"] = config.ci
    if nested_picks is not None and len(nested_picks):
        out.meta["nested_pick_frequency"] = {
            t: part["picked"].value_counts().to_dict() for t, part in nested_picks.groupby("target")}
    if test is not None:
        predictions, metrics = holdout.score_test(models, test, features, n_boot=config.n_boot, seed=config.seed,
                                                  ci=config.ci)
        out.tables["test_predictions.csv"] = predictions
        out.tables["test_metrics.csv"] = metrics
        out.tables["test_split.csv"] = holdout.split_table(frame, test)
        out.meta["test_split"] = split_record
    if config.subgroups:
        tables = []
        both = pd.concat([frame, test], ignore_index=True) if test is not None else frame
        groups = both[["case_id"] + list(dict.fromkeys(config.subgroups))]
        for target, entry in models.items():
            chosen = oof[(oof["target"] == target) & (oof["pipeline"] == entry["pipeline"])]
            sources = [("cv", chosen)]
            if test is not None:
                tp = out.tables["test_predictions.csv"]
                sources.append(("test", tp[tp["target"] == target]))
            for name, rows in sources:
                table, warned = subgroups.subgroup_metrics(rows, groups, config.subgroups,
                                                           [str(c) for c in entry["classes"]], entry.get("positive"),
                                                           source=name)
                tables.append(table)
                out.warnings += [f"Target '{target}': {w}" for w in warned]
        out.tables["subgroup_metrics.csv"] = pd.concat(tables, ignore_index=True)
    return out
