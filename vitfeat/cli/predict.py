"""`vitfeat predict`: apply a fitted run to new cases."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Apply the model of a fitted run (the best pipeline per target, refitted on all cases) to new cases.

INPUT is either
  - a manifest (CSV/Parquet with a 'clinical' column): features are extracted first, with the
    extraction settings recorded in the run's feature table, into OUT.features.parquet; or
  - a feature table from `vitfeat extract`: its feature columns must be exactly those the model
    was trained on (missing or extra columns are an error naming them; --allow-extra ignores extras).

The output CSV has case_id, patient_id, error (cases that failed extraction get no prediction),
then per target <target>_pred and one <target>_proba_<class> column per class; with --explain also
<target>_why, the three features that pushed each case's prediction most (SHAP; tree and linear
models). A VMTL run directory (run.json kind "vmtl") is handed to the VMTL predictor.

Runs fitted with the applicability check add in_scope (False: the case lies outside what the model
learnt, so do not trust its prediction, which is still written) and scope_reason (which image gate
failed or which feature group lies far outside the training cases), and per target
<target>_prediction_set, the conformal prediction set at the coverage the run records (e.g.
{active, stable}: the model cannot separate the stages for this case).

Before anything is loaded, every file the run recorded in run.json is checked against its SHA-256:
a modified, swapped or missing file is refused with its name ("modified after fit"); --trust-modified
uses it anyway, with a warning. model.skops is loaded with an exact-type allow-list: a model file
holding any type vitfeat does not write is refused without being constructed.

Examples:
  vitfeat predict artifacts/run new_cases/manifest.csv -o predictions.csv
  vitfeat predict artifacts/run new_features.parquet -o predictions.csv --explain
"""


def register(subparsers) -> None:
    """Add ``vitfeat predict`` to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(subparsers, "predict", "apply a fitted run to new cases", DESCRIPTION)
    p.add_argument("run_dir", help="run directory written by `vitfeat fit`")
    p.add_argument("input", help="manifest or feature table of the new cases")
    p.add_argument("-o", "--out", default="predictions.csv", help="output CSV (default predictions.csv)")
    p.add_argument("--allow-extra", action="store_true", help="ignore feature columns the model does not use")
    p.add_argument("--explain", action="store_true", help="add a per-case explanation column")
    p.add_argument("--trust-modified", action="store_true",
                   help="use a run whose files changed after fit (their SHA-256 differs from run.json) with a "
                        "warning, instead of refusing it")
    p.set_defaults(func=run, output_check=[("out", "file")])


def run(args) -> int:
    """Run ``vitfeat predict`` with the parsed arguments (a thin shell over the library): predict new
    cases with a fitted run and write the predictions.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        When the library refuses the input (its message names the file and the problem).
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.pipelines.predict import predict_run

    try:
        out = predict_run(args.run_dir, args.input, args.out, allow_extra=args.allow_extra, explain=args.explain,
                          trust_modified=args.trust_modified)
    except (ValueError, FileNotFoundError, ManifestError) as exc:
        raise CLIError(str(exc)) from None
    n_failed = int((out["error"].fillna("") != "").sum()) if "error" in out.columns else 0
    failed = f", {n_failed} failed (see the error column)" if n_failed else ""
    if "in_scope" in out.columns and (~out["in_scope"].astype(bool)).any():
        failed += f", {int((~out['in_scope'].astype(bool)).sum())} outside what the model learnt (see scope_reason)"
    print(f"{len(out)} case(s) predicted{failed}: {args.out}")
    return 0
