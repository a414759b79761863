"""PH2 dermoscopy with the given lesion masks: leaderboards for the 3-class diagnosis (common
nevus / atypical nevus / melanoma) and for melanoma vs rest, from `vitfeat extract` features.

PH2 has one image per patient, so patient_id = case_id. The numbers are a sanity check of the
pipeline on real images (dermoscopy, not vitiligo): 160 cases, 32 melanomas.

    .venv/bin/python benchmarks/bench_ph2_fit.py [--jobs 2] [--out artifacts/bench_ph2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PH2 = REPO.parent / "shared" / "data" / "ph2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "bench_ph2"))
    ap.add_argument("--pipelines", default="all")
    ap.add_argument("--families", default=None, help="extract families (default: all single-image defaults)")
    args = ap.parse_args()
    if not PH2.is_dir():
        raise SystemExit(f"{PH2} not found: this benchmark needs ../shared/data/ph2 beside the repository")

    from vitfeat.dataset import load_manifest
    from vitfeat.featurize import extract
    from vitfeat.importers import import_folder
    from vitfeat.pipelines.select import FitConfig, fit_run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame = import_folder(PH2, "labels-csv")
    frame["melanoma"] = frame["label"].where(frame["label"] == "melanoma", "other")
    manifest = load_manifest(frame, root=PH2, targets=["label", "melanoma"])

    features = out / "features.parquet"
    start = time.perf_counter()
    result = extract(manifest, features, masks="given", jobs=args.jobs, families=args.families,
                     targets=["label", "melanoma"])
    print(f"extract: {len(result.frame)} cases, {result.n_failed} failed, {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    run = fit_run(features, out / "run", FitConfig(targets=["label", "melanoma"], pipelines=[args.pipelines],
                                                   folds=5, repeats=1, jobs=args.jobs))
    print(f"fit: {time.perf_counter() - start:.0f} s; report: {run / 'report.html'}")
    board = pd.read_csv(run / "leaderboard.csv")
    for target, part in board.groupby("target", sort=False):
        print(f"\n{target}: fold mean ± fold SD; pooled OOF value [patient-bootstrap 95 % CI]")
        for r in part.itertuples():
            print(f"  {r.rank:>2}. {r.pipeline:<18} macro-F1 {r.macro_f1_mean:.3f} ± {r.macro_f1_sd:.3f}; "
                  f"{r.macro_f1_value:.3f} [{r.macro_f1_ci_low:.2f}-{r.macro_f1_ci_high:.2f}]   "
                  f"AUROC {r.auroc_mean:.3f} ± {r.auroc_sd:.3f}; {r.auroc_value:.3f} "
                  f"[{r.auroc_ci_low:.2f}-{r.auroc_ci_high:.2f}]")

if __name__ == "__main__":
    main()
