"""Start the app: loopback by default, no share link, Gradio's upload cache in a private folder."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from vitfeat.app.predict_case import MAX_UPLOAD_BYTES


def launch(run_dirs, *, host: str = "127.0.0.1", port: int | None = 7860, max_bytes: int = MAX_UPLOAD_BYTES,
           block: bool = True, cache=None, **build_kwargs):
    """Build and launch the app; returns ``(app, cache_dir)``. ``share`` is always off.

    ``cache`` is the folder Gradio keeps uploads in (a fresh private one by default); whoever
    launches removes it afterwards.

    Parameters
    ----------
    run_dirs : sequence of path-like
        The runs to serve.
    host : str, default "127.0.0.1"
        Address (loopback only by default).
    port : int, optional
        Port (None: Gradio's default).
    max_bytes : int
        Upload-size limit.
    block : bool, default True
        Serve until interrupted.
    cache : path-like, optional
        Gradio's upload folder.
    **build_kwargs
        Options of the app's layout (``vitfeat.app.ui.build_app``).

    Returns
    -------
    tuple
    """
    cache = Path(cache) if cache is not None else Path(tempfile.mkdtemp(prefix="vitfeat-gradio-"))
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # uploads land here, not in a shared /tmp/gradio
    from vitfeat.app.ui import build_app

    examples = cache / "examples"  # synthetic example pairs, drawn now, removed with the cache
    build_kwargs.setdefault("examples_dir", examples)
    app = build_app(run_dirs, max_bytes=max_bytes, **build_kwargs)
    app.queue(default_concurrency_limit=1)
    allowed = _case_folders(run_dirs) + [str(examples.resolve())]
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
               max_file_size=max_bytes, allowed_paths=allowed, show_error=True, quiet=not block)
    return app, cache


def _terminate(_signum, _frame):
    raise KeyboardInterrupt


def _case_folders(run_dirs) -> list[str]:
    """The folders of the runs' own training images (the 'run case' picker serves them)."""
    from vitfeat.artefacts import read_run_json

    folders = set()
    for d in run_dirs:  # build_app has verified each run already; only its manifest path is needed here
        man = (read_run_json(d).get("extraction") or {}).get("manifest")
        if man:
            folders.add(str(Path(man).resolve().parent))
    return sorted(folders)


def serve(run_dirs, *, host: str = "127.0.0.1", port: int = 7860, max_bytes: int = MAX_UPLOAD_BYTES,
          trust_modified: bool = False, data_root=None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); the upload cache is removed on the way out.

    Parameters
    ----------
    run_dirs : list of path-like
        Fitted runs (verified against their recorded SHA-256 first).
    host, port : str, int
        Where to listen (loopback by default).
    max_bytes : int
        Upload limit.
    trust_modified : bool, default False
        Serve runs whose files changed after fit, with a warning, instead of refusing them.
    data_root : path-like, optional
        The server folder the Batch tab may read images from (nothing outside it); none by default.
    """
    app = None
    # made here, not in launch: a signal while launch blocks must still find the folder to remove
    cache = Path(tempfile.mkdtemp(prefix="vitfeat-gradio-"))
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl-C: the finally runs
    try:
        app, _ = launch(run_dirs, host=host, port=port, max_bytes=max_bytes, block=True, cache=cache,
                        trust_modified=trust_modified, data_root=data_root)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if app is not None:
            app.close()
        shutil.rmtree(cache, ignore_errors=True)
