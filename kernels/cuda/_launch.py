"""The launch layer shared by the ``cuda`` (CuPy) and ``cuda-emu`` (CPU emulator) devices.

A :class:`CudaBackend` knows two things: its array module ``xp`` (cupy or numpy) and how to turn
CUDA C source into a module with ``get_function(name)``. Kernel wrappers in ``kernels/cuda/*.py``
are written once against a backend ``be``::

    k = be.function("pool.cu", "max_pool2d_forward", x.dtype)
    k(be.grid_1d(n), (BLOCK,), (x, y, np.int32(n), ...))

Each ``.cu`` file is compiled once per scalar type: the loader prepends
``typedef float scalar_t;`` (or ``double``) and a ``#line 1`` directive, so the kernels are
written against ``scalar_t`` and compiler and sanitizer messages point at the ``.cu`` line.
"""
import os

import numpy as np

CUDA_DIR = os.path.dirname(os.path.abspath(__file__))

#: NVRTC options used for every module, on the GPU, in the NVRTC compile test and (for the
#: options that matter: ``-ftz``) in the emulator.
NVRTC_OPTIONS = ("--std=c++17",)

BLOCK = 256  #: default threads per block for 1-D launches

_SCALAR_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def scalar_type(dtype):
    """The C name of ``dtype`` (``float`` or ``double``); a TypeError for anything else."""
    try:
        return _SCALAR_TYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"CUDA kernels support float32 and float64, got dtype {np.dtype(dtype)}") from None


def read_source(cu_file):
    """The text of ``kernels/cuda/<cu_file>``."""
    with open(os.path.join(CUDA_DIR, cu_file)) as f:
        return f.read()


def module_source(cu_file, dtype):
    """The exact code handed to the compiler for ``cu_file`` specialised to ``dtype``."""
    path = os.path.join(CUDA_DIR, cu_file)
    return f'typedef {scalar_type(dtype)} scalar_t;\n#line 1 "{path}"\n' + read_source(cu_file)


def grid_1d(n, block=BLOCK):
    """Grid for ``n`` threads in blocks of ``block``: ``(ceil(n / block),)`` (at least 1)."""
    return (max(1, (int(n) + block - 1) // block),)


class CudaBackend:
    """Array module + module compiler for one device (``cuda`` or ``cuda-emu``).

    Args:
        name: the device name.
        xp: ``cupy`` or ``numpy``.
        compile_module: ``f(code, options) -> module`` with ``module.get_function(name)``
            returning a callable ``(grid, block, args, shared_mem=0)``.
    """

    def __init__(self, name, xp, compile_module):
        self.name = name
        self.xp = xp
        self._compile_module = compile_module
        self._modules = {}
        self._functions = {}

    grid_1d = staticmethod(grid_1d)
    BLOCK = BLOCK

    def module(self, cu_file, dtype=np.float32):
        key = (cu_file, scalar_type(dtype))
        if key not in self._modules:
            self._modules[key] = self._compile_module(module_source(cu_file, dtype), NVRTC_OPTIONS)
        return self._modules[key]

    def function(self, cu_file, kernel_name, dtype=np.float32):
        """The kernel ``kernel_name`` of ``cu_file`` compiled for ``dtype`` (cached)."""
        key = (cu_file, kernel_name, scalar_type(dtype))
        if key not in self._functions:
            self._functions[key] = self.module(cu_file, dtype).get_function(kernel_name)
        return self._functions[key]

    def to_host(self, a):
        """A NumPy copy of device array ``a``: the one door of the kernel wrappers' device→host
        reads (a copy on cuda-emu too, so both devices behave alike)."""
        return a.get() if self.xp is not np else np.array(a, copy=True)

    def __repr__(self):
        return f"CudaBackend({self.name!r})"


def cupy_backend():
    """The ``cuda`` backend: CuPy arrays, modules compiled by NVRTC through ``cupy.RawModule``."""
    import cupy

    def compile_module(code, options):
        return cupy.RawModule(code=code, options=tuple(options))

    return CudaBackend("cuda", cupy, compile_module)


def emulator_backend():
    """The ``cuda-emu`` backend: NumPy arrays, the same ``.cu`` compiled by g++ and run on the CPU."""
    from ..emulator import EmuModule

    def compile_module(code, options):
        return EmuModule(code=code, options=tuple(options))

    return CudaBackend("cuda-emu", np, compile_module)
