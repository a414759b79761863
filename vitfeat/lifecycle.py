"""Process lifetime: worker processes that end with their parent, and SIGTERM as a clean stop.

joblib's loky workers (and the worker processes of a local Dask cluster) outlive a main process
that is killed with ``kill -9``: nothing tells them, and they go on computing for nobody.
:func:`exit_with_parent`, called at the start of every task a worker runs, starts (once per
process) a watchdog thread that ends the worker as soon as its parent is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

_WATCHED: set[int] = set()  # the processes (pids) whose watchdog is running
_LOCK = threading.Lock()

#: How often (seconds) a worker looks whether its parent is still there.
POLL_S = 0.5


def exit_with_parent(poll_s: float = POLL_S) -> bool:
    """In a worker process, end this process soon after its parent process dies.

    Does nothing in the main process (a command run with ``--jobs 1`` computes there), and starts
    at most one watchdog per process however often it is called.

    Parameters
    ----------
    poll_s : float, default 0.5
        Seconds between two looks at the parent.

    Returns
    -------
    bool
        Whether a watchdog watches this process (False in the main process).
    """
    if not _is_worker_process():
        return False
    pid = os.getpid()
    with _LOCK:
        if pid in _WATCHED:
            return True
        _WATCHED.add(pid)
    parent = os.getppid()
    threading.Thread(target=_watch, args=(parent, poll_s), name="vitfeat-exit-with-parent", daemon=True).start()
    return True


def _is_worker_process() -> bool:
    """loky names its workers ``LokyProcess-N``; Dask's worker processes run ``dask`` entry points."""
    name = multiprocessing.current_process().name
    return name.startswith(("LokyProcess", "Dask")) or "loky" in name.lower()


def _watch(parent: int, poll_s: float) -> None:
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent:  # re-parented: the parent died
            os._exit(1)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see :func:`stop_on_sigterm`)."""


def stop_on_sigterm():
    """Turn SIGTERM into :class:`Terminated`, so that ``finally`` blocks run and the command can say
    what is kept (finished results are in the caches; a rerun resumes) instead of vanishing.

    Only from the main thread (``signal`` allows no other); elsewhere nothing happens.

    Returns
    -------
    object
        The handler it replaced (give it to ``signal.signal`` to restore it), or None.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)

    def _raise(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)
    return previous
