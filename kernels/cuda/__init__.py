"""CUDA C kernels (``*.cu``) and their launch wrappers, shared by ``cuda`` and ``cuda-emu``.

Each family module (``pool.py`` beside ``pool.cu``) defines wrappers ``f(be, arrays..., params)``
written against a :class:`~._launch.CudaBackend` ``be`` and lists them in ``KERNELS``.
:func:`kernels` binds them to a backend, so a device sees ``f(arrays..., params)`` exactly as on
the CPU.
"""
import functools
import sys

from .._registry import collect
from ._launch import CudaBackend, NVRTC_OPTIONS, cupy_backend, emulator_backend, grid_1d  # noqa: F401


def kernels(backend):
    """Namespace of every CUDA kernel wrapper bound to ``backend``."""

    def bind(f):
        bound = functools.partial(f, backend)
        functools.update_wrapper(bound, f)
        return bound

    return collect(sys.modules[__name__], bind)
