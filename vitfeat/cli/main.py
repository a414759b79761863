"""The `vitfeat` command. Thin: each subcommand module parses and calls library functions."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from vitfeat._version import __version__
from vitfeat.cli._common import CLIError  # noqa: F401  (defined beside add_command; re-exported here)

# Each module exposes `register(subparsers)`; the order here is the order in `--help`.
SUBCOMMAND_MODULES = [
    "vitfeat.cli.synth",
    "vitfeat.cli.manifest",
    "vitfeat.cli.extract",
    "vitfeat.cli.fit",
    "vitfeat.cli.robustness",
    "vitfeat.cli.predict",
    "vitfeat.cli.serve",
    "vitfeat.cli.explain",
    "vitfeat.cli.train",
    "vitfeat.cli.seg",
    "vitfeat.cli.vmtl",
    "vitfeat.cli.demo",
    "vitfeat.cli.listing",
]

DESCRIPTION = """\
vitfeat turns paired clinical + Wood's-lamp photographs of vitiligo lesions into feature tables,
compares classifiers under patient-grouped cross-validation, and explains the result.

Typical workflow:
  vitfeat synth data/synth --n 200            # paired data with known ground truth
  vitfeat manifest check data/synth/manifest.csv
  vitfeat extract data/synth/manifest.csv -o artifacts/features.parquet
  vitfeat fit artifacts/features.parquet -o artifacts/run
  vitfeat explain artifacts/run
  vitfeat predict artifacts/run new_cases.csv -o predictions.csv

Run `vitfeat COMMAND --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``vitfeat`` parser with every subcommand of :data:`SUBCOMMAND_MODULES` registered."""
    parser = argparse.ArgumentParser(
        prog="vitfeat", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"vitfeat {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``vitfeat`` (a :class:`CLIError` is printed as ``vitfeat COMMAND: error: ...``, status 2).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from vitfeat.atomic import DISK_FULL_ERRNOS, OutputError, check_output
    from vitfeat.lifecycle import Terminated, stop_on_sigterm

    previous_sigterm = stop_on_sigterm()
    try:
        for attr, kind in getattr(args, "output_check", ()):  # set by each command with an output
            if getattr(args, attr, None) is not None:
                check_output(getattr(args, attr), kind)
        return int(args.func(args) or 0)
    except (CLIError, OutputError) as exc:
        print(f"vitfeat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        print(f"vitfeat {args.command}: error: {exc.filename}: no space left on device; nothing half-written "
              "is kept under that name, finished work is cached and a re-run resumes once there is room",
              file=sys.stderr)
        return 28
    except Terminated:
        print(f"vitfeat {args.command}: terminated (SIGTERM); finished work is kept and a re-run resumes",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


if __name__ == "__main__":
    # `python -m vitfeat.cli.main`: run the imported module's main, so that the CLIError the commands
    # raise (vitfeat.cli.main.CLIError) is the class caught there, not a __main__ copy of it
    from vitfeat.cli.main import main as _main

    sys.exit(_main())
