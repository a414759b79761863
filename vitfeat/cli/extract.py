"""`vitfeat extract`: extract handcrafted and deep features from a manifest into a table."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "extract", "extract handcrafted and deep features from a manifest into a table")
