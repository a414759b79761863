"""`vitfeat fit`: compare pipelines under patient-grouped CV and write a report."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Compare classification pipelines on a feature table under patient-grouped cross-validation,
write a run directory with the leaderboard and a report, and refit the best pipeline on all cases.

Every preprocessing step (imputation, scaling, feature selection, over/undersampling) is fitted
inside the training folds only, folds keep each patient's cases together, and hyperparameter
search (--search random) runs on inner folds of the training part, never on the test fold.
The top row's score chose the winner, so it is optimistic; the 'nested-selection' row scores the
choice itself (in each outer fold the pipeline that wins inner CV on the training part predicts
the test part): quote that one for the chosen model (--no-nested skips it).

RUN_DIR gets: leaderboard.csv (balanced accuracy, macro-F1, AUROC, PR-AUC, sensitivity,
specificity, per-class F1, fit time: fold mean, fold SD, patient-bootstrap 95 % CI),
oof_predictions.csv, folds.csv, fold_scores.csv, nested_selection.csv, config.yaml, report.html (self-contained),
report.md, model.skops (best pipeline per target, with its feature schema) and run.json.
comparisons.csv (the best pipeline against each other one: DeLong, Nadeau-Bengio, Holm);
with --test-split/--test-fraction test_predictions.csv, test_metrics.csv, test_split.csv; with
--subgroup subgroup_metrics.csv. The report opens with a summary for clinicians.
An interrupted run resumes from RUN_DIR/.cv_cache.

Pipelines: a classifier (logreg, svm, rf, et, hgb, xgb, lgbm; tabular networks realmlp, tabm,
tabpfn/tabicl with --tabpfn-checkpoint/--tabicl-checkpoint), optionally '+' a sampler
(ros, smote, borderline, rus) and/or '+kbest' feature selection, e.g. lgbm+smote, logreg+kbest+rus;
'all' = the default set. Python users add their own with vitfeat.pipelines.register_pipeline.

Examples:
  vitfeat fit artifacts/features.parquet -o artifacts/run
  vitfeat fit features.parquet -o run --pipelines lgbm+smote,logreg,svm --folds 5 --repeats 3 --jobs 2
  vitfeat fit features.parquet -o run2 --target label --target activity --search random
  vitfeat fit features.parquet -o run3 --folds-from run/folds.csv --include runs/vmtl
  vitfeat fit features.parquet -o run4 --config fit.yaml
  vitfeat fit features.parquet -o run5 --test-split original_split --subgroup fitzpatrick --metric auroc

fit.yaml (any option; command-line options override it):
  targets: [label]
  pipelines: [lgbm+smote, logreg]
  folds: 5
  repeats: 2
  search: random
  n_iter: 20
  positive: non-stable          # positive class of binary targets (default: see --positive)
  custom:                       # your own named pipelines
    big_rf: {base: rf+smote, params: {classifier__n_estimators: 500}}
"""


