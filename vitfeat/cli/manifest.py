"""`vitfeat manifest check|import`: validate manifests and build them from folder layouts."""

from __future__ import annotations

from vitfeat.cli._common import add_command

# the same names as vitfeat.importers.LAYOUTS (kept literal so `--help` does not import pandas)
LAYOUTS = ("auto", "vmtl", "yolo-splits", "class-folders", "images-masks", "yolo", "labels-csv")

DESCRIPTION = """\
Validate a manifest or build one from a folder.

  vitfeat manifest check data/synth/manifest.csv
  vitfeat manifest import ../shared/data/ph2 -o ph2.csv
  vitfeat manifest import photos/ -o cases.csv --layout class-folders --pair _clinical:_wood \\
      --patient-regex '^(P\\d+)_'
  vitfeat manifest import datasets/ -o runs/vmtl.csv          # VMTL data.csv + LabelMe JSON
  vitfeat manifest import multitask/ -o mt.csv --labels-json labels.jsonl --classes qd=A:none,B:mild

Every layout, with its folder tree: docs/data.md.
"""

CHECK = """\
Check a manifest (CSV or Parquet) and print every problem with its row number: duplicate case ids,
missing or unreadable files, non-image files, mask size != image size, empty labels, paths escaping
the dataset root (reported, never opened), over-large images, boxes outside their photo.
Warnings (not errors): degenerate masks (empty, full, tiny, touching every border), masks read by a
rule (several grey values, colour), tiny images, one-class targets, classes smaller than the folds.
Exit status 1 when any problem is fatal, 0 otherwise.
"""

