"""`vitfeat train yolo`: train an ultralytics YOLO detector or segmenter from a manifest."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Train an ultralytics YOLO lesion detector (boxes) or segmenter (polygons) on one modality of a
manifest. The manifest's masks are converted to a YOLO dataset (DIR/dataset) with a patient-grouped
train/val split; training starts from a .yaml architecture (random init) or a LOCAL .pt checkpoint.
Nothing is downloaded: ultralytics runs offline with a vitfeat-owned config folder.

The result, DIR (model.pt + yolo.json), is used by:
  vitfeat extract M.csv -o F.parquet --masks model:DIR            # segment model as mask source
  vitfeat extract M.csv -o F.parquet --families deep:resnet50:roi=yolo:DIR   # crops for embeddings

Examples:
  vitfeat train yolo data/synth/manifest.csv -o artifacts/yolo-wood --task segment --modality wood \\
      --epochs 50 --imgsz 320
  vitfeat train yolo data/synth/manifest.csv -o artifacts/yolo-clin --task detect --modality clinical \\
      --model /data/weights/yolo11n.pt --epochs 100

An interrupted run resumes when the same command is run again (DIR/train/weights/last.pt).
"""


def register(kinds) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    parser = add_command(kinds, "yolo", "train an ultralytics YOLO detector or segmenter", DESCRIPTION)
    parser.add_argument("manifest", help="manifest CSV/Parquet with images and masks of --modality")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--task", choices=("detect", "segment"), default="segment",
                        help="detect: boxes from mask components; segment: polygons (default: segment)")
    parser.add_argument("--modality", choices=("clinical", "wood"), default="clinical",
                        help="which photo and mask column to train on (default: clinical)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default: 100)")
    parser.add_argument("--imgsz", type=int, default=640, help="training image size in px (default: 640)")
    parser.add_argument("--model", default=None, metavar="YAML|PT",
                        help="architecture .yaml (default yolo11n.yaml / yolo11n-seg.yaml) or a local .pt")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of PATIENTS held out for validation (default: 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--patience", type=int, default=50, help="early-stopping patience in epochs")
    parser.set_defaults(func=run, output_check=[("out", "dir")])


def run(args) -> int:
    """Run ``vitfeat train yolo`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    from vitfeat.cli._common import CLIError
    from vitfeat.dataset import ManifestError
    from vitfeat.deep.yolo import train_yolo

    try:
        model = train_yolo(args.manifest, args.out, task=args.task, modality=args.modality, epochs=args.epochs,
                           imgsz=args.imgsz, model=args.model, batch=args.batch, device=args.device,
                           val_fraction=args.val_fraction, seed=args.seed, patience=args.patience)
    except (ManifestError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"trained YOLO {args.task} model: {model}")
    return 0