def register(subparsers) -> None:
    p = add_command(subparsers, "fit", "compare pipelines under patient-grouped CV and write a report", DESCRIPTION)
    p.add_argument("features", help="feature table from `vitfeat extract` (.parquet, or .csv)")
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run directory (created)")
    p.add_argument("--target", action="append", help="target column; repeat for several (default: label)")
    p.add_argument("--pipelines", help="comma-separated pipeline names or 'all' (default: all)")
    p.add_argument("--folds", type=int, help="number of folds (default 5)")
    p.add_argument("--repeats", type=int, help="repeat the CV with reshuffled folds (default 1)")
    p.add_argument("--folds-from", metavar="CSV", help="reuse the fold plan of another run (its folds.csv)")
    p.add_argument("--include", action="append", metavar="DIR",
                   help="add another run's out-of-fold predictions (e.g. VMTL) as a leaderboard row; "
                        "it must have used the same folds")
    p.add_argument("--search", choices=["none", "random"], help="nested hyperparameter search (default none)")
    p.add_argument("--n-iter", type=int, help="random-search candidates per fit (default 10)")
    p.add_argument("--no-nested", dest="nested", action="store_const", const=False,
                   help="skip nested selection (the honest score of picking the best pipeline; it costs one "
                        "extra fit per pipeline and outer fold, each on (folds - 2) / folds of the cases)")
    p.add_argument("--inner-scheme", choices=["neighbours", "others"],
                   help="inner folds of nested selection: the two neighbouring outer folds (default; one inner fit "
                        "per outer fold, each serving two of them) or all other outer folds (one fit per pair of "
                        "folds, e.g. 10 instead of 5 per pipeline at 5 folds: a steadier pick for twice the fits)")
    p.add_argument("--inner-folds", type=int,
                   help="independent inner folds per outer fold for nested selection instead (N per outer fold)")
    p.add_argument("--jobs", type=int, help="parallel fits (default 1; models themselves use one thread each)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples for the CIs (default 500)")
    p.add_argument("--prefilter", choices=["auto", "off", "on"],
                   help="in-fold filter of near-constant and near-duplicate columns, the same for every pipeline "
                        "(default auto: on for tables wider than 500 features; recorded in run.json)")
    p.add_argument("--gbm-bins", choices=["full", "rows"],
                   help="histogram bins of lgbm/xgb/hgb: full (255, default) or rows (sized to the training rows: "
                        "faster on wide tables, but it cost 0.01-0.02 AUROC on the bench; recorded in run.json and "
                        "named in the report)")
    p.add_argument("--gbm-early-stopping", action="store_true", default=None,
                   help="lgbm/xgb/hgb stop adding trees on a validation split (20 %%) of each training part, never "
                        "the scoring fold (off by default: fewer trees, but each model learns from fewer rows; "
                        "recorded in run.json and named in the report)")
    p.add_argument("--backend", choices=["loky", "dask"],
                   help="where the CV fits run: local processes (loky, default) or a Dask cluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address (e.g. tcp://10.0.0.5:8786); without it --backend dask starts a "
                        "local cluster of --jobs worker processes")
    p.add_argument("--positive", metavar="CLASS",
                   help="positive class of binary targets (sensitivity, AUROC, PR-AUC refer to it); default: the "
                        "disease or abnormal class (vitiligo, non-stable, active, progressive, melanoma, lesion, "
                        "...), or the class that is not normal/healthy/control/benign/stable/nevus; labels that "
                        "say neither are refused until you choose (the report says which and why)")
    p.add_argument("--calibrate", choices=["sigmoid", "isotonic", "sigmoid:single", "sigmoid:ensemble",
                                            "isotonic:single", "isotonic:ensemble"],
                   help="calibrate every pipeline's probabilities (CalibratedClassifierCV on patient-grouped "
                        "inner folds of each training part; recorded in run.json); :single (the default, chosen by "
                        "benchmarks/bench_calibration_mode.py) fits one calibrator on the pooled inner predictions, "
                        ":ensemble averages one per inner fold")
    p.add_argument("--operating-point", metavar="RULE",
                   help="decision threshold of binary targets: sensitivity=0.90, specificity=0.90 or youden; "
                        "chosen on inner grouped folds of each training part (operating_point.csv: sensitivity, "
                        "specificity, PPV, NPV out of fold with CIs), then on all cases for the saved model, "
                        "which predict uses")
    p.add_argument("--feature-icc", metavar="FILE",
                   help="feature_icc.csv from `vitfeat robustness`: drop features whose ICC is below --min-icc before "
                        "anything else (from perturbed images, not labels: no leakage; recorded in run.json)")
    p.add_argument("--min-icc", type=float, metavar="X", help="ICC threshold of --feature-icc (default 0.75)")
    p.add_argument("--coverage", type=float,
                   help="coverage of the conformal prediction sets predict writes (default 0.9; calibrated on the "
                        "out-of-fold predictions, recorded in run.json)")
    p.add_argument("--metric", choices=["balanced_accuracy", "auroc", "macro_f1", "log_loss", "brier"],
                   help="selection metric: ranks the leaderboard and is maximised by nested selection "
                        "(default balanced_accuracy; the report states it)")
    p.add_argument("--ci", choices=["auto", "analytic", "bootstrap"],
                   help="intervals of binary targets: DeLong (AUROC) and Wilson (sensitivity, specificity, PPV, "
                        "NPV) or the patient bootstrap; auto (default): analytic when each patient has one case")
    p.add_argument("--test-split", metavar="COLUMN",
                   help="column (table or manifest) with train/test values: fit and select on train, score the "
                        "chosen model once on test (test_predictions.csv, test_metrics.csv)")
    p.add_argument("--test-fraction", type=float, metavar="F",
                   help="draw a patient-grouped, stratified test split of this share of patients instead "
                        "(recorded in test_split.csv)")
    p.add_argument("--subgroup", action="append", metavar="COLUMN",
                   help="report metrics per value of this column (table or manifest), e.g. fitzpatrick; "
                        "repeatable (subgroup_metrics.csv)")
    p.add_argument("--tabpfn-checkpoint", metavar="FILE",
                   help="a TabPFN classifier checkpoint you have locally (.safetensors, or a weights-only .ckpt): adds "
                        "the 'tabpfn' pipeline; nothing is downloaded (docs/tabular_deep.md)")
    p.add_argument("--tabicl-checkpoint", metavar="FILE",
                   help="a TabICL checkpoint you have locally (.ckpt, weights only): adds the 'tabicl' pipeline")
    p.add_argument("--config", metavar="YAML", help="YAML file with any of these options")
    p.set_defaults(func=run, output_check=[("out", "dir")])


