"""`vitfeat demo`: run synth, extract and fit on the embedded sample."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "demo", "run synth, extract and fit on the embedded sample")
