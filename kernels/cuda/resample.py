"""Launch wrappers of ``resample.cu`` (same names and signatures as ``kernels/cpu/resample.py``, plus ``be``).

The backward kernels gather: for each input row ``h`` they need the range of output rows that
read it. The tables are non-decreasing, so the range is found by binary search here
(``searchsorted``) and passed to the kernel as ``h_lo, h_hi`` (likewise for columns).
"""
import numpy as np

from ._planes import plane_chunks, plane_view

KERNELS = (
    "upsample_nearest2d_forward", "upsample_nearest2d_backward",
    "upsample_bilinear2d_forward", "upsample_bilinear2d_backward",
)

_CU = "resample.cu"


def _launch(be, name, dtype, n, arrays, ints):
    """Kernel ``name`` over ``n`` threads (one per element of one (N, C, H, W) array), launched over
    chunks of planes that each fit a 32-bit count; the 1-D index tables go whole to every launch."""
    if n == 0:
        return
    k = be.function(_CU, name, dtype)
    plane_arrays = [a for a in arrays if a.ndim == 4]
    planes = plane_arrays[0].shape[0] * plane_arrays[0].shape[1]
    per_plane = max(n // planes, *(a.size // planes for a in plane_arrays))
    for p0, p1 in plane_chunks(planes, per_plane, name):
        m = n // planes * (p1 - p0)
        views = tuple(plane_view(a, p0, p1) if a.ndim == 4 else a for a in arrays)
        k(be.grid_1d(m), (be.BLOCK,), views + tuple(np.int32(v) for v in (m,) + tuple(ints)))


def _contiguous(be, *arrays):
    return tuple(be.xp.ascontiguousarray(a) for a in arrays)


def _index_tables(be, *tables):
    return tuple(be.xp.ascontiguousarray(be.xp.asarray(t, dtype=np.int64)) for t in tables)


def _reader_range(be, first, last, n):
    """For each input i < n, the outputs [lo, hi) with first[o] <= i <= last[o] (non-decreasing tables)."""
    i = be.xp.arange(n, dtype=np.int64)
    lo = be.xp.searchsorted(last, i, side="left").astype(np.int64)
    hi = be.xp.searchsorted(first, i, side="right").astype(np.int64)
    return be.xp.ascontiguousarray(lo), be.xp.ascontiguousarray(be.xp.maximum(hi, lo))


def upsample_nearest2d_forward(be, x, src_h, src_w):
    (x,) = _contiguous(be, x)
    src_h, src_w = _index_tables(be, src_h, src_w)
    N, C, H, W = x.shape
    y = be.xp.empty((N, C, len(src_h), len(src_w)), dtype=x.dtype)
    _launch(be, "upsample_nearest2d_forward", x.dtype, y.size, (x, src_h, src_w, y), (H, W, len(src_h), len(src_w)))
    return y


def upsample_nearest2d_backward(be, gy, in_hw, src_h, src_w):
    (gy,) = _contiguous(be, gy)
    src_h, src_w = _index_tables(be, src_h, src_w)
    N, C, OH, OW = gy.shape
    H, W = in_hw
    h_lo, h_hi = _reader_range(be, src_h, src_h, H)
    w_lo, w_hi = _reader_range(be, src_w, src_w, W)
    gx = be.xp.empty((N, C, H, W), dtype=gy.dtype)
    _launch(be, "upsample_nearest2d_backward", gy.dtype, gx.size, (gy, h_lo, h_hi, w_lo, w_hi, gx), (H, W, OH, OW))
    return gx


def upsample_bilinear2d_forward(be, x, h0, h1, lh, w0, w1, lw):
    (x,) = _contiguous(be, x)
    h0, h1, w0, w1 = _index_tables(be, h0, h1, w0, w1)
    lh, lw = (be.xp.ascontiguousarray(be.xp.asarray(a, dtype=x.dtype)) for a in (lh, lw))
    N, C, H, W = x.shape
    y = be.xp.empty((N, C, len(h0), len(w0)), dtype=x.dtype)
    _launch(be, "upsample_bilinear2d_forward", x.dtype, y.size, (x, h0, h1, lh, w0, w1, lw, y),
            (H, W, len(h0), len(w0)))
    return y


def upsample_bilinear2d_backward(be, gy, in_hw, h0, h1, lh, w0, w1, lw):
    (gy,) = _contiguous(be, gy)
    h0, h1, w0, w1 = _index_tables(be, h0, h1, w0, w1)
    lh, lw = (be.xp.ascontiguousarray(be.xp.asarray(a, dtype=gy.dtype)) for a in (lh, lw))
    N, C, OH, OW = gy.shape
    H, W = in_hw
    h_lo, h_hi = _reader_range(be, h0, h1, H)
    w_lo, w_hi = _reader_range(be, w0, w1, W)
    gx = be.xp.empty((N, C, H, W), dtype=gy.dtype)
    _launch(be, "upsample_bilinear2d_backward", gy.dtype, gx.size,
            (gy, h0, h1, lh, w0, w1, lw, h_lo, h_hi, w_lo, w_hi, gx), (H, W, OH, OW))
    return gx
