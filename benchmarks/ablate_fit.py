"""Which of issue #17's speed changes costs AUROC: toggle them one at a time on the same folds (issue #31).

Every setting cross-validates the same pipelines on the same table and the same patient-grouped folds
(``bench_fit.py``'s table: 10 informative features, 2 cases per patient, 70/30 classes, 1 % missing)
with the current code, one change toggled against the configuration before the speed work
(commit deb2f33: 255 histogram bins, no pre-filter). Per pipeline it prints the fold-mean AUROC (the
leaderboard's ``auroc_mean``), its difference to the deb2f33 setting, DeLong's paired test of the two
pooled out-of-fold predictions (:func:`vitfeat.evaluation.intervals.delong_paired`, the comparison of
issue #28) and the CPU seconds of the fits (summed over the worker processes: a shared machine's
neighbours do not count). With ``--seeds 0,1,2`` it repeats that on one table per seed and ends with
the differences averaged over the tables: on one table the boosting pipelines' AUROC moves by
0.007-0.014 between model seeds alone.

    python benchmarks/ablate_fit.py --quick                     # 200 x 300, 4 pipelines, 2 settings
    python benchmarks/ablate_fit.py --cases 300 --features 900 --jobs 2 --seeds 0,1,2

Settings (``--settings`` picks a subset, comma separated):

- ``deb2f33``: the reference (bins ``full``, pre-filter off);
- ``bins``: histogram bins sized to the training rows (``fit --gbm-bins rows``, issue #17's ad4ffb6);
- ``prefilter``: the in-fold near-constant/near-duplicate filter (``fit --prefilter on``);
- ``main``: both, the defaults before issue #31;
- ``early-stopping``: in-fold early stopping of lgbm/xgb/hgb on a validation split of each training
  part (``fit --gbm-early-stopping``, issue #31's lever; 255 bins, no pre-filter);
- ``current``: the current defaults (``FitConfig()``).

Nested selection's inner scheme (another #17 change) does not touch any pipeline's out-of-fold
predictions, only which pipeline the ``nested-selection`` row picks; ``--nested`` adds that row for
the inner schemes ``neighbours``, ``others`` and 3 independent inner folds.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from vitfeat.evaluation.folds import make_folds
from vitfeat.evaluation.intervals import delong_paired
from vitfeat.pipelines import zoo
from vitfeat.pipelines.cv import cross_validate, feature_columns
from vitfeat.pipelines.demo_data import make_feature_table
from vitfeat.pipelines.nested import NAME as NESTED
from vitfeat.pipelines.nested import nested_selection
from vitfeat.pipelines.select import FitConfig


@dataclass(frozen=True)
class Setting:
    """One configuration of the fits: what the CV gets."""

    gbm_bins: str = "full"
    prefilter: bool = False
    early_stopping: bool = False


def settings() -> dict[str, Setting]:
    """The settings by name (see the module docstring)."""
    current = FitConfig()
    return {"deb2f33": Setting(), "bins": Setting(gbm_bins="rows"), "prefilter": Setting(prefilter=True),
            "main": Setting(gbm_bins="rows", prefilter=True),
            "early-stopping": Setting(early_stopping=True),
            "current": Setting(gbm_bins=current.gbm_bins, prefilter=current.prefilter != "off",
                               early_stopping=current.gbm_early_stopping)}


def table(cases: int, features: int, seed: int) -> pd.DataFrame:
    """``bench_fit.py``'s table."""
    return make_feature_table(cases, features, n_informative=10, cases_per_patient=2, weights=[0.7], seed=seed,
                              missing_rate=0.01)


def run_setting(frame: pd.DataFrame, plan: pd.DataFrame, pipelines: list, setting: Setting, jobs: int,
                nested: bool) -> tuple[pd.DataFrame, float, float]:
    """Out-of-fold predictions of every pipeline (and nested rows), fit CPU seconds and wall seconds."""
    cols = feature_columns(frame)
    X = frame[cols].to_numpy(dtype=float)
    y = frame["label"].astype(str).to_numpy()
    classes = sorted(np.unique(y))
    common = dict(classes=classes, n_jobs=jobs, seed=0, progress=False, prefilter=setting.prefilter,
                  gbm_bins=setting.gbm_bins, gbm_early_stopping=setting.early_stopping)
    start = time.perf_counter()
    oof, info, failures = cross_validate(X, y, frame["patient_id"], frame["case_id"], plan, pipelines, **common)
    if failures:
        raise RuntimeError(f"{setting}: {failures[0]}")
    cpu = float(info["cpu_time"].sum())
    parts = [oof]
    if nested:
        for label, scheme in (("neighbours", dict(inner="neighbours")), ("others", dict(inner="others")),
                              ("3 inner folds", dict(inner_folds=3))):
            rows, _ = nested_selection(X, y, frame["patient_id"], frame["case_id"], plan, pipelines, oof,
                                       **scheme, **{k: v for k, v in common.items() if k != "progress"})
            parts.append(rows.assign(pipeline=f"{NESTED} ({label})"))
    return pd.concat(parts, ignore_index=True), cpu, time.perf_counter() - start


