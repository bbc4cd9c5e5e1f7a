"""``EmuModule`` / ``EmuKernel``: ``cupy.RawModule`` / ``cupy.RawKernel`` on the CPU.

A call ``k(grid, block, args, shared_mem=0)`` is checked before anything runs, more strictly
than CuPy does, because the mistakes it catches are silent on a GPU:

- arguments against the parsed C parameter types: a pointer takes a C-contiguous
  ``numpy.ndarray`` of the matching dtype; a scalar takes a NumPy scalar of exactly the C type,
  or a Python scalar only where CuPy's conversion gives that type (CuPy passes a Python ``int``
  as ``long long``, a ``float`` as ``double``, a ``bool`` as ``bool``). A Python float passed to a
  ``float`` parameter hands the kernel 4 of the 8 bytes of a double: a TypeError here.
- launch limits of current NVIDIA GPUs: at most 1024 threads per block, block x, y <= 1024,
  z <= 64, grid x <= 2**31 - 1, grid y, z <= 65535, shared memory <= 48 KiB, nothing zero.
"""
import ctypes
import os

import numpy as np

from . import _build, _source

MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_SHARED_BYTES = 48 * 1024

_FTZ_OPTIONS = {"-ftz=true", "--ftz=true", "--use_fast_math", "-use_fast_math"}
_ORDERS = {"scrambled": 0, "ascending": 1, "descending": 2}

# What CuPy turns a Python scalar into (cupy/_core/_scalar.pyx: numpy_dtype_from_pyscalar).
_PY_SCALAR_NOTE = {
    float: "CuPy passes a Python float as a C double",
    int: "CuPy passes a Python int as a C long long (int64)",
    bool: "CuPy passes a Python bool as a C bool",
}


class EmuLaunchError(RuntimeError):
    """A kernel failed while running in the emulator (e.g. barrier divergence)."""


def flush_to_zero(options):
    """Whether NVRTC ``options`` make single-precision denormals flush to zero."""
    ftz = False
    for o in options:
        if o in _FTZ_OPTIONS:
            ftz = True
        elif o in ("-ftz=false", "--ftz=false"):
            ftz = False
    return ftz


def _num_workers():
    n = os.environ.get("MINICNN_EMU_THREADS")
    if n:
        return max(1, int(n))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cupy_dtype_of_python_scalar(v):
    """The dtype CuPy gives a Python scalar in a kernel call (None if CuPy rejects it)."""
    t = type(v)
    if t is bool:
        return np.dtype(np.bool_)
    if t is float:
        return np.dtype(np.float64)
    if t is int:
        return np.dtype(np.uint64) if v >= 2**63 else np.dtype(np.int64)
    return None


def _dims(kernel, what, d):
    if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
        d = (d,)
    if (not isinstance(d, (tuple, list)) or not 1 <= len(d) <= 3
            or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in d)):
        raise TypeError(f"kernel {kernel!r}: {what} must be an int or a tuple of 1 to 3 ints, got {d!r}")
    d = tuple(int(x) for x in d) + (1,) * (3 - len(d))
    if min(d) <= 0:
        raise ValueError(f"kernel {kernel!r}: {what} {d} has a zero or negative size")
    return d


