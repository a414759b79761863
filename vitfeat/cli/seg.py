"""`vitfeat seg`: compare and inspect segmenters."""

from __future__ import annotations

import json

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Compare trained segmenters (`vitfeat train seg` outputs) and inspect architectures.

  compare  training/validation curves side by side (curves.png), a metrics table of the test split
           (metrics.csv, metrics.md: pooled and per-image Dice, IoU, accuracy, precision, recall,
           specificity, F1, parameters, GFLOPs, seconds per epoch) and an overlay sheet of
           predictions vs ground truth on shared test cases (overlays.png)
  import-official  an official UltraLight VM-UNet checkpoint (wurenkai/UltraLight-VM-UNet, 129
           tensors, with or without DataParallel's `module.` prefix) as a segmenter directory usable
           as --masks model:DIR; --evaluate MANIFEST scores it as the original does (for seg compare)
  info     parameters and FLOPs of an architecture (torch.utils.flop_counter, one image)
  evaluate how good a mask source is: its masks against the manifest's expert masks (pooled, median
           and mean Dice, pooled IoU, patient-bootstrap 95 % CIs, the worst cases); SOURCE is what
           `extract --masks` takes (auto, model:DIR, yolo:PT) or a folder of masks named like the
           photos; -o DIR writes per_image.csv, summary.json and overlays.png (worst and best cases)

Examples:
  vitfeat seg compare runs/seg_unet runs/seg_dl runs/seg_ul -o runs/seg_compare
  vitfeat seg info --arch ultralight --imgsz 256
  vitfeat seg import-official best.pth -o runs/ul_official --evaluate ph2.csv
  vitfeat seg info --arch unet --encoder efficientnet-b0 --imgsz 512
  vitfeat seg evaluate vitiligo.csv --masks auto -o runs/auto_quality
  vitfeat seg evaluate vitiligo.csv --masks model:runs/seg_vit --json
