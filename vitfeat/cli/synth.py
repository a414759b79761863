"""`vitfeat synth`: write a synthetic paired clinical + Wood's data set with known ground truth."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Write a synthetic data set of paired clinical + Wood's-lamp lesion photos with known ground truth.

OUT gets manifest.csv, truth.csv (the generator's latent parameters per case: label, true
Wood's-to-clinical area ratio, border blur width, satellite count, Wood's contrast, skin type, camera
motion, ...), images/ (JPEG), masks/ (0/255 PNG), labels/ (YOLO polygons) and labels-boxes/ (YOLO
boxes), and synth.yaml. The same arguments give byte-identical files.

Active lesions: blurred borders, larger under Wood's lamp, satellites, trichrome zone, patchy
fluorescence. Stable: sharp borders, area ratio ~1, uniform fluorescence, sometimes a dark rim.
--difficulty mixes every sign towards a class-independent draw (0 = separable, 1 = no signal).

Examples:
  vitfeat synth data/synth --n 200 --seed 0
  vitfeat synth data/hard --n 300 --difficulty 0.6 --active-fraction 0.3 --cases-per-patient 2.5
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(subparsers, "synth", "write synthetic paired data with known ground truth", DESCRIPTION)
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--n", type=int, default=200, help="number of cases (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=512, help="image side in px (default 512)")
    p.add_argument("--difficulty", type=float, default=0.3, help="class overlap, 0-1 (default 0.3)")
    p.add_argument("--active-fraction", type=float, default=0.5, help="share of active cases (default 0.5)")
    p.add_argument("--cases-per-patient", type=float, default=1.0,
                   help="mean lesions per patient (default 1: one case per patient)")
    p.add_argument("--label-noise", type=float, default=0.0, help="share of flipped labels in the manifest")
    p.add_argument("--hair", type=float, default=0.25, help="share of cases with hair (default 0.25)")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    p.set_defaults(func=run, output_check=[("out", "dir")])


def run(args) -> int:
    """Run ``vitfeat synth`` with the parsed arguments (a thin shell over the library).

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
    from vitfeat.synth import generate

    try:
        manifest = generate(args.out, n=args.n, seed=args.seed, size=args.size, difficulty=args.difficulty,
                            active_fraction=args.active_fraction, cases_per_patient=args.cases_per_patient,
                            label_noise=args.label_noise, hair=args.hair, jobs=args.jobs)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {args.n} cases: {manifest}")
    return 0
