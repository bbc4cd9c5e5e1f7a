"""Winograd F(2×2, 3×3) convolution on the CPU (3×3 kernel, stride 1, dilation 1, one group).

Lavin & Gray (2016): a 2×2 block of outputs from a 4×4 input tile ``d`` and a 3×3 filter ``g``::

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

    Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]
    G  = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]
    Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]

Summed over input channels, the element-wise products become 16 matrix products, one per
position ``k`` of the 4×4 transformed tile::

    U[k] = (G g Gᵀ)[k]  (C_out, C_in)      V[k] = (Bᵀ d B)[k]  (C_in, tiles)
    M[k] = U[k] @ V[k]  (C_out, tiles)      y tile = Aᵀ M A

16 products of C_out·C_in·(OH·OW/4) multiply-adds instead of 9·C_out·C_in·OH·OW for im2col:
2.25× fewer flops, paid for by the transforms (memory-bound loops in Numba, see "transforms").
The same tiles give the input gradient (a 3×3 convolution of gy with the flipped, transposed
filter) and the weight gradient (16 GEMMs contracting over the tiles, ``winograd_backward_weight3x3``).
A task of ``_threads.run_tasks`` is a block of tile rows of one image (large images) or several
whole images (small ones), so V and M of a block stay in cache and the GEMMs stay wide. Float32
error: a few ulps more than im2col (the transforms add and subtract at most 4 terms per stage);
the tests compare with the reference at 1e-5 relative (PyTorch) and 1e-10 (float64 loops).

Range: the transforms add and scale their inputs, so they overflow before the direct convolution
does, and they mix each input into a whole tile (one inf or NaN would become NaN over its
neighbours). The callers therefore run a Winograd kernel only when :func:`winograd_in_range`
holds for the values at hand, and im2col otherwise (whose non-finite outputs are those of the
direct convolution).
"""
import math
from typing import Callable, NamedTuple

import numpy as np
from numba import njit

from ._im2col import COLS, Workspace
from ._jit import no_refcount
from ._threads import NUM_THREADS, run_tasks, sum_accumulators
from ._winograd_tiles import gather_taps, scatter_taps, zero_padding_tiles
from .conv_winograd4 import (gy_transform4_block, input_transform4_block, output_transform4_block,
                              transform_weight4_raw, weight_untransform4_raw)

#: the workspace of the products M (the transformed inputs V use ``_im2col.COLS``)
PRODUCTS = Workspace()

#: bytes of V (and of M) per task of the forward pass
_BLOCK_BYTES = 2 << 20
#: ... but at least this many tiles a task for F(4×4, 3×3), whose tiles take 2.25× the bytes (2 MiB
#: left (4,128,112,112)'s forward GEMMs 87 tiles wide: 61 ms vs 53; its weight gradient with 4 MiB
#: blocks of 87 tiles 76 ms, with 256 tiles ~65 ms, measured)
_MIN_TILES4 = 256
#: bytes of V and Z per task of the weight gradient: larger, because its GEMMs contract over the
#: tiles (inner dimension T) and each task ends with an accumulation of 16·C_out·C_in products
#: (measured on 4 layers: 1 MiB 0.85–1.0× im2col, 4 MiB 1.15–1.4×)
_WG_BLOCK_BYTES = 4 << 20


