"""The histogram-bins rule (`zoo.gbm_bins`) on a small real table: PH2 melanoma vs rest.

The rule gives scikit-learn's HGB 8 training rows per bin (63 bins below 512 rows) and LightGBM
and XGBoost 16 (31 bins below 512 rows) instead of the libraries' 255. It was chosen on synthetic
tables for the speed of wide fits; small real tables are where this field's data sets are, so this
checks it does not cost accuracy there.
Each gradient-boosting pipeline is fitted twice on the same patient-grouped folds (255 bins, and
the rule's bins for the training part's rows), for several repeats of 5-fold CV; it prints both
mean AUROCs and the paired difference with its spread over repeats.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gbm_bins.py [--repeats 10] [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

from vitfeat.dataset import load_manifest
from vitfeat.evaluation.folds import make_folds
from vitfeat.featurize import extract
from vitfeat.featurize.table import read_feature_table
from vitfeat.importers import import_folder
from vitfeat.pipelines.zoo import CLASSIFIERS, gbm_bins, make_pipeline

PH2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ph2"
PIPELINES = ("lgbm", "xgb", "hgb", "lgbm+smote", "lgbm+borderline")


def fold_auroc(pipeline: str, x: np.ndarray, y: np.ndarray, train: np.ndarray, n_rows: int | None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM's feature-name notes
        model = make_pipeline(pipeline, 0, n_rows=n_rows).fit(x[train], y[train])
    return roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1])


def rule_bins(pipeline: str, n_rows: int) -> int:
    """The histogram bins the rule gives ``pipeline``'s classifier for ``n_rows`` training rows."""
    return gbm_bins(n_rows, CLASSIFIERS[pipeline.split("+")[0]].rows_per_bin)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    args = ap.parse_args()
    if not PH2.is_dir():
        raise SystemExit(f"{PH2} not found: this benchmark needs ../shared/data/ph2 beside the repository")

    frame = import_folder(PH2, "labels-csv")
    frame["melanoma"] = frame["label"].where(frame["label"] == "melanoma", "other")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(frame, root=PH2, targets=["melanoma"])
        extract(manifest, Path(tmp) / "features.parquet", masks="given", jobs=args.jobs, targets=["melanoma"],
                progress=False)
        table, _ = read_feature_table(Path(tmp) / "features.parquet")
    features = [c for c in table.columns if c.startswith("clinical_")]
    x = table[features].to_numpy(float)
    y = (table["melanoma"] == "melanoma").to_numpy(int)
    plan = make_folds(table, "melanoma", n_splits=5, repeats=args.repeats)
    case_ids = table["case_id"].astype(str)
    fold_of = [plan[plan["repeat"] == r].set_index("case_id").loc[case_ids, "fold"].to_numpy()
               for r in range(args.repeats)]
    splits = [fold_of[r] == k for r in range(args.repeats) for k in range(5)]  # test parts
    print(f"PH2 melanoma vs rest: {len(y)} cases ({y.sum()} melanomas) x {len(features)} handcrafted features; "
          f"{args.repeats} x 5-fold CV grouped by patient")
    print(f"  {'pipeline':<16} {'rule bins':>9} {'255 bins':>9} {'rule':>8} {'rule - 255':>11} {'SD':>7} {'SE':>7}"
          "  (over repeats)")
    for pipeline in args.pipelines.split(","):
        tasks = [(~test, n_rows) for test in splits for n_rows in (None, int((~test).sum()))]  # 255 bins, rule
        scores = Parallel(n_jobs=args.jobs)(delayed(fold_auroc)(pipeline, x, y, train, n) for train, n in tasks)
        full = np.array(scores[0::2]).reshape(args.repeats, 5).mean(axis=1)
        rule = np.array(scores[1::2]).reshape(args.repeats, 5).mean(axis=1)
        diff = rule - full
        print(f"  {pipeline:<16} {rule_bins(pipeline, int(len(y) * 0.8)):9d} {full.mean():9.4f} {rule.mean():8.4f} "
              f"{diff.mean():+11.4f} "
              f"{diff.std(ddof=1):7.4f} {diff.std(ddof=1) / np.sqrt(args.repeats):7.4f}")


if __name__ == "__main__":
    main()
