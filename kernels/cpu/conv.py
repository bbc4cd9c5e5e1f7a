"""Convolution on the CPU: im2col (Numba) + GEMM (BLAS through ``np.matmul``), with two shortcuts.

Every wrapper works on 4-D NCHW arrays; conv1d is conv2d with H = 1 (the functional layer
reshapes). ``padding`` is the *leading* padding ``(ph, pw)``; the trailing padding is implied by
the output size ``out_hw`` (or ``x_hw``), so asymmetric "same" padding and transposed
convolution's ``output_padding`` need no special case. Formulas: ``kernels/reference/conv.py``.

Paths, chosen per call (forward; the input gradient uses the same table for the convolution of
``gy`` it is; the weight gradient has its own Winograd rule, below):

=================  ======================================  ============================================
path               when                                    why (2 quiet cores, vs PyTorch 2.13/2.14)
=================  ======================================  ============================================
depthwise direct   ``groups == C_in > 1``                  im2col would build kH·kW rows per channel
                                                           for a 1-channel GEMM; padded-row loops
                                                           vectorise: (8,128,56,56) fwd 3.7 ms vs 21 ms
                                                           before, PyTorch ~19 ms
depthwise 3×3      the same, 3×3, stride 1, undilated,     padded plane filled once, all 9 taps in one
                   one output channel per input channel    loop per row; the weight gradient's 9 sums
                                                           in one loop over the flat plane; the
                                                           backward fused (``conv2d_backward``):
                                                           (8,128,56,56) fwd 1.7 ms, bwd 3.8 ms
1×1                kernel 1×1, stride 1, no padding,       the input already is the column matrix:
                   output size = input size                 ``y[n, g] = W[g] @ x[n, g]``, no im2col
Winograd F(2,3)    3×3, stride 1, dilation 1, 1 group,     2.25× fewer flops (``conv_winograd.py``);
                   and ≥ 16 channels in and out and        forward (8,64,56,56)→64: 11.0 ms vs 16.1
                   ≥ 1024 output positions per image, or   im2col; (4,128,112,112)→128: 57 vs 104;
                   ≥ 128 channels and ≥ 196 positions, or  (16,128,16,16)→128: 8.8 vs 10.2 (several
                   ≥ 128 channels, ≥ 64 positions and      images per task); (64,32,16,16)→64 with
                   ≥ 1024 in the batch, or (forward map    bias 4.1–4.4 vs 4.5–4.6 ms, →32: im2col;
                   only) ≥ 32 → ≥ 64 channels and ≥ 256    (32,256,8,8)→256 7.7 vs 6.3 (fwd+bwd 24.0
                   positions                               vs 20.7), (8,256,8,8): equal
Winograd F(4,3)    the same, from 56×56 output positions   36 GEMMs, 1.78× fewer flops again
                   and ≥ 32 channels on the narrower side  (``conv_winograd4.py``): (4,128,112,112)
                                                           →128 forward 45 ms vs 61 for F(2,3);
                                                           (8,16,64,64)→16 fwd+bwd 3.16 vs 1.86
Winograd 1-D       1-D maps (H = 1, a 1 × r kernel), r = 3  F(4, r): α = r + 3 GEMMs over the channels
F(4, r)            or 5, stride 1, undilated, 1 group,     (C_in inner dimension) instead of one over
                   ≥ 32 channels in and out (and values    C_in·r, 2× (r = 3) and 2.5× (r = 5) fewer
                   in ``_in_winograd1d_range``)            flops; the input gradient is the same
                                                           kernel on gy, the weight gradient F(r, 4)
                                                           (``winograd_backward_weight1d``). FCN-1D
                                                           (16,128,150)→256 k5 fwd 4.6 vs 7.5 ms,
                                                           gx 5.0 vs 7.5, gW 5.5–5.9 vs 8.0–8.3
                                                           (loaded machine, alternating)
small maps         the gradients of one-group layers with  one GEMM over the whole batch's N·P
(backward only)    K = C_in·kH·kW ≥ 256 and N·P ≤ 1024     columns per chunk of input channels
                   that no Winograd path takes             (``conv_small_maps.py``): (32,512,4,4)
                                                           →512 fwd+bwd 39.5 → 26.0 ms
im2col + GEMM      everything else (grouped, strided,      ``cols = im2col(block)`` in a reused
                   dilated, few channels, small images),   per-thread workspace, one GEMM per block
                   and the Winograd shapes whose values
                   could overflow its transforms (an inf
                   or NaN among them, or magnitudes near
                   the float range:
                   ``conv_winograd.winograd_in_range``)
=================  ======================================  ============================================

1-D layers: the im2col GEMMs of a 1-D layer already run at OpenBLAS's kernel speed (the block
planner groups whole images, the "same" padding's trailing zero costs nothing, ``_FLAT`` copies),
so with ``OPENBLAS_CORETYPE=Haswell`` (AVX2) against PyTorch's AVX-512 oneDNN only fewer flops
close the gap: the 1-D Winograd row above.

Weight gradient: Winograd (``winograd_backward_weight3x3``) under the first two Winograd rules
(≥ 1024 positions, or wide layers), measured 1.15–1.4× faster than im2col on (8,64,56,56),
(8,256,14,14) and (4,128,112,112); on 16×16 images im2col wins (Winograd 0.8×). From 56×56
positions F(4×4) as in the forward: (4,128,112,112)→128 55 ms vs 71 for F(2×2), (8,64,56,56)→64
12.1 vs 13.6 (its GEMMs take 0.6× the time, its transforms 1.5×). The bias is
added to each output block while it is in cache (``bias=``), and its gradient is a threaded
channel sum (``conv2d_bias_grad``): separate NumPy passes cost 3 + 2.7 ms on (8,256,56,56).

Conv rows of ``python -m benchmarks --only conv2d`` (PyTorch time / ours, forward+backward) on
this machine, whose timings swing by up to 2× from run to run: see the README for the table of
one full run. The row closest to 1× is stride 2 (1.00–1.03×): its GEMMs run at OpenBLAS's peak
and PyTorch's direct kernels near the machine's, so only fewer flops would move it.

im2col blocks: a task is a block of output rows of one image (large images) or a few whole
images (small ones), about ``_BLOCK_ELEMS / K`` columns (K = Cg·kH·kW), so the columns of a
block stay in cache between im2col and the GEMM; ``y`` is written by the GEMM directly
(``out=`` a strided view of NCHW ``y``, no transpose). Tasks run on ``_threads.run_tasks``
(single-threaded OpenBLAS per task, our threads, dynamic scheduling; see ``_threads.py`` for why
this beats a 2-thread OpenBLAS on a shared machine). The block im2col and col2im copy whole
stretches of rows at once for stride 1 with OW == W and for stride 2 with OW == ⌈W/2⌉ (through
the 4 phases of a plane), see ``_im2col.py``: 4–10× faster than the row-by-row gather, which on
14–32-wide rows cost as much as the GEMM.

Backward: ``gx = col2im(Wᵀ @ gy)`` per block of whole images (a task owns its images, so the
scatter-add of ``col2im_block_add`` is race-free), and ``gW = Σ_blocks gy_block @ cols_blockᵀ``
with one accumulator per thread, summed at the end (no per-image products summed over N); for
tall columns (K ≥ 2·Mg) it is computed as ``gWᵀ += cols_block @ gy_blockᵀ`` with ``gy_blockᵀ``
copied, a GEMM without a transposed operand (10–25 % faster in OpenBLAS on these shapes); a
block of several small images is then one GEMM, its columns laid out wide, (K, images, positions).
``conv2d_backward`` returns the wanted gradients of one layer in one call: for the 3×3 stride-1
depthwise case one pass over gy computes all three; for a Winograd layer on small images
(≤ 128 channels, whole images a task) gx and gW come from ONE transform of gy
(``conv_winograd_backward.py``: gW from Z Vᵀ, gx by the adjoint of the input transform applied
to Uᵀ Z): (64,32,16,16)→64 backward 0.84× the time of the two kernels; otherwise it calls the
three kernels.
``conv_transpose2d_backward`` does the same for a transposed convolution, whose input gradient
(a convolution of gy) and weight gradient both read the columns of gy: built once per block.
The depthwise kernels own planes or channels (no races). ``FORCE_ALGORITHM`` forces im2col or Winograd.
"""
import functools

import numpy as np
from numba import njit, prange

from ._im2col import COLS, Workspace, col2im_block_add, col2im_raw, im2col_block, im2col_raw, transpose_into
from ._jit import no_refcount, no_refcount_with
from ._threads import NUM_THREADS, over_chunks, run_tasks, sum_accumulators
from .conv_winograd import (bias_vector, max_abs, winograd_backward_weight3x3, winograd_conv3x3,
                            winograd_in_range)
from .conv_small_maps import small_maps_backward, use_small_maps
from .conv_winograd_backward import fits_whole_images, winograd_backward3x3

