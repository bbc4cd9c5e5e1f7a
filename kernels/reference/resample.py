"""Reference resampling (PyTorch's ``interpolate``): plain loops, one output pixel at a time.

Shapes: ``x`` is ``(N, C, H, W)``, ``y`` is ``(N, C, OH, OW)``. Along one axis with ``n`` inputs
and ``m`` outputs, and ``scale_factor`` (or None):

- nearest:   ``src(o) = min(floor(o · r), n − 1)`` with ``r = 1 / scale_factor`` when a scale
  factor is given, else ``r = n / m``. PyTorch's CPU kernels have two variants: 2-D computes in
  float32 with the shortcuts ``m == n`` → ``o`` and ``m == 2n`` → ``o // 2`` (its ``nearest_idx``);
  1-D computes in the input dtype with no shortcut (float64 rounded to float32 before the floor).
- bilinear:  the source coordinate (in the input dtype) is
  ``c = o · (n − 1)/(m − 1)`` (``align_corners``; 0 when ``m == 1``) or
  ``c = max(r · (o + ½) − ½, 0)`` (half-pixel rule, clamped at 0); then
  ``i0 = min(floor(c), n − 1)``, ``i1 = min(i0 + 1, n − 1)``, ``λ = clip(c − i0, 0, 1)`` and
  ``y = (1−λh)((1−λw) x[i0,j0] + λw x[i0,j1]) + λh((1−λw) x[i1,j0] + λw x[i1,j1])``
  (``m == n`` is the identity).
"""
import math

import numpy as np


def nearest_source(o, n, m, scale_factor=None, dtype=np.float32, one_d=False):
    """The input position read by output ``o``: PyTorch's 2-D CPU rule (float32, shortcuts) or,
    with ``one_d``, its 1-D rule (in ``dtype``, no shortcuts; see the module docstring)."""
    if not one_d:
        if m == n:
            return o
        if m == 2 * n:
            return o >> 1
        dtype = np.float32
    t = np.dtype(dtype).type
    if scale_factor is not None and scale_factor > 0:
        r = t(1.0 / scale_factor)
    else:
        r = t(n) / t(m)
    return min(int(math.floor(np.float32(t(o) * r))), n - 1)


def linear_source(o, n, m, align_corners, scale_factor=None, dtype=np.float64):
    """``(i0, i1, λ)`` of output ``o`` (PyTorch's ``compute_source_index_and_lambda``)."""
    t = np.dtype(dtype).type
    if m == n:
        return o, o, t(0)
    if align_corners:
        r = t(n - 1) / t(m - 1) if m > 1 else t(0)
        c = r * t(o)
    else:
        r = t(1.0 / scale_factor) if scale_factor is not None and scale_factor > 0 else t(n) / t(m)
        c = max(r * (t(o) + t(0.5)) - t(0.5), t(0))
    i0 = min(int(math.floor(c)), n - 1)
    lam = min(max(c - t(i0), t(0)), t(1))
    return i0, min(i0 + 1, n - 1), lam


def upsample_nearest2d_forward(x, out_hw, scales=(None, None), one_d=False):
    N, C, H, W = x.shape
    OH, OW = out_hw
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h = nearest_source(oh, H, OH, scales[0], x.dtype, one_d)
        for ow in range(OW):
            y[:, :, oh, ow] = x[:, :, h, nearest_source(ow, W, OW, scales[1], x.dtype, one_d)]
    return y


def upsample_nearest2d_backward(gy, in_hw, scales=(None, None), one_d=False):
    N, C, OH, OW = gy.shape
    H, W = in_hw
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    for oh in range(OH):
        h = nearest_source(oh, H, OH, scales[0], gy.dtype, one_d)
        for ow in range(OW):
            gx[:, :, h, nearest_source(ow, W, OW, scales[1], gy.dtype, one_d)] += gy[:, :, oh, ow]
    return gx


def upsample_bilinear2d_forward(x, out_hw, align_corners=False, scales=(None, None)):
    N, C, H, W = x.shape
    OH, OW = out_hw
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h0, h1, lh = linear_source(oh, H, OH, align_corners, scales[0], x.dtype)
        for ow in range(OW):
            w0, w1, lw = linear_source(ow, W, OW, align_corners, scales[1], x.dtype)
            y[:, :, oh, ow] = ((1 - lh) * ((1 - lw) * x[:, :, h0, w0] + lw * x[:, :, h0, w1])
                               + lh * ((1 - lw) * x[:, :, h1, w0] + lw * x[:, :, h1, w1]))
    return y


def upsample_bilinear2d_backward(gy, in_hw, align_corners=False, scales=(None, None)):
    N, C, OH, OW = gy.shape
    H, W = in_hw
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    for oh in range(OH):
        h0, h1, lh = linear_source(oh, H, OH, align_corners, scales[0], gy.dtype)
        for ow in range(OW):
            w0, w1, lw = linear_source(ow, W, OW, align_corners, scales[1], gy.dtype)
            g = gy[:, :, oh, ow]
            gx[:, :, h0, w0] += (1 - lh) * (1 - lw) * g
            gx[:, :, h0, w1] += (1 - lh) * lw * g
            gx[:, :, h1, w0] += lh * (1 - lw) * g
            gx[:, :, h1, w1] += lh * lw * g
    return gx
