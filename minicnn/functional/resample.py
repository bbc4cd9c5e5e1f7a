"""Resampling: ``interpolate`` with modes ``nearest`` and ``bilinear`` (``linear`` for 1-D), as PyTorch.

The source position of every output row and column follows PyTorch's float rules exactly; it is
computed once here, on the host, as small per-axis tables (see ``kernels/reference/resample.py``
for the formulas), so every device reads the same taps:

- nearest:  ``src(o) = min(floor(o · r), n − 1)``, ``r = 1/scale_factor`` when a scale factor is
  given (and not recomputed), else ``n / m``. PyTorch's CPU kernels use two variants, and so do we:
  2-D in float32 with the shortcuts ``m == n`` → identity, ``m == 2n`` → ``o // 2``; 1-D in the
  input dtype without shortcuts (``scale_factor=1.3`` on 2 pixels: 2-D copies, 1-D reads pixel 0 twice).
- bilinear: ``c = o·(n−1)/(m−1)`` (align_corners) or ``c = max(r·(o + ½) − ½, 0)`` in the input
  dtype; taps ``i0 = min(⌊c⌋, n−1)``, ``i1 = min(i0+1, n−1)``, weight ``λ = clip(c − i0, 0, 1)``.
"""
import math

import numpy as np

from ..autograd import Function
from ..dtypes import check_float
from ..kernels.geometry import check_int32, check_numel
from ..tensor import Tensor
from .shape import reshape

_MODES = ("nearest", "linear", "bilinear")


def nearest_table(n, m, scale_factor=None, dtype=np.float32, one_d=False):
    """``src (m,)`` int64: the input position read by each of ``m`` outputs, PyTorch's CPU rule.

    ``src(o) = min(floor(o · r), n − 1)`` with ``r = 1/scale_factor`` (when given) or ``n/m``.
    PyTorch's CPU kernels differ by rank, and so does this table:

    - 2-D (``one_d=False``, its ``nearest_idx``): float32 arithmetic for every dtype, with the
      shortcuts ``m == n`` → identity and ``m == 2n`` → ``o // 2``;
    - 1-D (``one_d=True``, its generic kernel): arithmetic in ``dtype``, no shortcuts (float64
      coordinates are rounded to float32 before the floor, as its ``floorf`` does).
    """
    o = np.arange(m)
    if not one_d:
        if m == n:
            return o.astype(np.int64)
        if m == 2 * n:
            return (o >> 1).astype(np.int64)
        dtype = np.float32
    t = np.dtype(dtype).type
    r = t(1.0 / scale_factor) if scale_factor is not None and scale_factor > 0 else t(n) / t(m)
    coord = o.astype(dtype) * r
    return np.minimum(np.floor(coord.astype(np.float32)).astype(np.int64), n - 1)


def linear_table(n, m, align_corners, scale_factor=None, dtype=np.float32):
    """``(i0, i1, λ)`` per output (PyTorch's ``compute_source_index_and_lambda``), λ in ``dtype``.

    The source coordinate ``c = max(r·(o + ½) − ½, 0)`` (``align_corners=False``) is rounded to
    ``dtype`` once, as PyTorch's CPU kernels compute it (a fused multiply-add): the product is exact
    in the wider type, so a separately rounded product cannot move ``c`` by an ulp (about 3e-5 of a
    pixel at 800-pixel outputs)."""
    t = np.dtype(dtype).type
    wide = np.longdouble if t is np.float64 else np.float64
    o = np.arange(m)
    if m == n:
        return o.astype(np.int64), o.astype(np.int64), np.zeros(m, dtype=dtype)
    if align_corners:
        r = t(n - 1) / t(m - 1) if m > 1 else t(0)
        c = r * o.astype(dtype)
    else:
        r = t(1.0 / scale_factor) if scale_factor is not None and scale_factor > 0 else t(n) / t(m)
        c = np.maximum((wide(r) * (o.astype(wide) + wide(0.5)) - wide(0.5)).astype(dtype), t(0))
    i0 = np.minimum(np.floor(c).astype(np.int64), n - 1)
    lam = np.clip(c - i0.astype(dtype), t(0), t(1)).astype(dtype)
    return i0, np.minimum(i0 + 1, n - 1), lam


class UpsampleNearest2d(Function):
    """y[n,c,i,j] = x[n,c,src_h[i],src_w[j]];  gx[h,w] = Σ_{src_h[i]=h, src_w[j]=w} gy[i,j]."""

    @staticmethod
    def forward(ctx, x, src_h=None, src_w=None):
        xp = ctx.xp
        ctx.tables = (xp.asarray(src_h), xp.asarray(src_w))
        ctx.in_hw = x.shape[2:]
        return ctx.kernels.upsample_nearest2d_forward(x, *ctx.tables)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.upsample_nearest2d_backward(gy, ctx.in_hw, *ctx.tables)


