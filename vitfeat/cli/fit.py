"""`vitfeat fit`: compare pipelines under patient-grouped CV and write a report."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "fit", "compare pipelines under patient-grouped CV and write a report")