IMPORT = """\
Build a manifest from a folder. Layouts (--layout, default auto-detected):
  class-folders  ROOT/<class>/*.jpg, e.g. stable/ and non-stable/: the folder name is the label
  images-masks   ROOT/images/* and ROOT/masks/* with the same stems
  yolo           ROOT/images/* and ROOT/labels/*.txt (boxes or polygons, drawn into masks)
  labels-csv     ROOT/labels.csv with image, mask, label[, group] columns (../shared/data folders)
  yolo-splits    ROOT/images/{train,val,test}, ROOT/labels/{...}, ROOT/data.yaml: a split column
  vmtl           ROOT/data.csv (pair_id, stability, image_type clinic|wood, image_path), LabelMe
                 segmentation_json/ (masks) and detection_json/ (boxes), or YOLO segmentation/ and
                 detection/ folders; a case is (stability, pair_id)
Clinical and Wood's images are paired by stem suffix: --pair _clinical:_wood makes A1_clinical.jpg
and A1_wood.jpg one case A1. Paths are written relative to the manifest when the images lie under
its folder, else relative to the data folder, which the manifest records (data_root column).
The written manifest is checked at once.
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    parser = add_command(subparsers, "manifest", "validate manifests and build them from folders", DESCRIPTION)
    sub = parser.add_subparsers(dest="manifest_command", metavar="ACTION")
    check = add_command(sub, "check", "validate a manifest and list every problem", CHECK)
    check.add_argument("path", help="manifest (.csv or .parquet)")
    check.add_argument("--target", action="append", help="target column(s) to require (default: label)")
    check.add_argument("--no-targets", action="store_true", help="labels not needed (prediction input)")
    check.add_argument("--allow-outside-root", action="store_true",
                       help="accept paths that leave the manifest's folder")
    check.add_argument("--encoding", help="text encoding of a CSV manifest (default utf-8, BOM or not)")
    check.add_argument("--folds", type=int, default=5, help="warn about classes with fewer cases (default 5)")
    add_mask_options(check)
    check.set_defaults(func=run_check)

    imp = add_command(sub, "import", "build a manifest from a folder layout", IMPORT)
    imp.add_argument("root", help="folder to import")
    imp.add_argument("-o", "--output", required=True, help="manifest to write (.csv or .parquet)")
    imp.add_argument("--layout", default="auto", choices=list(LAYOUTS))
    imp.add_argument("--pair", metavar="CLIN:WOOD", help="stem suffixes pairing clinical and Wood's files")
    imp.add_argument("--patient-regex", help="regex on the case id whose first group is the patient id")
    imp.add_argument("--masks-dir", help="where masks from YOLO labels or LabelMe polygons are drawn "
                                         "(default ROOT/masks-from-labels)")
    imp.add_argument("--labelme-labels", metavar="L1,L2",
                     help="LabelMe shape labels that are lesion (default: all; vmtl masks: 1)")
    imp.add_argument("--labels-json", metavar="FILE",
                     help="task labels, one JSON record per image (list or JSON lines): a column per task")
    imp.add_argument("--classes", action="append", metavar="TASK=CODE:name,...",
                     help="map a task's letter codes to names, e.g. qd=A:none,B:mild (repeatable)")
    imp.add_argument("--mask-threshold", type=float,
                     help="read masks as lesion where value >= this, rewritten as 0/255 PNGs in --masks-dir")
    imp.add_argument("--masks-inverted", action="store_true",
                     help="masks are lesion-is-black: rewritten as 0/255 PNGs in --masks-dir")
    imp.set_defaults(func=run_import, output_check=[("output", "file")])
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def add_mask_options(parser) -> None:
    """The mask-reading and degenerate-input options (shared with commands that read masks).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    """
    parser.add_argument("--mask-threshold", type=float,
                        help="grey value >= which a mask pixel is lesion (default: 0/k masks binary, "
                             "others at half their maximum, with a warning)")
    parser.add_argument("--masks-inverted", action="store_true", help="masks are lesion-is-black")
    parser.add_argument("--min-mask-area", type=int, default=16,
                        help="warn about masks under this many px (default 16)")
    parser.add_argument("--min-image-side", type=int, default=32,
                        help="warn about images with a side under this many px (default 32)")


def run_check(args) -> int:
    """Run ``vitfeat manifest check`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    from vitfeat.dataset import validate_manifest

    try:
        frame, targets, problems = validate_manifest(
            args.path, targets=args.target, require_targets=not args.no_targets,
            allow_outside_root=args.allow_outside_root, encoding=args.encoding,
            mask_threshold=args.mask_threshold, masks_inverted=args.masks_inverted,
            min_mask_area=args.min_mask_area, min_image_side=args.min_image_side, folds=args.folds)
    except (FileNotFoundError, ValueError) as exc:
        from vitfeat.cli._common import CLIError

        raise CLIError(str(exc)) from None
    fatal = _print_problems(problems)
    print(f"{args.path}: {len(frame)} cases, {frame['patient_id'].nunique() if 'patient_id' in frame else 0} "
          f"patients, targets {targets or 'none'}; {fatal} error(s), {len(problems) - fatal} warning(s)")
    return 1 if fatal else 0


def run_import(args) -> int:
    """Run ``vitfeat manifest import`` with the parsed arguments (a thin shell over the library).

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
    from vitfeat.dataset import validate_manifest, write_manifest
    from vitfeat.importers import LayoutError, import_folder, parse_class_maps

    pair = None
    if args.pair:
        if ":" not in args.pair:
            raise CLIError("--pair takes CLINICAL_SUFFIX:WOOD_SUFFIX, e.g. _clinical:_wood")
        pair = tuple(args.pair.split(":", 1))
    labels = [v.strip() for v in args.labelme_labels.split(",")] if args.labelme_labels else None
    try:
        frame = import_folder(args.root, args.layout, pair=pair, patient_regex=args.patient_regex,
                              masks_dir=args.masks_dir, labelme_labels=labels, labels_json=args.labels_json,
                              classes=parse_class_maps(args.classes), mask_threshold=args.mask_threshold,
                              masks_inverted=args.masks_inverted)
    except LayoutError as exc:
        raise CLIError(str(exc)) from None
    path = write_manifest(frame, args.output, data_root=args.root)
    _, _, problems = validate_manifest(path, require_targets=False)
    fatal = _print_problems(problems)
    print(f"wrote {len(frame)} cases to {path}: {fatal} error(s), {len(problems) - fatal} warning(s) "
          f"(vitfeat manifest check {path})")
    return 1 if fatal else 0


def _print_problems(problems) -> int:
    """Print every problem and warning, one per line; return how many are fatal."""
    for problem in problems:
        print(problem)
    return sum(p.fatal for p in problems)
