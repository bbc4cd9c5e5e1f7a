"""Reference pooling: plain loops, one output element at a time.

Shapes: ``x`` is ``(N, C, H, W)``; windows slide over ``(H, W)``. Along one axis, output
position ``o`` reads input positions ``o·s − p + j·d`` for ``j = 0..k−1`` (padding ``p`` on each
side, stride ``s``, dilation ``d``); the output length is
:func:`kernels.geometry.output_size` (``ceil_mode`` drops a window that starts in the right
padding).

- max pool:  ``y = max over the valid positions of the window``; the FIRST maximum in scan order
  (rows, then columns) wins (strict ``>``; a NaN always wins, as in PyTorch); padding is −∞.
  ``idx = h·W + w`` of the winner (int64, PyTorch's flat index into the input plane). With
  dilation a window can hold no input position at all (H=1, k=2, p=1, d=2 reads rows −1 and 1):
  then ``y = −∞`` as in PyTorch, and ``idx = −1`` (PyTorch returns an out-of-range index there),
  and the window passes no gradient.
- avg pool (PyTorch's divisor): the window ``[o·s − p, o·s − p + k)`` is first clipped to the
  padded extent ``[−p, n + p)`` (that clipped size is the divisor when ``count_include_pad``), then
  to the input ``[0, n)`` (that size is the divisor otherwise); ``divisor_override`` replaces both.
- adaptive pools: bin ``i`` of ``out`` bins over ``n`` inputs is
  ``[floor(i·n/out), ceil((i+1)·n/out))``.
- max unpool (scatter-ADD): ``y[n, c].flat[idx[n, c, i, j]] += x[n, c, i, j]``; with duplicate
  indices the values are summed.
"""
import math

import numpy as np

from ..geometry import output_shape


def _first_valid(start, d):
    """The first position ``start + j·d`` that is >= 0."""
    while start < 0:
        start += d
    return start


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode=False):
    """``(y, idx)``: window maxima and the flat index ``h·W + w`` of the first maximum."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    OH, OW = output_shape((H, W), kernel, stride, padding, dilation, ceil_mode, "max_pool2d")
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    h0, w0 = oh * sh - ph, ow * sw - pw
                    best = -math.inf
                    hf, wf = _first_valid(h0, dh), _first_valid(w0, dw)
                    best_i = hf * W + wf if hf < H and wf < W else -1  # -1: the window is all padding
                    for i in range(kh):
                        for j in range(kw):
                            h, w = h0 + i * dh, w0 + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                v = x[n, c, h, w]
                                if v > best or math.isnan(v):
                                    best, best_i = v, h * W + w
                    y[n, c, oh, ow] = best
                    idx[n, c, oh, ow] = best_i
    return y, idx


def max_pool2d_backward(gy, idx, in_hw):
    """``gx[n, c].flat[idx[n, c, oh, ow]] += gy[n, c, oh, ow]`` (the winner takes the gradient)."""
    N, C = gy.shape[:2]
    gx = np.zeros((N, C, in_hw[0] * in_hw[1]), dtype=gy.dtype)
    for n in range(N):
        for c in range(C):
            for g, i in zip(gy[n, c].ravel(), idx[n, c].ravel()):
                if i >= 0:  # -1: a window with no input position (all padding) has no gradient
                    gx[n, c, i] += g
    return gx.reshape(N, C, *in_hw)


def avg_pool_divisor(o, s, p, k, n, count_include_pad):
    """``(start, end, size)``: the window of output ``o`` clipped to the input, and the PyTorch
    divisor factor along this axis (before ``divisor_override``)."""
    start = o * s - p
    end = min(start + k, n + p)
    padded_size = end - start
    start, end = max(start, 0), min(end, n)
    return start, end, padded_size if count_include_pad else end - start


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                       divisor_override=None):
    """``y = Σ_window x / divisor`` with PyTorch's divisor (module docstring)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    OH, OW = output_shape((H, W), kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h0, h1, dvh = avg_pool_divisor(oh, sh, ph, kh, H, count_include_pad)
        for ow in range(OW):
            w0, w1, dvw = avg_pool_divisor(ow, sw, pw, kw, W, count_include_pad)
            divisor = divisor_override if divisor_override else dvh * dvw
            for n in range(N):
                for c in range(C):
                    total = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            total += x[n, c, h, w]
                    y[n, c, oh, ow] = total / divisor
    return y


def avg_pool2d_backward(gy, in_hw, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """``gx[h, w] = Σ_{windows ∋ (h, w)} gy / divisor``."""
    N, C, OH, OW = gy.shape
    H, W = in_hw
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    for oh in range(OH):
        h0, h1, dvh = avg_pool_divisor(oh, sh, ph, kh, H, count_include_pad)
        for ow in range(OW):
            w0, w1, dvw = avg_pool_divisor(ow, sw, pw, kw, W, count_include_pad)
            divisor = divisor_override if divisor_override else dvh * dvw
            gx[:, :, h0:h1, w0:w1] += (gy[:, :, oh, ow] / divisor)[:, :, None, None]
    return gx


def adaptive_bin(i, n, out):
    """Bin ``i`` of ``out`` over ``n`` positions: ``[floor(i·n/out), ceil((i+1)·n/out))``."""
    return (i * n) // out, -(-((i + 1) * n) // out)


def adaptive_avg_pool2d_forward(x, out_hw):
    N, C, H, W = x.shape
    OH, OW = out_hw
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h0, h1 = adaptive_bin(oh, H, OH)
        for ow in range(OW):
            w0, w1 = adaptive_bin(ow, W, OW)
            y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y


def adaptive_avg_pool2d_backward(gy, in_hw):
    N, C, OH, OW = gy.shape
    H, W = in_hw
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    for oh in range(OH):
        h0, h1 = adaptive_bin(oh, H, OH)
        for ow in range(OW):
            w0, w1 = adaptive_bin(ow, W, OW)
            gx[:, :, h0:h1, w0:w1] += (gy[:, :, oh, ow] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    return gx


def adaptive_max_pool2d_forward(x, out_hw):
    """``(y, idx)`` over adaptive bins; first maximum wins (strict ``>``, NaN wins)."""
    N, C, H, W = x.shape
    OH, OW = out_hw
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0, h1 = adaptive_bin(oh, H, OH)
                for ow in range(OW):
                    w0, w1 = adaptive_bin(ow, W, OW)
                    best, best_i = -math.inf, h0 * W + w0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = x[n, c, h, w]
                            if v > best or math.isnan(v):
                                best, best_i = v, h * W + w
                    y[n, c, oh, ow], idx[n, c, oh, ow] = best, best_i
    return y, idx


adaptive_max_pool2d_backward = max_pool2d_backward


def max_unpool2d_forward(x, idx, out_hw):
    """Scatter-ADD: ``y[n, c].flat[idx[n, c, i, j]] += x[n, c, i, j]``."""
    return max_pool2d_backward(x, idx, out_hw)


def max_unpool2d_backward(gy, idx):
    """Gather: ``gx[n, c, i, j] = gy[n, c].flat[idx[n, c, i, j]]``."""
    N, C = gy.shape[:2]
    gx = np.empty(idx.shape, dtype=gy.dtype)
    for n in range(N):
        for c in range(C):
            flat = gy[n, c].ravel()
            for pos in np.ndindex(*idx.shape[2:]):
                gx[(n, c) + pos] = flat[idx[(n, c) + pos]]
    return gx
