"""Convolution on CUDA (and cuda-emu): the kernels of ``conv.cu`` + GEMM by ``be.xp.matmul``.

Same wrappers, signatures and paths as ``kernels/cpu/conv.py`` (1×1 without im2col, direct
depthwise kernels, im2col + one batched GEMM per group otherwise); ``padding`` is the leading
padding, the output size is explicit. Formulas: ``kernels/reference/conv.py``.
"""
import numpy as np

KERNELS = ("im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "conv2d_bias_grad", "conv2d_backward", "conv_transpose2d_backward")

_CU = "conv.cu"


def _geometry_args(kernel_hw, stride, padding, dilation, out_hw):
    return tuple(np.int32(v) for v in (*kernel_hw, *stride, *padding, *dilation, *out_hw))


def _launch(be, name, dtype, total, args):
    """Run kernel ``name`` of conv.cu with one thread per element of a ``total``-element array."""
    be.function(_CU, name, dtype)(be.grid_1d(total), (be.BLOCK,), args)


def _is_pointwise(kernel_hw, stride, padding, in_hw, out_hw):
    return (tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
            and tuple(in_hw) == tuple(out_hw))


def _is_depthwise(C_in, groups):
    return groups == C_in and groups > 1


def im2col(be, x, kernel_hw, stride, padding, dilation, out_hw):
    """cols (N, C·kH·kW, OH·OW): one thread per column entry."""
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (kH, kW), (OH, OW) = kernel_hw, out_hw
    cols = be.xp.empty((N, C * kH * kW, OH * OW), dtype=x.dtype)
    _launch(be, "im2col", x.dtype, cols.size,
            (x, cols, np.int64(cols.size), np.int32(C), np.int32(H), np.int32(W),
             *_geometry_args(kernel_hw, stride, padding, dilation, out_hw)))
    return cols


def col2im(be, cols, x_hw, kernel_hw, stride, padding, dilation, out_hw):
    """x (N, C, H, W), the adjoint of :func:`im2col`: one thread per input element (gather)."""
    cols = be.xp.ascontiguousarray(cols)
    (kH, kW), (H, W) = kernel_hw, x_hw
    N, C = cols.shape[0], cols.shape[1] // (kH * kW)
    x = be.xp.empty((N, C, H, W), dtype=cols.dtype)
    _launch(be, "col2im", cols.dtype, x.size,
            (cols, x, np.int64(x.size), np.int32(C), np.int32(H), np.int32(W),
             *_geometry_args(kernel_hw, stride, padding, dilation, out_hw)))
    return x


def _grouped_columns(be, x, kernel_hw, stride, padding, dilation, out_hw, groups):
    """im2col of ``x`` split by group, ``(N, G, Cg·kH·kW, OH·OW)``; a 1×1 conv needs no copy."""
    N, C_in, H, W = x.shape
    kH, kW = kernel_hw
    OH, OW = out_hw
    if _is_pointwise(kernel_hw, stride, padding, (H, W), out_hw):
        return x.reshape(N, groups, C_in // groups, H * W)
    cols = im2col(be, x, kernel_hw, stride, padding, dilation, out_hw)
    return cols.reshape(N, groups, C_in // groups * kH * kW, OH * OW)


def _depthwise_args(C_in, C_out, H, W, kernel_hw, stride, padding, dilation, out_hw):
    return (np.int32(C_in), np.int32(C_out), np.int32(H), np.int32(W),
            *_geometry_args(kernel_hw, stride, padding, dilation, out_hw))


def conv2d_forward(be, x, W, stride, padding, dilation, groups, out_hw, bias=None):
    """y (N, C_out, OH, OW) = conv2d(x, W) (+ bias[co] when given)."""
    y = _conv2d_forward(be, x, W, stride, padding, dilation, groups, out_hw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def conv2d_bias_grad(be, gy):
    """gb[co] = Σ_{n, oh, ow} gy[n, co, oh, ow] (a CuPy reduction)."""
    return gy.sum(axis=(0, 2, 3))


def _conv2d_forward(be, x, W, stride, padding, dilation, groups, out_hw):
    xp = be.xp
    x, W = xp.ascontiguousarray(x), xp.ascontiguousarray(W)
    N, C_in, H, Wd = x.shape
    C_out, Cg, kH, kW = W.shape
    OH, OW = out_hw
    G, Mg = groups, C_out // groups
    if _is_depthwise(C_in, G):
        y = xp.empty((N, C_out, OH, OW), dtype=x.dtype)
        _launch(be, "depthwise_forward", x.dtype, y.size,
                (x, W, y, np.int64(y.size),
                 *_depthwise_args(C_in, C_out, H, Wd, (kH, kW), stride, padding, dilation, out_hw)))
        return y
    Wg = W.reshape(G, Mg, Cg * kH * kW)
    cols = _grouped_columns(be, x, (kH, kW), stride, padding, dilation, out_hw, G)
    return xp.matmul(Wg, cols).reshape(N, C_out, OH, OW)


def conv2d_backward_input(be, gy, W, x_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = col2im(Wᵀ @ gy)."""
    xp = be.xp
    gy, W = xp.ascontiguousarray(gy), xp.ascontiguousarray(W)
    N, C_out, OH, OW = gy.shape
    _, Cg, kH, kW = W.shape
    H, Wd = x_hw
    G, Mg = groups, C_out // groups
    C_in = Cg * G
    if _is_depthwise(C_in, G):
        gx = xp.empty((N, C_in, H, Wd), dtype=gy.dtype)
        _launch(be, "depthwise_backward_input", gy.dtype, gx.size,
                (gy, W, gx, np.int64(gx.size),
                 *_depthwise_args(C_in, C_out, H, Wd, (kH, kW), stride, padding, dilation, (OH, OW))))
        return gx
    WgT = W.reshape(G, Mg, Cg * kH * kW).transpose(0, 2, 1)
    cols = xp.matmul(WgT, gy.reshape(N, G, Mg, OH * OW))
    if _is_pointwise((kH, kW), stride, padding, x_hw, (OH, OW)):
        return cols.reshape(N, C_in, H, Wd)
    return col2im(be, cols.reshape(N, C_in * kH * kW, OH * OW), x_hw, (kH, kW), stride, padding, dilation, (OH, OW))


def conv2d_backward_weight(be, x, gy, kernel_hw, stride, padding, dilation, groups):
    """gW (C_out, C_in/G, kH, kW) = Σ_n gy[n] @ cols[n]ᵀ per group."""
    xp = be.xp
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = gy.shape
    kH, kW = kernel_hw
    G, Mg, Cg = groups, C_out // groups, C_in // groups
    if _is_depthwise(C_in, G):
        gW = xp.empty((C_out, 1, kH, kW), dtype=x.dtype)
        _launch(be, "depthwise_backward_weight", x.dtype, gW.size,
                (x, gy, gW, np.int32(gW.size), np.int32(N),
                 *_depthwise_args(C_in, C_out, H, Wd, kernel_hw, stride, padding, dilation, (OH, OW))))
        return gW
    cols = _grouped_columns(be, x, kernel_hw, stride, padding, dilation, (OH, OW), G)
    gW = xp.matmul(gy.reshape(N, G, Mg, OH * OW), cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gW.reshape(C_out, Cg, kH, kW)


def conv2d_backward(be, x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)`` for ``needs`` (None for the others): the three backward kernels above, in
    turn (the CPU fuses them for 3×3 depthwise convolutions; here each is one launch or GEMM)."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    gx = conv2d_backward_input(be, gy, W, x.shape[2:], stride, padding, dilation, groups) if want_gx else None
    gW = conv2d_backward_weight(be, x, gy, W.shape[2:], stride, padding, dilation, groups) if want_gw else None
    gb = conv2d_bias_grad(be, gy) if want_gb else None
    return gx, gW, gb


def conv_transpose2d_backward(be, x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)`` of ``y = conv_transpose2d(x, W) + b`` for ``needs`` (None for the others):
    gx = conv2d(gy, W), gW = the weight gradient of that convolution with x as its output gradient,
    gb = Σ gy (the CPU shares the columns of gy between the first two; here each is its own GEMM)."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    gx = conv2d_forward(be, gy, W, stride, padding, dilation, groups, x.shape[2:]) if want_gx else None
    gW = conv2d_backward_weight(be, gy, x, W.shape[2:], stride, padding, dilation, groups) if want_gw else None
    gb = conv2d_bias_grad(be, gy) if want_gb else None
    return gx, gW, gb
