"""Convolution on the CPU: im2col (Numba) + GEMM (BLAS through ``np.matmul``), with two shortcuts.

Every wrapper works on 4-D NCHW arrays; conv1d is conv2d with H = 1 (the functional layer
reshapes). ``padding`` is the *leading* padding ``(ph, pw)``; the trailing padding is implied by
the output size ``out_hw`` (or ``x_hw``), so asymmetric "same" padding and transposed
convolution's ``output_padding`` need no special case. Formulas: ``kernels/reference/conv.py``.

Paths, chosen per call:

- **1×1** (kernel 1×1, stride 1, no padding, output size = input size): the input already is
  the column matrix, ``y[n, g] = W[g] @ x[n, g]``; no im2col.
- **depthwise** (``groups == C_in > 1``, one input channel per group, any channel multiplier):
  direct Numba loops; im2col would build ``kH·kW`` rows per channel for a GEMM with a single
  input channel, more memory traffic than the convolution itself.
- **general** (everything else, grouped included): ``cols = im2col(x)`` in a reused workspace,
  then one batched GEMM per group, ``y[n, g] = W[g].reshape(Mg, Cg·kH·kW) @ cols[n, g]``.

Backward: ``gx = col2im(Wᵀ @ gy)`` (gather, parallel over input planes) and
``gW = Σ_n gy[n] @ cols[n]ᵀ``; the depthwise kernels gather over planes one thread owns.
"""
import numpy as np
from numba import njit, prange

from ._im2col import COLS, col2im_raw, im2col_raw

KERNELS = ("im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")


# ---- raw depthwise kernels ----------------------------------------------------------------------
@njit(cache=True, parallel=True)
def depthwise_forward_raw(x, W, y, sh, sw, ph, pw, dh, dw):
    """y[n, co] = Σ_{kh,kw} W[co, 0, kh, kw] · x[n, co // M, ...]  (M = C_out / C_in)."""
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = y.shape
    kH, kW = W.shape[2], W.shape[3]
    M = C_out // C_in
    for plane in prange(N * C_out):
        n, co = plane // C_out, plane % C_out
        c = co // M
        for oh in range(OH):
            for ow in range(OW):
                acc = 0.0
                for kh in range(kH):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(kW):
                        iw = ow * sw - pw + kw * dw
                        if iw >= 0 and iw < Wd:
                            acc += W[co, 0, kh, kw] * x[n, c, ih, iw]
                y[n, co, oh, ow] = acc


@njit(cache=True, parallel=True)
def depthwise_backward_input_raw(gy, W, gx, sh, sw, ph, pw, dh, dw):
    """gx[n, c, ih, iw] gathered from the M output channels of input channel c (one thread a plane)."""
    N, C_in, H, Wd = gx.shape
    _, C_out, OH, OW = gy.shape
    kH, kW = W.shape[2], W.shape[3]
    M = C_out // C_in
    for plane in prange(N * C_in):
        n, c = plane // C_in, plane % C_in
        for ih in range(H):
            for iw in range(Wd):
                acc = 0.0
                for kh in range(kH):
                    th = ih + ph - kh * dh
                    if th < 0 or th % sh != 0 or th // sh >= OH:
                        continue
                    oh = th // sh
                    for kw in range(kW):
                        tw = iw + pw - kw * dw
                        if tw < 0 or tw % sw != 0 or tw // sw >= OW:
                            continue
                        ow = tw // sw
                        for m in range(M):
                            co = c * M + m
                            acc += W[co, 0, kh, kw] * gy[n, co, oh, ow]
                gx[n, c, ih, iw] = acc


@njit(cache=True, parallel=True)
def depthwise_backward_weight_raw(x, gy, gW, sh, sw, ph, pw, dh, dw):
    """gW[co, 0, kh, kw] = Σ_{n,oh,ow} gy[n, co, oh, ow] · x[n, co // M, ...]; a thread owns gW[co]."""
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = gy.shape
    kH, kW = gW.shape[2], gW.shape[3]
    M = C_out // C_in
    for co in prange(C_out):
        c = co // M
        for kh in range(kH):
            for kw in range(kW):
                acc = 0.0
                for n in range(N):
                    for oh in range(OH):
                        ih = oh * sh - ph + kh * dh
                        if ih < 0 or ih >= H:
                            continue
                        for ow in range(OW):
                            iw = ow * sw - pw + kw * dw
                            if iw >= 0 and iw < Wd:
                                acc += gy[n, co, oh, ow] * x[n, c, ih, iw]
                gW[co, 0, kh, kw] = acc


# ---- path selection -----------------------------------------------------------------------------
def _is_pointwise(kernel_hw, stride, padding, in_hw, out_hw):
    return (tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
            and tuple(in_hw) == tuple(out_hw))


def _is_depthwise(C_in, groups):
    return groups == C_in and groups > 1


