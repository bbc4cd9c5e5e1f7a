"""Numba CPU kernels: the ``cpu`` device.

Each family module lists its kernels in ``KERNELS``; :func:`kernels` collects them.
Conventions: ``@njit(cache=True)``; ``prange`` on the outermost loop only; backward kernels
parallel over planes that one thread owns (no races, no atomics); a thin Python wrapper
allocates outputs and the raw kernel fills them. Set ``NUMBA_DISABLE_JIT=1`` to step through a
kernel in a debugger.
"""
import sys

from . import _threads  # noqa: F401  (sets Numba's threading layer before the first kernel compiles)
from .._registry import collect

_KERNELS = None


def kernels():
    """Namespace of every CPU kernel (built on first use)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = collect(sys.modules[__name__])
    return _KERNELS
