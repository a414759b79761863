"""`vitfeat vmtl`: facts about the VMTL variants (parameters, FLOPs)."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Inspect the VMTL variants without training or downloading anything (the network is built on the
meta device).

  info   parameters per top-level module (total and trainable: the original keeps backbone stages
         0-2 frozen) and FLOPs of one forward pass of one pair at --imgsz (default 224)

Examples:
  vitfeat vmtl info --variant original
  vitfeat vmtl info --variant vmtl --json
  vitfeat vmtl info --variant baseline --backbone vit_base_patch16_224
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    parser = add_command(subparsers, "vmtl", "facts about the VMTL variants (parameters, FLOPs)", DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    info = add_command(actions, "info", "parameters per module and FLOPs of a VMTL variant")
    info.add_argument("--variant", default="vmtl", help="original | vmtl | vmsl | baseline (default vmtl)")
    info.add_argument("--backbone", help="timm backbone (default: the variant's)")
    info.add_argument("--imgsz", type=int, default=224, help="input size for the FLOP count (default 224)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def run_info(args) -> int:
    """Run ``vitfeat vmtl info`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    import json

    from vitfeat.cli._common import CLIError
    from vitfeat.deep.vmtl.info import format_info, variant_info
    from vitfeat.registry import UnknownNameError

    try:
        info = variant_info(args.variant, backbone=args.backbone, imgsz=args.imgsz)
    except (UnknownNameError, ValueError, KeyError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0