# ---- wrappers -----------------------------------------------------------------------------------
def im2col(x, kernel_hw, stride, padding, dilation, out_hw):
    """cols (N, C·kH·kW, OH·OW), a fresh array (the conv wrappers use a reused workspace instead)."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    (kH, kW), (OH, OW) = kernel_hw, out_hw
    cols = np.empty((N, C * kH * kW, OH * OW), dtype=x.dtype)
    im2col_raw(x, cols, kH, kW, *stride, *padding, *dilation, OH, OW)
    return cols


def col2im(cols, x_hw, kernel_hw, stride, padding, dilation, out_hw):
    """x (N, C, H, W), the adjoint of :func:`im2col` (gather form)."""
    cols = np.ascontiguousarray(cols)
    (kH, kW), (OH, OW) = kernel_hw, out_hw
    N, C = cols.shape[0], cols.shape[1] // (kH * kW)
    x = np.empty((N, C) + tuple(x_hw), dtype=cols.dtype)
    col2im_raw(cols, x, kH, kW, *stride, *padding, *dilation, OH, OW)
    return x


def _cols_workspace(x, kernel_hw, stride, padding, dilation, out_hw):
    """im2col of ``x`` into the reused workspace (valid until the next call)."""
    N, C = x.shape[:2]
    (kH, kW), (OH, OW) = kernel_hw, out_hw
    cols = COLS.get((N, C * kH * kW, OH * OW), x.dtype)
    im2col_raw(x, cols, kH, kW, *stride, *padding, *dilation, OH, OW)
    return cols


def conv2d_forward(x, W, stride, padding, dilation, groups, out_hw):
    """y (N, C_out, OH, OW) = conv2d(x, W) without bias."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, C_in, H, Wd = x.shape
    C_out, Cg, kH, kW = W.shape
    OH, OW = out_hw
    G, Mg = groups, C_out // groups
    if _is_depthwise(C_in, G):
        y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
        depthwise_forward_raw(x, W, y, *stride, *padding, *dilation)
        return y
    Wg = W.reshape(G, Mg, Cg * kH * kW)
    if _is_pointwise((kH, kW), stride, padding, (H, Wd), out_hw):
        cols = x.reshape(N, G, Cg, H * Wd)
    else:
        cols = _cols_workspace(x, (kH, kW), stride, padding, dilation, out_hw).reshape(N, G, Cg * kH * kW, OH * OW)
    return np.matmul(Wg, cols).reshape(N, C_out, OH, OW)


def conv2d_backward_input(gy, W, x_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = ∂⟨gy, conv2d(x, W)⟩/∂x = col2im(Wᵀ @ gy)."""
    gy, W = np.ascontiguousarray(gy), np.ascontiguousarray(W)
    N, C_out, OH, OW = gy.shape
    _, Cg, kH, kW = W.shape
    H, Wd = x_hw
    G, Mg = groups, C_out // groups
    C_in = Cg * G
    if _is_depthwise(C_in, G):
        gx = np.empty((N, C_in, H, Wd), dtype=gy.dtype)
        depthwise_backward_input_raw(gy, W, gx, *stride, *padding, *dilation)
        return gx
    WgT = W.reshape(G, Mg, Cg * kH * kW).transpose(0, 2, 1)
    gy_g = gy.reshape(N, G, Mg, OH * OW)
    if _is_pointwise((kH, kW), stride, padding, x_hw, (OH, OW)):
        return np.matmul(WgT, gy_g).reshape(N, C_in, H, Wd)
    cols = COLS.get((N, G, Cg * kH * kW, OH * OW), gy.dtype)
    np.matmul(WgT, gy_g, out=cols)
    gx = np.empty((N, C_in, H, Wd), dtype=gy.dtype)
    col2im_raw(cols.reshape(N, C_in * kH * kW, OH * OW), gx, kH, kW, *stride, *padding, *dilation, OH, OW)
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gW (C_out, C_in/G, kH, kW) = ∂⟨gy, conv2d(x, W)⟩/∂W = Σ_n gy[n] @ cols[n]ᵀ per group."""
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = gy.shape
    kH, kW = kernel_hw
    G, Mg, Cg = groups, C_out // groups, C_in // groups
    if _is_depthwise(C_in, G):
        gW = np.empty((C_out, 1, kH, kW), dtype=x.dtype)
        depthwise_backward_weight_raw(x, gy, gW, *stride, *padding, *dilation)
        return gW
    if _is_pointwise(kernel_hw, stride, padding, (H, Wd), (OH, OW)):
        cols = x.reshape(N, G, Cg, H * Wd)
    else:
        cols = _cols_workspace(x, kernel_hw, stride, padding, dilation, (OH, OW)).reshape(N, G, Cg * kH * kW, OH * OW)
    gy_g = gy.reshape(N, G, Mg, OH * OW)
    gW = np.matmul(gy_g, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gW.reshape(C_out, Cg, kH, kW)
