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