def run(args) -> int:
    from vitfeat.cli._common import CLIError
    from vitfeat.pipelines.select import FitConfig, fit_run

    overrides = {"targets": args.target, "pipelines": args.pipelines, "folds": args.folds, "repeats": args.repeats,
                 "folds_from": args.folds_from, "include": args.include, "search": args.search,
                 "nested": args.nested, "inner_folds": args.inner_folds,
                 "inner_scheme": args.inner_scheme,
                 "n_iter": args.n_iter, "jobs": args.jobs, "seed": args.seed, "n_boot": args.n_boot,
                 "positive": args.positive,
                 "prefilter": args.prefilter, "backend": args.backend, "scheduler": args.scheduler,
                 "calibrate": args.calibrate, "operating_point": args.operating_point,
                 "feature_icc": args.feature_icc, "min_icc": args.min_icc, "coverage": args.coverage,
                 "metric": args.metric, "ci": args.ci, "test_split": args.test_split,
                 "test_fraction": args.test_fraction, "subgroups": args.subgroup,
                 "tabpfn_checkpoint": args.tabpfn_checkpoint, "tabicl_checkpoint": args.tabicl_checkpoint,
                 "gbm_bins": getattr(args, "gbm_bins", None),
                 "gbm_early_stopping": getattr(args, "gbm_early_stopping", None)}
    try:
        if args.config:
            config = FitConfig.from_yaml(args.config, **overrides)
        else:
            config = FitConfig.from_yaml_dict({}, **overrides)
        run_dir = fit_run(args.features, args.out, config)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    import pandas as pd

    board = pd.read_csv(run_dir / "leaderboard.csv")
    for target, part in board.groupby("target", sort=False):
        print(f"target {target}:")
        for row in part.head(5).itertuples():
            print(f"  {row.rank:>2}. {row.pipeline:<20} balanced accuracy {row.balanced_accuracy_mean:.3f} "
                  f"± {row.balanced_accuracy_sd:.3f}  AUROC {row.auroc_mean:.3f}")
    if (run_dir / "test_metrics.csv").is_file():  # the held-out test split, scored once
        test = pd.read_csv(run_dir / "test_metrics.csv")
        for (target, pipeline), part in test.groupby(["target", "pipeline"], sort=False):
            m = part.set_index("metric")
            print(f"target {target}, held-out test ({pipeline}, {int(m['n_cases'].iloc[0])} cases): " + ", ".join(
                f"{k} {m.at[k, 'value']:.3f} [{m.at[k, 'ci_low']:.3f}-{m.at[k, 'ci_high']:.3f}]"
                for k in ("balanced_accuracy", "auroc") if k in m.index))
    print(f"report: {run_dir / 'report.html'}")
    return 0
