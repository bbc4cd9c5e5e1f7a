"""Convolution on CUDA (and cuda-emu): the kernels of ``conv.cu`` + GEMMs through cuBLAS.

Same wrappers and signatures as ``kernels/cpu/conv.py``; ``padding`` is the leading padding, the
output size is explicit. Formulas: ``kernels/reference/conv.py``.

GEMM layout. The batch is cut into chunks of ``Nc`` images (:func:`plan_chunk`). A chunk's
columns are ONE matrix ``cols (K, Nc·P)``, ``K = C_in·kH·kW``, ``P = OH·OW`` (rows of group g:
``g·Kg … (g+1)·Kg − 1``), so each group costs one GEMM per chunk, called with transpose flags
(:func:`~._gemm.gemm`: ``cublas<S|D>gemm`` on ``cuda``, NumPy's BLAS on ``cuda-emu``), with no
transposed copies and no pointer arrays::

    forward          y_g   (Mg, Nc·P) = W_g (Mg, Kg)        @ cols_g (Kg, Nc·P)      "N", "N"
    input gradient   gcols_g (Kg, Nc·P) = W_gᵀ               @ gy_g  (Mg, Nc·P)       "T", "N"  → col2im
    weight gradient  gW_g  (Mg, Kg)  += gy_g (Mg, Nc·P)      @ cols_gᵀ               "N", "T"

The weight gradient is one GEMM reducing over all ``N·P`` columns when the batch is one chunk, and
one GEMM per chunk accumulating into gW (``beta = 1``) otherwise. ``y``/``gy`` are (N, C_out, P)
while the GEMMs see (C_out, Nc·P): one copy of the output-sized chunk each way.

Workspace cap. A chunk's scratch (its column matrices and the (C_out, Nc·P) staging of y or gy)
is at most ``settings.workspace_limit_bytes`` (``minicnn.backends.cuda.workspace_limit_bytes``,
256 MiB by default); a single image that needs more still runs alone. Every scratch allocation
goes through :func:`_workspace`, which reports it to :data:`workspace_hooks` (tests track them).

Depthwise convolutions (groups == C_in > 1) use the direct kernels of ``conv.cu`` instead.

Forward algorithm. ``minicnn.backends.cuda.conv_algorithm`` picks the forward path
(:func:`conv_igemm.choose_algorithm`): ``"gemm"`` (default) is the path above; ``"implicit_gemm"``
runs the tiled implicit-GEMM kernel of ``conv_igemm.cu`` (shared-memory tiles, register blocking,
no column matrix); ``"auto"`` runs it when ``C_in/G·kH·kW <= 64``, where the column matrix is most
of the GEMM path's memory traffic. It governs :func:`conv2d_forward` (also called for the input
gradient of conv_transpose2d); depthwise layers, conv2d's input and weight gradients and
convolutions too large for the kernel's 32-bit indexing stay on the paths above under every setting.
"""
import numpy as np

from . import conv_igemm
from ._gemm import gemm, settings

