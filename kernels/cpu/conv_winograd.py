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
2.25× fewer flops, paid for by the two transforms (memory-bound, cheap in Numba).
Tiles are processed in blocks of tile rows of one image (a task of ``_threads.run_tasks``), so
V and M of a block stay in cache. Float32 error: a few ulps more than im2col (the transforms add
and subtract at most 4 terms per stage); the tests compare with the reference at 1e-4 relative.
"""
import numpy as np
from numba import njit

from ._im2col import COLS, Workspace
from ._threads import NUM_THREADS, run_tasks

#: the workspace of the products M (the transformed inputs V use ``_im2col.COLS``)
PRODUCTS = Workspace()

#: bytes of V (and of M) per task
_BLOCK_BYTES = 1 << 20


@njit(cache=True, nogil=True)
def transform_weight_raw(W, U, o0, o1):
    """U[4a + b, o, c] = (G g Gᵀ)[a, b] for g = W[o, c], o in o0…o1 (float64 arithmetic)."""
    C_in = W.shape[1]
    for o in range(o0, o1):
        for c in range(C_in):
            g = W[o, c]
            for a in range(4):
                # row a of G g: h[j] = Σ_i G[a, i] g[i, j]
                if a == 0:
                    h0, h1, h2 = np.float64(g[0, 0]), np.float64(g[0, 1]), np.float64(g[0, 2])
                elif a == 3:
                    h0, h1, h2 = np.float64(g[2, 0]), np.float64(g[2, 1]), np.float64(g[2, 2])
                else:
                    sgn = 1.0 if a == 1 else -1.0
                    h0 = 0.5 * np.float64(g[0, 0]) + sgn * 0.5 * np.float64(g[1, 0]) + 0.5 * np.float64(g[2, 0])
                    h1 = 0.5 * np.float64(g[0, 1]) + sgn * 0.5 * np.float64(g[1, 1]) + 0.5 * np.float64(g[2, 1])
                    h2 = 0.5 * np.float64(g[0, 2]) + sgn * 0.5 * np.float64(g[1, 2]) + 0.5 * np.float64(g[2, 2])
                U[4 * a + 0, o, c] = h0
                U[4 * a + 1, o, c] = 0.5 * h0 + 0.5 * h1 + 0.5 * h2
                U[4 * a + 2, o, c] = 0.5 * h0 - 0.5 * h1 + 0.5 * h2
                U[4 * a + 3, o, c] = h2


def transform_weight(W):
    """U (16, C_out, C_in) = G g Gᵀ for every filter g = W[co, c] (3×3), in float64 arithmetic,
    output channels split over the task pool (np.einsum took 18 ms for 256 × 256 filters)."""
    C_out, C_in = W.shape[:2]
    U = np.empty((16, C_out, C_in), dtype=W.dtype)
    step = max(1, -(-C_out // (2 * NUM_THREADS)))
    run_tasks(lambda o0, _: transform_weight_raw(W, U, o0, min(C_out, o0 + step)), range(0, C_out, step))
    return U


@njit(cache=True, nogil=True)
def input_transform_block(x, V, n, tr0, TW, ph, pw):
    """V[k, c, t] = (Bᵀ d B)[k] for the tiles of image n, tile rows tr0…, t = (ty − tr0)·TW + tx.

    The 4 input rows of a tile row are first copied into a zero-padded buffer (column j ↔ input
    column j − pw), so the loop over the tiles has no bounds test and keeps the tile in
    registers; the 16 results of a channel go to a small (16, T) buffer, copied to V row by row.
    (Measured: (8,64,56,56) 8 tile rows 0.15 ms instead of 0.72 ms for per-element bounds tests
    and direct stores into V.)"""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    T = V.shape[2]
    rows = T // TW
    L = 2 * TW + 2
    buf = np.zeros((4, L), dtype=x.dtype)
    e = np.empty((16, T), dtype=x.dtype)
    lo, hi = pw, min(L, pw + W)  # buffer columns lo…hi − 1 hold input columns 0…hi − lo − 1
    for c in range(C):
        xp = x[n, c]
        for tr in range(rows):
            ih0 = 2 * (tr0 + tr) - ph
            for i in range(4):
                ih = ih0 + i
                if ih < 0 or ih >= H:
                    for j in range(L):
                        buf[i, j] = 0
                else:
                    for j in range(hi - lo):
                        buf[i, lo + j] = xp[ih, j]
            t0 = tr * TW
            for tx in range(TW):
                j, t = 2 * tx, t0 + tx
                d00, d01, d02, d03 = buf[0, j], buf[0, j + 1], buf[0, j + 2], buf[0, j + 3]
                d10, d11, d12, d13 = buf[1, j], buf[1, j + 1], buf[1, j + 2], buf[1, j + 3]
                d20, d21, d22, d23 = buf[2, j], buf[2, j + 1], buf[2, j + 2], buf[2, j + 3]
                d30, d31, d32, d33 = buf[3, j], buf[3, j + 1], buf[3, j + 2], buf[3, j + 3]
                # rows: Bᵀ d
                e00, e01, e02, e03 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
                e10, e11, e12, e13 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
                e20, e21, e22, e23 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
                e30, e31, e32, e33 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
                # columns: (Bᵀ d) B
                e[0, t], e[1, t], e[2, t], e[3, t] = e00 - e02, e01 + e02, e02 - e01, e01 - e03
                e[4, t], e[5, t], e[6, t], e[7, t] = e10 - e12, e11 + e12, e12 - e11, e11 - e13
                e[8, t], e[9, t], e[10, t], e[11, t] = e20 - e22, e21 + e22, e22 - e21, e21 - e23
                e[12, t], e[13, t], e[14, t], e[15, t] = e30 - e32, e31 + e32, e32 - e31, e31 - e33
        for k in range(16):
            dst, src = V[k, c], e[k]
            for t in range(T):
                dst[t] = src[t]


@njit(cache=True, nogil=True)
def output_transform_block(M, y, n, tr0, TW):
    """y[n, co, 2ty + a, 2tx + b] = (Aᵀ m A)[a, b] with m[k] = M[k, co, t] (cropped at the border)."""
    C_out, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    T = M.shape[2]
    rows = T // TW
    full_tx = OW // 2  # tiles whose two output columns are both inside
    for co in range(C_out):
        yp = y[n, co]
        for tr in range(rows):
            ty = tr0 + tr
            oh = 2 * ty
            t0 = tr * TW
            y0 = yp[oh]
            two_rows = oh + 1 < OH
            y1 = yp[oh + 1] if two_rows else yp[oh]
            for tx in range(TW):
                t = t0 + tx
                s00 = M[0, co, t] + M[4, co, t] + M[8, co, t]
                s01 = M[1, co, t] + M[5, co, t] + M[9, co, t]
                s02 = M[2, co, t] + M[6, co, t] + M[10, co, t]
                s03 = M[3, co, t] + M[7, co, t] + M[11, co, t]
                s10 = M[4, co, t] - M[8, co, t] - M[12, co, t]
                s11 = M[5, co, t] - M[9, co, t] - M[13, co, t]
                s12 = M[6, co, t] - M[10, co, t] - M[14, co, t]
                s13 = M[7, co, t] - M[11, co, t] - M[15, co, t]
                ow = 2 * tx
                y0[ow] = s00 + s01 + s02
                if two_rows:
                    y1[ow] = s10 + s11 + s12
                if tx < full_tx:
                    y0[ow + 1] = s01 - s02 - s03
                    if two_rows:
                        y1[ow + 1] = s11 - s12 - s13


def winograd_conv3x3(x, W, padding, out_hw):
    """y (N, C_out, OH, OW) = conv2d(x, W) for a 3×3 W, stride 1, dilation 1, one group; ``padding``
    is the leading padding, the output size ``out_hw`` implies the trailing one."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, C_in = x.shape[:2]
    C_out = W.shape[0]
    OH, OW = out_hw
    TH, TW = -(-OH // 2), -(-OW // 2)
    U = transform_weight(W)
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    # tile rows per task: V and M of a block about 1 MiB each, and at least 4 tasks per thread
    per_row = 16 * max(C_in, C_out) * TW * x.itemsize
    rows = max(1, min(TH, _BLOCK_BYTES // per_row))
    while N * -(-TH // rows) < 4 * NUM_THREADS and rows > 1:
        rows = (rows + 1) // 2
    tasks = [(n, r0, min(TH, r0 + rows)) for n in range(N) for r0 in range(0, TH, rows)]

    def task(block, _):
        n, r0, r1 = block
        T = (r1 - r0) * TW
        V = COLS.get((16, C_in, T), x.dtype)
        input_transform_block(x, V, n, r0, TW, *padding)
        M = PRODUCTS.get((16, C_out, T), x.dtype)
        np.matmul(U, V, out=M)
        output_transform_block(M, y, n, r0, TW)

    run_tasks(task, tasks)
    return y
