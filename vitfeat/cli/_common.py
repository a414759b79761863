"""Small helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse


class CLIError(Exception):
    """An error whose message is shown to the user as is (exit status 2)."""


def add_command(subparsers, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """Add a subcommand whose `--help` shows `description` verbatim (examples keep their layout)."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def reserve(subparsers, name: str, summary: str) -> None:
    """Register a command that a later release implements, so the name is taken and documented."""
    parser = add_command(subparsers, name, f"{summary} (not implemented yet)")

    def _not_yet(args):
        raise CLIError(f"'{name}' is not implemented in this version of vitfeat")

    parser.set_defaults(func=_not_yet)
