"""`vitfeat manifest check|import`: validate manifests and build them from folder layouts."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Validate a manifest or build one from a folder.

  vitfeat manifest check data/synth/manifest.csv
  vitfeat manifest import ../shared/data/ph2 -o ph2.csv
  vitfeat manifest import photos/ -o cases.csv --layout class-folders --pair _clinical:_wood \\
      --patient-regex '^(P\\d+)_'
"""

CHECK = """\
Check a manifest (CSV or Parquet) and print every problem with its row number: duplicate case ids,
missing or unreadable files, non-image files, mask size != image size, empty labels, paths escaping
the dataset root, over-large images. Exit status 1 when any problem is fatal, 0 otherwise.
"""

IMPORT = """\
Build a manifest from a folder. Layouts (--layout, default auto-detected):
  class-folders  ROOT/<class>/*.jpg, e.g. stable/ and non-stable/: the folder name is the label
  images-masks   ROOT/images/* and ROOT/masks/* with the same stems
  yolo           ROOT/images/* and ROOT/labels/*.txt (boxes or polygons, drawn into masks)
  labels-csv     ROOT/labels.csv with image, mask, label[, group] columns (../shared/data folders)
Clinical and Wood's images are paired by stem suffix: --pair _clinical:_wood makes A1_clinical.jpg
and A1_wood.jpg one case A1. Paths in the manifest are written relative to the manifest's folder.
"""


def register(subparsers) -> None:
    parser = add_command(subparsers, "manifest", "validate manifests and build them from folders", DESCRIPTION)
    sub = parser.add_subparsers(dest="manifest_command", metavar="ACTION")
    check = add_command(sub, "check", "validate a manifest and list every problem", CHECK)
    check.add_argument("path", help="manifest (.csv or .parquet)")
    check.add_argument("--target", action="append", help="target column(s) to require (default: label)")
    check.add_argument("--no-targets", action="store_true", help="labels not needed (prediction input)")
    check.add_argument("--allow-outside-root", action="store_true",
                       help="accept paths that leave the manifest's folder")
    check.set_defaults(func=run_check)

    imp = add_command(sub, "import", "build a manifest from a folder layout", IMPORT)
    imp.add_argument("root", help="folder to import")
    imp.add_argument("-o", "--output", required=True, help="manifest to write (.csv or .parquet)")
    imp.add_argument("--layout", default="auto",
                     choices=["auto", "class-folders", "images-masks", "yolo", "labels-csv"])
    imp.add_argument("--pair", metavar="CLIN:WOOD", help="stem suffixes pairing clinical and Wood's files")
    imp.add_argument("--patient-regex", help="regex on the case id whose first group is the patient id")
    imp.add_argument("--masks-dir", help="where yolo masks are drawn (default ROOT/masks-from-labels)")
    imp.set_defaults(func=run_import)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def run_check(args) -> int:
    from vitfeat.dataset import validate_manifest

    try:
        frame, targets, problems = validate_manifest(
            args.path, targets=args.target, require_targets=not args.no_targets,
            allow_outside_root=args.allow_outside_root)
    except (FileNotFoundError, ValueError) as exc:
        from vitfeat.cli.main import CLIError

        raise CLIError(str(exc)) from None
    for problem in problems:
        print(problem)
    fatal = sum(p.fatal for p in problems)
    print(f"{args.path}: {len(frame)} cases, {frame['patient_id'].nunique() if 'patient_id' in frame else 0} "
          f"patients, targets {targets or 'none'}; {fatal} error(s), {len(problems) - fatal} warning(s)")
    return 1 if fatal else 0


def run_import(args) -> int:
    from vitfeat.cli.main import CLIError
    from vitfeat.dataset import write_manifest
    from vitfeat.importers import LayoutError, import_folder

    pair = None
    if args.pair:
        if ":" not in args.pair:
            raise CLIError("--pair takes CLINICAL_SUFFIX:WOOD_SUFFIX, e.g. _clinical:_wood")
        pair = tuple(args.pair.split(":", 1))
    try:
        frame = import_folder(args.root, args.layout, pair=pair, patient_regex=args.patient_regex,
                              masks_dir=args.masks_dir)
    except LayoutError as exc:
        raise CLIError(str(exc)) from None
    path = write_manifest(frame, args.output)
    print(f"wrote {len(frame)} cases to {path}; check it with: vitfeat manifest check {path}")
    return 0
