"""`vitfeat predict`: apply a fitted run to new cases."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "predict", "apply a fitted run to new cases")