def fold_mean_auroc(rows: pd.DataFrame, positive: str) -> float:
    """Mean over folds of the AUROC (the leaderboard's ``auroc_mean``)."""
    return float(np.mean([roc_auc_score(part["y_true"] == positive, part[f"proba_{positive}"])
                          for _, part in rows.groupby("fold")]))


def compare(oofs: dict, cpus: dict, walls: dict, positive: str, reference: str = "deb2f33") -> pd.DataFrame:
    """Per (setting, pipeline): fold-mean AUROC, difference and paired DeLong test against ``reference``."""
    base = oofs[reference]
    out = []
    for name, oof in oofs.items():
        for pipeline, rows in oof.groupby("pipeline", sort=False):
            ref = base[base["pipeline"] == pipeline].set_index("case_id").loc[rows["case_id"]]
            test = delong_paired(rows["y_true"].to_numpy() == positive, rows[f"proba_{positive}"].to_numpy(),
                                 ref[f"proba_{positive}"].to_numpy())
            auroc = fold_mean_auroc(rows, positive)
            out.append({"setting": name, "pipeline": pipeline, "auroc": auroc,
                        "difference": auroc - fold_mean_auroc(ref.reset_index(), positive),
                        "delong_difference": test["difference"], "p_value": test["p_value"],
                        "cpu_s": cpus[name] if pipeline == oof["pipeline"].iloc[0] else np.nan,
                        "wall_s": walls[name] if pipeline == oof["pipeline"].iloc[0] else np.nan})
    return pd.DataFrame(out)


def print_table(result: pd.DataFrame, cpus: dict, walls: dict) -> None:
    """One block per setting: AUROC, difference to deb2f33, DeLong p per pipeline."""
    for name, rows in result.groupby("setting", sort=False):
        print(f"-- {name}: CPU of the CV fits {cpus[name]:.1f} s (ratio to deb2f33 "
              f"{cpus['deb2f33'] / cpus[name]:.2f}x), wall {walls[name]:.1f} s")
        for _, r in rows.iterrows():
            print(f"   {r['pipeline']:<32} AUROC {r['auroc']:.4f}  {r['difference']:+.4f}  "
                  f"DeLong pooled {r['delong_difference']:+.4f} p={r['p_value']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--features", type=int, default=900)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--pipelines", default="all")
    ap.add_argument("--settings", default="deb2f33,bins,prefilter,main,current")
    ap.add_argument("--seeds", default="0", metavar="S[,S...]", help="one table per generator seed")
    ap.add_argument("--nested", action="store_true", help="also the nested-selection row per inner scheme")
    ap.add_argument("--quick", action="store_true", help="200 x 300, lgbm/xgb/hgb/logreg, deb2f33 vs bins")
    ap.add_argument("--csv", help="write the per-seed table here")
    args = ap.parse_args()
    if args.quick:
        args.cases, args.features, args.pipelines, args.settings = 200, 300, "lgbm,xgb,hgb,logreg", "deb2f33,bins"
    chosen = ["deb2f33"] + [s for s in args.settings.split(",") if s != "deb2f33"]
    known = settings()
    pipelines = zoo.expand_names(args.pipelines)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        frame = table(args.cases, args.features, seed)
        plan = make_folds(frame, ["label"], n_splits=5, seed=0)
        positive = "active"
        oofs, cpus, walls = {}, {}, {}
        for name in chosen:
            oofs[name], cpus[name], walls[name] = run_setting(frame, plan, pipelines, known[name], args.jobs,
                                                              args.nested)
        print(f"==== table seed {seed}: {args.cases} x {args.features}, {len(pipelines)} pipelines x 5 folds, "
              f"jobs={args.jobs}", flush=True)
        result = compare(oofs, cpus, walls, positive).assign(seed=seed)
        print_table(result, cpus, walls)
        results.append(result)
    allr = pd.concat(results, ignore_index=True)
    if args.csv:
        allr.to_csv(args.csv, index=False)
    if allr["seed"].nunique() > 1:
        print(f"==== mean over {allr['seed'].nunique()} tables: AUROC difference to deb2f33 (SD over tables), "
              "DeLong p per table; CPU s summed")
        for name, rows in allr.groupby("setting", sort=False):
            if name == "deb2f33":
                continue
            cpu = rows["cpu_s"].sum()
            ref = allr.loc[allr["setting"] == "deb2f33", "cpu_s"].sum()
            print(f"-- {name}: CPU {cpu:.1f} s vs {ref:.1f} s ({ref / cpu:.2f}x)")
            for pipeline, p in rows.groupby("pipeline", sort=False):
                print(f"   {pipeline:<32} {p['difference'].mean():+.4f} ({p['difference'].std(ddof=1):.4f})  p: "
                      + " ".join(f"{v:.3f}" for v in p["p_value"]))


if __name__ == "__main__":
    main()