class UpsampleBilinear2d(Function):
    """y = (1−λh)((1−λw) x[h0,w0] + λw x[h0,w1]) + λh((1−λw) x[h1,w0] + λw x[h1,w1]) per output;
    backward spreads gy over the same four taps with the same weights."""

    @staticmethod
    def forward(ctx, x, tables_h=None, tables_w=None):
        xp = ctx.xp
        h0, h1, lh = tables_h
        w0, w1, lw = tables_w
        ctx.tables = (xp.asarray(h0), xp.asarray(h1), xp.asarray(lh.astype(x.dtype)),
                      xp.asarray(w0), xp.asarray(w1), xp.asarray(lw.astype(x.dtype)))
        ctx.in_hw = x.shape[2:]
        return ctx.kernels.upsample_bilinear2d_forward(x, *ctx.tables)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.upsample_bilinear2d_backward(gy, ctx.in_hw, *ctx.tables)


def _per_axis(value, n, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"interpolate: {name} must be a number or {n} numbers for a {n + 2}-D input, "
                             f"got {tuple(value)}")
        return tuple(value)
    return (value,) * n


def _output_geometry(in_sizes, size, scale_factor, recompute_scale_factor):
    """``(out_sizes, scales)``: PyTorch's output size and the scales handed to the kernel."""
    spatial = len(in_sizes)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor must be given, got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    if size is not None:
        out = _per_axis(size, spatial, "size")
        for s in out:
            if isinstance(s, bool) or not hasattr(s, "__index__") or int(s) < 1:
                raise ValueError(f"interpolate: size must be positive ints, got {size!r}")
        return tuple(int(s) for s in out), (None,) * spatial
    scales = tuple(float(s) for s in _per_axis(scale_factor, spatial, "scale_factor"))
    if any(not s > 0 or math.isinf(s) for s in scales):
        raise ValueError(f"interpolate: scale_factor must be positive and finite, got {scale_factor!r}")
    out = tuple(int(math.floor(float(n) * s)) for n, s in zip(in_sizes, scales))
    if min(out) < 1:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} gives an empty output {out} "
                         f"for the input size {tuple(in_sizes)}")
    return out, ((None,) * spatial if recompute_scale_factor else scales)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
    """Resize the spatial axes (PyTorch's ``F.interpolate``, same taps and weights).

    Args:
        x: ``(N, C, L)`` (modes ``nearest``, ``linear``) or ``(N, C, H, W)`` (``nearest``, ``bilinear``).
        size: the output size (int or one int per spatial axis); or
        scale_factor: a number (or one per axis); output size ``floor(n · scale_factor)``, and
            the kernel samples at ``1/scale_factor`` unless ``recompute_scale_factor=True``.
        mode: ``"nearest"``, ``"linear"`` (3-D) or ``"bilinear"`` (4-D).
        align_corners: linear modes only (default False): map corner pixel centres onto each other;
            False uses the half-pixel rule ``c = (o + ½)·r − ½`` clamped at 0.

    Shape: ``(N, C, *out_size)``.

    Example:
        >>> F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).shape
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor, got {type(x).__name__}")
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {_MODES}, got {mode!r}")
    wanted = {"nearest": (3, 4), "linear": (3,), "bilinear": (4,)}[mode]
    if x.ndim not in wanted:
        raise ValueError(f"interpolate: mode {mode!r} expects a {' or '.join(f'{d}-D' for d in wanted)} input, "
                         f"got shape {x.shape}")
    check_float("interpolate", "input", x)
    if 0 in x.shape[1:]:  # PyTorch's rule: an empty batch only
        raise ValueError(f"interpolate: only the batch size of the input may be 0, got shape {x.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with the interpolating modes "
                         "'linear' and 'bilinear', got mode='nearest'")
    in_sizes = x.shape[2:]
    out_sizes, scales = _output_geometry(in_sizes, size, scale_factor, recompute_scale_factor)
    for axis, n in enumerate(out_sizes):
        check_int32("interpolate", f"output size (axis {axis})", n)
    check_numel("interpolate", "input", x.shape)
    check_numel("interpolate", "output", x.shape[:2] + out_sizes)
    if x.ndim == 3:  # 1-D: a unit H axis that maps onto itself
        x4 = reshape(x, x.shape[:2] + (1,) + in_sizes)
        in_hw, out_hw, scales = (1,) + in_sizes, (1,) + out_sizes, (None,) + scales
    else:
        x4, in_hw, out_hw = x, in_sizes, out_sizes
    if mode == "nearest":
        one_d = x.ndim == 3
        y = UpsampleNearest2d.apply(x4, src_h=nearest_table(in_hw[0], out_hw[0], scales[0], x.dtype, one_d),
                                    src_w=nearest_table(in_hw[1], out_hw[1], scales[1], x.dtype, one_d))
    else:
        ac = bool(align_corners)
        y = UpsampleBilinear2d.apply(x4, tables_h=linear_table(in_hw[0], out_hw[0], ac, scales[0], x.dtype),
                                     tables_w=linear_table(in_hw[1], out_hw[1], ac, scales[1], x.dtype))
    return reshape(y, x.shape[:2] + out_sizes) if x.ndim == 3 else y


def upsample(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Alias of :func:`interpolate` (PyTorch's ``nn.Upsample`` functional form)."""
    return interpolate(x, size, scale_factor, mode, align_corners)
