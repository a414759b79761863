"""`vitfeat train vmtl`: train the VMTL multi-task model on a fold plan."""

from vitfeat.cli._common import reserve


def register(kinds) -> None:
    reserve(kinds, "vmtl", "train the VMTL multi-task model on a fold plan")