@njit(cache=True, nogil=True)
def transform_weight_raw(W, U, o0, o1, flipped_transposed):
    """U[4a + b, o, c] = (G g Gᵀ)[a, b] for g = W[o, c], o in o0…o1 (float64 arithmetic); with
    ``flipped_transposed``, for g = W[c, o, ::−1, ::−1] instead (the filter of the input gradient,
    read in place: copying it first cost 0.9 ms for 256 × 256 filters).

    Per output channel o, the 9 taps are first gathered into rows g[i, j, c] (one row per tap, c
    contiguous), so that each stage is a unit-stride loop over c with one store (vectorised; the
    tap-by-tap form with 16 scattered stores per filter took 4.6 ms for 256 × 256 filters)."""
    C_in = U.shape[2]
    g = np.empty((3, 3, C_in))
    h = np.empty((4, 3, C_in))
    for o in range(o0, o1):
        gather_taps(W, o, flipped_transposed, g)
        for j in range(3):  # h = G g: rows 0, ½(g0 + g1 + g2), ½(g0 − g1 + g2), g2
            g0, g1, g2 = g[0, j], g[1, j], g[2, j]
            for c in range(C_in):
                h[0, j, c] = g0[c]
                h[1, j, c] = 0.5 * (g0[c] + g1[c] + g2[c])
                h[2, j, c] = 0.5 * (g0[c] - g1[c] + g2[c])
                h[3, j, c] = g2[c]
        for a in range(4):  # U = h Gᵀ: the same combination of h's columns
            h0, h1, h2 = h[a, 0], h[a, 1], h[a, 2]
            u0, u1, u2, u3 = U[4 * a, o], U[4 * a + 1, o], U[4 * a + 2, o], U[4 * a + 3, o]
            for c in range(C_in):
                u0[c] = h0[c]
            for c in range(C_in):
                u1[c] = 0.5 * (h0[c] + h1[c] + h2[c])
            for c in range(C_in):
                u2[c] = 0.5 * (h0[c] - h1[c] + h2[c])
            for c in range(C_in):
                u3[c] = h2[c]


#: filter transforms of at most this many filters run on the calling thread: waking the pool costs
#: ~70 µs here, more than the work (64 × 32 filters: 30 µs inline, 57 through the pool; even at
#: 128 × 128, measured)
_INLINE_FILTERS = 128 * 128


