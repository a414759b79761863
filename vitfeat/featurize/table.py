"""The feature table: assembly from per-case results, atomic writing with provenance, reading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.atomic import atomic_path, write_text
from vitfeat.atomic import write_csv as atomic_write_csv
from vitfeat.dataset import id_strings

PROVENANCE_KEY = b"vitfeat"
FORMATS = ("parquet", "csv")


def assemble(manifest, results: list[dict], specs: list[tuple]) -> pd.DataFrame:
    """One row per manifest case: ids, targets, ``error``, then each family's columns in order.

    Parameters
    ----------
    manifest : vitfeat.dataset.Manifest
        The cases, in order.
    results : list of dict
        The engine's per-case results (``features`` by family, ``errors``), in the manifest's order.
    specs : list of tuple
        ``(family, version, config)`` of each family, in output order.

    Returns
    -------
    pandas.DataFrame
    """
    columns: dict[str, list[str]] = {s[0]: [] for s in specs}
    for res in results:
        for name in columns:
            if not columns[name] and name in res["features"]:
                columns[name] = list(res["features"][name])
    feature_cols = [c for name in columns for c in columns[name]]
    base = manifest.frame[["case_id", "patient_id"] + list(manifest.targets)].reset_index(drop=True).copy()
    base["error"] = ["; ".join(r["errors"]) for r in results]
    values = np.full((len(results), len(feature_cols)), np.nan)
    index = {c: i for i, c in enumerate(feature_cols)}
    for row, res in enumerate(results):
        for feats in res["features"].values():
            for k, v in feats.items():
                if k in index:
                    values[row, index[k]] = v
    features = pd.DataFrame(values, columns=feature_cols)
    return pd.concat([base, features], axis=1)


def write_features(frame: pd.DataFrame, path, provenance: dict, fmt: str = "parquet") -> Path:
    """Write a feature table atomically (through :mod:`vitfeat.atomic`) with its provenance.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : path-like
        Where to write it.
    provenance : dict
        How it was extracted (families, versions, settings, ``max_side``, masks): stored in the Parquet
        schema metadata under ``vitfeat``, or for CSV in the sidecar ``<path>.provenance.json``.
    fmt : {"parquet", "csv"}
        File format.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    blob = json.dumps(provenance, sort_keys=True, default=str)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), PROVENANCE_KEY: blob.encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    elif fmt == "csv":
        write_text(provenance_sidecar(path), blob)  # first: a table never appears without its settings
        atomic_write_csv(path, frame)
    else:
        raise ValueError(f"unknown format '{fmt}' (use {' or '.join(FORMATS)})")
    return path


def provenance_sidecar(path) -> Path:
    """The JSON file beside a CSV feature table that holds its provenance.

    Parameters
    ----------
    path : path-like
        The CSV table.

    Returns
    -------
    pathlib.Path
        ``<path>.provenance.json``.
    """
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def read_feature_table(path) -> tuple[pd.DataFrame, dict]:
    """Read a feature table (Parquet or CSV) and its provenance: the one reader of vitfeat.

    Parameters
    ----------
    path : path-like
        A ``.parquet``/``.pq`` or ``.csv`` table written by ``extract`` (or by hand).

    Returns
    -------
    frame : pandas.DataFrame
        The table, ``case_id`` and ``patient_id`` as strings (``patient_id`` defaults to ``case_id``).
    provenance : dict
        The Parquet metadata under ``vitfeat`` or the CSV's sidecar; empty when there is none.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, another suffix, or no ``case_id`` column (named with the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature table not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid / ArrowIOError derive from these
            raise ValueError(f"{path}: not a readable Parquet table (truncated, damaged or not Parquet): "
                             f"{exc}") from None
        meta = (table.schema.metadata or {}).get(PROVENANCE_KEY)
        frame, provenance = table.to_pandas(), json.loads(meta) if meta else {}
    elif suffix == ".csv":
        side = provenance_sidecar(path)
        provenance = json.loads(side.read_text()) if side.is_file() else {}
        frame = pd.read_csv(path, dtype={"case_id": str, "patient_id": str, "error": str})
    else:
        raise ValueError(f"{path}: feature tables are .parquet (or .csv), not '{path.suffix}'")
    if "case_id" not in frame.columns:
        raise ValueError(f"{path}: feature table has no 'case_id' column")
    frame["case_id"] = id_strings(frame["case_id"]).astype(str)  # 7, not 7.0, for ids stored as numbers
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    frame["patient_id"] = id_strings(frame["patient_id"]).fillna(frame["case_id"]).astype(str)
    return frame, provenance


#: The engine's historical name for :func:`read_feature_table`.
read_features = read_feature_table


def as_feature_table(features) -> tuple[pd.DataFrame, dict, str, str | None]:
    """A feature table given as a path or as a DataFrame, normalised the way :func:`read_feature_table` reads it.

    Parameters
    ----------
    features : path-like or pandas.DataFrame
        A table written by ``extract`` or one held in memory (``FeatureExtractor``'s output); a
        DataFrame's ``attrs["vitfeat"]`` is taken as its provenance.

    Returns
    -------
    frame : pandas.DataFrame
        The table (a copy for a DataFrame), ``case_id`` and ``patient_id`` as strings.
    provenance : dict
        Its provenance (empty when unknown).
    source : str
        How messages name it: the path, or ``"feature DataFrame"``.
    path : str or None
        The resolved path; None for a DataFrame.
    """
    if not isinstance(features, pd.DataFrame):
        frame, provenance = read_feature_table(features)
        return frame, provenance, str(features), str(Path(features).resolve())
    frame = features.copy()
    if "case_id" not in frame.columns:
        raise ValueError("feature DataFrame has no 'case_id' column")
    frame["case_id"] = frame["case_id"].astype(str)
    if "patient_id" not in frame.columns:
        frame["patient_id"] = frame["case_id"]
    frame["patient_id"] = frame["patient_id"].fillna(frame["case_id"]).astype(str)
    return frame.reset_index(drop=True), dict(features.attrs.get("vitfeat") or {}), "feature DataFrame", None


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a table held in memory (values, column names and order).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.

    Returns
    -------
    str
        Hex digest.
    """
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
