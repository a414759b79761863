"""`vitfeat extract`: extract handcrafted and deep features from a manifest into a table."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Turn every case of a manifest (clinical photo, optional Wood's photo, optional masks) into one row
of named features: <modality>_<family>_<feature>, e.g. wood_shape_solidity, pair_wood_area_ratio,
clinical_border_transition_width. Provenance (vitfeat and family versions, config, mask source
and image content hashes per case) is stored in the Parquet metadata.

Families (default: all handcrafted ones; this list comes from the families' own declarations):
{families}
Families that need the Wood's photo give empty values for single-image cases.
`python -c "from vitfeat.featurize import describe_column; print(describe_column('wood_shape_solidity'))"`
explains any column in plain words.

Masks: given (manifest columns; cases without one fall back to auto, recorded per case),
auto (Wood's: fluorescence threshold; clinical: Otsu on the CIELAB depigmentation index L*-b*),
model:PATH (a trained YOLO .pt or segmenter directory).

Re-runs are cheap: results are cached per case and family (--cache-dir, default
.vitfeat-cache beside the output), so an interrupted run resumes where it stopped. A case that
fails gets its error text in the 'error' column; the run goes on and ends with a summary.

Examples:
  vitfeat extract data/synth/manifest.csv -o artifacts/features.parquet --jobs 2
  vitfeat extract manifest.csv -o feats.parquet --families shape border pair --masks auto
  vitfeat extract manifest.csv -o feats.csv --format csv
  vitfeat extract manifest.csv -o feats.parquet --config extract.yaml
  vitfeat extract manifest.csv -o feats.parquet --backend dask --scheduler tcp://10.0.0.5:8786

A YAML config holds the same options (keys: families, masks, jobs, format, cache_dir, backend,
scheduler, batch_size, targets, family_config); flags given on the command line win. Example:
  families: [shape, border, satellites]
  masks: auto
  jobs: 2
  family_config:
    border: {band_px: 40}
"""


def register(subparsers) -> None:
    """Add ``vitfeat extract`` to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    from vitfeat.featurize import family_help

    description = DESCRIPTION.replace("{families}", family_help())
    p = add_command(subparsers, "extract", "extract handcrafted and deep features from a manifest into a table",
                    description)
    p.add_argument("manifest", help="manifest CSV/Parquet (see `vitfeat manifest check`)")
    p.add_argument("-o", "--output", required=True, help="feature table to write (.parquet or .csv)")
    p.add_argument("--families", nargs="+", default=None, metavar="FAMILY",
                   help="families to extract, space or comma separated (default: all handcrafted)")
    p.add_argument("--masks", default=None, metavar="SOURCE", help="given (default), auto, or model:PATH")
    p.add_argument("--jobs", type=int, default=None, help="parallel worker processes (default 1; -1 = all cores)")
    p.add_argument("--format", dest="fmt", choices=("parquet", "csv"), default=None,
                   help="output format (default from the output suffix)")
    p.add_argument("--config", default=None, metavar="YAML", help="options from a YAML file (flags override)")
    p.add_argument("--cache-dir", default=None, help="per-case cache (default: .vitfeat-cache beside the output)")
    p.add_argument("--backend", choices=("loky", "dask"), default=None, help="joblib backend (default loky)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address for --backend dask")
    p.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="shrink photos whose longest side exceeds PX before extracting (e.g. 512 for phone "
                        "photos): pixel-unit features and defaults then mean the same on every camera")
    p.add_argument("--pixels-per-mm", type=float, default=None, metavar="X",
                   help="scale of the stored photos for rows without a manifest pixels_per_mm value: adds _mm/_mm2 "
                        "versions of length and area features")
    p.add_argument("--targets", nargs="+", default=None, help="target columns to carry over (default: label)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--skip-invalid", action="store_true",
                   help="extract the valid rows; write invalid ones with their reason in `error`")
    p.set_defaults(func=run, output_check=[("output", "file"), ("cache_dir", "dir")])


def run(args) -> int:
    """Run ``vitfeat extract`` with the parsed arguments (a thin shell over the library): extract the
    families' features of the manifest's cases into a feature table.

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
    from vitfeat.featurize import extract, load_config

    try:
        options = load_config(args.config) if args.config else {}
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    flags = {"families": args.families, "masks": args.masks, "jobs": args.jobs, "format": args.fmt,
             "cache_dir": args.cache_dir, "backend": args.backend, "scheduler": args.scheduler,
             "targets": args.targets, "max_side": args.max_side}
    options.update({k: v for k, v in flags.items() if v is not None})
    families = options.get("families")
    if isinstance(families, list):
        families = [f for item in families for f in str(item).replace(",", " ").split()]
    try:
        result = extract(
            args.manifest, args.output, families=families, masks=options.get("masks", "given"),
            jobs=int(options.get("jobs", 1)), fmt=options.get("format"), cache_dir=options.get("cache_dir"),
            backend=options.get("backend", "loky"), scheduler=options.get("scheduler"),
            family_config=options.get("family_config"), batch_size=int(options.get("batch_size", 16)),
            targets=options.get("targets"), progress=not args.no_progress, max_side=options.get("max_side"),
            skip_invalid=args.skip_invalid, pixels_per_mm=args.pixels_per_mm,
        )
    except (ManifestError, FileNotFoundError, KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    print(result.summary())
    return 0
