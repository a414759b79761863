"""`vitfeat robustness`: how much each feature changes when a lesion is photographed again (ICC)."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Render every case of a manifest under named, seeded perturbations of a re-photograph (the clinical
photo, the Wood's photo and their masks together), extract the features of every version with the
ordinary engine, and measure each feature's robustness as ICC(1,1) (one-way random effects, single
measurement, McGraw & Wong; F-based 95 % CI) across the versions of each case.

Perturbations (default: all but none; the unperturbed 'none' version is always added):
{perturbations}

DIR gets: perturbed_features.parquet (one row per case x perturbation x repeat), feature_icc.csv
(feature, family, modality, icc, icc_low, icc_high, n_cases, n_perturbations),
feature_icc_by_perturbation.csv, perturbations.csv (every drawn parameter), robustness.md/.html with
icc_by_family.png. Versions are written under DIR/perturbed and features cached under
DIR/.vitfeat-cache, so an interrupted run resumes. Cases without a given mask use the automatic
mask of the unperturbed photo, moved with each version.

Use the result in fit: vitfeat fit FEATURES -o RUN --feature-icc DIR/feature_icc.csv --min-icc 0.75

Examples:
  vitfeat robustness data/synth/manifest.csv -o artifacts/robustness --jobs 2
  vitfeat robustness manifest.csv -o rob --perturbations rotation,noise,contour --repeats 3 --seed 1
"""


def register(subparsers) -> None:
    """Add ``vitfeat robustness`` to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    from vitfeat.pipelines.perturb import PERTURBATIONS

    listing = "\n".join(f"  {name:<12}{p.description}" for name, p in PERTURBATIONS.items())
    p = add_command(subparsers, "robustness", "feature robustness to re-photographing, as ICC per feature",
                    DESCRIPTION.replace("{perturbations}", listing))
    p.add_argument("manifest", help="manifest CSV/Parquet (at least 2 cases; 10 or more advised)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="study folder (created; a re-run resumes)")
    p.add_argument("--perturbations", nargs="+", default=None, metavar="LIST",
                   help="perturbation names, comma or space separated (default: all)")
    p.add_argument("--repeats", type=int, default=1, metavar="K", help="versions per perturbation (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every draw (default 0)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel worker processes (default 1)")
    p.add_argument("--families", nargs="+", default=None, metavar="FAMILY",
                   help="feature families (default: extract's default set)")
    p.add_argument("--masks", choices=("given", "auto"), default="given",
                   help="mask of the unperturbed version: given (else automatic) or automatic for all")
    p.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="shrink photos to this longest side first (as extract --max-side)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``vitfeat robustness`` with the parsed arguments (a thin shell over the library): measure
    how stable each feature is under perturbed photos (ICC) and print the summary.

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
    from vitfeat.pipelines.robustness import run_robustness

    families = [f for item in args.families for f in item.replace(",", " ").split()] if args.families else None
    try:
        result = run_robustness(args.manifest, args.out, perturbations=args.perturbations, repeats=args.repeats,
                                seed=args.seed, jobs=args.jobs, families=families, masks=args.masks,
                                max_side=args.max_side, progress=not args.no_progress)
    except (ManifestError, FileNotFoundError, KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    print(result.summary())
    return 0
