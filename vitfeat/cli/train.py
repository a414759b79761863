"""`vitfeat train`: train deep models. Each model kind lives in its own module."""

from __future__ import annotations

import importlib

from vitfeat.cli._common import add_command

KIND_MODULES = ["vitfeat.cli.train_yolo", "vitfeat.cli.train_seg", "vitfeat.cli.train_vmtl"]

DESCRIPTION = """\
Train a deep model from a manifest. Kinds:
  yolo   ultralytics YOLO detector/segmenter (ROI cropper and mask source)
  seg    lesion segmenter: UNet, DeepLabV3, UltraLight VM-UNet (mask source)
  vmtl   the end-to-end multi-task VMTL model, scored on fit's fold plan

Run `vitfeat train KIND --help` for each kind's options.
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    parser = add_command(subparsers, "train", "train deep models (yolo, seg, vmtl)", DESCRIPTION)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    for name in KIND_MODULES:
        importlib.import_module(name).register(kinds)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
