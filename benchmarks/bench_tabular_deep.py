"""Tabular deep models against the gradient-boosting pipelines on the same patient-grouped folds.

RealMLP (``realmlp``) and TabM (``tabm``) against ``lgbm``, ``xgb`` and ``hgb``: AUROC (pooled out of
fold, and the mean over folds) and fit time per pipeline, on a synthetic table
(:func:`vitfeat.pipelines.demo_data.make_feature_table`) and on the feature tables of the real images in
``../shared/data`` (``vitfeat extract``; features cached under ``--out``):

- ``ph2``: PH2 dermoscopy, melanoma vs the rest (given masks; one image per patient);
- ``isic``: ISIC 2017 subset, nevus vs the rest (given masks; one image per patient);
- ``vitiligo-cls``: vitiligo vs normal skin thumbnails (automatic masks; each photo its own group).

Every pipeline is scored on one fold plan per table (StratifiedGroupKFold by patient) through
:func:`vitfeat.pipelines.cv.cross_validate`, the engine ``vitfeat fit`` uses: preprocessing and early
stopping are fitted on each training part only.

    .venv/bin/python benchmarks/bench_tabular_deep.py --quick          # synth 150 x 40 + PH2 (3 families), 3 folds
    .venv/bin/python benchmarks/bench_tabular_deep.py --jobs 2         # synth 400 x 200 + all three tables, 5 folds
    .venv/bin/python benchmarks/bench_tabular_deep.py --tables synth --synth-size 600x1800
    .venv/bin/python benchmarks/bench_tabular_deep.py --quick --reference   # + pytabkit's implementations

Writes ``<out>/results.csv`` and prints one table per data set.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VITFEAT_SHARED_DATA", REPO.parent / "shared" / "data"))
PIPELINES = "realmlp,tabm,lgbm,xgb,hgb"
#: (folder, masks, target rule, positive class) of each real table.
REAL = {
    "ph2": ("ph2", "given", lambda lab: np.where(lab == "melanoma", "melanoma", "other"), "melanoma"),
    "isic": ("isic2017", "given", lambda lab: np.where(lab == "nevus", "nevus", "other"), "other"),
    "vitiligo-cls": ("vitiligo-cls", "auto", lambda lab: np.asarray(lab, dtype=str), "vitiligo"),
}


def synth_table(size: str, seed: int = 0) -> tuple[pd.DataFrame, str]:
    from vitfeat.pipelines.demo_data import make_feature_table

    n, p = (int(v) for v in size.lower().split("x"))
    frame = make_feature_table(n_cases=n, n_features=p, n_informative=max(4, p // 20), seed=seed,
                               missing_rate=0.02)
    return frame, "active"


def real_table(name: str, out: Path, families, jobs: int) -> tuple[pd.DataFrame, str]:
    from vitfeat.dataset import load_manifest
    from vitfeat.featurize import extract
    from vitfeat.importers import import_folder

    folder, masks, rule, positive = REAL[name]
    root = SHARED / folder
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found (set VITFEAT_SHARED_DATA to the shared data folder)")
    tag = "-".join(families) if families else "default"
    path = out / f"{name}-{tag}.parquet"
    if not path.is_file():
        frame = import_folder(root, "labels-csv")
        frame["target"] = rule(frame["label"].astype(str).to_numpy())
        manifest = load_manifest(frame, root=root, targets=["target"])
        start = time.perf_counter()
        extract(manifest, path, masks=masks, jobs=jobs, families=families, targets=["target"], progress=False)
        print(f"  extracted {name} in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    frame = pd.read_parquet(path)
    if "error" in frame.columns:
        frame = frame[frame["error"].fillna("").astype(str).str.strip() == ""].reset_index(drop=True)
    return frame, positive


def score(frame: pd.DataFrame, positive: str, pipelines: list[str], folds: int, jobs: int, seed: int) -> pd.DataFrame:
    from vitfeat.evaluation.folds import make_folds
    from vitfeat.evaluation.metrics import proba_columns
    from vitfeat.pipelines.cv import cross_validate, feature_columns

    cols = feature_columns(frame)
    X = frame[cols].to_numpy(dtype=float, copy=True)
    X[~np.isfinite(X)] = np.nan
    target = "target" if "target" in frame.columns else "label"
    y = frame[target].astype(str).to_numpy()
    classes = sorted(np.unique(y))
    plan = make_folds(frame, target, n_splits=folds, seed=seed)
    oof, info, failures = cross_validate(X, y, frame["patient_id"].astype(str), frame["case_id"], plan, pipelines,
                                         classes=classes, n_jobs=jobs, seed=seed, progress=False, target=target)
    for failure in failures:
        print(f"  FAILED {failure}")
    column = proba_columns(classes)[classes.index(positive)]
    rows = []
    for name, part in oof.groupby("pipeline", sort=False):
        truth = part["y_true"].astype(str).to_numpy() == positive
        per_fold = [roc_auc_score(f["y_true"].astype(str) == positive, f[column]) for _, f in part.groupby("fold")]
        fits = info[info["pipeline"] == name]
        rows.append({"pipeline": name, "auroc_pooled": roc_auc_score(truth, part[column]),
                     "auroc_fold_mean": float(np.mean(per_fold)), "auroc_fold_sd": float(np.std(per_fold, ddof=1)),
                     "fit_s_mean": float(fits["fit_time"].mean()), "fit_s_total": float(fits["fit_time"].sum())})
    return pd.DataFrame(rows).assign(cases=len(frame), features=len(cols), folds=folds)


def register_pytabkit() -> list[str]:
    """pytabkit's reference implementations as zoo classifiers (benchmark only; never saved)."""
    from vitfeat.pipelines import zoo

    def realmlp(rs):
        from pytabkit import RealMLP_TD_Classifier

        return RealMLP_TD_Classifier(device="cpu", random_state=rs, n_threads=1, verbosity=0)

    def tabm(rs):
        from pytabkit import TabM_D_Classifier

        return TabM_D_Classifier(device="cpu", random_state=rs, n_threads=1, verbosity=0)

    zoo.register_classifier("pytabkit_realmlp", realmlp, "pytabkit RealMLP_TD_Classifier (reference)", overwrite=True)
    zoo.register_classifier("pytabkit_tabm", tabm, "pytabkit TabM_D_Classifier (reference)", overwrite=True)
    return ["pytabkit_realmlp", "pytabkit_tabm"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="synth 150 x 40 and PH2 with three families, 3 folds")
    ap.add_argument("--tables", default=None, help="comma-separated: synth, ph2, isic, vitiligo-cls "
                                                   "(default: all; --quick: synth,ph2)")
    ap.add_argument("--synth-size", default=None, metavar="NxP", help="synthetic table size (default 400x200)")
    ap.add_argument("--families", default=None, help="extract families of the real tables (default: all "
                                                     "single-image defaults; --quick: color,shape,firstorder)")
    ap.add_argument("--pipelines", default=PIPELINES)
    ap.add_argument("--folds", type=int, default=None, help="outer folds (default 5; --quick 3)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "bench_tabular_deep"))
    ap.add_argument("--reference", action="store_true",
                    help="also run pytabkit's RealMLP_TD and TabM_D (pip install pytabkit) as pipelines "
                         "pytabkit_realmlp and pytabkit_tabm: how close vitfeat's compact versions come")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tables = (args.tables or ("synth,ph2" if args.quick else "synth,ph2,isic,vitiligo-cls")).split(",")
    size = args.synth_size or ("150x40" if args.quick else "400x200")
    families = args.families.split(",") if args.families else (["color", "shape", "firstorder"] if args.quick
                                                               else None)
    folds = args.folds or (3 if args.quick else 5)
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    if args.reference:
        pipelines += register_pytabkit()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, --jobs {args.jobs}, {folds} folds, pipelines {', '.join(pipelines)}")
    results = []
    for name in tables:
        frame, positive = synth_table(size, args.seed) if name == "synth" else real_table(name, out, families,
                                                                                          args.jobs)
        start = time.perf_counter()
        board = score(frame, positive, pipelines, folds, args.jobs, args.seed).assign(table=name)
        wall = time.perf_counter() - start
        results.append(board)
        print(f"\n{name}: {len(frame)} cases x {board['features'].iloc[0]} features, positive '{positive}', "
              f"{folds} grouped folds, {wall:.0f} s wall")
        print(f"  {'pipeline':<10} {'AUROC pooled':>12} {'fold mean ± SD':>16} {'fit s/fold':>10}")
        for r in board.sort_values("auroc_pooled", ascending=False).itertuples():
            print(f"  {r.pipeline:<10} {r.auroc_pooled:>12.3f} {r.auroc_fold_mean:>9.3f} ± {r.auroc_fold_sd:.3f} "
                  f"{r.fit_s_mean:>10.2f}")
    from vitfeat.atomic import write_csv

    write_csv(out / "results.csv", pd.concat(results, ignore_index=True))
    print(f"\n-> {out / 'results.csv'}")


if __name__ == "__main__":
    main()
