"""The dtypes minicnn computes in, and the one check every kernel-backed op makes.

The hand-written kernels (Numba and CUDA C) exist for native-byte-order float32 and float64
only. Other float types would pass a ``dtype.kind == "f"`` test and then fail inside Numba
(float16, float128) or read garbage (big-endian ``>f4``), so ops call :func:`check_float`
before any kernel runs. Integer and bool inputs of float-math ops are promoted to float32
(PyTorch's default dtype) by :func:`promote_to_float`, as ``torch.sigmoid(int_tensor)`` does.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_FLOAT = np.dtype(np.float32)


def is_kernel_float(dtype):
    """True for native float32 / float64 (what the kernels compute in)."""
    return np.dtype(dtype) in FLOAT_DTYPES and np.dtype(dtype).isnative


def check_float(op, name, a):
    """Raise TypeError unless ``a`` (array or Tensor) is native float32 or float64.

    >>> check_float("conv2d", "input", np.zeros(2, np.float16))
    Traceback (most recent call last):
    ...
    TypeError: conv2d: input must be float32 or float64, got float16; convert it with .float()
    """
    dt = np.dtype(a.dtype)
    if is_kernel_float(dt):
        return
    if dt in FLOAT_DTYPES:  # right type, other byte order
        raise TypeError(f"{op}: {name} must be native-byte-order float32 or float64, got {dt.str!r}; "
                        f"convert it with .astype(np.{dt.name})")
    raise TypeError(f"{op}: {name} must be float32 or float64, got {dt}; convert it with .float()")


def promote_to_float(xp, a):
    """``a`` unchanged when it is float32/float64, else ``a`` as float32 (ints, bools) or the
    native float it is closest to (float16 -> float32, float128 -> float64)."""
    dt = a.dtype
    if is_kernel_float(dt):
        return a
    if dt.kind == "f" and dt.itemsize > 8:
        return a.astype(np.float64)
    if dt.kind == "f" and dt.itemsize == 8:
        return a.astype(np.float64)  # a big-endian float64
    return a.astype(DEFAULT_FLOAT)
