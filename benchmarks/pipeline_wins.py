"""Which default pipelines ever win: every default pipeline on several feature tables, same folds (issue #31).

For each table (a ``vitfeat extract`` feature table and a binary target; by default also the
synthetic table of ``bench_fit.py``) it cross-validates every pipeline of ``fit``'s default set on the
same patient-grouped 5 folds and prints one row per pipeline: its fold-mean AUROC on each table,
marked ``*`` for the best, ``=`` when DeLong's paired test of its pooled out-of-fold predictions
against the best one's finds no difference (p >= 0.05, :func:`vitfeat.evaluation.intervals.delong_paired`)
and ``<`` when it is worse; then its CPU seconds over all tables. A pipeline that is never best and
never tied with the best is a candidate to leave the default set; one that ties but costs much
more than another tied one is the next.

    python benchmarks/pipeline_wins.py --quick
    python benchmarks/pipeline_wins.py features_vitiligo.parquet:label ph2_features.parquet:melanoma \\
        --bench 300x900 --jobs 2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from vitfeat.evaluation.folds import make_folds
from vitfeat.evaluation.intervals import delong_paired
from vitfeat.evaluation.positive import positive_class
from vitfeat.pipelines import zoo
from vitfeat.pipelines.cv import cross_validate, feature_columns
from vitfeat.pipelines.demo_data import make_feature_table


def tables(specs: list, bench: str, seeds: str) -> dict:
    """``{name: (frame, target)}`` for the ``PATH:TARGET`` specs and the bench tables."""
    out = {}
    for spec in specs:
        path, _, target = spec.rpartition(":") if ":" in spec else (spec, "", "label")
        frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        if "error" in frame.columns:
            frame = frame[frame["error"].fillna("").astype(str) == ""]
        frame = frame.dropna(subset=[target]).reset_index(drop=True)
        if frame[target].nunique() != 2:
            raise SystemExit(f"{path}: target '{target}' has {frame[target].nunique()} classes; use a binary one")
        out[f"{Path(path).parent.name}/{Path(path).stem}:{target}"] = (frame, target)
    if bench:
        cases, features = (int(v) for v in bench.lower().split("x"))
        for seed in (int(s) for s in seeds.split(",")):
            out[f"bench {cases}x{features} seed {seed}"] = (make_feature_table(
                cases, features, n_informative=10, cases_per_patient=2, weights=[0.7], seed=seed,
                missing_rate=0.01), "label")
    return out


def score_table(frame: pd.DataFrame, target: str, pipelines: list, jobs: int) -> pd.DataFrame:
    """Per pipeline: fold-mean AUROC, DeLong p against the best pipeline, fit CPU seconds."""
    from sklearn.metrics import roc_auc_score

    X = frame[feature_columns(frame)].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    y = frame[target].astype(str).to_numpy()
    classes = sorted(np.unique(y))
    positive = positive_class(classes, y, target=target)
    plan = make_folds(frame, [target], n_splits=5, seed=0)
    oof, info, failures = cross_validate(X, y, frame["patient_id"], frame["case_id"], plan, pipelines,
                                         classes=classes, n_jobs=jobs, progress=False)
    column = f"proba_{positive}"
    auroc = {name: float(np.mean([roc_auc_score(part["y_true"] == positive, part[column])
                                  for _, part in rows.groupby("fold")]))
             for name, rows in oof.groupby("pipeline")}
    best = max(auroc, key=auroc.get)
    ref = oof[oof["pipeline"] == best].set_index("case_id")
    rows = []
    for name, part in oof.groupby("pipeline"):
        part = part.set_index("case_id").loc[ref.index]
        test = delong_paired(ref["y_true"].to_numpy() == positive, part[column].to_numpy(), ref[column].to_numpy())
        rows.append({"pipeline": name, "auroc": auroc[name], "p_vs_best": test["p_value"], "best": name == best,
                     "cpu_s": float(info.loc[info["pipeline"] == name, "cpu_time"].sum())})
    for f in failures:
        rows.append({"pipeline": f["pipeline"], "auroc": np.nan, "p_vs_best": np.nan, "best": False, "cpu_s": np.nan})
    return pd.DataFrame(rows).drop_duplicates("pipeline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="*", metavar="PATH:TARGET")
    ap.add_argument("--bench", default="300x900", help="bench_fit.py's synthetic table CASESxFEATURES ('' for none)")
    ap.add_argument("--bench-seeds", default="0")
    ap.add_argument("--pipelines", default="all")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="bench table 120 x 40 only, 4 pipelines")
    ap.add_argument("--csv", help="write the long table here")
    args = ap.parse_args()
    if args.quick:
        args.tables, args.bench, args.pipelines = [], "120x40", "logreg,rf,lgbm,hgb"
    pipelines = zoo.expand_names(args.pipelines)
    results = []
    for name, (frame, target) in tables(args.tables, args.bench, args.bench_seeds).items():
        result = score_table(frame, target, pipelines, args.jobs).assign(table=name)
        print(f"{name}: {len(frame)} cases, best {result.loc[result['best'], 'pipeline'].iloc[0]} "
              f"({result['auroc'].max():.3f})", flush=True)
        results.append(result)
    long = pd.concat(results, ignore_index=True)
    if args.csv:
        long.to_csv(args.csv, index=False)
    names = list(dict.fromkeys(long["table"]))
    print("\nfold-mean AUROC per table: * best, = not different from the best (DeLong p >= 0.05), < worse")
    print("  " + " | ".join(f"[{i}] {n}" for i, n in enumerate(names)))
    print(f"  {'pipeline':<18} " + " ".join(f"{f'[{i}]':>8}" for i in range(len(names)))
          + "   best  tied  CPU s")
    for pipeline in pipelines:
        rows = long[long["pipeline"] == pipeline].set_index("table")
        cells, best, tied = [], 0, 0
        for n in names:
            if n not in rows.index or not np.isfinite(rows.loc[n, "auroc"]):
                cells.append(f"{'failed':>8}")
                continue
            r = rows.loc[n]
            mark = "*" if r["best"] else ("=" if r["p_vs_best"] >= 0.05 else "<")
            best += bool(r["best"])
            tied += mark in "*="
            cells.append(f"{r['auroc']:.3f}{mark:>2}".rjust(8))
        print(f"  {pipeline:<18} " + " ".join(cells) + f"   {best:>4}  {tied:>4}  {rows['cpu_s'].sum():6.1f}")


if __name__ == "__main__":
    main()
