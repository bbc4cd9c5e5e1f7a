"""Numba pooling kernels (the math is in ``kernels/reference/pool.py``).

Arrays are viewed as ``(P, H, W)`` with ``P = N·C`` planes; ``prange`` runs over planes, so
every backward is a scatter inside a plane that one thread owns (no races, no atomics). The
scatter visits outputs in row-major order, the same order as the GPU's gather loops.

Max and average pooling with non-overlapping windows (``kernel = stride = 2`` and the like: no
padding, no dilation, no ``ceil_mode`` overhang) take the fast paths of ``_pool_fast.py`` (run
as plane-range tasks on ``_threads.run_tasks``), which give the same bits as the general kernels here.
"""
import numpy as np
from numba import njit, prange

from ..geometry import output_shape
from . import _pool_fast as fast
from ._im2col import Workspace
from ._threads import over_chunks

KERNELS = (
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_forward", "adaptive_max_pool2d_backward",
    "max_unpool2d_forward", "max_unpool2d_backward",
)


@njit(cache=True, parallel=True)
def _max_pool(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            hf = h0
            while hf < 0:
                hf += dh
            for ow in range(OW):
                w0 = ow * sw - pw
                wf = w0
                while wf < 0:
                    wf += dw
                best = -np.inf
                best_i = -1  # a window that holds no input position (all padding): -inf, index -1
                if hf < H and wf < W:
                    best_i = hf * W + wf  # PyTorch's initial index: the first valid position
                for i in range(kh):
                    h = h0 + i * dh
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        w = w0 + j * dw
                        if w < 0 or w >= W:
                            continue
                        v = x[p, h, w]
                        if v > best or v != v:  # strict >: the first maximum wins; NaN wins
                            best = v
                            best_i = h * W + w
                y[p, oh, ow] = best
                idx[p, oh, ow] = best_i


@njit(cache=True, parallel=True)
def _gather_planes(src, idx, out):
    """``out[p, k] = src[p, idx[p, k]]``."""
    P, K = out.shape
    for p in prange(P):
        for k in range(K):
            out[p, k] = src[p, idx[p, k]]


@njit(cache=True)
def _avg_window(o, s, p, k, n, count_include_pad):
    """(start, end, divisor factor) of window ``o`` along one axis (PyTorch's rule)."""
    start = o * s - p
    end = min(start + k, n + p)
    padded = end - start
    start = max(start, 0)
    end = min(end, n)
    return start, end, padded if count_include_pad else end - start


@njit(cache=True, parallel=True)
def _avg_pool(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1, dvh = _avg_window(oh, sh, ph, kh, H, count_include_pad)
            for ow in range(OW):
                w0, w1, dvw = _avg_window(ow, sw, pw, kw, W, count_include_pad)
                divisor = divisor_override if divisor_override > 0 else dvh * dvw
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                y[p, oh, ow] = total / divisor


@njit(cache=True, parallel=True)
def _avg_pool_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    P, H, W = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1, dvh = _avg_window(oh, sh, ph, kh, H, count_include_pad)
            for ow in range(OW):
                w0, w1, dvw = _avg_window(ow, sw, pw, kw, W, count_include_pad)
                divisor = divisor_override if divisor_override > 0 else dvh * dvw
                g = gy[p, oh, ow] / divisor
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[p, h, w] += g


@njit(cache=True, parallel=True)
def _adaptive_avg_pool(x, y):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                y[p, oh, ow] = total / ((h1 - h0) * (w1 - w0))


@njit(cache=True, parallel=True)
def _adaptive_avg_pool_backward(gy, gx):
    P, H, W = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
                g = gy[p, oh, ow] / ((h1 - h0) * (w1 - w0))
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[p, h, w] += g


@njit(cache=True, parallel=True)
def _adaptive_max_pool(x, y, idx):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
                best = -np.inf
                best_i = h0 * W + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[p, h, w]
                        if v > best or v != v:
                            best = v
                            best_i = h * W + w
                y[p, oh, ow] = best
                idx[p, oh, ow] = best_i


def _planes(a):
    """``a`` (N, C, H, W) as a contiguous (N·C, H, W) array."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2], a.shape[3])


def _flat_planes(a):
    """``a`` (N, C, H, W) as a contiguous (N·C, H·W) array (sizes spelled out: ``reshape(P, -1)``
    has no answer for an empty batch)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2] * a.shape[3])


#: the indices of a max pool whose gradient will not be taken, one block of planes per task
SCRATCH_INDICES = Workspace()


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, indices=True):
    """``(y, idx)``: x (N, C, H, W) -> y (N, C, OH, OW), idx int64 (flat ``h·W + w``).

    ``indices=False`` (no gradient will be taken: eval, ``no_grad``): ``(y, None)``; the fast paths
    then write each task's indices into a per-thread scratch block that stays in cache (int64
    indices are twice the bytes of a float32 ``y``: ResNet-18's stem pool at batch 4 wrote 6 MiB)."""
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, padding, dilation, ceil_mode, "max_pool2d")
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64) if indices else None
    xp, yp = _planes(x), y.reshape(N * C, OH, OW)

    def over_planes(kern, *params):
        if indices:
            over_chunks(kern, N * C, xp, yp, idx.reshape(N * C, OH, OW), *params)
            return

        def block(xs, ys, i0, i1):  # planes i0:i1, their indices in rows 0:i1-i0 of the scratch
            kern(xs[i0:i1], ys[i0:i1], SCRATCH_INDICES.get((i1 - i0, OH, OW), np.int64), *params, 0, i1 - i0)

        over_chunks(block, N * C, xp, yp)

    if not fast.non_overlapping((H, W), (OH, OW), kernel, stride, padding, dilation):
        if fast.overlapping_fast(kernel, padding, dilation):
            over_planes(fast.max_pool_overlapping, *kernel, *stride, *padding)
        else:
            ip = np.empty((N * C, OH, OW), dtype=np.int64) if idx is None else idx.reshape(N * C, OH, OW)
            _max_pool(xp, yp, ip, *kernel, *stride, *padding, *dilation)
    elif fast.is_2x2(kernel, stride):
        over_planes(fast.max_pool_2x2)
    else:
        over_planes(fast.max_pool_non_overlapping, *kernel, *stride)
    return y, idx