def over_filters(fn, R, S):
    """``fn(o0, o1)`` over the R output rows of an R × S filter bank: inline for small banks, else
    in 2 chunks per thread of the task pool."""
    if R * S <= _INLINE_FILTERS:
        fn(0, R)
        return
    step = max(1, -(-R // (2 * NUM_THREADS)))
    run_tasks(lambda o0, _: fn(o0, min(R, o0 + step)), range(0, R, step))


def transform_weight(W, flipped_transposed=False, tile=2):
    """U (K, C_out, C_in) = G g Gᵀ for every filter g = W[co, c] (3×3), in float64 arithmetic,
    output channels split over the task pool (np.einsum took 18 ms for 256 × 256 filters);
    K = 16 for F(2×2, 3×3) (``tile=2``, this module's G), 36 for F(4×4, 3×3) (``tile=4``,
    ``conv_winograd4``'s G). ``flipped_transposed``: U (K, C_in, C_out) of the filters
    g = W[co, c, ::−1, ::−1] instead, the 3×3 convolution that gives the input gradient
    (``conv2d_backward_input``)."""
    v = _VARIANTS[tile]
    R, S = W.shape[:2][::-1] if flipped_transposed else W.shape[:2]
    U = np.empty((v.K, R, S), dtype=W.dtype)
    over_filters(lambda o0, o1: v.weight(W, U, o0, o1, flipped_transposed), R, S)
    return U


# ---- transforms -----------------------------------------------------------------------------------
# Tile layout: the tiles of a block of ``rows`` tile rows are numbered u = tr·(TW + 1) + tx, with ONE
# PADDING TILE (tx = TW) per tile row, whose transformed values are 0. Each stage of a transform
# is then a few loops over u of length rows·(TW + 1), on polyphase planes of the input, with no
# bounds tests and one store per loop, which LLVM vectorises. (Loops over one tile row, TW = 7…28,
# are too short for its 8-wide × 4-interleaved vector loop; and a loop with 16 loads and 16
# stores into different arrays exceeds its runtime alias-check budget: both ran scalar, measured
# ~20 ns per tile and channel.) The padding tiles cost 1/TW more GEMM work.
@njit(cache=True, inline="always")
def _polyphase_rows(row, pad, dst_even, dst_odd, shift):
    """dst_even[m] = row[2m − shift], dst_odd[m] = row[2m + 1 − shift] (0 outside the row), through
    ``pad`` (2·len(dst_even) elements, zero outside pad[shift : shift + len(row)], which this
    call fills: the zeros persist from call to call with the same geometry)."""
    n = min(row.shape[0], pad.shape[0] - shift)
    dst = pad[shift:shift + n]
    for i in range(n):
        dst[i] = row[i]
    for m in range(dst_even.shape[0]):  # an interleaved load pair: vectorised
        dst_even[m] = pad[2 * m]
        dst_odd[m] = pad[2 * m + 1]


@njit(cache=True, inline="always")
def _copy(out, a):
    for u in range(out.shape[0]):
        out[u] = a[u]


@njit(cache=True, inline="always")
def _add(out, a, b):
    for u in range(out.shape[0]):
        out[u] = a[u] + b[u]


@njit(cache=True, inline="always")
def _sub(out, a, b):
    for u in range(out.shape[0]):
        out[u] = a[u] - b[u]


@njit(cache=True, inline="always")
def _add3(out, a, b, c):
    for u in range(out.shape[0]):
        out[u] = a[u] + b[u] + c[u]


@njit(cache=True, inline="always")
def _sub3(out, a, b, c):
    """out = a − b − c"""
    for u in range(out.shape[0]):
        out[u] = a[u] - b[u] - c[u]


@njit(cache=True, inline="always")
def _neg(out, a):
    for u in range(out.shape[0]):
        out[u] = -a[u]


@no_refcount
def _input_transform_block_into(x, V, n, tr0, rows, TW, ph, pw, toff, P, R, pad, zero_padding):
    """V[k, c, toff + u] = (Bᵀ d B)[k] for the 4×4 input tiles d of image n in tile rows tr0…tr0 + rows − 1,
    u = (ty − tr0)·(TW + 1) + tx (padding tiles tx = TW hold 0 with ``zero_padding``, else whatever the
    loops left there, finite for a finite x: the forward never reads their products; the weight
    gradient multiplies them by Z = 0, so it zeroes them (0·∞ would be NaN); V C-contiguous
    (16, C, ≥ toff + rows·(TW + 1))). Zeroing them took 22 % of the transform of a 16×16 map.

    Polyphase planes of the zero-padded rows 2·tr0 − ph…: ``P[a, b][h·(TW + 1) + m] = xpad[2h + a, 2m + b]``,
    so tile u holds d[i, j] = P[i % 2, j % 2][u + (i // 2)·(TW + 1) + j // 2].
    Rows, Bᵀ d, per column phase b: R_0 = d_0 − d_2, R_1 = d_1 + d_2, R_2 = d_2 − d_1, R_3 = d_1 − d_3;
    columns, (Bᵀ d) B, each row (E[u], O[u], E[u + 1], O[u + 1]) = (a, b, c, d) -> (a − c, b + c, c − b, b − d)."""
    C, H = x.shape[1], x.shape[2]
    TWp = TW + 1
    U = rows * TWp
    for c in range(C):
        xp = x[n, c]
        for h in range(rows + 1):
            for a in range(2):
                ih = 2 * (tr0 + h) + a - ph
                lo = h * TWp
                if 0 <= ih < H:
                    _polyphase_rows(xp[ih], pad, P[a, 0, lo:lo + TWp], P[a, 1, lo:lo + TWp], pw)
                else:
                    P[a, 0, lo:lo + TWp] = 0
                    P[a, 1, lo:lo + TWp] = 0
        for b in range(2):  # rows: Bᵀ d
            d0, d1 = P[0, b, :U + 1], P[1, b, :U + 1]
            d2, d3 = P[0, b, TWp:TWp + U + 1], P[1, b, TWp:TWp + U + 1]
            _sub(R[0, b], d0, d2)
            _add(R[1, b], d1, d2)
            _sub(R[2, b], d2, d1)
            _sub(R[3, b], d1, d3)
        for r in range(4):  # columns: (Bᵀ d) B
            e, o, e1, o1 = R[r, 0, :U], R[r, 1, :U], R[r, 0, 1:U + 1], R[r, 1, 1:U + 1]
            _sub(V[4 * r, c, toff:toff + U], e, e1)
            _add(V[4 * r + 1, c, toff:toff + U], o, e1)
            _sub(V[4 * r + 2, c, toff:toff + U], e1, o)
            _sub(V[4 * r + 3, c, toff:toff + U], o, o1)
        if zero_padding:
            zero_padding_tiles(V, c, toff, rows, TW)


@njit(cache=True, nogil=True)
def input_transform_block(x, V, n0, n1, tr0, rows, TW, ph, pw, toff, zero_padding):
    """:func:`_input_transform_block_into` with its scratch arrays allocated here, for
    images n0…n1 − 1 in one call (image n0 + i at tile offset toff + i·rows·(TW + 1)): one call a
    task instead of one an image, so a task holds the GIL less often (see ``_threads``)."""
    TWp = TW + 1
    U = rows * TWp
    P = np.zeros((2, 2, (rows + 1) * TWp + 1), dtype=x.dtype)
    R = np.empty((4, 2, U + 1), dtype=x.dtype)
    pad = np.zeros(2 * TWp, dtype=x.dtype)
    for n in range(n0, n1):
        _input_transform_block_into(x, V, n, tr0, rows, TW, ph, pw, toff + (n - n0) * U, P, R, pad, zero_padding)


@no_refcount
def _output_transform_block_into(M, y, bias, n, tr0, rows, TW, toff, S, Y):
    """y[n, co, 2ty + a, 2tx + b] = bias[co] + (Aᵀ m A)[a, b] with m[k] = M[k, co, toff + u], u = (ty − tr0)·(TW + 1) + tx
    (cropped at the border; padding tiles skipped). Rows, Aᵀ m: S_0j = m_0j + m_1j + m_2j,
    S_1j = m_1j − m_2j − m_3j; columns: Y[a, 2u] = S_a0 + S_a1 + S_a2 (+ bias), Y[a, 2u + 1] =
    S_a1 − S_a2 − S_a3 (+ bias), the even and odd output columns already interleaved, so that output
    row 2ty + a is the contiguous stretch Y[a, 2(ty − tr0)(TW + 1) :][:OW]. (Interleaving in the copy
    out instead, a loop of TW strided stores per row, took 1.6–1.9× the time on 14×14…56×56 maps.)"""
    C_out, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    TWp = TW + 1
    U = rows * TWp
    for co in range(C_out):
        for j in range(4):
            m0, m1 = M[j, co, toff:toff + U], M[4 + j, co, toff:toff + U]
            m2, m3 = M[8 + j, co, toff:toff + U], M[12 + j, co, toff:toff + U]
            _add3(S[0, j], m0, m1, m2)
            _sub3(S[1, j], m1, m2, m3)
        b = bias[co]
        for a in range(2):
            s0, s1, s2, s3, ya = S[a, 0], S[a, 1], S[a, 2], S[a, 3], Y[a]
            for u in range(U):
                ya[2 * u] = s0[u] + s1[u] + s2[u] + b
                ya[2 * u + 1] = s1[u] - s2[u] - s3[u] + b
        yp = y[n, co]
        for tr in range(rows):
            oh, lo = 2 * (tr0 + tr), 2 * tr * TWp
            for a in range(min(2, OH - oh)):
                y_row, src = yp[oh + a], Y[a, lo:lo + OW]
                for w in range(OW):
                    y_row[w] = src[w]


@njit(cache=True, nogil=True)
def output_transform_block(M, y, bias, n0, n1, tr0, rows, TW, toff):
    """:func:`_output_transform_block_into` with its scratch arrays allocated here, for
    images n0…n1 − 1 in one call (image n0 + i at tile offset toff + i·rows·(TW + 1)): one call a
    task instead of one an image, so a task holds the GIL less often (see ``_threads``)."""
    TWp = TW + 1
    U = rows * TWp
    S = np.empty((2, 4, U), dtype=y.dtype)
    Y = np.empty((2, 2 * U), dtype=y.dtype)
    for n in range(n0, n1):
        _output_transform_block_into(M, y, bias, n, tr0, rows, TW, toff + (n - n0) * U, S, Y)


def bias_vector(bias, C_out, dtype):
    """``bias`` as a contiguous (C_out,) array of ``dtype``, or zeros when None (the kernels that
    fold the bias into their output loop always add one)."""
    return np.zeros(C_out, dtype=dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)


#: images per task on small maps (whole images a task): about this many bytes of the task's
#: transformed tiles (V and the products, both channel counts), and at least
#: ``_MIN_TILES_PER_TASK`` tiles (GEMM columns). Measured, forward / fused backward, images a task:
#: (64,32,16,16)→64 4.7/10.4 ms (1), 4.3/8.8 (2), 4.1/8.1 (3), 3.9/8.3 (4), 4.4/8.7 (8);
#: (64,16,32,32)→16 best at 3–4 (3.4/6.1 vs 3.8/6.9 at 8); (64,32,32,32)→32 best at 2 (7.3/14.6
#: vs 10.8/23.9 at 8): a working set past the 1 MiB L2 slows the GEMMs (64×32 by 32×T: 105–111
#: GFLOP/s at T = 144–288 columns, 89 at 576). (8,256,14,14)→256: 2 images (112 tiles) a task
#: 11 % faster than 1.
_IMAGE_GROUP_BYTES = 5 << 19
_MIN_TILES_PER_TASK = 112


def images_per_task(N, Tb, bytes_per_image):
    """Images per task for whole-image tasks of ``Tb`` tiles and ``bytes_per_image`` of transformed
    tiles each: within ``_IMAGE_GROUP_BYTES``, at least ``_MIN_TILES_PER_TASK`` tiles, at least
    2 tasks per thread where N allows; evened out so that the number of tasks is a multiple of
    the threads where possible (``run_tasks`` with per-thread states deals the tasks out in
    contiguous chunks: 64 images in tasks of 9 gave one thread 36 of them, the other 28)."""
    nb = max(1, _IMAGE_GROUP_BYTES // bytes_per_image, -(-_MIN_TILES_PER_TASK // Tb))
    nb = max(1, min(nb, N // (2 * NUM_THREADS)))
    n_tasks = -(-N // nb)
    n_tasks = -(-n_tasks // NUM_THREADS) * NUM_THREADS
    return -(-N // n_tasks)


def _tile_tasks(N, TH, TW, bytes_per_tile, block_bytes, group_bytes_per_tile):
    """Tasks ``(n0, n1, r0, r1)`` (images n0…n1 × tile rows r0…r1): a block of tile rows of one
    image of about ``block_bytes`` (``bytes_per_tile`` a tile) on large images; several whole
    images on small ones (so the GEMMs stay wide: a 16×16 image has only 64 tiles), as many as
    :func:`images_per_task` gives for ``group_bytes_per_tile`` (all the task's transformed
    tiles); at least 4 tasks per thread where possible (a thread slowed by another process takes
    fewer). ``TW`` counts the padding tile of each tile row."""
    if bytes_per_tile * TH * TW <= block_bytes:
        nb = images_per_task(N, TH * TW, group_bytes_per_tile * TH * TW)
        return [(n, min(N, n + nb), 0, TH) for n in range(0, N, nb)]
    rows = max(1, min(TH, block_bytes // (bytes_per_tile * TW)))
    while N * -(-TH // rows) < 4 * NUM_THREADS and rows > 1:
        rows = (rows + 1) // 2
    return [(n, n + 1, r0, min(TH, r0 + rows)) for n in range(N) for r0 in range(0, TH, rows)]


def winograd_conv3x3(x, W, padding, out_hw, bias=None, flipped_transposed=False, tile=2):
    """y (N, C_out, OH, OW) = conv2d(x, W) (+ bias[co]) for a 3×3 W, stride 1, dilation 1, one group;
    ``padding`` is the leading padding, the output size ``out_hw`` implies the trailing one.
    ``flipped_transposed``: convolve with W[co, c, ::−1, ::−1] transposed to (C_in, C_out) instead
    (the input gradient, a convolution of gy; see :func:`transform_weight`).
    ``tile``: 2 for F(2×2, 3×3) (this module's transforms), 4 for F(4×4, 3×3) (``conv_winograd4``:
    36 products of 4×4-output tiles instead of 16 of 2×2 ones)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, C_in = x.shape[:2]
    C_out = W.shape[1] if flipped_transposed else W.shape[0]
    OH, OW = out_hw
    TH, TW = -(-OH // tile), -(-OW // tile)
    v = _VARIANTS[tile]
    U = transform_weight(W, flipped_transposed, tile)
    K = v.K
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    b = bias_vector(bias, C_out, x.dtype)

    def task(block, _):
        n0, n1, r0, r1 = block
        Tb = (r1 - r0) * (TW + 1)  # tiles per image of the block, with one padding tile per row
        T = (n1 - n0) * Tb
        V = COLS.get_rows_apart((K, C_in, T), x.dtype)
        v.input(x, V, n0, n1, r0, r1 - r0, TW, *padding, 0, False)  # padding tiles: not read
        M = PRODUCTS.get_rows_apart((K, C_out, T), x.dtype)
        np.matmul(U, V[:, :C_in], out=M[:, :C_out])
        v.output(M, y, b, n0, n1, r0, r1 - r0, TW, 0)

    bytes_per_tile = K * max(C_in, C_out) * x.itemsize
    run_tasks(task, _tile_tasks(N, TH, TW + 1, bytes_per_tile, max(_BLOCK_BYTES, v.min_tiles * bytes_per_tile),
                                K * (C_in + C_out) * x.itemsize))
    return y


# ---- weight gradient ----------------------------------------------------------------------------
# With M = U ⊙ V per tile and Y = Aᵀ M A, the chain rule gives, for a loss L with ∂L/∂Y = gY:
#     ∂L/∂M = A gY Aᵀ   (4×4 from the 2×2 output-gradient tile; A = [[1,0],[1,1],[1,−1],[0,−1]])
#     ∂L/∂U[k] (C_out, C_in) = Σ_tiles Z[k] · V[k]ᵀ  with Z[k] = (A gY Aᵀ)[k]  (C_out, tiles)
#     ∂L/∂g = Gᵀ (∂L/∂U) G  (3×3 from 4×4), summed over every tile of every image.
# 16 GEMMs of C_out·C_in·(OH·OW/4) multiply-adds instead of 9·C_out·C_in·OH·OW: the same 2.25×.
@no_refcount
def _gy_transform_block_into(gy, Z, n, tr0, rows, TW, toff, G, Hr, pad):
    """Z[k, co, toff + u] = (A g Aᵀ)[k] for the 2×2 tiles g of gy[n, co] in tile rows tr0…tr0 + rows − 1,
    u = (ty − tr0)·(TW + 1) + tx; gy is zero outside OH × OW (a partial tile at an odd border) and
    on the padding tiles. Polyphase planes ``G[a, b][h·(TW + 1) + m] = gy[2(tr0 + h) + a, 2m + b]``
    give g[i, j] = G[i, j][u]. Rows, A g: h_0 = g_0, h_1 = g_0 + g_1, h_2 = g_0 − g_1, h_3 = −g_1
    (per column phase); columns, each row (a, b) -> (a, a + b, a − b, −b)."""
    C_out, OH = gy.shape[1], gy.shape[2]
    TWp = TW + 1
    U = rows * TWp
    for co in range(C_out):
        gp = gy[n, co]
        for h in range(rows):
            for a in range(2):
                oh = 2 * (tr0 + h) + a
                lo = h * TWp
                if oh < OH:
                    _polyphase_rows(gp[oh], pad, G[a, 0, lo:lo + TW], G[a, 1, lo:lo + TW], 0)
                else:
                    G[a, 0, lo:lo + TW] = 0
                    G[a, 1, lo:lo + TW] = 0
        for b in range(2):  # rows: A g
            _copy(Hr[0, b], G[0, b])
            _add(Hr[1, b], G[0, b], G[1, b])
            _sub(Hr[2, b], G[0, b], G[1, b])
            _neg(Hr[3, b], G[1, b])
        for r in range(4):  # columns: (A g) Aᵀ
            e, o = Hr[r, 0], Hr[r, 1]
            _copy(Z[4 * r, co, toff:toff + U], e)
            _add(Z[4 * r + 1, co, toff:toff + U], e, o)
            _sub(Z[4 * r + 2, co, toff:toff + U], e, o)
            _neg(Z[4 * r + 3, co, toff:toff + U], o)


@njit(cache=True, nogil=True)
def gy_transform_block(gy, Z, n0, n1, tr0, rows, TW, toff):
    """:func:`_gy_transform_block_into` with its scratch arrays allocated here, for
    images n0…n1 − 1 in one call (image n0 + i at tile offset toff + i·rows·(TW + 1)): one call a
    task instead of one an image, so a task holds the GIL less often (see ``_threads``)."""
    TWp = TW + 1
    U = rows * TWp
    G = np.zeros((2, 2, U), dtype=gy.dtype)  # G[a, b, tr·TWp + TW] stays 0: the padding tiles
    Hr = np.empty((4, 2, U), dtype=gy.dtype)
    pad = np.zeros(2 * TW, dtype=gy.dtype)
    for n in range(n0, n1):
        _gy_transform_block_into(gy, Z, n, tr0, rows, TW, toff + (n - n0) * U, G, Hr, pad)


@njit(cache=True, inline="always")
def _gt_rows(o0, o1, o2, m0, m1, m2, m3):
    """o_a = Σ_i Gᵀ[a, i] m_i for the three rows a of Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]],
    in float64 (1-D loops over c, one store each)."""
    for c in range(o0.shape[0]):
        o0[c] = np.float64(m0[c]) + 0.5 * (np.float64(m1[c]) + np.float64(m2[c]))
    for c in range(o0.shape[0]):
        o1[c] = 0.5 * (np.float64(m1[c]) - np.float64(m2[c]))
    for c in range(o0.shape[0]):
        o2[c] = 0.5 * (np.float64(m1[c]) + np.float64(m2[c])) + np.float64(m3[c])


@no_refcount
def _weight_untransform_into(S, gW, o0, o1, t, g):
    """gW[o, c] = Gᵀ s G (3×3) with s[a, b] = S[4a + b, o, c], for o in o0…o1 (float64 arithmetic).
    Per output channel o, both stages are unit-stride loops over c with one store
    (:func:`_gt_rows`: t[a, b] = (Gᵀ s)[a, b], then g[3a + j] = (t G)[a, j], rows over c), then g is
    scattered into gW[o] (C_in, 3, 3): vectorised, where a scalar loop per filter took 32 ns a
    filter (2.1 ms for 256 × 256 filters)."""
    for o in range(o0, o1):
        for b in range(4):  # t = Gᵀ s, column b
            _gt_rows(t[0, b], t[1, b], t[2, b], S[b, o], S[4 + b, o], S[8 + b, o], S[12 + b, o])
        for a in range(3):  # g = t G, row a
            _gt_rows(g[3 * a], g[3 * a + 1], g[3 * a + 2], t[a, 0], t[a, 1], t[a, 2], t[a, 3])
        scatter_taps(g, gW[o])


@njit(cache=True, nogil=True)
def weight_untransform_raw(S, gW, o0, o1):
    """:func:`_weight_untransform_into` with its scratch arrays allocated here."""
    C_in = S.shape[2]
    _weight_untransform_into(S, gW, o0, o1, np.empty((3, 4, C_in)), np.empty((9, C_in)))


class _Variant(NamedTuple):
    """The pieces of F(tile×tile, 3×3): K = (tile + 2)² products; the weight, input, output and gy
    transforms and the weight untransform; at least ``min_tiles`` tiles a task (0: no minimum);
    ``growth``: the bound of :func:`winograd_in_range`."""
    K: int
    weight: Callable
    input: Callable
    output: Callable
    gy: Callable
    untransform: Callable
    min_tiles: int
    growth: float


#: by output tile: F(2×2, 3×3) (this module) and F(4×4, 3×3) (``conv_winograd4``)
_VARIANTS = {
    2: _Variant(16, transform_weight_raw, input_transform_block, output_transform_block, gy_transform_block,
                weight_untransform_raw, 0, 144.0),
    4: _Variant(36, transform_weight4_raw, input_transform4_block, output_transform4_block, gy_transform4_block,
                weight_untransform4_raw, _MIN_TILES4, 62500.0),
}


def max_abs(a):
    """max |a| as a Python float: NaN when ``a`` holds a NaN, inf when it holds an inf, 0 when
    empty. Two vectorised NumPy reductions and no temporary (0.04 ms on 2 MiB here)."""
    if a.size == 0:
        return 0.0
    lo, hi = float(a.min()), float(a.max())
    return math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)


def winograd_in_range(tile, terms, max_a, max_b, max_bias, dtype):
    """Whether a Winograd F(tile×tile, 3×3) kernel computes a bilinear map of ``a`` and ``b``
    (maxima ``max_a = max |a|``, ``max_b``, from :func:`max_abs`) with no overflow in any
    intermediate value, ``terms`` being the length of its sums (C_in for the forward, C_out for
    the input gradient, the tiles of all images for the weight gradient), plus a bias of
    magnitude ``max_bias``.

    Every intermediate is bounded by ``growth · terms · max_a · max_b + max_bias``, and each
    transformed factor by ``growth · max_a`` and ``growth · max_b``, with ``growth`` the product of
    the transforms' row-sum norms ‖·‖∞² (F(2×2): ‖Bᵀ‖² = 4, ‖G‖² = 2.25, ‖Aᵀ‖² = 9 give 81 for the
    forward; ‖A‖² = 4, ‖Bᵀ‖² = 4, ‖Gᵀ‖² = 4 give 64 for the weight gradient; the fused input
    gradient ``conv_winograd_backward`` 4 · 2.25 · 16 = 144; F(4×4): 100 · 1 · 361 = 36100 and
    225 · 100 · 25/9 = 62500), the larger of each variant's being ``_Variant.growth``. When these
    bounds are at most half the dtype's largest value (the half covers rounding), no transform,
    GEMM or sum overflows: the result is finite and equals the direct convolution up to rounding.
    Otherwise (and for any inf or NaN, whose maxima are inf or NaN, so that every comparison here
    is False) the caller takes the im2col path."""
    limit = float(np.finfo(dtype).max) / 2
    growth = _VARIANTS[tile].growth
    return (growth * max_a <= limit and growth * max_b <= limit
            and growth * terms * max_a * max_b + max_bias <= limit)


def accumulate_product(state, a, b):
    """``state[0] += a @ b`` for a thread's weight-gradient state ``[accumulator, product, ...]``
    (both None until first needed): the thread's first product is its accumulator (no zeroing,
    no sum); later ones go through the product buffer ``state[1]``."""
    if state[0] is None:
        state[0] = np.matmul(a, b)
        return
    if state[1] is None:
        state[1] = np.empty_like(state[0])
    np.matmul(a, b, out=state[1])
    state[0] += state[1]


def winograd_backward_weight3x3(x, gy, padding, tile=2):
    """gW (C_out, C_in, 3, 3) = ∂⟨gy, conv2d(x, W)⟩/∂W for a 3×3 W, stride 1, dilation 1, one group
    (``padding`` leading, the size of gy implies the trailing one): ``Gᵀ (Σ_tiles Z[k] V[k]ᵀ) G``.
    ``tile``: 2 (16 products, this module) or 4 (F(4×4, 3×3), 36 products, ``conv_winograd4``).
    Each thread sums its tasks' products into its own (K, C_out, C_in) accumulator; the
    accumulators are added in thread order at the end (bitwise reproducible, see ``run_tasks``)."""
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    N, C_in = x.shape[:2]
    C_out, OH, OW = gy.shape[1:]
    TH, TW = -(-OH // tile), -(-OW // tile)
    v = _VARIANTS[tile]
    K = v.K

    def task(block, state):  # state: [accumulator, product], both None until first needed
        n0, n1, r0, r1 = block
        Tb = (r1 - r0) * (TW + 1)
        T = (n1 - n0) * Tb
        V = COLS.get_rows_apart((K, C_in, T), x.dtype)
        Z = PRODUCTS.get_rows_apart((K, C_out, T), x.dtype)
        v.input(x, V, n0, n1, r0, r1 - r0, TW, *padding, 0, True)  # every argument explicit: see conv.FUSED_WINOGRAD_BACKWARD
        v.gy(gy, Z, n0, n1, r0, r1 - r0, TW, 0)
        accumulate_product(state, Z[:, :C_out], V[:, :C_in].transpose(0, 2, 1))

    bytes_per_tile = K * (C_in + C_out) * x.itemsize
    block_bytes = max(_WG_BLOCK_BYTES, v.min_tiles * bytes_per_tile)
    states = run_tasks(task, _tile_tasks(N, TH, TW + 1, bytes_per_tile, block_bytes, bytes_per_tile), lambda: [None, None])
    S = sum_accumulators(states)
    gW = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)
    over_filters(lambda o0, o1: v.untransform(S, gW, o0, o1), C_out, C_in)
    return gW