KERNELS = ("im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "conv2d_bias_grad", "conv2d_backward", "conv_transpose2d_backward")

_CU = "conv.cu"
INT32_MAX = 2 ** 31 - 1

#: Callables ``hook(nbytes, shape, dtype)`` told of every workspace allocation (tests use them).
workspace_hooks = []


def _workspace(be, shape, dtype):
    """A fresh scratch array (CuPy's memory pool makes this cheap on the GPU), reported to the hooks."""
    a = be.xp.empty(shape, dtype=dtype)
    for hook in workspace_hooks:
        hook(a.nbytes, tuple(shape), np.dtype(dtype))
    return a


def plan_chunk(N, rows_per_image, P, itemsize, limit=None):
    """Images per chunk: the most ``Nc <= N`` whose ``Nc · rows_per_image · P · itemsize`` scratch
    bytes fit in ``limit`` (default: ``settings.workspace_limit_bytes``); at least 1.

    ``rows_per_image`` counts every (·, P) scratch row one image needs, e.g. ``C_in·kH·kW + C_out``
    for the forward (columns + output staging)."""
    limit = settings.workspace_limit_bytes if limit is None else int(limit)
    per_image = max(1, int(rows_per_image) * int(P) * int(itemsize))
    return int(max(1, min(int(N), limit // per_image)))


def index_fits_int32(*sizes):
    """True when every element count in ``sizes`` is at most ``2**31 − 1``, so that a kernel's
    indices (all smaller than one of these counts) fit a 32-bit int."""
    return all(int(s) <= INT32_MAX for s in sizes)


def _geometry_args(kernel_hw, stride, padding, dilation, out_hw):
    return tuple(np.int32(v) for v in (*kernel_hw, *stride, *padding, *dilation, *out_hw))


def _launch(be, name, dtype, total, args):
    """Run kernel ``name`` of conv.cu with one thread per element of a ``total``-element array."""
    be.function(_CU, name, dtype)(be.grid_1d(total), (be.BLOCK,), args)


def _is_depthwise(C_in, groups):
    return groups == C_in and groups > 1


def _im2col_into(be, x, cols, geometry, k_stride, n_stride):
    """Fill ``cols`` from ``x (Nc, C, H, W)``: entry (k, n, p) at ``k·k_stride + n·n_stride + p``."""
    kernel_hw, stride, padding, dilation, (OH, OW) = geometry
    Nc, C, H, W = x.shape
    total = Nc * C * OH * OW
    wide = not index_fits_int32(total, x.size, cols.size)
    ix = np.int64 if wide else np.int32
    _launch(be, "im2col_i64" if wide else "im2col_i32", x.dtype, total,
            (x, cols, ix(total), np.int32(C), np.int32(H), np.int32(W),
             *_geometry_args(kernel_hw, stride, padding, dilation, (OH, OW)), ix(k_stride), ix(n_stride)))


def _col2im_into(be, cols, x, geometry, k_stride, n_stride):
    """Fill ``x (Nc, C, H, W)`` with the adjoint of :func:`_im2col_into` (gather, deterministic)."""
    kernel_hw, stride, padding, dilation, out_hw = geometry
    Nc, C, H, W = x.shape
    wide = not index_fits_int32(x.size, cols.size)
    ix = np.int64 if wide else np.int32
    _launch(be, "col2im_i64" if wide else "col2im_i32", x.dtype, x.size,
            (cols, x, ix(x.size), np.int32(C), np.int32(H), np.int32(W),
             *_geometry_args(kernel_hw, stride, padding, dilation, out_hw), ix(k_stride), ix(n_stride)))


def im2col(be, x, kernel_hw, stride, padding, dilation, out_hw):
    """cols (N, C·kH·kW, OH·OW) (the per-image layout of the CPU wrapper)."""
    x = be.xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (kH, kW), (OH, OW) = kernel_hw, out_hw
    cols = be.xp.empty((N, C * kH * kW, OH * OW), dtype=x.dtype)
    if cols.size:
        _im2col_into(be, x, cols, (kernel_hw, stride, padding, dilation, out_hw), OH * OW, C * kH * kW * OH * OW)
    return cols


def col2im(be, cols, x_hw, kernel_hw, stride, padding, dilation, out_hw):
    """x (N, C, H, W) from cols (N, C·kH·kW, OH·OW): the adjoint of :func:`im2col`."""
    cols = be.xp.ascontiguousarray(cols)
    (kH, kW), (H, W), (OH, OW) = kernel_hw, x_hw, out_hw
    N, C = cols.shape[0], cols.shape[1] // (kH * kW)
    x = be.xp.empty((N, C, H, W), dtype=cols.dtype)
    if x.size:
        _col2im_into(be, cols, x, (kernel_hw, stride, padding, dilation, out_hw), OH * OW, C * kH * kW * OH * OW)
    return x


def _chunks(N, Nc):
    return [(n0, min(N, n0 + Nc)) for n0 in range(0, N, Nc)]


def _to_gemm_layout(xp, a, staging):
    """Copy ``a (Nc, C, P)`` into ``staging (C, Nc·P)`` (column n·P + p of row c = a[n, c, p])."""
    Nc, C, P = a.shape
    staging.reshape(C, Nc, P)[...] = a.transpose(1, 0, 2)
    return staging


DEPTHWISE_WEIGHT_BLOCK = 256  #: threads per block of depthwise_backward_weight (as in conv.cu)


def _depthwise_args(C_in, C_out, H, W, kernel_hw, stride, padding, dilation, out_hw):
    return (np.int32(C_in), np.int32(C_out), np.int32(H), np.int32(W),
            *_geometry_args(kernel_hw, stride, padding, dilation, out_hw))


def conv2d_forward(be, x, W, stride, padding, dilation, groups, out_hw, bias=None):
    """y (N, C_out, OH, OW) = conv2d(x, W) (+ bias[co] when given), by the path
    ``minicnn.backends.cuda.conv_algorithm`` selects (module docstring)."""
    if conv_igemm.choose_algorithm(x.shape, W.shape, padding, dilation, groups, out_hw) == "implicit_gemm":
        return conv_igemm.conv2d_forward_implicit_gemm(be, x, W, stride, padding, dilation, groups, out_hw, bias)
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
    P, Kg = OH * OW, Cg * kH * kW
    geometry = ((kH, kW), stride, padding, dilation, out_hw)
    Wg = W.reshape(G, Mg, Kg)
    y = xp.empty((N, C_out, P), dtype=x.dtype)
    Nc = plan_chunk(N, G * Kg + C_out, P, x.dtype.itemsize)
    for n0, n1 in _chunks(N, Nc):
        cols = _workspace(be, (G * Kg, (n1 - n0) * P), x.dtype)
        _im2col_into(be, x[n0:n1], cols, geometry, (n1 - n0) * P, P)
        yt = _workspace(be, (C_out, (n1 - n0) * P), x.dtype)
        for g in range(G):
            gemm(be, "N", "N", Wg[g], cols[g * Kg:(g + 1) * Kg], yt[g * Mg:(g + 1) * Mg])
        y[n0:n1] = yt.reshape(C_out, n1 - n0, P).transpose(1, 0, 2)
    return y.reshape(N, C_out, OH, OW)


def conv2d_backward_input(be, gy, W, x_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = col2im(Wᵀ @ gy) per group."""
    C_in = W.shape[1] * groups
    gx, _ = _conv2d_backward(be, None, W, gy, C_in, tuple(x_hw), tuple(W.shape[2:]), stride, padding, dilation,
                             groups, True, False)
    return gx


def conv2d_backward_weight(be, x, gy, kernel_hw, stride, padding, dilation, groups):
    """gW (C_out, C_in/G, kH, kW) = gy @ colsᵀ per group, summed over all N·OH·OW columns."""
    _, gW = _conv2d_backward(be, x, None, gy, x.shape[1], tuple(x.shape[2:]), tuple(kernel_hw), stride, padding,
                             dilation, groups, False, True)
    return gW


def conv2d_backward(be, x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)`` for ``needs`` (None for the others); gx and gW share one pass over the
    chunks (``gy`` is brought to the GEMM layout once per chunk)."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    gx, gW = None, None
    if want_gx or want_gw:
        gx, gW = _conv2d_backward(be, x, W, gy, x.shape[1], tuple(x.shape[2:]), tuple(W.shape[2:]), stride, padding,
                                  dilation, groups, want_gx, want_gw)
    gb = conv2d_bias_grad(be, gy) if want_gb else None
    return gx, gW, gb


def _conv2d_backward(be, x, W, gy, C_in, x_hw, kernel_hw, stride, padding, dilation, groups, want_gx, want_gw):
    """``(gx, gW)``, None where not wanted (``W`` is only read for gx, ``x`` only for gW)."""
    xp = be.xp
    gy = xp.ascontiguousarray(gy)
    N, C_out, OH, OW = gy.shape
    (H, Wd), (kH, kW) = x_hw, kernel_hw
    G, Mg, Cg = groups, C_out // groups, C_in // groups
    P, Kg = OH * OW, Cg * kH * kW
    W = xp.ascontiguousarray(W) if want_gx else None
    x = xp.ascontiguousarray(x) if want_gw else None
    dtype = gy.dtype
    if _is_depthwise(C_in, G):
        args = _depthwise_args(C_in, C_out, H, Wd, kernel_hw, stride, padding, dilation, (OH, OW))
        gx = gW = None
        if want_gx:
            gx = xp.empty((N, C_in, H, Wd), dtype=dtype)
            _launch(be, "depthwise_backward_input", dtype, gx.size, (gy, W, gx, np.int64(gx.size), *args))
        if want_gw:
            gW = xp.empty((C_out, 1, kH, kW), dtype=dtype)
            be.function(_CU, "depthwise_backward_weight", dtype)(
                (gW.size,), (DEPTHWISE_WEIGHT_BLOCK,), (x, gy, gW, np.int32(N), *args))
        return gx, gW
    geometry = ((kH, kW), stride, padding, dilation, (OH, OW))
    gx = xp.empty((N, C_in, H, Wd), dtype=dtype) if want_gx else None
    gW = xp.empty((G, Mg, Kg), dtype=dtype) if want_gw else None
    Wg = W.reshape(G, Mg, Kg) if want_gx else None
    Nc = plan_chunk(N, C_out + G * Kg * (int(want_gx) + int(want_gw)), P, dtype.itemsize)
    for i, (n0, n1) in enumerate(_chunks(N, Nc)):
        span = (n1 - n0) * P
        gyt = _to_gemm_layout(xp, gy[n0:n1].reshape(n1 - n0, C_out, P), _workspace(be, (C_out, span), dtype))
        if want_gw:
            cols = _workspace(be, (G * Kg, span), dtype)
            _im2col_into(be, x[n0:n1], cols, geometry, span, P)
            for g in range(G):  # the first chunk writes gW, the others add to it
                gemm(be, "N", "T", gyt[g * Mg:(g + 1) * Mg], cols[g * Kg:(g + 1) * Kg], gW[g],
                     beta=0.0 if i == 0 else 1.0)
        if want_gx:
            gcols = _workspace(be, (G * Kg, span), dtype)
            for g in range(G):
                gemm(be, "T", "N", Wg[g], gyt[g * Mg:(g + 1) * Mg], gcols[g * Kg:(g + 1) * Kg])
            _col2im_into(be, gcols, gx[n0:n1], geometry, span, P)
    return gx, (None if gW is None else gW.reshape(C_out, Cg, kH, kW))


def conv_transpose2d_backward(be, x, W, gy, stride, padding, dilation, groups, needs=(True, True, True)):
    """``(gx, gW, gb)`` of ``y = conv_transpose2d(x, W) + b`` for ``needs`` (None for the others):
    gx = conv2d(gy, W), gW = the weight gradient of that convolution with x as its output gradient,
    gb = Σ gy (the CPU shares the columns of gy between the first two; here each is its own GEMM)."""
    want_gx, want_gw, want_gb = (bool(v) for v in needs)
    gx = conv2d_forward(be, gy, W, stride, padding, dilation, groups, x.shape[2:]) if want_gx else None
    gW = conv2d_backward_weight(be, gy, x, W.shape[2:], stride, padding, dilation, groups) if want_gw else None
    gb = conv2d_bias_grad(be, gy) if want_gb else None
    return gx, gW, gb