"""


def register(subparsers) -> None:
    """Add ``vitfeat seg`` and its subcommands (compare, import-official, info, evaluate) to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    parser = add_command(subparsers, "seg", "compare and inspect segmenters (UNet, DeepLabV3, UltraLight)",
                         DESCRIPTION)
    sub = parser.add_subparsers(dest="seg_command", metavar="SUBCOMMAND")
    cmp_ = add_command(sub, "compare", "compare trained segmenters: curves, metrics table, overlays", DESCRIPTION)
    cmp_.add_argument("runs", nargs="+", help="`vitfeat train seg` output directories")
    cmp_.add_argument("-o", "--out", required=True, help="output directory (created)")
    cmp_.add_argument("--cases", type=int, default=6, help="test cases on the overlay sheet (default 6)")
    cmp_.set_defaults(func=run_compare, output_check=[("out", "dir")])
    imp = add_command(sub, "import-official", "official UltraLight VM-UNet weights as a segmenter directory",
                      DESCRIPTION)
    imp.add_argument("checkpoint", help="the original repository's best.pth (state_dict)")
    imp.add_argument("-o", "--out", required=True, help="output directory (created)")
    imp.add_argument("--modality", default="clinical", choices=["clinical", "wood"])
    imp.add_argument("--imgsz", type=int, default=256, help="input size (the original's 256)")
    imp.add_argument("--evaluate", metavar="MANIFEST", help="score the model on this manifest's cases")
    imp.add_argument("--split", help="with --evaluate: ordered:TRAIN,VAL,TEST, score the test part only")
    imp.add_argument("--allow-outside-root", action="store_true")
    imp.set_defaults(func=run_import, output_check=[("out", "dir")])
    info = add_command(sub, "info", "parameters and FLOPs of a segmentation architecture", DESCRIPTION)
    info.add_argument("--arch", default="ultralight", metavar="ARCH",
                      help="a registered architecture (`vitfeat list segmentation`; default ultralight)")
    info.add_argument("--imgsz", type=int, default=256)
    info.add_argument("--encoder", default="resnet34")
    info.add_argument("--classes", type=int, default=1)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)
    ev = add_command(sub, "evaluate", "score a mask source against the manifest's expert masks", DESCRIPTION)
    ev.add_argument("manifest", help="manifest with photos and reference masks (<modality>_mask)")
    ev.add_argument("--masks", required=True, metavar="SOURCE",
                    help="auto, model:DIR, yolo:PT (as extract --masks) or a folder of masks")
    ev.add_argument("--modality", default="clinical", choices=["clinical", "wood"])
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")
    ev.add_argument("-o", "--out", help="write per_image.csv, summary.json and overlays.png here")
    ev.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000; 0: no CIs)")
    ev.add_argument("--worst", type=int, default=5, help="worst cases named (default 5)")
    ev.add_argument("--record", action="store_true",
                    help="model:DIR only: store the measured Dice in DIR/segmenter.json (shown by extract and fit)")
    ev.add_argument("--allow-outside-root", action="store_true")
    ev.set_defaults(func=run_evaluate)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def run_compare(args) -> int:
    """Run ``vitfeat seg compare`` with the parsed arguments (a thin shell over the library): compare
    trained segmenters and print the metrics table and the written files.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        When the library refuses the input (its message names the file and the problem).
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.deep.segmentation.compare import compare_runs

    try:
        result = compare_runs(args.runs, args.out, n_cases=args.cases)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(result["table"].to_string(index=False))
    for key in ("metrics_csv", "metrics_md", "curves", "overlays"):
        print(f"wrote {result[key]}")
    return 0


def run_import(args) -> int:
    """Run ``vitfeat seg import-official`` with the parsed arguments (a thin shell over the library): turn
    the official UltraLight VM-UNet weights into a segmenter directory (optionally scored).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        When the library refuses the input (its message names the file and the problem).
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.deep.segmentation.official import import_official

    try:
        meta = import_official(args.checkpoint, args.out, modality=args.modality, imgsz=args.imgsz,
                               evaluate=args.evaluate, split=args.split, allow_outside_root=args.allow_outside_root)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    if meta["test_metrics"]:
        pooled = meta["test_metrics"]["pooled"]
        print(f"{meta['test_metrics']['n_images']} images: DSC {pooled['dice']:.4f} (pooled pixels), "
              f"IoU {pooled['iou']:.4f}, Acc {pooled['accuracy']:.4f}, Sens {pooled['recall']:.4f}, "
              f"Spec {pooled['specificity']:.4f}")
    print(f"segmenter written to {args.out} (use: --masks model:{args.out})")
    return 0


def run_info(args) -> int:
    """Run ``vitfeat seg info`` with the parsed arguments (a thin shell over the library): print the
    parameters and FLOPs of an architecture.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        For an ``--imgsz`` that is not a multiple of 32 or an unknown architecture.
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.deep.segmentation.info import model_info

    if args.imgsz % 32:
        raise CLIError(f"--imgsz must be a multiple of 32, not {args.imgsz}")
    try:
        info = model_info(args.arch, args.imgsz, args.classes, args.encoder)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        enc = f" ({info['encoder']})" if info["encoder"] else ""
        print(f"{info['arch']}{enc} at {args.imgsz}x{args.imgsz}: {info['params']:,} parameters, "
              f"{info['gflops']:.3f} GFLOPs ({info['gmacs']:.3f} GMACs), weights {info['weights_kib']:.1f} KiB")
    return 0


def run_evaluate(args) -> int:
    """Run ``vitfeat seg evaluate`` with the parsed arguments (a thin shell over the library): score a
    mask source against the manifest's expert masks and print (or write) the result.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    vitfeat.cli._common.CLIError
        When the library refuses the input (its message names the file and the problem).
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.deep.segmentation.evaluate import evaluate_masks, format_summary, record_quality, write_evaluation

    try:
        result = evaluate_masks(args.manifest, args.masks, modality=args.modality, n_boot=args.n_boot,
                                n_worst=args.worst, keep_images=4 if args.out else 0,
                                allow_outside_root=args.allow_outside_root, progress=not args.json)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    written = write_evaluation(result, args.out) if args.out else {}
    if args.record:
        try:
            written["quality"] = str(record_quality(result))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps({k: v for k, v in result.summary.items() if k != "mask_model"}, indent=2, default=str))
    else:
        print(format_summary(result.summary))
        for path in written.values():
            print(f"wrote {path}")
    return 0
