"""`vitfeat demo`: the main job on the embedded default data."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Run the whole workflow on the embedded default data set (120 synthetic paired cases with
overlapping classes and 8 % label noise, as real staging labels are, generated
deterministically on first use): synth -> manifest check -> extract -> fit, and print where the
report is. Re-running reuses the data and the feature cache.

  vitfeat demo artifacts/demo
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(subparsers, "demo", "run synth, extract and fit on the embedded default data", DESCRIPTION)
    p.add_argument("out", nargs="?", default="artifacts/demo", help="output folder (default artifacts/demo)")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    p.set_defaults(func=run, output_check=[("out", "dir")])


def run(args) -> int:
    """Run ``vitfeat demo`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    from vitfeat.demo import run_demo

    paths = run_demo(args.out, jobs=args.jobs)
    if "report" in paths:
        print(f"\nreport: {paths['report'].resolve()}")
    else:
        print(f"\ndata: {paths['manifest'].resolve()}")
    return 0
