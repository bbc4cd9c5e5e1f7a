"""Launch wrappers of ``activation.cu`` (same names and signatures as ``kernels/cpu/activation.py``, plus ``be``)."""
import numpy as np

KERNELS = ("relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward", "hardtanh_forward",
           "hardtanh_backward")

_CU = "activation.cu"


def relu_forward(be, x, out=None):
    """y = relu(x): one thread per element (64-bit element count); into ``out`` when given (a
    C-contiguous array of x's shape and dtype, which may be x itself)."""
    x = be.xp.ascontiguousarray(x)
    y = be.xp.empty_like(x) if out is None else out
    be.function(_CU, "relu_forward", x.dtype)(be.grid_1d(x.size), (be.BLOCK,), (x, y, np.int64(x.size)))
    return y


def relu_backward(be, gy, y):
    """gx = gy · [y > 0]: one thread per element."""
    gy, y = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(y)
    gx = be.xp.empty_like(gy)
    be.function(_CU, "relu_backward", gy.dtype)(be.grid_1d(gy.size), (be.BLOCK,), (gy, y, gx, np.int64(gy.size)))
    return gx


def leaky_relu_forward(be, x, a, out=None):
    """y = x if x > 0 else a·x: one thread per element; into ``out`` when given (may be x itself)."""
    x = be.xp.ascontiguousarray(x)
    y = be.xp.empty_like(x) if out is None else out
    be.function(_CU, "leaky_relu_forward", x.dtype)(be.grid_1d(x.size), (be.BLOCK,),
                                                    (x, y, x.dtype.type(a), np.int64(x.size)))
    return y


def leaky_relu_backward(be, gy, s, a):
    """gx = gy · (1 if s > 0 else a) (s: the input, or the output for a >= 0): one thread per element."""
    gy, s = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(s)
    gx = be.xp.empty_like(gy)
    be.function(_CU, "leaky_relu_backward", gy.dtype)(be.grid_1d(gy.size), (be.BLOCK,),
                                                      (gy, s, gx, gy.dtype.type(a), np.int64(gy.size)))
    return gx


def hardtanh_forward(be, x, lo, hi, out=None):
    """y = clamp(x, lo, hi): one thread per element; into ``out`` when given (may be x itself)."""
    x = be.xp.ascontiguousarray(x)
    y = be.xp.empty_like(x) if out is None else out
    t = x.dtype.type
    be.function(_CU, "hardtanh_forward", x.dtype)(be.grid_1d(x.size), (be.BLOCK,), (x, y, t(lo), t(hi), np.int64(x.size)))
    return y


def hardtanh_backward(be, gy, y, lo, hi):
    """gx = gy · [lo < y < hi]: one thread per element."""
    gy, y = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(y)
    gx = be.xp.empty_like(gy)
    t = gy.dtype.type
    be.function(_CU, "hardtanh_backward", gy.dtype)(be.grid_1d(gy.size), (be.BLOCK,),
                                                    (gy, y, gx, t(lo), t(hi), np.int64(gy.size)))
    return gx
