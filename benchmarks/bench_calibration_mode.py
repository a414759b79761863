"""Ensemble or single calibration for ``fit --calibrate``: calibration slope, intercept and Brier score
of the out-of-fold predictions, each mode on the same folds.

``single``: one sigmoid/isotonic calibrator fitted on the pooled patient-grouped inner out-of-fold
predictions of the training part, applied to one model refitted on the whole training part.
``ensemble``: one (model, calibrator) pair per inner fold, probabilities averaged (scikit-learn's default).

Data: a synthetic feature table (``vitfeat.pipelines.demo_data``), features of ``vitfeat synth`` photos
(extracted here at ``--synth-size`` px), and optionally a real feature table (``--features``, e.g.
vitiligo-cls extracted with ``vitfeat extract --max-side 256``).

    .venv/bin/python benchmarks/bench_calibration_mode.py --quick
    .venv/bin/python benchmarks/bench_calibration_mode.py --features artifacts/vcls/features.parquet
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd


def _synth_features(out: Path, n: int, size: int) -> Path:
    from vitfeat.featurize import extract
    from vitfeat.synth import generate

    manifest = generate(out / "synth", n=n, seed=3, size=size, jobs=1, progress=False, label_noise=0.1)
    features = out / "synth_features.parquet"
    extract(manifest, features, masks="given", jobs=1, progress=False)
    return features


def _table(out: Path, n: int) -> Path:
    from vitfeat.pipelines.demo_data import make_feature_table, write_feature_table

    frame = make_feature_table(n, 20, n_informative=4, cases_per_patient=1, seed=5, class_sep=0.7, weights=[0.6, 0.4],
                               class_names=["stable", "active"])
    return write_feature_table(frame, out / "table.parquet")


def run(datasets: dict, pipelines: list[str], folds: int, out: Path) -> pd.DataFrame:
    """One row per (data, pipeline, mode): slope, intercept, Brier (pooled out of fold, fold SD)."""
    from vitfeat.pipelines.select import FitConfig, fit_run

    rows = []
    for name, features in datasets.items():
        for mode in ("single", "ensemble"):
            config = FitConfig(pipelines=pipelines, folds=folds, n_boot=0, nested=False, calibrate=f"sigmoid:{mode}")
            run_dir = fit_run(features, out / f"{name}-{mode}", config, progress=False)
            board = pd.read_csv(run_dir / "leaderboard.csv")
            for r in board.itertuples():
                rows.append({"data": name, "pipeline": r.pipeline, "mode": mode,
                             "slope": r.calibration_slope_value, "intercept": r.calibration_intercept_value,
                             "brier": r.brier_value, "auroc": r.auroc_value})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small data, two pipelines, 3 folds (about a minute)")
    ap.add_argument("--features", action="append", default=[], metavar="NAME=PATH",
                    help="a real feature table to add, e.g. vitiligo-cls=features.parquet")
    ap.add_argument("--no-synth", action="store_true", help="skip the vitfeat synth photos")
    ap.add_argument("--synth-size", type=int, default=128)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_calibration_mode_"))
    out.mkdir(parents=True, exist_ok=True)
    n = 160 if args.quick else 400
    datasets = {"table": _table(out, n)}
    if not args.no_synth:
        datasets["synth"] = _synth_features(out, 80 if args.quick else 200, args.synth_size)
    for spec in args.features:
        name, _, path = spec.partition("=")
        datasets[name] = Path(path)
    pipelines = ["logreg", "lgbm"] if args.quick else ["logreg", "lgbm", "rf", "svm"]
    table = run(datasets, pipelines, 3 if args.quick else 5, out)
    pd.set_option("display.width", 160)
    print(table.round(3).to_string(index=False))
    wide = table.assign(slope_error=(table["slope"] - 1).abs(), intercept_error=table["intercept"].abs())
    print("\nmean over data and pipelines (|slope - 1|, |intercept|, Brier):")
    print(wide.groupby("mode")[["slope_error", "intercept_error", "brier"]].mean().round(4).to_string())
    from vitfeat.pipelines.persist import write_csv

    write_csv(table, out / "calibration_mode.csv")
    print(f"\n{out / 'calibration_mode.csv'}")


if __name__ == "__main__":
    main()
