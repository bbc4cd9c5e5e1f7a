"""The backward of wide layers on small maps: one GEMM over the whole batch, split over channels.

With ``K = C_in·kH·kW`` rows of columns and ``P = OH·OW`` output positions per image, the
im2col path of ``conv.py`` gives each task a block of whole images: on a 4×4 map of a ResNet's
last stage (batch 32, 512 channels, K = 4608) the input gradient is a GEMM of P = 16 columns per
image, and the weight gradient sums products that contract over 4 images' 64 positions into a
(K, M) accumulator per thread: thin products, far below the BLAS kernel's speed. Here the tasks
split the *input channels* and every product spans the whole batch's N·P columns::

    gy_rows (M, N·P) = gy transposed, copied once
    cols_c  = im2col(x[:, c0:c1])                     (kc, N·P),  kc = (c1 − c0)·kH·kW
    gW[:, k0:k1]  = gy_rows @ cols_cᵀ                  contraction over all N·P positions,
                                                      written straight into gW's column slab
    gx[:, c0:c1]  = col2im(Wᵀ[k0:k1] @ gy_rows)        (the wide column layout of ``_im2col``)

A task owns its input channels: its columns of gW and its planes of gx are written by it alone
(no races, no reduction, a deterministic result). Measured 2026-12-07 (2 threads, alternating
medians of 9 in one process, OpenBLAS's own kernel: ``OPENBLAS_CORETYPE`` unset), forward + both
gradients, im2col path → this path (PyTorch 2.14.1):
(32,512,4,4)→512 3×3 39.5 → 26.0 ms (18.6), (32,256,8,8)→512 stride 2 18.9 → 11.6 (12.4),
(4,512,7,7)→512 17.7 → 8.1 (8.4), (8,512,4,4)→512 18.2 → 6.2 (6.3). With N·P = 2048 it lost
((32,256,8,8)→256: 21.8 vs 28.3), hence :data:`SMALL_MAP_MAX_COLUMNS`. The forward keeps the
im2col path: the same split over output channels measured no faster (its product must be copied
from (M, N, P) into y's (N, M, P)).
"""
import numpy as np

from ._im2col import COLS, Workspace, col2im_block_add, im2col_block
from ._threads import run_tasks, task_ranges

#: gy's transposed copy (M, N, P): a workspace of the calling thread, read by every task
GY_COLS = Workspace()
#: a task's rows of the input gradient's columns
GX_COLS = Workspace()

#: the path is taken for wide layers (K = C_in·kH·kW at least this) ...
SMALL_MAP_MIN_K = 256
#: ... on maps of at most this many output positions in the whole batch (N·P)
SMALL_MAP_MAX_COLUMNS = 1024


def use_small_maps(N, C_in, groups, kernel_hw, out_hw):
    """Whether a convolution's backward takes this path: one group, K ≥ SMALL_MAP_MIN_K and
    N·P ≤ SMALL_MAP_MAX_COLUMNS."""
    K = C_in * kernel_hw[0] * kernel_hw[1]
    return groups == 1 and K >= SMALL_MAP_MIN_K and N * out_hw[0] * out_hw[1] <= SMALL_MAP_MAX_COLUMNS


def small_maps_backward(x, W, gy, x_shape, kernel_hw, stride, padding, dilation):
    """``(gx, gW)`` of ``y = conv2d(x, W)`` for one group: gx when ``W`` is given, gW when ``x`` is
    (the other may be None; ``x_shape`` and ``kernel_hw`` give the sizes). Each task owns a chunk of
    input channels: its columns of gW = gy @ colsᵀ and its planes of gx = col2im(Wᵀ @ gy)."""
    want_gx, want_gw = W is not None, x is not None
    N, C_in = x_shape[:2]
    kH, kW = kernel_hw
    M, OH, OW = gy.shape[1:]
    kk, P = kH * kW, OH * OW
    K = C_in * kk
    NP = N * P
    gy_rows = GY_COLS.get((M, N, P), gy.dtype)  # (M, N·P): the right operand of both products
    np.copyto(gy_rows, gy.reshape(N, M, P).transpose(1, 0, 2))
    gy_rows = gy_rows.reshape(M, NP)
    if want_gw:
        gW = np.empty((M, K), dtype=gy.dtype)
    if want_gx:
        WT = W.reshape(M, K).T
        gx = np.empty(x_shape, dtype=gy.dtype)

    def task(chunk, _):
        c0, c1 = chunk
        k0, k1 = c0 * kk, c1 * kk
        if want_gw:  # gW[:, k0:k1] = gy (M, N·P) @ colsᵀ, written straight into its column slab
            cols = COLS.get((k1 - k0, N, P), gy.dtype)
            im2col_block(x, cols, 0, c0, 0, kH, kW, *stride, *padding, *dilation, OW, True)
            np.matmul(gy_rows, cols.reshape(k1 - k0, NP).T, out=gW[:, k0:k1])
        if want_gx:
            gcols = GX_COLS.get((k1 - k0, N, P), gy.dtype)
            np.matmul(WT[k0:k1], gy_rows, out=gcols.reshape(k1 - k0, NP))
            gx[:, c0:c1] = 0
            col2im_block_add(gcols, gx, 0, c0, 0, kH, kW, *stride, *padding, *dilation, OW, True)

    run_tasks(task, task_ranges(C_in, max(1, 64 // kk)))
    return (gx if want_gx else None), (gW.reshape(M, C_in, kH, kW) if want_gw else None)
