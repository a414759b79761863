"""Compiled loops for the few per-pixel passes that numpy can only do as many separate array passes.

:func:`compiled` turns a plain Python function over arrays and scalars into a numba nopython
function, compiled on its first call (not at import: numba loads in ~0.4 s) and cached on disk next
to its module, so a later process loads it instead of compiling. The Python function stays what
it is, readable and callable on its own (``__wrapped__``); its tests compare the compiled result with
the numpy formulation it replaced, bit for bit.
"""

from __future__ import annotations

import functools


def compiled(signature: str):
    """Decorator: compile the function with numba for ``signature`` on its first call.

    Parameters
    ----------
    signature : str
        numba signature, e.g. ``"float64(float32[:, :])"``; ``[:, :]`` arrays accept any layout.

    Returns
    -------
    callable
        A decorator; the decorated function keeps the plain one as ``__wrapped__``.
    """
    def decorate(func):
        @functools.wraps(func)
        def call(*args):
            return _jit(func, signature)(*args)

        return call

    return decorate


@functools.cache
def _jit(func, signature: str):
    import numba

    return numba.njit(signature, cache=True, nogil=True)(func)
