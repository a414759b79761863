"""Synthetic feature tables shaped like ``vitfeat extract`` output, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

from vitfeat.featurize.table import write_features

FAMILY_NAMES = [("pair", "area", "wood_area_ratio"), ("wood", "border", "sharpness"),
                ("clinical", "border", "sharpness"),
                ("wood", "satellites", "count"), ("clinical", "color", "L_mean"), ("wood", "intensity", "uniformity"),
                ("clinical", "shape", "solidity"), ("wood", "texture", "glcm_contrast"),
                ("clinical", "texture", "wavelet_L2_HH_energy"), ("clinical", "color", "a_mean")]


def feature_names(n: int) -> list[str]:
    """``n`` distinct names in the ``<modality>_<family>_<feature>`` scheme.

    Parameters
    ----------
    n : int
        How many.

    Returns
    -------
    list of str
    """
    names = []
    for i in range(n):
        mod, fam, feat = FAMILY_NAMES[i % len(FAMILY_NAMES)]
        names.append(f"{mod}_{fam}_{feat}" + (f"_{i // len(FAMILY_NAMES)}" if i >= len(FAMILY_NAMES) else ""))
    return names


def make_feature_table(n_cases: int = 200, n_features: int = 20, *, n_informative: int = 4, n_classes: int = 2,
                       cases_per_patient: int = 2, weights=None, class_sep: float = 1.0, seed: int = 0,
                       class_names=None, missing_rate: float = 0.0) -> pd.DataFrame:
    """Cases with patient groups (a patient's cases share the label); the informative features
    are the first columns, named like area-ratio and border features.

    Parameters
    ----------
    n_cases, n_features, n_informative, n_classes : int
        Table size and how many columns carry signal.
    cases_per_patient : int, default 2
        Cases per patient.
    weights : sequence of float, optional
        Class proportions.
    class_sep : float, default 1.0
        Separation of the classes.
    seed : int, default 0
        Random seed.
    class_names : sequence of str, optional
        Label names (default ``stable``/``active`` for two classes).
    missing_rate : float, default 0.0
        Share of feature values set to NaN.

    Returns
    -------
    pandas.DataFrame
    """
    X, y = make_classification(n_samples=n_cases, n_features=n_features, n_informative=n_informative,
                               n_redundant=0, n_repeated=0, n_classes=n_classes, weights=weights,
                               class_sep=class_sep, shuffle=False, random_state=seed)
    rng = np.random.default_rng(seed)
    names = class_names or (["stable", "active"] if n_classes == 2 else [f"class_{k}" for k in range(n_classes)])
    order = np.argsort(y, kind="stable")  # patients are formed within a class so they share a label
    patient = np.empty(n_cases, dtype=object)
    patient[order] = [f"P{i // cases_per_patient:04d}" for i in range(n_cases)]
    if missing_rate:
        X[rng.random(X.shape) < missing_rate] = np.nan
    frame = pd.DataFrame(X, columns=feature_names(n_features))
    frame.insert(0, "case_id", [f"C{i:05d}" for i in range(n_cases)])
    frame.insert(1, "patient_id", patient.astype(str))
    frame.insert(2, "label", np.asarray(names)[y])
    frame.insert(3, "error", "")
    return frame


def write_feature_table(frame: pd.DataFrame, path, provenance: dict | None = None) -> Path:
    """Write a synthetic table with vitfeat's one writer (Parquet, or CSV + sidecar by suffix).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : path-like
        Where.
    provenance : dict, optional
        Its provenance (default: a synthetic one).

    Returns
    -------
    pathlib.Path
    """
    fmt = "csv" if Path(path).suffix.lower() == ".csv" else "parquet"
    return write_features(frame, path, provenance or {"vitfeat_version": "synthetic", "families": {}}, fmt)
