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
#: The environment variable holding the main process's pid, inherited by its workers.
MAIN_PID_VARIABLE = "VITFEAT_MAIN_PID"


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
    main_pid = int(os.environ.get(MAIN_PID_VARIABLE) or 0)
    threading.Thread(target=_watch, args=(main_pid, os.getppid(), poll_s), name="vitfeat-exit-with-parent",
                     daemon=True).start()
    return True


def _is_worker_process() -> bool:
    """loky names its workers ``LokyProcess-N``; Dask's worker processes run ``dask`` entry points."""
    name = multiprocessing.current_process().name
    return name.startswith(("LokyProcess", "Dask")) or "loky" in name.lower()


def _watch(main_pid: int, parent: int, poll_s: float) -> None:
    while True:
        if main_pid and main_pid != os.getpid():
            if not _alive(main_pid):
                os._exit(1)
        elif os.getppid() != parent:  # no main process recorded: re-parented means the parent died
            os._exit(1)
        time.sleep(poll_s)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mark_main_process() -> None:
    """Record this process's pid for the workers it starts (they inherit the environment).

    A worker checks the pid itself rather than its parent, because it may be killed before it
    gets to start its watchdog (while importing), after which its parent is already someone else.
    """
    if not _is_worker_process():
        os.environ[MAIN_PID_VARIABLE] = str(os.getpid())


def loky_workers_exit_with_parent():
    """A ``joblib.parallel_config`` for the loky backend whose workers run :func:`exit_with_parent`
    as soon as they start, before their first task, so that idle workers go too.

    Returns
    -------
    contextlib.AbstractContextManager
        Enter it around the ``joblib.Parallel`` calls.
    """
    from joblib import parallel_config

    return parallel_config(backend="loky", initializer=exit_with_parent)


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

    def _raise(_signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)
    return previous


_mark_main_process()
