"""How separable the demo's synthetic classes are (issue #27: the demo must not show 100 % confident
answers). Draws the demo's data set (:data:`vitfeat.demo.DEMO_SYNTH`, at ``--size`` px), extracts four
cheap families and fits logreg + rf with 5-fold patient-grouped CV; prints the out-of-fold AUROC, the
balanced accuracy with its CI, and the share of out-of-fold answers above 95 % / 99 % confidence.

    python benchmarks/bench_demo_overlap.py --out /tmp/demo-overlap            # 256 px, about 1 min on 2 cores
    python benchmarks/bench_demo_overlap.py --out /tmp/demo-overlap --size 384  # the demo's own size
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> None:
    """Run the check and print the numbers.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from vitfeat.demo import DEMO_SYNTH
    from vitfeat.featurize import extract
    from vitfeat.pipelines.select import FitConfig, fit_run
    from vitfeat.synth import generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="scratch folder")
    parser.add_argument("--size", type=int, default=256, help="photo side, px (the demo uses 384)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.time()
    cfg = dict(DEMO_SYNTH, size=args.size)
    manifest = generate(args.out / "data", jobs=args.jobs, progress=False, **cfg)
    extract(manifest, args.out / "features.parquet", families=["shape", "pair", "wood", "color"], progress=False,
            jobs=args.jobs)
    run = fit_run(args.out / "features.parquet", args.out / "run",
                  FitConfig(pipelines=["logreg", "rf"], folds=5, n_boot=200, nested=False, jobs=args.jobs),
                  progress=False)
    board = pd.read_csv(run / "leaderboard.csv").set_index("pipeline")
    oof = pd.read_csv(run / "oof_predictions.csv")
    print(f"demo synth {cfg}")
    for name, g in oof.groupby("pipeline"):
        top = g[["proba_active", "proba_stable"]].max(axis=1)
        ba = board.loc[name]
        print(f"{name:7s} OOF AUROC {roc_auc_score(g['y_true'] == 'active', g['proba_active']):.3f}  balanced accuracy "
              f"{ba['balanced_accuracy_mean']:.3f} ({ba['balanced_accuracy_ci_low']:.3f}-"
              f"{ba['balanced_accuracy_ci_high']:.3f})  answers >95%: {(top > 0.95).mean():.1%}, >99%: "
              f"{(top > 0.99).mean():.1%}")
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
