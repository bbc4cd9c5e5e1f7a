"""Launch wrappers of ``pool.cu`` (same names and signatures as ``kernels/cpu/pool.py``, plus ``be``).

Arrays are (N, C, H, W); the kernels see ``P = N·C`` planes. Backward kernels run one thread per
input element (gather form, deterministic); ``max_unpool2d_forward`` scatters with atomicAdd
(see ``pool.cu``), or without atomics in deterministic mode (``minicnn.use_deterministic_algorithms``).
"""
import numpy as np

from ..geometry import output_shape
from ._gemm import settings
from ._planes import plane_chunks, plane_view
from ._scatter import scatter_add

KERNELS = (
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_forward", "adaptive_max_pool2d_backward",
    "max_unpool2d_forward", "max_unpool2d_backward",
)

_CU = "pool.cu"


def _i32(*values):
    return tuple(np.int32(v) for v in values)


def _launch(be, name, dtype, n, arrays, ints):
    """Kernel ``name`` over ``n`` threads (one per element of one (N, C, …) array), launched over
    chunks of planes that each fit a 32-bit count (:func:`~._planes.plane_chunks`)."""
    if n == 0:
        return
    k = be.function(_CU, name, dtype)
    planes = arrays[0].shape[0] * arrays[0].shape[1]
    per_plane = max(n // planes, *(a.size // planes for a in arrays))
    for p0, p1 in plane_chunks(planes, per_plane, name):
        m = n // planes * (p1 - p0)
        k(be.grid_1d(m), (be.BLOCK,), tuple(plane_view(a, p0, p1) for a in arrays) + _i32(m, *ints))


def max_pool2d_forward(be, x, kernel, stride, padding, dilation, ceil_mode, indices=True):
    """``(y, idx)``, or ``(y, None)`` with ``indices=False`` (the kernel still writes them: one
    launch for both, and the memory pool takes the array back at once)."""
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, padding, dilation, ceil_mode, "max_pool2d")
    y = be.xp.empty((N, C, OH, OW), dtype=x.dtype)
    idx = be.xp.empty((N, C, OH, OW), dtype=np.int64)
    _launch(be, "max_pool2d_forward", x.dtype, y.size, (x, y, idx),
            (H, W, OH, OW, *kernel, *stride, *padding, *dilation))
    return y, (idx if indices else None)


def max_pool2d_backward(be, gy, idx, in_hw, kernel, stride, padding, dilation):
    gy, idx = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(idx)
    N, C, OH, OW = gy.shape
    gx = be.xp.empty((N, C) + tuple(in_hw), dtype=gy.dtype)
    _launch(be, "max_pool2d_backward", gy.dtype, gx.size, (gy, idx, gx),
            (*in_hw, OH, OW, *kernel, *stride, *padding, *dilation))
    return gx


def avg_pool2d_forward(be, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    y = be.xp.empty((N, C, OH, OW), dtype=x.dtype)
    _launch(be, "avg_pool2d_forward", x.dtype, y.size, (x, y),
            (H, W, OH, OW, *kernel, *stride, *padding, int(bool(count_include_pad)), int(divisor_override)))
    return y


def avg_pool2d_backward(be, gy, in_hw, kernel, stride, padding, count_include_pad, divisor_override):
    gy = be.xp.ascontiguousarray(gy)
    N, C, OH, OW = gy.shape
    gx = be.xp.empty((N, C) + tuple(in_hw), dtype=gy.dtype)
    _launch(be, "avg_pool2d_backward", gy.dtype, gx.size, (gy, gx),
            (*in_hw, OH, OW, *kernel, *stride, *padding, int(bool(count_include_pad)), int(divisor_override)))
    return gx


def adaptive_avg_pool2d_forward(be, x, out_hw):
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = be.xp.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    _launch(be, "adaptive_avg_pool2d_forward", x.dtype, y.size, (x, y), (H, W, *out_hw))
    return y


def adaptive_avg_pool2d_backward(be, gy, in_hw):
    gy = be.xp.ascontiguousarray(gy)
    N, C, OH, OW = gy.shape
    gx = be.xp.empty((N, C) + tuple(in_hw), dtype=gy.dtype)
    _launch(be, "adaptive_avg_pool2d_backward", gy.dtype, gx.size, (gy, gx), (*in_hw, OH, OW))
    return gx


def adaptive_max_pool2d_forward(be, x, out_hw):
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = be.xp.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    idx = be.xp.empty((N, C) + tuple(out_hw), dtype=np.int64)
    _launch(be, "adaptive_max_pool2d_forward", x.dtype, y.size, (x, y, idx), (H, W, *out_hw))
    return y, idx


def adaptive_max_pool2d_backward(be, gy, idx, in_hw):
    gy, idx = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(idx)
    N, C, OH, OW = gy.shape
    gx = be.xp.empty((N, C) + tuple(in_hw), dtype=gy.dtype)
    _launch(be, "adaptive_max_pool2d_backward", gy.dtype, gx.size, (gy, idx, gx), (*in_hw, OH, OW))
    return gx


def max_unpool2d_forward(be, x, idx, out_hw):
    """Scatter-ADD (atomicAdd) into a zeroed output; indices are range-checked by the caller. In
    deterministic mode a sorted scatter-add (duplicates summed in input order, no atomics)."""
    x, idx = be.xp.ascontiguousarray(x), be.xp.ascontiguousarray(idx)
    N, C, H, W = x.shape
    if settings.deterministic:
        xp, out_plane = be.xp, out_hw[0] * out_hw[1]
        dest = xp.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * out_plane + idx.astype(np.int64)
        y = scatter_add(be, x.reshape(-1), dest.reshape(-1), N * C * out_plane)
        return y.reshape((N, C) + tuple(out_hw))
    y = be.xp.zeros((N, C) + tuple(out_hw), dtype=x.dtype)
    _launch(be, "max_unpool2d_forward", x.dtype, x.size, (x, idx, y), (H * W, out_hw[0] * out_hw[1]))
    return y


def max_unpool2d_backward(be, gy, idx):
    gy, idx = be.xp.ascontiguousarray(gy), be.xp.ascontiguousarray(idx)
    N, C, OH, OW = gy.shape
    gx = be.xp.empty(idx.shape, dtype=gy.dtype)
    _launch(be, "max_unpool2d_backward", gy.dtype, gx.size, (gy, idx, gx),
            (idx.shape[2] * idx.shape[3], OH * OW))
    return gx
