"""`vitfeat explain`: feature importance (SHAP, permutation) for a fitted run."""

from vitfeat.cli._common import reserve


def register(subparsers) -> None:
    reserve(subparsers, "explain", "feature importance (SHAP, permutation) for a fitted run")
