"""`vitfeat serve`: the clinician's app (Gradio) for one or more fitted runs."""

from __future__ import annotations

from vitfeat.cli._common import add_command

DESCRIPTION = """\
Serve a web app for fitted runs: upload a clinical (and Wood's-lamp) photo of a lesion and see the
predicted stage with its probabilities beside the run's honest score, the lesion outlined on both
photos, the Wood's photo registered onto the clinical one, and the features behind the answer.
Tabs: Stage a lesion / Batch (manifest + zip -> CSV) / Model (the run's summary). The same
prediction is the API endpoint /predict (gradio_client).

Privacy: bound to 127.0.0.1 by default and never shared publicly; uploads are copied without EXIF
into a temporary folder removed after each answer (and Gradio's copy of each upload is deleted once
answered; SIGTERM removes the whole upload folder); nothing is written into the run directories.
Errors shown in the page never carry server paths, library names or tracebacks (the server log has them
under a reference number).

Integrity: each run's files are checked against the SHA-256 in its run.json at start-up; a modified
run is refused (--trust-modified serves it with a warning).

Examples:
  vitfeat serve artifacts/run
  vitfeat serve artifacts/run artifacts/vmtl-run --port 7861
  vitfeat serve artifacts/run --data-root /srv/photos   # Batch tab: folders under /srv/photos
"""


def register(subparsers) -> None:
    """Add the command to ``vitfeat``'s parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subcommands of ``vitfeat`` (or of its parent command).
    """
    p = add_command(subparsers, "serve", "web app for clinicians (stage a lesion pair)", DESCRIPTION)
    p.add_argument("runs", nargs="+", help="run directories written by `vitfeat fit` or `vitfeat train vmtl`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest accepted upload (default 25 MB)")
    p.add_argument("--trust-modified", action="store_true",
                   help="serve runs whose files changed after fit (their SHA-256 differs from run.json) with a "
                        "warning, instead of refusing them")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="a server folder the Batch tab may read images from (it and its subfolders only; "
                        "without it the Batch tab takes a zip of the images)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``vitfeat serve`` with the parsed arguments (a thin shell over the library).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        Exit status.
    """
    from vitfeat.app.server import serve
    from vitfeat.cli._common import CLIError

    try:
        serve(args.runs, host=args.host, port=args.port, max_bytes=int(args.max_upload_mb * 1024 * 1024),
              trust_modified=args.trust_modified, data_root=args.data_root)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return 0
