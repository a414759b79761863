"""The features that pushed one prediction most, in plain words, with the case's percentile among
the run's own cases (all of them and each class), which way each pushes, and whether it lies inside
the range of the training cases (a detail of the table: the verdict on the whole case is the
applicability check's, :mod:`vitfeat.app.scope`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def describe(column: str) -> str:
    """Plain-language description of a feature column (featurize's declaration when available)."""
    from vitfeat.pipelines.explain import describe_feature

    try:
        from vitfeat.featurize import describe_column
    except ImportError:  # featurize without declarations: explain's name-based wording
        return describe_feature(column)
    try:
        return describe_column(column)
    except (KeyError, ValueError):  # a column no family declares (e.g. a deep or custom family)
        return describe_feature(column)


def _percentile(values: np.ndarray, x: float) -> float | None:
    values = values[np.isfinite(values)]
    if not len(values) or not np.isfinite(x):
        return None
    return float(100.0 * ((values < x).sum() + 0.5 * (values == x).sum()) / len(values))


def top_features(run, features_path, target: str, top: int = 5) -> tuple[list[dict], list[str]]:
    """``(rows, range_notes)``: the ``top`` features by |SHAP| toward the predicted class (or, for
    models without an exact explainer, by distance from the training median in IQRs), and the
    features of the case outside the training range (notes, not a verdict: whether the case as a
    whole is in scope is the applicability check's answer).

    Each row has ``feature``, ``description``, ``value``, ``push``, ``toward`` (the class it pushes
    toward), ``percentile`` (among all training cases), ``percentile_<class>`` and ``range``
    (``inside``, ``below the training range``, ``above the training range`` or ``unknown``).

    Parameters
    ----------
    run : vitfeat.app.RunInfo
        The run.
    features_path : path-like or pandas.DataFrame
        The case's feature table (a file, or held in memory).
    target : str
        Which target.
    top : int, default 5
        How many features.
    """
    from vitfeat.pipelines.explain import shap_values
    from vitfeat.pipelines.persist import read_feature_table

    bundle, schema = run.bundle, run.bundle["features"]
    frame = features_path if isinstance(features_path, pd.DataFrame) else read_feature_table(features_path)[0]
    X = frame[schema].to_numpy(dtype=float, copy=True)[:1]
    X[~np.isfinite(X)] = np.nan
    entry = bundle["targets"][target]
    model, classes = entry["model"], entry["classes"]
    train = run.training_table
    warnings = range_notes(train, schema, X[0]) if train is not None else [
        "the run's feature table has moved: percentiles and range checks are unavailable"]
    # Explained with the run's cases as background (a lone case would be its own baseline: all zeros).
    background = (train[schema].to_numpy(dtype=float, copy=True)[:200] if train is not None
                  else np.empty((0, len(schema))))
    background[~np.isfinite(background)] = np.nan
    values, tnames, _, _ = shap_values(model, np.vstack([X, background]), schema, classes, entry.get("positive"))
    k = int(np.asarray(model.classes_)[model.predict_proba(X)[0].argmax()])
    if values is not None:
        contrib = values[0, :, k]
        order = [j for j in np.argsort(-np.abs(contrib)) if tnames[j] in schema][:top]
        picked = [(tnames[j], float(contrib[j])) for j in order]
        basis = "SHAP"
    elif train is not None:
        med = train[schema].median()
        iqr = (train[schema].quantile(0.75) - train[schema].quantile(0.25)).replace(0, np.nan)
        z = ((pd.Series(X[0], index=schema) - med) / iqr).abs().dropna().sort_values(ascending=False)
        picked, basis = [(c, None) for c in z.index[:top]], "distance from the training median"
    else:
        return [], warnings
    rows = []
    for column, push in picked:
        value = float(X[0, schema.index(column)])
        if push is None or push >= 0:
            toward = classes[k]
        else:  # against the predicted class: toward the other one (or away from it, with several)
            toward = [c for c in classes if c != classes[k]][0] if len(classes) == 2 else f"away from {classes[k]}"
        row = {"feature": column, "description": describe(column), "value": value, "basis": basis,
               "push": push, "toward": toward, "percentile": None, "range": "unknown"}
        if train is not None and column in train.columns:
            seen = train[column].to_numpy(dtype=float)
            row["percentile"] = _percentile(seen, value)
            row["range"] = _where(seen, value)
        if train is not None and target in train.columns:
            for c in classes:
                row[f"percentile_{c}"] = _percentile(
                    train.loc[train[target].astype(str) == c, column].to_numpy(dtype=float), value)
        rows.append(row)
    return rows, warnings


def _where(seen: np.ndarray, x: float) -> str:
    seen = seen[np.isfinite(seen)]
    if not len(seen) or not np.isfinite(x):
        return "unknown"
    if x < seen.min():
        return "below the training range"
    return "above the training range" if x > seen.max() else "inside"


def range_notes(train: pd.DataFrame, schema: list[str], x: np.ndarray, show: int = 5) -> list[str]:
    """The case's features outside the range of the training cases, in words (at most ``show``, then a count).

    Columns empty in training (e.g. the Wood's features of a clinical-only model) are skipped.

    Parameters
    ----------
    train : pandas.DataFrame
        The run's feature table.
    schema : list of str
        The model's columns, in the order of ``x``.
    x : numpy.ndarray
        The case's values.
    show : int
        How many to name.

    Returns
    -------
    list of str
    """
    cols = [c for c in schema if c in train.columns]
    t = train[cols].to_numpy(dtype=float)
    seen = np.isfinite(t).any(axis=0)  # all-NaN columns have no range (and would warn "All-NaN slice")
    cols, t = [c for c, s in zip(cols, seen) if s], t[:, seen]
    lo, hi = np.nanmin(t, axis=0), np.nanmax(t, axis=0)
    xv = x[[schema.index(c) for c in cols]]
    out = [f"{describe(c)} ({c}) = {v:.3g}, outside the training range [{a:.3g}, {b:.3g}]"
           for c, v, a, b in zip(cols, xv, lo, hi) if np.isfinite(v) and (v < a or v > b)]
    if len(out) > show:
        out = out[:show] + [f"... and {len(out) - show} more feature(s) beyond the training range"]
    return out
