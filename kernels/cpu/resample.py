"""Numba resampling kernels (the math is in ``kernels/reference/resample.py``).

The source positions and weights are computed once on the host (PyTorch's exact float rules,
``minicnn/functional/resample.py``) and passed in as tables along each axis:

- nearest:  ``src_h (OH,)``, ``src_w (OW,)`` int64;
- bilinear: ``h0, h1 (OH,)`` int64 and ``lh (OH,)`` weights of row ``h1`` (``1 − lh`` for ``h0``),
  likewise ``w0, w1, lw``.

``prange`` runs over the ``N·C`` planes; backward scatters inside a plane one thread owns.
"""
import numpy as np
from numba import njit, prange

KERNELS = (
    "upsample_nearest2d_forward", "upsample_nearest2d_backward",
    "upsample_bilinear2d_forward", "upsample_bilinear2d_backward",
)


@njit(cache=True, parallel=True)
def _nearest(x, y, src_h, src_w):
    P = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h = src_h[oh]
            for ow in range(OW):
                y[p, oh, ow] = x[p, h, src_w[ow]]


@njit(cache=True, parallel=True)
def _nearest_backward(gy, gx, src_h, src_w):
    P = gy.shape[0]
    OH, OW = gy.shape[1], gy.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h = src_h[oh]
            for ow in range(OW):
                gx[p, h, src_w[ow]] += gy[p, oh, ow]


@njit(cache=True, parallel=True)
def _bilinear(x, y, h0, h1, lh, w0, w1, lw):
    P = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            a, b, bh = h0[oh], h1[oh], lh[oh]
            ah = 1 - bh
            for ow in range(OW):
                c, d, bw = w0[ow], w1[ow], lw[ow]
                aw = 1 - bw
                y[p, oh, ow] = ah * (aw * x[p, a, c] + bw * x[p, a, d]) + bh * (aw * x[p, b, c] + bw * x[p, b, d])


@njit(cache=True, parallel=True)
def _bilinear_backward(gy, gx, h0, h1, lh, w0, w1, lw):
    P = gy.shape[0]
    OH, OW = gy.shape[1], gy.shape[2]
    for p in prange(P):
        for oh in range(OH):
            a, b, bh = h0[oh], h1[oh], lh[oh]
            ah = 1 - bh
            for ow in range(OW):
                c, d, bw = w0[ow], w1[ow], lw[ow]
                aw = 1 - bw
                g = gy[p, oh, ow]
                gx[p, a, c] += ah * aw * g
                gx[p, a, d] += ah * bw * g
                gx[p, b, c] += bh * aw * g
                gx[p, b, d] += bh * bw * g


def _tables(*arrays):
    return tuple(np.ascontiguousarray(a) for a in arrays)


def _forward(kernel, x, out_hw, tables):
    """Run a forward kernel over the ``N·C`` planes of ``x``: ``y (N, C, *out_hw)``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    kernel(x.reshape(N * C, H, W), y.reshape(N * C, *out_hw), *_tables(*tables))
    return y


def _backward(kernel, gy, in_hw, tables):
    """Run a backward kernel over the ``N·C`` planes of ``gy``: ``gx (N, C, *in_hw)``, zero-filled first."""
    gy = np.ascontiguousarray(gy)
    N, C, OH, OW = gy.shape
    gx = np.zeros((N, C) + tuple(in_hw), dtype=gy.dtype)
    kernel(gy.reshape(N * C, OH, OW), gx.reshape(N * C, *in_hw), *_tables(*tables))
    return gx


def upsample_nearest2d_forward(x, src_h, src_w):
    """y[n, c, oh, ow] = x[n, c, src_h[oh], src_w[ow]]."""
    return _forward(_nearest, x, (len(src_h), len(src_w)), (src_h, src_w))


def upsample_nearest2d_backward(gy, in_hw, src_h, src_w):
    """gx[n, c, h, w] = Σ_{src_h[oh] = h, src_w[ow] = w} gy[n, c, oh, ow]."""
    return _backward(_nearest_backward, gy, in_hw, (src_h, src_w))


def upsample_bilinear2d_forward(x, h0, h1, lh, w0, w1, lw):
    """Bilinear blend of the four taps ``(h0|h1, w0|w1)`` with weights ``(1−lh|lh)·(1−lw|lw)``."""
    return _forward(_bilinear, x, (len(h0), len(w0)), (h0, h1, lh, w0, w1, lw))


def upsample_bilinear2d_backward(gy, in_hw, h0, h1, lh, w0, w1, lw):
    """The transpose of the forward blend: each gy spread over its four taps."""
    return _backward(_bilinear_backward, gy, in_hw, (h0, h1, lh, w0, w1, lw))
