"""`vitfeat seg`: compare and inspect trained segmenters."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "seg", "compare and inspect trained segmenters")