def _scatter_add(src, idx, out_hw):
    """(N, C, *) values scattered (added) into (N, C, *out_hw) planes at the flat ``idx``."""
    N, C = src.shape[:2]
    out = np.empty((N, C, out_hw[0], out_hw[1]), dtype=src.dtype)  # each task zeroes its planes
    over_chunks(fast.scatter_add_planes, N * C, _flat_planes(src), _flat_planes(idx), _flat_planes(out))
    return out


def max_pool2d_backward(gy, idx, in_hw, kernel, stride, padding, dilation):
    """gx (N, C, H, W): each gy goes to the input element its window's ``idx`` names."""
    N, C, OH, OW = gy.shape
    if not fast.non_overlapping(in_hw, (OH, OW), kernel, stride, padding, dilation):
        return _scatter_add(gy, idx, in_hw)
    gx = np.empty((N, C) + tuple(in_hw), dtype=gy.dtype)  # every element written once: no zero fill
    gyp, ip, gxp = _planes(gy), _planes(idx), gx.reshape(N * C, *in_hw)
    if fast.is_2x2(kernel, stride):
        over_chunks(fast.max_pool_backward_2x2, N * C, gyp, ip, gxp)
    else:
        over_chunks(fast.max_pool_backward_non_overlapping, N * C, gyp, ip, gxp, *kernel, *stride)
    return gx


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """y (N, C, OH, OW): window sums over PyTorch's divisor (``divisor_override`` 0 = none)."""
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    xp, yp = _planes(x), y.reshape(N * C, OH, OW)
    if not fast.non_overlapping((H, W), (OH, OW), kernel, stride, padding):
        _avg_pool(xp, yp, *kernel, *stride, *padding, bool(count_include_pad), int(divisor_override))
        return y
    divisor = int(divisor_override) or kernel[0] * kernel[1]  # windows lie inside the input
    scale, exact = fast.divisor_scale(divisor)
    if fast.is_2x2(kernel, stride):
        over_chunks(fast.avg_pool_2x2, N * C, xp, yp, scale, float(divisor), exact)
    else:
        over_chunks(fast.avg_pool_non_overlapping, N * C, xp, yp, *kernel, *stride, scale,
                         float(divisor), exact)
    return y


def avg_pool2d_backward(gy, in_hw, kernel, stride, padding, count_include_pad, divisor_override):
    N, C, OH, OW = gy.shape
    if fast.non_overlapping(in_hw, (OH, OW), kernel, stride, padding):
        gx = np.empty((N, C) + tuple(in_hw), dtype=gy.dtype)  # every element written once
        divisor = int(divisor_override) or kernel[0] * kernel[1]
        scale, exact = fast.divisor_scale(divisor)
        over_chunks(fast.avg_pool_backward_non_overlapping, N * C, _planes(gy), gx.reshape(N * C, *in_hw),
                         *kernel, *stride, scale, float(divisor), exact)
        return gx
    gx = np.zeros((N, C) + tuple(in_hw), dtype=gy.dtype)
    _avg_pool_backward(_planes(gy), gx.reshape(N * C, *in_hw), *kernel, *stride, *padding,
                       bool(count_include_pad), int(divisor_override))
    return gx


def adaptive_avg_pool2d_forward(x, out_hw):
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    _adaptive_avg_pool(_planes(x), y.reshape(N * C, *out_hw))
    return y


def adaptive_avg_pool2d_backward(gy, in_hw):
    N, C = gy.shape[:2]
    gx = np.zeros((N, C) + tuple(in_hw), dtype=gy.dtype)
    _adaptive_avg_pool_backward(_planes(gy), gx.reshape(N * C, *in_hw))
    return gx


def adaptive_max_pool2d_forward(x, out_hw):
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    idx = np.empty((N, C) + tuple(out_hw), dtype=np.int64)
    _adaptive_max_pool(_planes(x), y.reshape(N * C, *out_hw), idx.reshape(N * C, *out_hw))
    return y, idx


def adaptive_max_pool2d_backward(gy, idx, in_hw):
    return _scatter_add(gy, idx, in_hw)


def max_unpool2d_forward(x, idx, out_hw):
    """Scatter-ADD ``y[n, c].flat[idx] += x`` (indices checked in range by the caller)."""
    return _scatter_add(x, idx, out_hw)


def max_unpool2d_backward(gy, idx):
    """Gather ``gx = gy[n, c].flat[idx]``, shaped like ``idx``."""
    gx = np.empty(idx.shape, dtype=gy.dtype)
    _gather_planes(_flat_planes(gy), _flat_planes(idx), _flat_planes(gx))
    return gx
