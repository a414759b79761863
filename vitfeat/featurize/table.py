"""The feature table: assembly from per-case results, atomic writing with provenance, reading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

PROVENANCE_KEY = b"vitfeat"
FORMATS = ("parquet", "csv")




def assemble(manifest, results: list[dict], specs: list[tuple]) -> pd.DataFrame:
    """One row per manifest case: ids, targets, ``error``, then each family's columns in order."""
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
    """Write a feature table atomically; provenance goes into the Parquet schema metadata under
    ``vitfeat`` (for CSV into ``<path>.provenance.json`` beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    blob = json.dumps(provenance, sort_keys=True, default=str)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), PROVENANCE_KEY: blob.encode()})
        pq.write_table(table, tmp)
    elif fmt == "csv":
        frame.to_csv(tmp, index=False)
        side = path.with_name(path.name + ".provenance.json")
        side_tmp = side.with_name(f".{side.name}.tmp")
        side_tmp.write_text(blob)
        os.replace(side_tmp, side)
    else:
        raise ValueError(f"unknown format '{fmt}' (use {' or '.join(FORMATS)})")
    os.replace(tmp, path)
    return path


def read_features(path) -> tuple[pd.DataFrame, dict]:
    """Read a feature table and its provenance (empty dict when there is none)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        side = path.with_name(path.name + ".provenance.json")
        prov = json.loads(side.read_text()) if side.is_file() else {}
        return pd.read_csv(path, dtype={"case_id": str, "patient_id": str, "error": str}), prov
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    return table.to_pandas(), json.loads(meta) if meta else {}
