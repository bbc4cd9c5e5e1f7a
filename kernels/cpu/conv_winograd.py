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

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_weight(W):
    """U (16, C_out, C_in) = G g Gᵀ for every filter g = W[co, c] (3×3)."""
    U = np.einsum("ai,oxij,bj->abox", _G, W.astype(np.float64), _G)
    return np.ascontiguousarray(U.reshape(16, W.shape[0], W.shape[1]), dtype=W.dtype)


@njit(cache=True, nogil=True)
def input_transform_block(x, V, n, tr0, TW, ph, pw):
    """V[k, c, t] = (Bᵀ d B)[k] for the tiles of image n, tile rows tr0…, t = (ty − tr0)·TW + tx."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    T = V.shape[2]
    d = np.zeros((4, 4), dtype=x.dtype)
    for c in range(C):
        xp = x[n, c]
        for t in range(T):
            ty, tx = tr0 + t // TW, t % TW
            ih0, iw0 = 2 * ty - ph, 2 * tx - pw
            for i in range(4):
                ih = ih0 + i
                for j in range(4):
                    iw = iw0 + j
                    d[i, j] = xp[ih, iw] if (ih >= 0 and ih < H and iw >= 0 and iw < W) else 0
            for j in range(4):  # rows: Bᵀ d
                r0, r1, r2, r3 = d[0, j], d[1, j], d[2, j], d[3, j]
                d[0, j], d[1, j], d[2, j], d[3, j] = r0 - r2, r1 + r2, r2 - r1, r1 - r3
            for i in range(4):  # columns: (Bᵀ d) B
                c0, c1, c2, c3 = d[i, 0], d[i, 1], d[i, 2], d[i, 3]
                V[4 * i + 0, c, t] = c0 - c2
                V[4 * i + 1, c, t] = c1 + c2
                V[4 * i + 2, c, t] = c2 - c1
                V[4 * i + 3, c, t] = c1 - c3


@njit(cache=True, nogil=True)
def output_transform_block(M, y, n, tr0, TW):
    """y[n, co, 2ty + a, 2tx + b] = (Aᵀ m A)[a, b] with m[k] = M[k, co, t] (cropped at the border)."""
    C_out, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    T = M.shape[2]
    s = np.empty((2, 4), dtype=y.dtype)
    for co in range(C_out):
        yp = y[n, co]
        for t in range(T):
            ty, tx = tr0 + t // TW, t % TW
            for j in range(4):  # Aᵀ m
                m0, m1, m2, m3 = M[j, co, t], M[4 + j, co, t], M[8 + j, co, t], M[12 + j, co, t]
                s[0, j] = m0 + m1 + m2
                s[1, j] = m1 - m2 - m3
            for a in range(2):
                oh = 2 * ty + a
                if oh >= OH:
                    continue
                ow = 2 * tx
                yp[oh, ow] = s[a, 0] + s[a, 1] + s[a, 2]
                if ow + 1 < OW:
                    yp[oh, ow + 1] = s[a, 1] - s[a, 2] - s[a, 3]


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
