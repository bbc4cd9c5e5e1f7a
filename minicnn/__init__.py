"""minicnn: a from-scratch numerical CNN engine.

Hand-written forward and backward kernels on three devices (``cpu``: Numba; ``cuda``: CUDA C
through CuPy; ``cuda-emu``: the same CUDA C run on the CPU), a small autograd, and a
PyTorch-like layer API.
"""
from . import functional  # noqa: F401
from . import nn, optim  # noqa: F401
from . import profiler  # noqa: F401
from .random import manual_seed  # noqa: F401
from .autograd import Function, enable_grad, is_grad_enabled, no_grad  # noqa: F401
from .device import Device, cuda_is_available, get_device  # noqa: F401
from .tensor import Tensor, arange, from_numpy, ones, randn, tensor, zeros  # noqa: F401
from .summary import summary  # noqa: F401
from . import backends  # noqa: F401
from .backends import are_deterministic_algorithms_enabled, use_deterministic_algorithms  # noqa: F401

__version__ = "0.1.0"