KERNELS = ("im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "conv2d_bias_grad", "conv2d_backward", "conv_transpose2d_backward")

#: per-thread workspaces of a transposed block of ``gy`` (the weight gradient) and of a block's
#: product in the wide layout (the forward)
GY_T = Workspace()
PRODUCT = Workspace()


# ---- raw depthwise kernels ----------------------------------------------------------------------
# Each works on one plane at a time through a zero-padded row buffer ``buf`` (column ``j`` holds
# input column ``j − pw``, zero outside the input), so the inner loops over output columns have
# no bounds test and contiguous access when the stride is 1: LLVM vectorises them. Measured on
# (8, 128, 56, 56) k3 float32: forward 7 ms instead of 21 ms for the per-element-test loops.
@njit(cache=True, inline="always")
def _padded_width(OW, kW, sw, dw):
    return (OW - 1) * sw + (kW - 1) * dw + 1


@njit(cache=True, inline="always")
def _fill_row(buf, row, pw):
    """buf[pw : pw + W] = row (the padding columns of buf stay zero)."""
    n = min(row.shape[0], buf.shape[0] - pw)
    dst = buf[pw:pw + n]
    for iw in range(n):
        dst[iw] = row[iw]


@njit(cache=True, inline="always")
def _axpy_strided(acc, w, buf, off, sw):
    """acc[ow] += w · buf[ow·sw + off] for every ow (through a slice: indices provably ≥ 0, so
    Numba emits no wrap-around test and the loop vectorises)."""
    OW = acc.shape[0]
    if sw == 1:
        src = buf[off:off + OW]
        for ow in range(OW):
            acc[ow] += w * src[ow]
    else:
        src_s = buf[off:off + (OW - 1) * sw + 1:sw]
        for ow in range(OW):
            acc[ow] += w * src_s[ow]


@no_refcount
def _depthwise_forward_plane(xp, w, bias, yp, sh, sw, ph, pw, dh, dw, buf, acc):
    """yp = bias + Σ_{kh,kw} w[kh, kw] · xp[oh·sh − ph + kh·dh, ow·sw − pw + kw·dw] for one plane
    (xp (H, W), w (kH, kW), yp (OH, OW); ``buf`` zeros of the padded width, ``acc`` (OW,) scratch).
    Compiled without reference counts (``_jit.py``): its ~8 row views per output row cost more than
    the row's arithmetic with them."""
    H = xp.shape[0]
    OH, OW = yp.shape
    kH, kW = w.shape
    for oh in range(OH):
        for ow in range(OW):
            acc[ow] = bias
        for kh in range(kH):
            ih = oh * sh - ph + kh * dh
            if ih < 0 or ih >= H:
                continue
            _fill_row(buf, xp[ih], pw)
            for kw in range(kW):
                _axpy_strided(acc, w[kh, kw], buf, kw * dw, sw)
        y_row = yp[oh]
        for ow in range(OW):
            y_row[ow] = acc[ow]


@njit(cache=True, parallel=True)
def depthwise_forward_raw(x, W, b, y, sh, sw, ph, pw, dh, dw):
    """y[n, co] = b[co] + Σ_{kh,kw} W[co, 0, kh, kw] · x[n, co // M, ...]  (M = C_out / C_in), a
    plane per iteration of a parallel loop."""
    C_in = x.shape[1]
    N, C_out, OH, OW = y.shape
    kW = W.shape[3]
    M = C_out // C_in
    L = _padded_width(OW, kW, sw, dw)
    for plane in prange(N * C_out):
        n, co = plane // C_out, plane % C_out
        _depthwise_forward_plane(x[n, co // M], W[co, 0], b[co], y[n, co], sh, sw, ph, pw, dh, dw,
                                 np.zeros(L, dtype=x.dtype), np.empty(OW, dtype=x.dtype))


@njit(cache=True, inline="always")
def _fill_padded_plane(P, xp, ph, pw, R, L):
    """P[r, j] = xp[r − ph, j − pw] for r < R, j < L (0 outside xp; each entry written once).
    The copied stretch goes through slices and a loop from 0: ``for j in range(lo, hi): row[j] =
    src[j − pw]`` did not vectorise (Numba's wrap-around test for a possibly negative index) and
    cost 1.5 ns an element on 56×56 planes, more than the 9-tap loops that read the plane."""
    H, Wd = xp.shape
    lo, hi = min(L, max(0, pw)), max(0, min(L, Wd + pw))  # the columns that come from xp
    hi = max(lo, hi)
    for r in range(R):
        ih = r - ph
        row = P[r]
        if ih < 0 or ih >= H:
            for j in range(L):
                row[j] = 0
            continue
        for j in range(lo):
            row[j] = 0
        dst, src = row[lo:hi], xp[ih, lo - pw:hi - pw]
        for j in range(hi - lo):
            dst[j] = src[j]
        tail = row[hi:L]
        for j in range(L - hi):
            tail[j] = 0


@no_refcount
def _depthwise3x3_plane(xp, w, bias, yp, ph, pw, P):
    """yp[oh, ow] = bias + Σ_{kh,kw} w[kh, kw] · xpad[oh + kh, ow + kw] for a 3×3 filter, stride 1,
    dilation 1 (xpad[r, j] = xp[r − ph, j − pw], 0 outside), through ``P`` (≥ (OH + 2, OW + 2)): the
    padded plane, filled once; then one loop per output row with all 9 taps (the general
    :func:`_depthwise_forward_plane` passes over each row 9 times and refills each input row for
    every output row that reads it: 3× slower on (8, 128, 56, 56), measured)."""
    OH, OW = yp.shape
    _fill_padded_plane(P, xp, ph, pw, OH + 2, OW + 2)
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    for oh in range(OH):
        a, b, c, out = P[oh], P[oh + 1], P[oh + 2], yp[oh]
        for ow in range(OW):
            out[ow] = (bias + (w00 * a[ow] + w01 * a[ow + 1] + w02 * a[ow + 2])
                       + (w10 * b[ow] + w11 * b[ow + 1] + w12 * b[ow + 2])
                       + (w20 * c[ow] + w21 * c[ow + 1] + w22 * c[ow + 2]))


@njit(cache=True, parallel=True)
def depthwise3x3_raw(x, W, b, y, ph, pw, flipped):
    """y[n, c] = b[c] + the 3×3 stride-1 depthwise convolution of x[n, c] with W[c, 0] (one output
    channel per input channel), or with W[c, 0, ::−1, ::−1] when ``flipped`` (the input gradient:
    gx = the same convolution of gy with the flipped filter and leading padding 2 − p)."""
    N, C, OH, OW = y.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        w = W[c, 0, ::-1, ::-1] if flipped else W[c, 0, :, :]
        _depthwise3x3_plane(x[n, c], w, b[c], y[n, c], ph, pw, np.empty((OH + 2, OW + 2), dtype=x.dtype))


@no_refcount
def _depthwise3x3s2_plane(xp, w, bias, yp, ph, pw, P):
    """yp[oh, ow] = bias + Σ_{kh,kw} w[kh, kw] · xpad[2·oh + kh, 2·ow + kw]: :func:`_depthwise3x3_plane`
    with stride 2 (MobileNet's downsampling layers), through ``P`` (≥ (2·OH + 1, 2·OW + 1)); the
    strides are literals, so LLVM vectorises the even/odd loads with SIMD shuffles. The general
    kernel (a row refill per tap row, a strided pass per tap) ran at 0.5–0.8× PyTorch's speed on
    MobileNetV2's stride-2 layers."""
    OH, OW = yp.shape
    _fill_padded_plane(P, xp, ph, pw, 2 * OH + 1, 2 * OW + 1)
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    for oh in range(OH):
        a, b, c, out = P[2 * oh], P[2 * oh + 1], P[2 * oh + 2], yp[oh]
        for ow in range(OW):
            j = 2 * ow
            out[ow] = (bias + (w00 * a[j] + w01 * a[j + 1] + w02 * a[j + 2])
                       + (w10 * b[j] + w11 * b[j + 1] + w12 * b[j + 2])
                       + (w20 * c[j] + w21 * c[j + 1] + w22 * c[j + 2]))


@njit(cache=True, parallel=True)
def depthwise3x3s2_raw(x, W, b, y, ph, pw):
    """y[n, c] = b[c] + the 3×3 stride-2 depthwise convolution of x[n, c] with W[c, 0]."""
    N, C, OH, OW = y.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        _depthwise3x3s2_plane(x[n, c], W[c, 0], b[c], y[n, c], ph, pw,
                              np.empty((2 * OH + 1, 2 * OW + 1), dtype=x.dtype))


@njit(cache=True, inline="always")
def _store_3x3_grads(gw, gb, c, s00, s01, s02, s10, s11, s12, s20, s21, s22, sb, want_gw, want_gb):
    """gw[kh, kw] = s_{kh kw} and gb[c] = sb, where wanted (the depthwise 3×3 backward kernels' sums)."""
    if want_gw:
        gw[0, 0], gw[0, 1], gw[0, 2] = s00, s01, s02
        gw[1, 0], gw[1, 1], gw[1, 2] = s10, s11, s12
        gw[2, 0], gw[2, 1], gw[2, 2] = s20, s21, s22
    if want_gb:
        gb[c] = sb


@no_refcount_with(fastmath={"reassoc", "contract"})
def _depthwise3x3_backward_channel(x, gy, W, gx, gw, gb, c, ph, pw, P, Q, G, want_gx, want_gw, want_gb):
    """All three gradients of channel c of a 3×3 stride-1 depthwise convolution in one pass over
    its planes: per image, gx[n, c] (the convolution of gy with the flipped filter, through ``Q``,
    the padded gy plane), the weight gradient gw[kh, kw] = Σ_{n,oh,ow} gy[n, c, oh, ow] ·
    xpad[n, c, oh + kh, ow + kw] and the bias sum gb[c] = Σ gy[n, c] (float64, as
    :func:`bias_grad_raw`). Unwanted gradients are skipped (their arrays, and W when gx is not
    wanted, may be dummies).

    The sums run over whole planes as flat arrays of rows L = OW + 2 long: ``G`` (OH·L) holds gy
    with 2 zero columns a row, ``P`` ((OH + 2)·L + 2) the padded x plane, so xpad[oh + kh, ow + kw]
    = P[q + kh·L + kw] at q = oh·L + ow, and the zero columns of G drop the terms that wrap into
    the next row. One loop of OH·L iterations carries the 9 sums (``reassoc``: vectorised; float32
    results differ from a serial sum in the last bits) instead of a loop per output row, whose
    56 iterations left 24 to the scalar remainder of LLVM's 32-wide vector loop ((8,128,56,56):
    weight gradient 4.5 → 2.9 ms, measured)."""
    N = x.shape[0]
    OH, OW = gy.shape[2], gy.shape[3]
    L = OW + 2
    n_flat = OH * L
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = gw.dtype.type(0)
    sb = 0.0
    for n in range(N):
        if want_gx:  # gx = the convolution of gy with W[c, 0, ::-1, ::-1], leading padding 2 − p
            _depthwise3x3_plane(gy[n, c], W[c, 0, ::-1, ::-1], gx.dtype.type(0), gx[n, c], 2 - ph, 2 - pw, Q)
        if not (want_gw or want_gb):
            continue
        for oh in range(OH):  # G's last 2 columns stay 0 (set by the caller)
            src, dst = gy[n, c, oh], G[oh * L:oh * L + OW]
            for ow in range(OW):
                dst[ow] = src[ow]
        g = G[:n_flat]
        if want_gw:
            _fill_padded_plane(P[:(OH + 2) * L].reshape(OH + 2, L), x[n, c], ph, pw, OH + 2, L)
            a0, a1, a2 = P[0:n_flat], P[1:1 + n_flat], P[2:2 + n_flat]
            b0, b1, b2 = P[L:L + n_flat], P[L + 1:L + 1 + n_flat], P[L + 2:L + 2 + n_flat]
            d0, d1, d2 = P[2 * L:2 * L + n_flat], P[2 * L + 1:2 * L + 1 + n_flat], P[2 * L + 2:2 * L + 2 + n_flat]
            for q in range(n_flat):
                gv = g[q]
                s00 += gv * a0[q]
                s01 += gv * a1[q]
                s02 += gv * a2[q]
                s10 += gv * b0[q]
                s11 += gv * b1[q]
                s12 += gv * b2[q]
                s20 += gv * d0[q]
                s21 += gv * d1[q]
                s22 += gv * d2[q]
        if want_gb:
            for q in range(n_flat):
                sb += g[q]
    _store_3x3_grads(gw, gb, c, s00, s01, s02, s10, s11, s12, s20, s21, s22, sb, want_gw, want_gb)


@njit(cache=True, parallel=True)
def depthwise3x3_backward_raw(x, gy, W, gx, gW, gb, ph, pw, want_gx, want_gw, want_gb):
    """gx, gW[c, 0] and gb[c] of a 3×3 stride-1 depthwise convolution (one output channel per input
    channel), each computed when wanted (the others may be dummies); a thread owns channel c."""
    C, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    H, Wd = x.shape[2], x.shape[3]
    L = OW + 2
    for c in prange(C):
        _depthwise3x3_backward_channel(x, gy, W, gx, gW[c, 0], gb, c, ph, pw,
                                       np.zeros((OH + 2) * L + 2, dtype=x.dtype),  # 2 zeros after the plane
                                       np.empty((H + 2, Wd + 2), dtype=x.dtype),
                                       np.zeros(OH * L, dtype=x.dtype), want_gx, want_gw, want_gb)


@no_refcount_with(fastmath={"reassoc", "contract"})
def _depthwise3x3s2_backward_channel(x, gy, W, gx, gw, gb, c, ph, pw, P, U, Q, want_gx, want_gw, want_gb):
    """The three gradients of channel c of a 3×3 stride-2 depthwise convolution (as
    :func:`_depthwise3x3_backward_channel` for stride 1), per image:

    - gx[n, c]: the stride-1 convolution of U, gy[n, c] spread onto the even positions of a
      (2·OH − 1, 2·OW − 1) plane of zeros, with the flipped filter and leading padding 2 − p
      (:func:`_depthwise3x3_plane`): the transposed convolution as a gather, no scatter;
    - gw[kh, kw] = Σ_{oh,ow} gy[n, c, oh, ow] · xpad[2·oh + kh, 2·ow + kw] through ``P``, the padded
      x plane (≥ (2·OH + 1, 2·OW + 1)), one pass per output row carrying the 9 sums with the
      stride a literal (``reassoc``: vectorised; float32 results differ from a serial sum in the
      last bits);
    - gb[c] = Σ gy[n, c] in float64."""
    N = x.shape[0]
    OH, OW = gy.shape[2], gy.shape[3]
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = gw.dtype.type(0)
    sb = 0.0
    for n in range(N):
        g_plane = gy[n, c]
        if want_gx:
            for oh in range(OH):          # U's odd rows and columns stay 0 (set by the caller)
                src, dst = g_plane[oh], U[2 * oh]
                for ow in range(OW):
                    dst[2 * ow] = src[ow]
            _depthwise3x3_plane(U, W[c, 0, ::-1, ::-1], gx.dtype.type(0), gx[n, c], 2 - ph, 2 - pw, Q)
        if want_gw:
            _fill_padded_plane(P, x[n, c], ph, pw, 2 * OH + 1, 2 * OW + 1)
            for oh in range(OH):
                g, a, b, d = g_plane[oh], P[2 * oh], P[2 * oh + 1], P[2 * oh + 2]
                for ow in range(OW):
                    gv, j = g[ow], 2 * ow
                    s00 += gv * a[j]
                    s01 += gv * a[j + 1]
                    s02 += gv * a[j + 2]
                    s10 += gv * b[j]
                    s11 += gv * b[j + 1]
                    s12 += gv * b[j + 2]
                    s20 += gv * d[j]
                    s21 += gv * d[j + 1]
                    s22 += gv * d[j + 2]
        if want_gb:
            for oh in range(OH):
                g = g_plane[oh]
                for ow in range(OW):
                    sb += g[ow]
    _store_3x3_grads(gw, gb, c, s00, s01, s02, s10, s11, s12, s20, s21, s22, sb, want_gw, want_gb)


@njit(cache=True, parallel=True)
def depthwise3x3s2_backward_raw(x, gy, W, gx, gW, gb, ph, pw, want_gx, want_gw, want_gb):
    """gx, gW[c, 0] and gb[c] of a 3×3 stride-2 depthwise convolution (one output channel per input
    channel), each computed when wanted (the others may be dummies); a thread owns channel c."""
    C, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    H, Wd = x.shape[2], x.shape[3]
    for c in prange(C):
        _depthwise3x3s2_backward_channel(x, gy, W, gx, gW[c, 0], gb, c, ph, pw,
                                         np.empty((2 * OH + 1, 2 * OW + 1), dtype=x.dtype),
                                         np.zeros((max(2 * OH - 1, 1), max(2 * OW - 1, 1)), dtype=x.dtype),
                                         np.empty((H + 2, Wd + 2), dtype=x.dtype), want_gx, want_gw, want_gb)


@no_refcount
def _depthwise_backward_input_plane(gyn, W, gxp, c, M, sh, sw, ph, pw, dh, dw, gpad):
    """gxp = Σ_{m, kh, kw} W[c·M + m, 0, kh, kw] · (gyn[c·M + m] scattered back) for one plane:
    the scatter goes to the padded plane ``gpad`` (zeros, column j ↔ input column j − pw), whose
    in-bounds part is then copied out."""
    H, Wd = gxp.shape
    OH, OW = gyn.shape[1], gyn.shape[2]
    kH, kW = W.shape[2], W.shape[3]
    for m in range(M):
        co = c * M + m
        for oh in range(OH):
            g_row = gyn[co, oh]
            for kh in range(kH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                for kw in range(kW):
                    w = W[co, 0, kh, kw]
                    off = kw * dw
                    if sw == 1:
                        dst = gpad[ih, off:off + OW]
                        for ow in range(OW):
                            dst[ow] += w * g_row[ow]
                    else:
                        dst_s = gpad[ih, off:off + (OW - 1) * sw + 1:sw]
                        for ow in range(OW):
                            dst_s[ow] += w * g_row[ow]
    for ih in range(H):
        src, dst = gpad[ih, pw:pw + Wd], gxp[ih]
        for iw in range(Wd):
            dst[iw] = src[iw]


@njit(cache=True, parallel=True)
def depthwise_backward_input_raw(gy, W, gx, sh, sw, ph, pw, dh, dw):
    """gx[n, c] = Σ_{m, kh, kw} W[c·M + m, 0, kh, kw] · (gy[n, c·M + m] scattered back); a thread owns gx[n, c]."""
    N, C_in, H, Wd = gx.shape
    _, C_out, OH, OW = gy.shape
    kW = W.shape[3]
    M = C_out // C_in
    L = max(_padded_width(OW, kW, sw, dw), pw + Wd)
    for plane in prange(N * C_in):
        n, c = plane // C_in, plane % C_in
        _depthwise_backward_input_plane(gy[n], W, gx[n, c], c, M, sh, sw, ph, pw, dh, dw,
                                        np.zeros((H, L), dtype=gx.dtype))


@no_refcount_with(fastmath={"reassoc", "contract"})
def _depthwise_backward_weight_channel(x, gy, gw, co, c, sh, sw, ph, pw, dh, dw, buf):
    """gw (kH, kW) = Σ_{n,oh,ow} gy[n, co, oh, ow] · x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]
    (``buf`` zeros of the padded width; ``reassoc`` lets LLVM vectorise the sums: float32 results
    differ from a serial sum in the last bits)."""
    N, H = x.shape[0], x.shape[2]
    OH, OW = gy.shape[2], gy.shape[3]
    kH, kW = gw.shape
    for kh in range(kH):
        for kw in range(kW):
            gw[kh, kw] = 0
    for n in range(N):
        for oh in range(OH):
            g_row = gy[n, co, oh]
            for kh in range(kH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                _fill_row(buf, x[n, c, ih], pw)
                for kw in range(kW):
                    off = kw * dw
                    s = gw.dtype.type(0)
                    if sw == 1:
                        src = buf[off:off + OW]
                        for ow in range(OW):
                            s += g_row[ow] * src[ow]
                    else:
                        src_s = buf[off:off + (OW - 1) * sw + 1:sw]
                        for ow in range(OW):
                            s += g_row[ow] * src_s[ow]
                    gw[kh, kw] += s


@njit(cache=True, parallel=True)
def depthwise_backward_weight_raw(x, gy, gW, sh, sw, ph, pw, dh, dw):
    """gW[co, 0, kh, kw] = Σ_{n,oh,ow} gy[n, co, oh, ow] · x[n, co // M, ...]; a thread owns gW[co]."""
    C_in = x.shape[1]
    C_out, OW = gy.shape[1], gy.shape[3]
    kW = gW.shape[3]
    M = C_out // C_in
    L = _padded_width(OW, kW, sw, dw)
    for co in prange(C_out):
        _depthwise_backward_weight_channel(x, gy, gW[co, 0], co, co // M, sh, sw, ph, pw, dh, dw,
                                           np.zeros(L, dtype=x.dtype))


# ---- path selection -----------------------------------------------------------------------------
def _is_pointwise(kernel_hw, stride, padding, in_hw, out_hw):
    return (tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
            and tuple(in_hw) == tuple(out_hw))


def _is_depthwise(C_in, groups):
    return groups == C_in and groups > 1


def _is_depthwise3x3(W_shape, C_in, stride, dilation, step=1):
    """The depthwise case with its own kernels: one output channel per input channel, 3×3, stride
    ``step`` in both directions, undilated (MobileNet's)."""
    return (W_shape[0] == C_in and tuple(W_shape[2:]) == (3, 3) and tuple(stride) == (step, step)
            and tuple(dilation) == (1, 1))


def _depthwise3x3_step(W_shape, C_in, groups, stride, dilation):
    """1 or 2: the stride of a depthwise 3×3 layer with its own forward and backward kernels
    (:func:`_is_depthwise3x3`); None for any other layer."""
    if _is_depthwise(C_in, groups):
        for step in (1, 2):
            if _is_depthwise3x3(W_shape, C_in, stride, dilation, step):
                return step
    return None


#: ``None``: choose per shape (the table in the module docstring); ``"im2col"``, ``"winograd"``
#: (F(2×2, 3×3)), ``"winograd4"`` (F(4×4, 3×3)) or ``"small_maps"`` (the whole-batch backward of
#: ``conv_small_maps.py``, any one-group layer) forces a path where it applies (benchmarks and tests
#: set it to compare the variants; a forced Winograd still yields to im2col for values out of
#: ``winograd_in_range``)
FORCE_ALGORITHM = None

#: Winograd wins from this many output positions per image (measured, module docstring)
_WINOGRAD_MIN_POSITIONS = 1024
#: ... and from this many on wide layers (≥ _WINOGRAD_WIDE_CHANNELS channels in and out), whose
#: 16 GEMMs stay efficient on small images
_WINOGRAD_WIDE_CHANNELS = 128
_WINOGRAD_WIDE_MIN_POSITIONS = 196
#: ... and on wide layers from 8×8 maps where the batch has ≥ 1024 output positions (its 16 GEMMs
#: then have ≥ 256 tile columns). Measured 2026-12-07, alternating medians, forward / fwd+bwd ms,
#: im2col → Winograd: (32,256,8,8)→256 7.7 → 6.3 / 24.0 → 20.7, (16,256,8,8) 3.8 → 3.0 / 11.9 → 10.0,
#: (32,512,8,8) 29.3 → 25.9 / 97.7 → 79.8, (16,128,8,8) 1.12 → 0.95 / 3.56 → 3.08; at 512 positions
#: or fewer im2col is as fast or faster: (8,256,8,8) 2.0 / 6.1 both, (8,512,8,8) 7.7 → 8.2 / 21.9 →
#: 26.8, (4,256,10,10) 1.5 → 1.9 / 4.8 → 5.8; (32,512,4,4) (16 positions) 9.2 → 9.7.
_WINOGRAD_BATCH_MIN_POSITIONS = 64
_WINOGRAD_BATCH_MIN_TOTAL = 1024
#: ... and, for the forward map only (a GEMM of C_out rows), from 16×16 images with ≥ 64 output
#: and ≥ 32 input channels (several images per task keep its GEMMs wide). Measured with the
#: bias: (64,32,16,16)→64 4.1–4.4 vs 4.5–4.6 ms for im2col, →128 8.0 vs 8.8; with 32 output
#: channels im2col wins (3.3 vs 3.5). (Before the output transform stored its columns
#: interleaved, im2col won at 32 input channels too: 5.9 vs 6.3 ms.)
_WINOGRAD_SMALL_IMAGE_MIN_IN = 32
_WINOGRAD_SMALL_IMAGE_POSITIONS = 256


def _use_winograd(kernel_hw, stride, dilation, groups, C_in, C_out, out_hw, weight_grad=False, n_images=1):
    """Winograd F(2×2, 3×3) for a 3×3 stride-1 undilated ungrouped convolution with enough channels
    and positions (the table in the module docstring; ``n_images``: the batch). For the forward map (and the input
    gradient, the convolution of gy it is, with the channels swapped), also on 16×16 images with
    ≥ 32 → ≥ 64 channels; not so for the weight gradient (``weight_grad``), whose 16 GEMMs
    contract over the tiles: on 16×16 images im2col wins there (Winograd measured 0.8×)."""
    if FORCE_ALGORITHM == "im2col":
        return False
    applies = (tuple(kernel_hw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
               and groups == 1)
    if FORCE_ALGORITHM in ("winograd", "winograd4") or not applies:
        return applies
    positions, channels = out_hw[0] * out_hw[1], min(C_in, C_out)
    small_image = (not weight_grad and C_out >= 64 and C_in >= _WINOGRAD_SMALL_IMAGE_MIN_IN
                   and positions >= _WINOGRAD_SMALL_IMAGE_POSITIONS)
    return ((channels >= 16 and positions >= _WINOGRAD_MIN_POSITIONS)
            or (channels >= _WINOGRAD_WIDE_CHANNELS and positions >= _WINOGRAD_WIDE_MIN_POSITIONS)
            or (channels >= _WINOGRAD_WIDE_CHANNELS and positions >= _WINOGRAD_BATCH_MIN_POSITIONS
                and n_images * positions >= _WINOGRAD_BATCH_MIN_TOTAL)
            or small_image)


#: F(4×4, 3×3) instead of F(2×2) from this many output positions per image (56×56): its 36 GEMMs
#: do 1.78× fewer flops, but on smaller images its 6×6 tiles overhang the border (14×14 → 16×16)
#: and its GEMMs get thin (measured: forward (4,128,112,112)→128 52.6 vs 66.6 ms, (8,64,56,56)→64
#: 11.2 vs 12.5; (8,256,14,14)→256 18.3 vs 12.7, (64,32,16,16)→64 7.6 vs 6.8)
_WINOGRAD4_MIN_POSITIONS = 3136
#: ... and with at least this many channels on the layer's narrower side: with fewer, F(4×4)'s
#: larger transforms cost more than its GEMMs save, and F(2×2) has the fused backward. Measured
#: 2026-12-07, forward + backward (alternating medians), F(2×2) vs F(4×4): (8,16,64,64)→16 1.86 vs
#: 3.16 ms, (8,32,64,64)→16 3.49 vs 4.01, (8,16,64,64)→32 3.19 vs 3.72 (its forward alone 1.15 vs
#: 0.99); from 32 channels F(4×4) wins or ties: (8,32,64,64)→32 8.46 vs 5.62, (4,32,112,112)→32
#: 8.9 vs 9.2, (8,64,64,64)→64 18.5 vs 17.3.
_WINOGRAD4_MIN_CHANNELS = 32


def _use_small_maps(x_shape, W_shape, stride, dilation, groups, out_hw):
    """The backward of ``conv_small_maps.py`` (whole-batch GEMMs split over input channels) for a
    wide layer on small maps: where no Winograd path (2-D or 1-D) takes the layer's forward map,
    input gradient or weight gradient, and :func:`use_small_maps` agrees.
    ``FORCE_ALGORITHM == "small_maps"`` takes it for any one-group layer, another forced algorithm
    never."""
    N, C_in, H, Wd = x_shape
    C_out, _, kH, kW = W_shape
    if FORCE_ALGORITHM is not None or groups != 1 or C_in == 1:
        return FORCE_ALGORITHM == "small_maps" and groups == 1
    k = (kH, kW)
    if (_use_winograd(k, stride, dilation, groups, C_in, C_out, out_hw, n_images=N)
            or _use_winograd(k, stride, dilation, groups, C_out, C_in, (H, Wd), n_images=N)
            or _use_winograd1d(k, stride, dilation, groups, C_in, C_out, (H, Wd), out_hw)
            or _use_winograd1d(k, stride, dilation, groups, C_out, C_in, out_hw, (H, Wd))):
        return False
    return use_small_maps(N, C_in, groups, k, out_hw)


def _winograd_tile(out_hw, channels=None):
    """The Winograd output tile (2 or 4) for a map of ``out_hw`` positions and a layer whose
    narrower side has ``channels`` channels (``min(C_in, C_out)``; None: not considered), with
    ``FORCE_ALGORITHM`` first."""
    if FORCE_ALGORITHM in ("winograd", "winograd4"):
        return 4 if FORCE_ALGORITHM == "winograd4" else 2
    large = out_hw[0] * out_hw[1] >= _WINOGRAD4_MIN_POSITIONS
    return 4 if large and (channels is None or channels >= _WINOGRAD4_MIN_CHANNELS) else 2


def _winograd_tiles(N, out_hw, tile):
    """The tiles a Winograd weight gradient sums over: N images of ⌈OH/t⌉ × (⌈OW/t⌉ + 1) (one padding
    tile per tile row)."""
    return N * -(-out_hw[0] // tile) * (-(-out_hw[1] // tile) + 1)


def _in_winograd_range(tile, terms, a, b, bias=None):
    """:func:`winograd_in_range` for the arrays ``a``, ``b`` (and ``bias``): whether Winograd cannot
    overflow on these values (always False when one holds an inf or NaN)."""
    max_bias = 0.0 if bias is None else max_abs(bias)
    return winograd_in_range(tile, terms, max_abs(a), max_abs(b), max_bias, a.dtype)


#: columns of one im2col block: about this many elements (4 MiB of float32), see :func:`_blocks`
_BLOCK_ELEMS = 1 << 20


def _block_columns(K):
    """Output positions per task for a GEMM with inner dimension ``K``: the block of columns
    (K × this) fits a core's L2/L3 share, and is wide enough (≥ 256) for an efficient sgemm.
    (At most 16384: with few input channels, e.g. K = 27, bigger blocks mean fewer, larger
    GEMMs and less per-task overhead: (64,3,32,32)→32 forward 1.1 ms instead of 1.3–1.7 with 4096.)"""
    return max(256, min(16384, _BLOCK_ELEMS // max(K, 1)))


#: tasks a thread that the im2col paths aim for (:func:`_blocks`, :func:`_group_tasks`)
_TASKS_PER_THREAD = 4

#: whole-image tasks get at least this many output positions (columns of their GEMMs) as long as
#: every thread still gets a task: with 4 tasks a thread, small batches of small maps made GEMMs of
#: 16–49 columns that re-read the whole filter for each image. Forward, 1 task an image → 2
#: (measured 2026-12-07, alternating medians): (4,512,7,7)→512 3×3 3.67 → 3.09 ms, (4,256,14,14)→512
#: 3×3 stride 2 1.62 → 1.45, (4,1024,14,14)→2048 1×1 stride 2 3.24 → 2.86, (8,512,4,4)→512 3.3 → 3.0
#: (128 columns: the same, but (32,256,8,8)→512 stride 2 lost 9%). 0 turns it off.
_MIN_TASK_COLUMNS = 64


def _blocks(N, OH, OW, K, whole_images=False):
    """Tasks ``(n0, n1, r0, r1)``: images ``n0:n1`` × output rows ``r0:r1``.

    Large images are cut into row blocks of about :func:`_block_columns` positions (one image a
    task); small ones are grouped several to a task. Either way we aim for at least 4 tasks per
    thread so that a thread slowed by another process just takes fewer of them, except that a task
    of whole images gets at least ``_MIN_TASK_COLUMNS`` positions while each thread still gets one.
    ``whole_images``: never cut an image (a task then owns its images, as col2im needs).
    """
    P, target, min_tasks = OH * OW, _block_columns(K), _TASKS_PER_THREAD * NUM_THREADS
    if P >= target and not whole_images:
        rb = max(1, min(OH, target // OW))
        while N * -(-OH // rb) < min_tasks and rb * OW > 512:
            rb = (rb + 1) // 2
        return [(n, n + 1, r, min(OH, r + rb)) for n in range(N) for r in range(0, OH, rb)]
    nb = max(1, min(target // P, -(-N // NUM_THREADS), max(N // min_tasks, -(-_MIN_TASK_COLUMNS // P))))
    return [(n, min(N, n + nb), 0, OH) for n in range(0, N, nb)]


def _group_tasks(blocks, G):
    """``(block, g0, g1)``: each block of :func:`_blocks` with its groups ``g0:g1``. Where the blocks
    are fewer than 4 a thread (a grouped convolution of one or two images, e.g. StyleGAN's
    modulated convolution, the batch folded into 32 groups), the groups are split too, so that both
    cores work: tasks of different groups write different channels (no races). (1,2048,16,16)→2048
    3×3 in 32 groups: one task 4.8 ms forward, 4.2 input gradient, 5.8 weight gradient (measured)."""
    want = _TASKS_PER_THREAD * NUM_THREADS
    if G == 1 or len(blocks) >= want:
        return [(b, 0, G) for b in blocks]
    chunks = min(G, -(-want // len(blocks)))
    return [(b, G * i // chunks, G * (i + 1) // chunks) for b in blocks for i in range(chunks)]


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


# ---- 1-D Winograd F(m, r) ------------------------------------------------------------------------
def _toom_cook(m, r, points):
    """(Aᵀ (m, α), G (α, r), Bᵀ (α, α)) of the 1-D Winograd F(m, r), α = m + r − 1, from the α − 1
    finite interpolation ``points`` and ∞, exact in fractions, returned as float64 arrays.

    With E_n (α, n) the evaluation of a polynomial of degree n − 1 at the points (row of p:
    1, p, …, p^{n−1}; row of ∞: its leading coefficient), the product of polynomials of m and r
    coefficients is c = E_α⁻¹ ((E_m a) ⊙ (E_r g)). The correlation y_i = Σ_k g_k d_{i+k}
    (i < m, k < r) is that map's transpose in a, so y = E_mᵀ ((E_r g) ⊙ (E_α⁻ᵀ d)):
    Aᵀ = E_mᵀ, G = E_r, Bᵀ = E_α⁻ᵀ."""
    from fractions import Fraction

    alpha = m + r - 1
    pts = [Fraction(p) for p in points]

    def evaluation(n):
        return [[p ** j for j in range(n)] for p in pts] + [[Fraction(0)] * (n - 1) + [Fraction(1)]]

    E = evaluation(alpha)  # Gauss-Jordan inverse of the (α, α) Vandermonde matrix
    inv = [[Fraction(int(i == j)) for j in range(alpha)] for i in range(alpha)]
    for col in range(alpha):
        piv = next(i for i in range(col, alpha) if E[i][col] != 0)
        E[col], E[piv], inv[col], inv[piv] = E[piv], E[col], inv[piv], inv[col]
        scale = E[col][col]
        E[col] = [v / scale for v in E[col]]
        inv[col] = [v / scale for v in inv[col]]
        for i in range(alpha):
            if i != col and E[i][col] != 0:
                f = E[i][col]
                E[i] = [a - f * b for a, b in zip(E[i], E[col])]
                inv[i] = [a - f * b for a, b in zip(inv[i], inv[col])]
    AT = np.array(evaluation(m), dtype=np.float64).T
    G = np.array(evaluation(r), dtype=np.float64)
    BT = np.array(inv, dtype=np.float64).T
    return AT, G, BT


#: the 1-D Winograd variants, by kernel size r: (m, Aᵀ, G, Bᵀ). F(4, 3) on the points 0, ±1, ±2
#: (6 products for 12 multiplications, 2×), F(4, 5) on 0, ±1, ±2, ±1/2 (8 for 20, 2.5×); float32
#: error ~2e-6 of the output's maximum (im2col: ~1e-6), measured on 128 channels
_WINOGRAD1D = {3: (4,) + _toom_cook(4, 3, (0, 1, -1, 2, -2)),
               5: (4,) + _toom_cook(4, 5, (0, 1, -1, 2, -2, 0.5, -0.5))}
#: the weight gradient's variants, by kernel size r: (m, Aᵀ, G, Bᵀ) of F(r, m) on the same points
#: (its sums over a tile, Σ_s gy[t·m + s] · x[t·m + s + k − p] for k < r, are that correlation of the
#: α inputs with the tile's m output gradients); Bᵀ, the forward's, transforms x the same way
_WINOGRAD1D_GRAD = {3: (4,) + _toom_cook(3, 4, (0, 1, -1, 2, -2)),
                    5: (4,) + _toom_cook(5, 4, (0, 1, -1, 2, -2, 0.5, -0.5))}

#: 1-D Winograd from this many channels in and out (the GEMMs contract over C_in, or C_out for the
#: input gradient, instead of C·r)
_WINOGRAD1D_MIN_CHANNELS = 32
#: ... and about this many GEMM columns (tiles) per task
_WINOGRAD1D_TASK_TILES = 256


def _use_winograd1d(kernel_hw, stride, dilation, groups, C_in, C_out, in_hw, out_hw):
    """1-D Winograd (:func:`winograd_conv1d`) for a 1-D map (H = 1, a 1 × r kernel, r in
    ``_WINOGRAD1D``), stride 1, undilated, one group, ≥ ``_WINOGRAD1D_MIN_CHANNELS`` channels in and
    out (any channel count when ``FORCE_ALGORITHM`` names a Winograd; never when it is "im2col")."""
    if FORCE_ALGORITHM == "im2col":
        return False
    applies = (kernel_hw[0] == 1 and kernel_hw[1] in _WINOGRAD1D and in_hw[0] == 1 and out_hw[0] == 1
               and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1)
    if FORCE_ALGORITHM in ("winograd", "winograd4") or not applies:
        return applies
    return min(C_in, C_out) >= _WINOGRAD1D_MIN_CHANNELS


def _in_winograd1d_range(r, terms, a, b, bias, variants=None):
    """Whether :func:`winograd_conv1d` of ``a`` (the map) and ``b`` (the filters) cannot overflow:
    every transformed value is bounded by ‖Bᵀ‖∞·max|a| and ‖G‖∞·max|b|, every GEMM entry by ``terms``
    times their product, the output by ‖Aᵀ‖∞ times that plus max|bias|; all must stay below half
    the dtype's largest value (False for any inf or NaN, whose comparisons are False).
    ``variants``: ``_WINOGRAD1D`` (the default) or ``_WINOGRAD1D_GRAD`` (the weight gradient, ``a``
    the map, ``b`` the output gradient, ``terms`` the tiles of all images)."""
    ga, gg, gb = _winograd1d_norms(r, variants is _WINOGRAD1D_GRAD)
    limit = float(np.finfo(a.dtype).max) / 2
    max_a, max_b = max_abs(a), max_abs(b)
    max_bias = 0.0 if bias is None else max_abs(bias)
    v, u = gb * max_a, gg * max_b
    return v <= limit and u <= limit and ga * terms * u * v + max_bias <= limit


@functools.lru_cache(maxsize=None)
def _winograd1d_norms(r, gradient):
    """The row-sum norms ‖Aᵀ‖∞, ‖G‖∞, ‖Bᵀ‖∞ of the transforms of ``_WINOGRAD1D[r]`` (or of
    ``_WINOGRAD1D_GRAD[r]`` when ``gradient``), computed once per table entry."""
    _, AT, G, BT = (_WINOGRAD1D_GRAD if gradient else _WINOGRAD1D)[r]
    return tuple(float(np.abs(M).sum(axis=1).max()) for M in (AT, G, BT))


@no_refcount
def _winograd1d_input(x3, V, xph, n0, Q, p, m, BT):
    """V[ξ, c, i·Q + t] = Σ_j Bᵀ[ξ, j] · x3[n0 + i, c, t·m − p + j] (0 outside [0, L)) for the
    tiles t < T of the task's images i; V is (α, C, nb·Q), Q = T + ⌊(α − 1)/m⌋ + 1 columns an
    image, those from T on finite filler of the same bound that the output transform skips.
    ``xph`` (m, nb·Q): the images' planes split into their m phases, xph[ph, i·Q + q] =
    x[q·m + ph − p], so that input j of tile t is xph[j mod m, i·Q + t + ⌊j/m⌋]: each term is one
    contiguous row over all the task's tiles (vectorised; a row per image, 38 tiles, left much of
    each loop to the scalar remainder)."""
    alpha, C, nbQ = V.shape
    L = x3.shape[2]
    nb = nbQ // Q
    jmax = (alpha - 1) // m
    span = nbQ - jmax
    zero = V.dtype.type(0)
    for c in range(C):
        for i in range(nb):
            plane = x3[n0 + i, c]
            for ph in range(m):
                dst = xph[ph, i * Q:(i + 1) * Q]
                q_lo = min(Q, max(0, (p - ph + m - 1) // m))  # first q with q·m + ph − p ≥ 0
                q_hi = max(q_lo, min(Q, (L - 1 + p - ph) // m + 1))  # ... and ≤ L − 1
                for q in range(q_lo):
                    dst[q] = zero
                for q in range(q_lo, q_hi):
                    dst[q] = plane[q * m + ph - p]
                for q in range(q_hi, Q):
                    dst[q] = zero
        for xi in range(alpha):
            out = V[xi, c]
            for t in range(nbQ):
                out[t] = zero
            for j in range(alpha):
                coef = BT[xi, j]
                if coef != 0:
                    src = xph[j % m, j // m:j // m + span]
                    dst = out[:span]
                    for t in range(span):
                        dst[t] += coef * src[t]


@no_refcount
def _winograd1d_output(M, y3, ys, n0, AT, bias):
    """y3[n0 + i, co, t·m + s] = bias[co] + Σ_ξ Aᵀ[s, ξ] · M[ξ, co, i·Q + t] for the tiles t of the
    task's images i (M (α, C_out, nb·Q), the layout of :func:`_winograd1d_input`; outputs past y3's
    length dropped). ``ys`` (m, nb·Q): scratch, one row per output phase s over all the tiles."""
    alpha, Co, nbQ = M.shape
    m = ys.shape[0]
    OL = y3.shape[2]
    T = -(-OL // m)
    Q = T + (alpha - 1) // m + 1
    nb = nbQ // Q
    full = OL // m
    for co in range(Co):
        for s in range(m):
            row = ys[s]
            for t in range(nbQ):
                row[t] = 0
            for xi in range(alpha):
                coef = AT[s, xi]
                if coef != 0:
                    src = M[xi, co]
                    for t in range(nbQ):
                        row[t] += coef * src[t]
        b = bias[co]
        for i in range(nb):
            out, base = y3[n0 + i, co], i * Q
            for t in range(full):
                for s in range(m):
                    out[t * m + s] = ys[s, base + t] + b
            for o in range(full * m, OL):
                out[o] = ys[o - full * m, base + full] + b


#: per-thread workspaces of the 1-D Winograd: the phases of a plane and the output rows of a tile row
WINO1D_PHASES = Workspace()
WINO1D_ROWS = Workspace()


def winograd_conv1d(x, W, pad, OL, bias=None, flipped_transposed=False):
    """y (N, C_out, 1, OL) = the 1-D convolution of x (N, C, 1, L) with W (C_out, C, 1, r), leading
    padding ``pad`` (+ bias), by Winograd F(m, r) (``_WINOGRAD1D``): per tile of m outputs,
    y = Aᵀ [(G w) ⊙ (Bᵀ d)] over the α = m + r − 1 inputs d it reads; the α products become α
    GEMMs over the channels, U[ξ] (C_out, C) @ V[ξ] (C, tiles). With ``flipped_transposed`` the
    filter is W[co, c, 0, r − 1 − k] taken as (C, C_out) (the input gradient: the convolution of gy
    with the flipped, transposed filter, leading padding r − 1 − p). Tasks: a few whole images
    (about ``_WINOGRAD1D_TASK_TILES`` tiles, ≥ 2 tasks a thread when there are images enough)."""
    x = np.ascontiguousarray(x)
    N, C, _, L = x.shape
    r = W.shape[3]
    m, AT, G, BT = _WINOGRAD1D[r]
    alpha = m + r - 1
    dt = x.dtype
    W2 = np.ascontiguousarray(W, dtype=dt).reshape(W.shape[0] * W.shape[1], r)
    if flipped_transposed:  # U[ξ] = (G[:, ::-1] W)[ξ]ᵀ: (C_in, C_out) for the GEMM, a transposed view
        Co = W.shape[1]
        U = np.matmul(G[:, ::-1].astype(dt), W2.T).reshape(alpha, W.shape[0], Co).transpose(0, 2, 1)
    else:
        Co = W.shape[0]
        U = np.matmul(G.astype(dt), W2.T).reshape(alpha, Co, C)
    ATd, BTd = AT.astype(dt), BT.astype(dt)
    b = bias_vector(bias, Co, dt)
    T = -(-OL // m)
    Q = T + (alpha - 1) // m + 1
    nb = max(1, min(-(-_WINOGRAD1D_TASK_TILES // T), N // (2 * NUM_THREADS)))
    y = np.empty((N, Co, 1, OL), dtype=dt)
    x3, y3 = x.reshape(N, C, L), y.reshape(N, Co, OL)

    def task(n0, _):
        cols = (min(N, n0 + nb) - n0) * Q
        V = COLS.get((alpha, C, cols), dt)
        Mp = PRODUCT.get((alpha, Co, cols), dt)
        _winograd1d_input(x3, V, WINO1D_PHASES.get((m, cols), dt), n0, Q, pad, m, BTd)
        np.matmul(U, V, out=Mp)
        _winograd1d_output(Mp, y3, WINO1D_ROWS.get((m, cols), dt), n0, ATd, b)

    run_tasks(task, range(0, N, nb))
    return y


def winograd_backward_weight1d(x, gy, r, pad):
    """gW (C_out, C, 1, r)[co, c, 0, k] = Σ_{n, l} gy[n, co, 0, l] · x[n, c, 0, l + k − pad] (x zero
    outside [0, L)) by Winograd F(r, m) per tile of m output positions (``_WINOGRAD1D_GRAD``):
    gW[co, c] = Aᵀ Σ_tiles (G gy_tile)[ξ, co] · (Bᵀ x_window)[ξ, c], the α sums over all tiles of all
    images being α GEMMs Z[ξ] (C_out, C) = Gy[ξ] @ V[ξ]ᵀ. V is the forward's input transform; Gy
    the same kernel with G in the first m columns of its matrix (its filler columns are zero, so
    the forward layout's padding tiles add nothing). One accumulator per thread, summed in chunk
    order (the same sum on every run)."""
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    N, C, _, L = x.shape
    Co, OL = gy.shape[1], gy.shape[3]
    m, AT, G, BT = _WINOGRAD1D_GRAD[r]
    alpha = m + r - 1
    dt = x.dtype
    Gsq = np.zeros((alpha, alpha), dtype=dt)
    Gsq[:, :m] = G
    BTd = BT.astype(dt)
    T = -(-OL // m)
    Q = T + (alpha - 1) // m + 1
    nb = max(1, min(-(-_WINOGRAD1D_TASK_TILES // T), N // (2 * NUM_THREADS)))
    x3, gy3 = x.reshape(N, C, L), gy.reshape(N, Co, OL)

    def task(n0, state):
        acc, prod = state
        cols = (min(N, n0 + nb) - n0) * Q
        V = COLS.get((alpha, C, cols), dt)
        Gy = GY_T.get((alpha, Co, cols), dt)
        phases = WINO1D_PHASES.get((m, cols), dt)
        _winograd1d_input(x3, V, phases, n0, Q, pad, m, BTd)
        _winograd1d_input(gy3, Gy, phases, n0, Q, 0, m, Gsq)
        np.matmul(Gy, V.transpose(0, 2, 1), out=prod)
        acc += prod

    states = run_tasks(task, range(0, N, nb),
                       lambda: (np.zeros((alpha, Co, C), dtype=dt), np.empty((alpha, Co, C), dtype=dt)))
    Z = sum_accumulators(states)
    gW = np.matmul(AT.astype(dt), Z.reshape(alpha, Co * C)).reshape(r, Co, C)
    return np.ascontiguousarray(gW.transpose(1, 2, 0)).reshape(Co, C, 1, r)


#: the forward's blocks of several images with fewer output positions each than this are laid out
#: wide, ``(K, nb, B)`` columns (``im2col_block(..., wide=True)``), for one GEMM over the block
#: instead of one per image: (64,64,5,5)→64 3×3 (B = 9) 0.9 vs 1.0–1.3 ms. From 11×11 outputs on it
#: does not pay: the extra copy of the product into y costs what the wider GEMM saves
#: ((64,32,16,16)→64: 7.7 vs 7.3 ms), measured. (The weight gradient goes wide for every block
#: of several images: its product is the small (K, Mg) sum, no copy.)
_WIDE_BLOCK_MAX_POSITIONS = 64


def conv2d_forward(x, W, stride, padding, dilation, groups, out_hw, bias=None):
    """y (N, C_out, OH, OW) = conv2d(x, W) (+ bias[co] when given, added to each block while it is
    in cache: a separate ``y += b`` pass cost 3 ms on (8, 256, 56, 56), measured)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, C_in, H, Wd = x.shape
    C_out, Cg, kH, kW = W.shape
    OH, OW = out_hw
    G, Mg, K = groups, C_out // groups, Cg * kH * kW
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    if _is_depthwise(C_in, G):
        step = _depthwise3x3_step(W.shape, C_in, G, stride, dilation)
        if step == 1:
            depthwise3x3_raw(x, W, bias_vector(bias, C_out, x.dtype), y, *padding, False)
        elif step == 2:
            depthwise3x3s2_raw(x, W, bias_vector(bias, C_out, x.dtype), y, *padding)
        else:
            depthwise_forward_raw(x, W, bias_vector(bias, C_out, x.dtype), y, *stride, *padding, *dilation)
        return y
    tile = _winograd_tile(out_hw, min(C_in, C_out))
    if (_use_winograd((kH, kW), stride, dilation, G, C_in, C_out, out_hw, n_images=N)
            and _in_winograd_range(tile, C_in, x, W, bias)):
        return winograd_conv3x3(x, W, padding, out_hw, bias, tile=tile)
    if (_use_winograd1d((kH, kW), stride, dilation, G, C_in, C_out, (H, Wd), out_hw)
            and _in_winograd1d_range(kW, C_in, x, W, bias)):
        return winograd_conv1d(x, W, padding[1], OW, bias)
    Wg, yv = W.reshape(G, Mg, K), y.reshape(N, G, Mg, OH * OW)
    bg = None if bias is None else np.ascontiguousarray(bias, dtype=x.dtype).reshape(G, Mg)
    pointwise = _is_pointwise((kH, kW), stride, padding, (H, Wd), out_hw)
    xv = x.reshape(N, G, Cg, H * Wd)

    def task(item, _):
        (n0, n1, r0, r1), g0, g1 = item
        nb, B = n1 - n0, (r1 - r0) * OW
        for g in range(g0, g1):
            out = yv[n0:n1, g, :, r0 * OW:r1 * OW]
            if nb > 1 and not pointwise and B < _WIDE_BLOCK_MAX_POSITIONS:
                # several tiny images: one GEMM over the block's columns laid out (K, nb·B), then
                # the (Mg, nb, B) product copied into y's (nb, Mg, B) block
                cols = COLS.get((K, nb, B), x.dtype)
                im2col_block(x, cols, n0, g * Cg, r0, kH, kW, *stride, *padding, *dilation, OW, True)
                prod = PRODUCT.get((Mg, nb, B), x.dtype)
                np.matmul(Wg[g], cols.reshape(K, nb * B), out=prod.reshape(Mg, nb * B))
                if bg is not None:
                    add_channel_bias(prod.transpose(1, 0, 2), bg[g])
                np.copyto(out, prod.transpose(1, 0, 2))
                continue
            if pointwise:
                cols = xv[n0:n1, g, :, r0 * OW:r1 * OW]
            else:
                cols = COLS.get((nb, K, B), x.dtype)
                im2col_block(x, cols, n0, g * Cg, r0, kH, kW, *stride, *padding, *dilation, OW, False)
            np.matmul(Wg[g], cols, out=out)
            if bg is not None:
                add_channel_bias(out, bg[g])

    run_tasks(task, _group_tasks(_blocks(N, OH, OW, K), G))
    return y


@no_refcount
def add_channel_bias(out, b):
    """out[i, m, :] += b[m] for a block (nb, M, B) of the output (any strides; one loop per row:
    3.5× faster than NumPy's broadcast ``out += b[:, None]`` on (8, 64, 256) blocks, measured)."""
    nb, M, B = out.shape
    for i in range(nb):
        for m in range(M):
            row, v = out[i, m], b[m]
            for j in range(B):
                row[j] += v


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def bias_grad_raw(gy, gb, c0, c1):
    """gb[co] = Σ_{n, p} gy[n, co, p] for co in c0…c1 (gy (N, C, P); float64 sums, vectorised)."""
    N, P = gy.shape[0], gy.shape[2]
    for co in range(c0, c1):
        s = 0.0
        for n in range(N):
            plane = gy[n, co]
            for p in range(P):
                s += plane[p]
        gb[co] = s


def conv2d_bias_grad(gy):
    """gb (C_out,) = Σ_{n, oh, ow} gy[n, co, oh, ow], channels split over the task pool
    (NumPy's ``gy.sum((0, 2, 3))`` took 2.7 ms on (8, 256, 56, 56), one thread)."""
    gy = np.ascontiguousarray(gy)
    N, C = gy.shape[:2]
    g3 = gy.reshape(N, C, gy.shape[2] * gy.shape[3])  # (not -1: no answer when N·C = 0)
    gb = np.empty(C, dtype=gy.dtype)
    over_chunks(bias_grad_raw, C, g3, gb)
    return gb


def conv2d_backward_input(gy, W, x_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = ∂⟨gy, conv2d(x, W)⟩/∂x = col2im(Wᵀ @ gy)."""
    gy, W = np.ascontiguousarray(gy), np.ascontiguousarray(W)
    N, C_out, OH, OW = gy.shape
    _, Cg, kH, kW = W.shape
    H, Wd = x_hw
    G, Mg, K = groups, C_out // groups, Cg * kH * kW
    C_in = Cg * G
    gx = np.empty((N, C_in, H, Wd), dtype=gy.dtype)
    if _is_depthwise(C_in, G):
        if _is_depthwise3x3(W.shape, C_in, stride, dilation):
            depthwise3x3_raw(gy, W, np.zeros(C_in, dtype=gy.dtype), gx, 2 - padding[0], 2 - padding[1], True)
        else:
            depthwise_backward_input_raw(gy, W, gx, *stride, *padding, *dilation)
        return gx
    tile = _winograd_tile(x_hw, min(C_in, C_out))
    if (_use_winograd((kH, kW), stride, dilation, G, C_out, C_in, x_hw, n_images=gy.shape[0])
            and _in_winograd_range(tile, C_out, gy, W)):
        # gx[c, ih, iw] = Σ W[co, c, kh, kw] gy[co, ih + ph − kh, iw + pw − kw]: a 3×3 convolution of
        # gy with the flipped, transposed filter and leading padding 2 − p
        return winograd_conv3x3(gy, W, (kH - 1 - padding[0], kW - 1 - padding[1]), x_hw, flipped_transposed=True,
                                tile=tile)
    if (_use_winograd1d((kH, kW), stride, dilation, G, C_out, C_in, (OH, OW), x_hw)
            and _in_winograd1d_range(kW, C_out, gy, W, None)):
        # gx[c, iw] = Σ W[co, c, kw] gy[co, iw + pw − kw]: the convolution of gy with the flipped,
        # transposed filter and leading padding kW − 1 − pw
        return winograd_conv1d(gy, W, kW - 1 - padding[1], Wd, None, flipped_transposed=True)
    if _use_small_maps((N, C_in, H, Wd), W.shape, stride, dilation, G, (OH, OW)):
        return small_maps_backward(None, W, gy, (N, C_in, H, Wd), (kH, kW), stride, padding, dilation)[0]
    WgT = W.reshape(G, Mg, K).transpose(0, 2, 1)
    gyv = gy.reshape(N, G, Mg, OH * OW)
    if _is_pointwise((kH, kW), stride, padding, x_hw, (OH, OW)):
        gxv = gx.reshape(N, G, Cg, H * Wd)

        def pointwise_task(item, _):
            (n0, n1, r0, r1), g0, g1 = item
            for g in range(g0, g1):
                np.matmul(WgT[g], gyv[n0:n1, g, :, r0 * OW:r1 * OW], out=gxv[n0:n1, g, :, r0 * OW:r1 * OW])

        run_tasks(pointwise_task, _group_tasks(_blocks(N, OH, OW, K), G))
        return gx
    rb = max(1, min(OH, _block_columns(K) // OW))

    def task(item, _):  # owns groups g0:g1 of images n0:n1 of gx: the scatter-add below is race-free
        (n0, n1, _r0, _r1), g0, g1 = item
        gx[n0:n1, g0 * Cg:g1 * Cg] = 0
        for r0 in range(0, OH, rb):
            r1 = min(OH, r0 + rb)
            for g in range(g0, g1):
                gcols = COLS.get((n1 - n0, K, (r1 - r0) * OW), gy.dtype)
                np.matmul(WgT[g], gyv[n0:n1, g, :, r0 * OW:r1 * OW], out=gcols)
                col2im_block_add(gcols, gx, n0, g * Cg, r0, kH, kW, *stride, *padding, *dilation, OW, False)

    run_tasks(task, _group_tasks(_blocks(N, OH, OW, K, whole_images=True), G))
    return gx


#: the fused Winograd backward (:func:`_use_winograd_backward`) up to this many channels in and out:
#: measured, fused / the two kernels: (64,32,16,16)→64 0.84, (32,64,16,16)→64 0.79,
#: (64,16,32,32)→16 0.94, (64,32,32,32)→32 0.99, (16,128,16,16)→128 1.00, (8,256,14,14)→256 1.03
_WINOGRAD_BACKWARD_MAX_CHANNELS = 128
#: On (a switch for comparisons). It was off for a while: inside the benchmark harness, after any other
#: row, the row (64,32,16,16)→64 fell to 0.52–0.63× PyTorch with it (0.87–0.95 alone). The cause:
#: the backward called ``input_transform_block`` with its ``zero_padding`` argument left at the default,
#: the forward with an explicit False; that call then ran 4–5× slower per image (176–197 vs 40 µs,
#: measured with timers around the pieces). Passing every argument explicitly fixed it (0.89–1.00×
#: after another row): call Numba kernels with all their arguments.
FUSED_WINOGRAD_BACKWARD = True


def _use_winograd_backward(x, W_shape, stride, dilation, groups, out_hw):
    """Both gradients by :func:`winograd_backward3x3` (one transform of gy for the two): where the
    forward map takes F(2×2, 3×3), the images fit whole in a task, and ≤ 128 channels in and out
    (and ``FUSED_WINOGRAD_BACKWARD`` is on)."""
    (N, C_in), C_out = x.shape[:2], W_shape[0]
    if not FUSED_WINOGRAD_BACKWARD or _winograd_tile(out_hw, min(C_in, C_out)) != 2:  # (forced "im2col": _use_winograd)
        return False
    return (_use_winograd(W_shape[2:], stride, dilation, groups, C_in, C_out, out_hw, n_images=N)
            and max(C_in, C_out) <= _WINOGRAD_BACKWARD_MAX_CHANNELS
            and fits_whole_images(N, C_in, C_out, out_hw, x.itemsize))


def conv2d_backward(x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)``: the gradients of ``y = conv2d(x, W) + b`` wanted by ``needs`` (three bools;
    None for the others). Two cases compute gx and gW together: the 3×3 depthwise convolution of
    stride 1 or 2 in one pass over gy per channel (:func:`depthwise3x3_backward_raw`, measured on
    (8,128,56,56) when its planes were still filled by a non-vectorised loop: 7.8 vs 8.2 ms for the
    three kernels; :func:`depthwise3x3s2_backward_raw`), and a Winograd layer on small images from one transform of gy
    (:func:`winograd_backward3x3`, :func:`_use_winograd_backward`, when both of its maps are in
    ``winograd_in_range`` for these values); every other convolution calls
    :func:`conv2d_backward_input`, :func:`conv2d_backward_weight` and :func:`conv2d_bias_grad`."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    x, W, gy = np.ascontiguousarray(x), np.ascontiguousarray(W), np.ascontiguousarray(gy)
    C_in = x.shape[1]
    step = _depthwise3x3_step(W.shape, C_in, groups, stride, dilation)
    if step is not None and (want_gx or want_gw):
        dummy = np.empty((1, 1, 1, 1), dtype=x.dtype)
        gx = np.empty_like(x) if want_gx else dummy
        gW = np.empty(W.shape, dtype=x.dtype) if want_gw else np.empty((W.shape[0], 1, 3, 3), dtype=x.dtype)
        gb = np.empty(W.shape[0], dtype=x.dtype) if want_gb else np.empty(1, dtype=x.dtype)
        backward = depthwise3x3_backward_raw if step == 1 else depthwise3x3s2_backward_raw
        backward(x, gy, W, gx, gW, gb, *padding, want_gx, want_gw, want_gb)
        return gx if want_gx else None, gW if want_gw else None, gb if want_gb else None
    if want_gx and want_gw and _use_winograd_backward(x, W.shape, stride, dilation, groups, gy.shape[2:]):
        max_x, max_gy, max_w = max_abs(x), max_abs(gy), max_abs(W)  # gy's once for both maps
        tiles = _winograd_tiles(x.shape[0], gy.shape[2:], 2)
        if (winograd_in_range(2, gy.shape[1], max_gy, max_w, 0.0, x.dtype)
                and winograd_in_range(2, tiles, max_x, max_gy, 0.0, x.dtype)):
            return winograd_backward3x3(x, W, gy, padding, True, True, want_gb)
    if want_gx and want_gw and _use_small_maps(x.shape, W.shape, stride, dilation, groups, gy.shape[2:]):
        gx, gW = small_maps_backward(x, W, gy, x.shape, W.shape[2:], stride, padding, dilation)
        return gx, gW, (conv2d_bias_grad(gy) if want_gb else None)
    gx = conv2d_backward_input(gy, W, x.shape[2:], stride, padding, dilation, groups) if want_gx else None
    gW = conv2d_backward_weight(x, gy, W.shape[2:], stride, padding, dilation, groups) if want_gw else None
    gb = conv2d_bias_grad(gy) if want_gb else None
    return gx, gW, gb


#: the weight gradient's transposed form (gWᵀ accumulated, transposed at the end) up to this many
#: elements of gW: the final transposed copy of a large gW costs more than the plain GEMMs save
#: ((2,1024,14,14)→256 3×3 weight gradient: 30.3 ms transposed, 12.2 plain; the transposed copy
#: of a (4608, 512) gWᵀ alone took 6.5 ms; measured 2026-12-07). None: no limit.
TRANSPOSED_GW_MAX_ELEMS = 1 << 21


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gW (C_out, C_in/G, kH, kW) = ∂⟨gy, conv2d(x, W)⟩/∂W = Σ_blocks gy_block @ cols_blockᵀ per group."""
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = gy.shape
    kH, kW = kernel_hw
    G, Mg, Cg = groups, C_out // groups, C_in // groups
    K = Cg * kH * kW
    if _is_depthwise(C_in, G):
        gW = np.empty((C_out, 1, kH, kW), dtype=x.dtype)
        if _is_depthwise3x3((C_out, 1) + tuple(kernel_hw), C_in, stride, dilation):
            dummy = np.empty((1, 1, 1, 1), dtype=x.dtype)
            depthwise3x3_backward_raw(x, gy, dummy, dummy, gW, np.empty(1, dtype=x.dtype), *padding, False, True, False)
        else:
            depthwise_backward_weight_raw(x, gy, gW, *stride, *padding, *dilation)
        return gW
    tile = _winograd_tile((OH, OW), min(C_in, C_out))
    if (_use_winograd(kernel_hw, stride, dilation, G, C_in, C_out, (OH, OW), weight_grad=True, n_images=N)
            and _in_winograd_range(tile, _winograd_tiles(N, (OH, OW), tile), x, gy)):
        return winograd_backward_weight3x3(x, gy, padding, tile=tile)
    if (_use_winograd1d(kernel_hw, stride, dilation, G, C_in, C_out, (H, Wd), (OH, OW))
            and _in_winograd1d_range(kW, N * -(-OW // _WINOGRAD1D_GRAD[kW][0]), x, gy, None, _WINOGRAD1D_GRAD)):
        return winograd_backward_weight1d(x, gy, kW, padding[1])
    if _use_small_maps(x.shape, (C_out, Cg, kH, kW), stride, dilation, G, (OH, OW)):
        return small_maps_backward(x, None, gy, x.shape, (kH, kW), stride, padding, dilation)[1]
    pointwise = _is_pointwise(kernel_hw, stride, padding, (H, Wd), (OH, OW))
    xv, gyv = x.reshape(N, G, Cg, H * Wd), gy.reshape(N, G, Mg, OH * OW)

    # gWᵀ += cols · gyᵀ with gyᵀ copied is a plain GEMM, 10–25 % faster than gy · colsᵀ (whose
    # second operand is transposed) when the columns are tall (K ≥ 2·Mg); not on thin ones (C_in 3)
    transposed = K >= 2 * Mg and (TRANSPOSED_GW_MAX_ELEMS is None or K * Mg <= TRANSPOSED_GW_MAX_ELEMS)

    def task(item, state):  # state: this thread's (accumulator, product) pair, (K, Mg) if transposed
        acc, prod = state
        (n0, n1, r0, r1), g0, g1 = item
        nb, B = n1 - n0, (r1 - r0) * OW
        for g in range(g0, g1):
            gy_block = gyv[n0:n1, g, :, r0 * OW:r1 * OW]
            if transposed and nb > 1:
                # several small images: ONE GEMM over the block, contracting over all nb·B
                # positions: the columns laid out wide, (K, nb, B), and gyᵀ as (nb·B, Mg); no
                # per-image products to sum (a batched GEMM per image and their sum: (64,32,16,16)→64
                # 8.1 vs 7.7 ms, (64,32,13,13)→64 4.6 vs 4.2; (64,64,5,5)→64 1.6 vs 1.1, measured)
                wide = COLS.get((K, nb, B), x.dtype)
                if pointwise:
                    np.copyto(wide.transpose(1, 0, 2), xv[n0:n1, g, :, r0 * OW:r1 * OW])
                else:
                    im2col_block(x, wide, n0, g * Cg, r0, kH, kW, *stride, *padding, *dilation, OW, True)
                gyT = GY_T.get((nb, B, Mg), x.dtype)
                np.copyto(gyT, gy_block.transpose(0, 2, 1))
                np.matmul(wide.reshape(K, nb * B), gyT.reshape(nb * B, Mg), out=prod)
                acc[g] += prod
                continue
            if pointwise:
                cols = xv[n0:n1, g, :, r0 * OW:r1 * OW]
            else:
                cols = COLS.get((nb, K, B), x.dtype)
                im2col_block(x, cols, n0, g * Cg, r0, kH, kW, *stride, *padding, *dilation, OW, False)
            gyT = GY_T.get((B, Mg), x.dtype) if transposed else None
            for i in range(nb):
                if transposed:
                    transpose_into(gy_block[i], gyT)
                    np.matmul(cols[i], gyT, out=prod)
                else:
                    np.matmul(gy_block[i], cols[i].T, out=prod)
                acc[g] += prod

    def make_state():
        shape = (K, Mg) if transposed else (Mg, K)
        return np.zeros((G,) + shape, dtype=x.dtype), np.empty(shape, dtype=x.dtype)

    states = run_tasks(task, _group_tasks(_blocks(N, OH, OW, K), G), make_state)
    gW = sum_accumulators(states)
    if transposed:
        gW = np.ascontiguousarray(gW.transpose(0, 2, 1))
    return gW.reshape(C_out, Cg, kH, kW)


def conv_transpose2d_backward(x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)`` of ``y = conv_transpose2d(x, W) + b`` (= conv2d_backward_input(x, W) + b,
    W (C_in, C_out/G, kH, kW)) wanted by ``needs``: gx = conv2d(gy, W), gW = the weight gradient
    of that convolution of gy with x as its output gradient, gb = Σ gy. Both products read the
    columns of gy, so where both go through im2col on one-image blocks (large maps, one group) each
    block's columns are built once and used twice while in cache: (8,64,28,28)→(8,32,56,56) k4 s2
    backward 6.2–7.3 ms instead of 7.1–8.3 for the kernels in turn (measured, alternating).
    Otherwise the kernels in turn."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    x, W, gy = np.ascontiguousarray(x), np.ascontiguousarray(W), np.ascontiguousarray(gy)
    N, C_g, H, Wd = gy.shape  # the convolution's input
    M, Cg, kH, kW = W.shape  # ... its filters (M = x's channels)
    OH, OW = x.shape[2:]
    K = Cg * kH * kW
    blocks = _blocks(N, OH, OW, K)
    fused = (want_gx and want_gw and groups == 1 and K >= 2 * M and blocks[0][1] - blocks[0][0] == 1
             and not _is_pointwise((kH, kW), stride, padding, (H, Wd), (OH, OW))
             and not _use_winograd((kH, kW), stride, dilation, 1, C_g, M, (OH, OW), n_images=N)
             and not _use_winograd((kH, kW), stride, dilation, 1, C_g, M, (OH, OW), weight_grad=True, n_images=N))
    gb = conv2d_bias_grad(gy) if want_gb else None
    if not fused:
        gx = conv2d_forward(gy, W, stride, padding, dilation, groups, (OH, OW)) if want_gx else None
        gW = conv2d_backward_weight(gy, x, (kH, kW), stride, padding, dilation, groups) if want_gw else None
        return gx, gW, gb
    gx = np.empty((N, M, OH, OW), dtype=gy.dtype)
    W2, gxv, xv = W.reshape(M, K), gx.reshape(N, M, OH * OW), x.reshape(N, M, OH * OW)

    def task(block, state):  # one image, output rows r0:r1; state: (gWᵀ accumulator, product)
        acc, prod = state
        n, _, r0, r1 = block
        B = (r1 - r0) * OW
        cols = COLS.get((1, K, B), gy.dtype)
        im2col_block(gy, cols, n, 0, r0, kH, kW, *stride, *padding, *dilation, OW, False)
        np.matmul(W2, cols[0], out=gxv[n, :, r0 * OW:r1 * OW])  # gx = conv2d(gy, W)
        xT = GY_T.get((B, M), gy.dtype)  # gWᵀ += cols · x_blockᵀ (a plain GEMM, as conv2d_backward_weight)
        transpose_into(xv[n, :, r0 * OW:r1 * OW], xT)
        np.matmul(cols[0], xT, out=prod)
        acc += prod

    states = run_tasks(task, blocks, lambda: (np.zeros((K, M), dtype=gy.dtype), np.empty((K, M), dtype=gy.dtype)))
    gWT = sum_accumulators(states)
    return gx, np.ascontiguousarray(gWT.T).reshape(M, Cg, kH, kW), gb