class EmuKernel:
    """One kernel of an :class:`EmuModule`, called like ``cupy.RawKernel``."""

    def __init__(self, module, signature, launcher):
        self.module = module
        self.signature = signature
        self.name = signature.name
        self._launcher = launcher
        launcher.restype = ctypes.c_int
        launcher.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
                             ctypes.POINTER(ctypes.c_uint), ctypes.c_ulonglong, ctypes.c_uint, ctypes.c_int,
                             ctypes.c_char_p, ctypes.c_int]

    def __repr__(self):
        params = ", ".join(f"{p.ctype} {p.name}" for p in self.signature.params)
        return f"<EmuKernel {self.name}({params})>"

    def _arg_slot(self, p, v):
        """A 1-element array holding the value the kernel receives for parameter ``p``."""
        where = f"kernel {self.name!r}: argument {p.index} ({p.name!r}, C type '{p.ctype}')"
        if p.pointer:
            if v is None:  # CuPy passes None as a null pointer
                return np.zeros(1, dtype=np.uintp)
            if not isinstance(v, np.ndarray):
                raise TypeError(f"{where} expects a numpy.ndarray of dtype {p.dtype}, got {type(v).__name__}")
            if v.dtype != p.dtype:
                raise TypeError(f"{where} expects an array of dtype {p.dtype}, got dtype {v.dtype}")
            if not v.flags.c_contiguous:
                raise TypeError(f"{where} expects a C-contiguous array, got shape {v.shape} with strides "
                                f"{v.strides} (use numpy.ascontiguousarray)")
            if not v.flags.aligned:
                raise TypeError(f"{where} expects an aligned array")
            return np.array([v.ctypes.data], dtype=np.uintp)
        if isinstance(v, np.generic):
            if v.dtype != p.dtype:
                raise TypeError(f"{where} expects numpy.{p.dtype.type.__name__}, got numpy.{type(v).__name__}")
            return np.array([v], dtype=p.dtype)
        got = _cupy_dtype_of_python_scalar(v)
        if got is None:
            raise TypeError(f"{where} expects numpy.{p.dtype.type.__name__}, got {type(v).__name__}")
        if got != p.dtype:
            raise TypeError(f"{where} expects numpy.{p.dtype.type.__name__}, got Python {type(v).__name__} "
                            f"({_PY_SCALAR_NOTE[type(v)]}); pass numpy.{p.dtype.type.__name__}(...)")
        return np.array([v], dtype=p.dtype)

    def __call__(self, grid, block, args, *, shared_mem=0):
        name = self.name
        grid = _dims(name, "grid", grid)
        block = _dims(name, "block", block)
        for axis, (g, b, gmax, bmax) in enumerate(zip(grid, block, MAX_GRID, MAX_BLOCK)):
            if b > bmax:
                raise ValueError(f"kernel {name!r}: block {block}: dimension {'xyz'[axis]} exceeds {bmax}")
            if g > gmax:
                raise ValueError(f"kernel {name!r}: grid {grid}: dimension {'xyz'[axis]} exceeds {gmax}")
        if block[0] * block[1] * block[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(f"kernel {name!r}: block {block} has {block[0] * block[1] * block[2]} threads, "
                             f"more than {MAX_THREADS_PER_BLOCK}")
        shared_mem = int(shared_mem)
        static = self.module.static_shared_bytes
        if shared_mem < 0 or shared_mem + static > MAX_SHARED_BYTES:
            raise ValueError(f"kernel {name!r}: shared memory of {shared_mem} dynamic + {static} static bytes "
                             f"exceeds {MAX_SHARED_BYTES}")
        params = self.signature.params
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel {name!r}: args must be a tuple, got {type(args).__name__}")
        if len(args) != len(params):
            raise TypeError(f"kernel {name!r} takes {len(params)} arguments "
                            f"({', '.join(p.name for p in params)}), got {len(args)}")
        slots = [self._arg_slot(p, v) for p, v in zip(params, args)]
        argv = (ctypes.c_void_p * max(1, len(slots)))(*[s.ctypes.data for s in slots])
        order = os.environ.get("MINICNN_EMU_ORDER", "scrambled")
        if order not in _ORDERS:
            raise ValueError(f"MINICNN_EMU_ORDER={order!r}: use one of {sorted(_ORDERS)}")
        flags = int(self.module.ftz) | (_ORDERS[order] << 1)
        err = ctypes.create_string_buffer(4096)
        rc = self._launcher(argv, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), shared_mem, flags,
                            _num_workers(), err, len(err))
        if rc:
            raise EmuLaunchError(f"kernel {name!r}: {err.value.decode(errors='replace')}")


class EmuModule:
    """CUDA C source compiled for the CPU; the emulator's ``cupy.RawModule(code=, options=)``.

    Args:
        code: the CUDA C text, exactly as given to NVRTC.
        options: NVRTC options. Only ``-ftz=true``/``--use_fast_math`` matter here: they make the
            launches flush denormals to zero, like the GPU.

    Compilation happens at the first :meth:`get_function` (as in CuPy), and is cached on disk.
    """

    def __init__(self, code, options=()):
        self.code = code
        self.options = tuple(options)
        self.ftz = flush_to_zero(self.options)
        self.signatures = _source.parse_kernels(code)
        self._lib = None
        self._kernels = {}
        self.static_shared_bytes = 0

    def compile(self):
        """Build (or fetch from the cache) and load the library; return self."""
        if self._lib is None:
            lib = _build.build(self.code, self.options, self.signatures)
            lib.emu_static_shared_bytes.restype = ctypes.c_ulonglong
            # One module-wide count (all kernels' __shared__ variables): exact for a module with a
            # single kernel; ASan pads it with redzones, so it is not enforced then. The NVRTC
            # compile check reports the exact per-kernel figure.
            if len(self.signatures) == 1 and not _build.sanitize_mode():
                self.static_shared_bytes = int(lib.emu_static_shared_bytes())
            self._lib = lib
        return self

    def get_function(self, name):
        """The kernel ``name`` (an ``extern "C" __global__`` function of the source)."""
        if name not in self.signatures:
            raise AttributeError(f"no kernel {name!r} in this module; kernels: {', '.join(self.signatures) or 'none'}"
                                 " (only extern \"C\" __global__ functions are found)")
        if name not in self._kernels:
            self.compile()
            self._kernels[name] = EmuKernel(self, self.signatures[name], getattr(self._lib, f"emu_launch_{name}"))
        return self._kernels[name]
