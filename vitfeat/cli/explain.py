"""`vitfeat explain`: feature importance (SHAP, permutation) for a fitted run."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Explain what drives a fitted run's predictions, in terms a clinician can check.

  - Permutation importance on held-out folds: for each test fold of the run's fold plan, the
    pipeline is refitted without those patients, and groups of features are shuffled on them; the
    rise in log loss is that group's importance. Correlated features (Spearman, hierarchical
    clustering) are shuffled together so near-duplicates do not split their importance.
  - SHAP values of the final model (TreeExplainer for tree models, LinearExplainer for logistic
    regression) on the features it actually sees after imputation/scaling/selection.
  - Both aggregated by feature family and modality ("border sharpness under Wood's lamp", ...).

Writes RUN_DIR/explain/TARGET/ (explain.html, importance_groups.csv, importance_clusters.csv,
importance_modalities.csv, shap_features.csv, bar and beeswarm plots) and re-renders
RUN_DIR/report.html so that it links the explanation. Needs the run's feature table, unchanged.

Examples:
  vitfeat explain artifacts/run
  vitfeat explain artifacts/run --target activity --repeats 10
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(subparsers, "explain", "feature importance (SHAP, permutation) for a fitted run", DESCRIPTION)
    p.add_argument("run_dir", help="run directory written by `vitfeat fit`")
    p.add_argument("--target", help="which target to explain (default: the run's first)")
    p.add_argument("--repeats", type=int, default=5, help="shuffles per feature group and fold (default 5)")
    p.add_argument("--cluster-threshold", type=float, default=0.3,
                   help="features with Spearman |rho| above about 1 - this are grouped (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--trust-modified", action="store_true",
                   help="use a run whose files changed after fit (their SHA-256 differs from run.json) with a "
                        "warning, instead of refusing it")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``vitfeat explain`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.pipelines.explain import explain_run

    try:
        out = explain_run(args.run_dir, args.target, n_repeats=args.repeats,
                          cluster_threshold=args.cluster_threshold, seed=args.seed,
                          trust_modified=args.trust_modified)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    import json

    summary = json.loads((out / "summary.json").read_text())
    print(f"most important feature groups for '{summary['target']}' ({summary['pipeline']}):")
    for g in summary["top_groups"][:5]:
        print(f"  {g['importance']:+.3f}  {g['description']}")
    print("most important clusters of correlated features (lead feature):")
    for c in summary["top_clusters"][:5]:
        print(f"  {c['importance']:+.3f}  {c['lead_feature']}: {c['description']}")
    print(f"explanation: {out / 'explain.html'}")
    return 0
