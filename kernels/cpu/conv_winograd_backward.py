"""Both gradients of a Winograd F(2×2, 3×3) convolution from ONE transform of gy.

The forward map of a tile is (``conv_winograd.py``)::

    V = Bᵀ d B   (4×4 input tile d)      M[k] = Σ_c U[k, o, c] V[k, c]      Y = Aᵀ M A   (2×2)

so for a loss L with ∂L/∂Y = gY (a 2×2 tile of gy, 0 outside the map), the chain rule gives::

    Z   = ∂L/∂M = A gY Aᵀ                     (4×4, the transform ``gy_transform_block`` computes)
    gU  = ∂L/∂U[k] = Σ_tiles Z[k] V[k]ᵀ       (the weight gradient, untransformed by Gᵀ · G)
    Q   = ∂L/∂V[k] = U[k]ᵀ Z[k]               (C_in, tiles)
    ∂L/∂d = B Q Bᵀ, added into gx at the tile's 4×4 input window (windows overlap by 2)

The input gradient is then the ADJOINT of the forward's input transform applied to Uᵀ Z: it reuses
the Z that the weight gradient needs, where the input gradient as a convolution of gy with the
flipped filters (``winograd_conv3x3(..., flipped_transposed=True)``) transforms gy's C_out
channels again as overlapping 4×4 input tiles (Bᵀ d B: ~1.7× the work of A g Aᵀ). Measured,
gx and gW, this kernel / the two separate ones (``conv.py``): (64,32,16,16)→64 0.84,
(32,64,16,16)→64 0.79, (64,16,32,32)→16 0.94; even from 128 channels (so ``conv.py`` uses it
up to 128).

    B = [[1, 0, 0, 0], [0, 1, −1, 1], [−1, 1, 1, 0], [0, 0, 0, −1]]   (the transpose of Bᵀ)

Tiles use the padded layout of ``_winograd_tiles.py`` (u = ty·(TW + 1) + tx, one padding tile per
tile row, where Z, hence Q, is 0). In the polyphase planes of the padded input,
``P[a, b][h·(TW + 1) + m] = gxpad[2h + a, 2m + b]``, tile u's entry (i, j) lands at
``P[i % 2, j % 2][u + (i // 2)·(TW + 1) + j // 2]``: the overlap-add of neighbouring tiles is a
shift of 1 (columns) or TW + 1 (rows) along u, so both stages are long unit-stride loops, and
the padding tile of a row receives exactly the 2 columns its last tile overhangs.
"""
import numpy as np
from numba import njit

from ._im2col import COLS, Workspace
from ._jit import no_refcount
from ._threads import run_tasks, sum_accumulators
from .conv_winograd import (_WG_BLOCK_BYTES, PRODUCTS, accumulate_product, images_per_task, gy_transform_block, over_filters,
                            input_transform_block, transform_weight, weight_untransform_raw)

#: the workspace of the transformed input gradient Q = Uᵀ Z (V and Z use COLS and PRODUCTS)
INPUT_GRADS = Workspace()


@njit(cache=True, inline="always")
def _col_even(out, q0, q1, q2, q0p, q1p, q2p):
    """out[v] = q0[v] + (−q0 + q1 + q2)[v − 1]: columns 0 and 2 of B Q's rows land in the even phase"""
    for v in range(out.shape[0]):
        out[v] = q0[v] - q0p[v] + q1p[v] + q2p[v]


@njit(cache=True, inline="always")
def _col_odd(out, q1, q2, q3, q3p):
    """out[v] = (q1 − q2 + q3)[v] − q3[v − 1]: columns 1 and 3 land in the odd phase"""
    for v in range(out.shape[0]):
        out[v] = q1[v] - q2[v] + q3[v] - q3p[v]


@no_refcount
def _input_adjoint_image_into(Q, gx, n, TH, TW, ph, pw, toff, Cs, P):
    """gx[n, c] = Σ_tiles (B q Bᵀ) added at the tile's input window, for every channel c, with
    q[i, j] = Q[4i + j, c, toff + u] over the TH × TW tiles of image n (u = ty·(TW + 1) + tx; the
    padding tiles' Q must be 0); leading padding ph, pw: window (ty, tx) covers gx rows 2ty − ph …
    2ty − ph + 3 and columns 2tx − pw … 2tx − pw + 3 (cropped); rows and columns no window reaches
    are 0. Overwrites all of gx[n] (a whole image: the windows of neighbouring tile rows overlap).

    Columns, per row i of q (Cs[i, b] = phase b of row i of q Bᵀ with its overlap added, at offset
    TWp): even = q_i0[v] + (−q_i0 + q_i1 + q_i2)[v − 1], odd = (q_i1 − q_i2 + q_i3)[v] − q_i3[v − 1].
    Rows, per phase b, interleaved (P[a, 2w + b] = gxpad[2h + a, 2m + b], w = h·TWp + m):
    P[0] = C_0[w] + (−C_0 + C_1 + C_2)[w − TWp], P[1] = (C_1 − C_2 + C_3)[w] − C_3[w − TWp].
    ``Cs`` (6, 2, U + 2·TWp): rows 0–3 hold C_i at offset TWp and must be 0 outside
    [TWp, TWp + U) (the shifted reads there are the zero neighbours of the first and last tile
    rows; the zeros persist from call to call); rows 4, 5 the sums of the row stage."""
    C, H, Wd = gx.shape[1], gx.shape[2], gx.shape[3]
    TWp = TW + 1
    U = TH * TWp
    Wc = max(0, min(Wd, 2 * TWp - pw))  # gx columns the windows reach
    for c in range(C):
        for i in range(4):  # columns: q Bᵀ, with the overlap of horizontally adjacent tiles
            q0, q1 = Q[4 * i, c, toff:toff + U], Q[4 * i + 1, c, toff:toff + U]
            q2, q3 = Q[4 * i + 2, c, toff:toff + U], Q[4 * i + 3, c, toff:toff + U]
            ce, co = Cs[i, 0, TWp:TWp + U], Cs[i, 1, TWp:TWp + U]
            ce[0] = q0[0]
            co[0] = q1[0] - q2[0] + q3[0]
            _col_even(ce[1:], q0[1:], q1[1:], q2[1:], q0[:-1], q1[:-1], q2[:-1])
            _col_odd(co[1:], q1[1:], q2[1:], q3[1:], q3[:-1])
        # rows: B (q Bᵀ), with the overlap of vertically adjacent tiles: per phase b the sums
        # D = −C_0 + C_1 + C_2 and E = C_1 − C_2 + C_3 first, then both phases interleaved
        # with 4 loads a loop (8 loads in one loop did not vectorise: 3× the time, measured)
        for b in range(2):
            c0, c1, c2, c3 = Cs[0, b], Cs[1, b], Cs[2, b], Cs[3, b]
            d, e = Cs[4, b], Cs[5, b]
            for w in range(d.shape[0]):
                d[w] = c1[w] + c2[w] - c0[w]
            for w in range(e.shape[0]):
                e[w] = c1[w] - c2[w] + c3[w]
        # (the reads at w + TWp through views starting there: an index w + TWp is not known to be
        # ≥ 0, and Numba's wrap-around test on it keeps LLVM from vectorising, measured)
        c00, c01, e0, e1 = Cs[0, 0, TWp:], Cs[0, 1, TWp:], Cs[5, 0, TWp:], Cs[5, 1, TWp:]
        d0, d1, c30, c31 = Cs[4, 0], Cs[4, 1], Cs[3, 0], Cs[3, 1]
        p0, p1 = P[0], P[1]
        for w in range(U + TWp):
            p0[2 * w] = c00[w] + d0[w]
            p0[2 * w + 1] = c01[w] + d1[w]
        for w in range(U + TWp):
            p1[2 * w] = e0[w] - c30[w]
            p1[2 * w + 1] = e1[w] - c31[w]
        gp = gx[n, c]
        for ih in range(H):
            hp = ih + ph  # the padded row: polyphase row hp // 2 of phase hp % 2
            row = gp[ih]
            if hp >= 2 * (TH + 1):
                row[:] = 0
                continue
            src = P[hp % 2, 2 * (hp // 2) * TWp + pw:]
            for iw in range(Wc):
                row[iw] = src[iw]
            for iw in range(Wc, Wd):
                row[iw] = 0


@njit(cache=True, nogil=True)
def input_adjoint_images(Q, gx, n0, n1, TH, TW, ph, pw, toff):
    """:func:`_input_adjoint_image_into` with its scratch arrays allocated here, for images
    n0…n1 − 1 (image n0 + i at tile offset toff + i·TH·(TW + 1)): one call a task."""
    TWp = TW + 1
    U = TH * TWp
    Cs = np.zeros((6, 2, U + 2 * TWp), dtype=gx.dtype)
    P = np.empty((2, 2 * (U + TWp)), dtype=gx.dtype)
    for n in range(n0, n1):
        _input_adjoint_image_into(Q, gx, n, TH, TW, ph, pw, toff + (n - n0) * U, Cs, P)


def fits_whole_images(N, C_in, C_out, out_hw, itemsize):
    """Whether the tasks of :func:`winograd_backward3x3` can hold whole images (its input
    gradient adds overlapping windows of neighbouring tile rows, so an image is one task's):
    the transformed tiles V, Z of one image within the weight gradient's block budget."""
    TH, TW = -(-out_hw[0] // 2), -(-out_hw[1] // 2)
    return 16 * (C_in + C_out) * itemsize * TH * (TW + 1) <= _WG_BLOCK_BYTES


def winograd_backward3x3(x, W, gy, padding, want_gx=True, want_gw=True, want_gb=False):
    """``(gx, gW, gb)`` of ``y = conv2d(x, W) + b`` for a 3×3 W, stride 1, dilation 1, one group,
    by F(2×2, 3×3) (None for those not wanted); ``padding`` leading, gy's size implies the
    trailing one. Per task (whole images, see :func:`fits_whole_images`): Z = A gY Aᵀ once; the
    weight gradient's 16 GEMMs Z[k] V[k]ᵀ summed in a per-thread accumulator (V = Bᵀ d B of x);
    then Q[k] = U[k]ᵀ Z[k] (16 GEMMs) and gx by the adjoint input transform. gW = Gᵀ (Σ Z Vᵀ) G
    as ``winograd_backward_weight3x3`` computes it. gb[co] = Σ_tiles Z[5, co, tile]: entry (1, 1)
    of A g Aᵀ is the sum of the tile's 4 values (A's row 1 is [1, 1]), so the bias gradient is a
    sum over Z while it is in cache, in float64, per thread and then in thread order (a separate
    pass over gy, ``conv2d_bias_grad``, took 0.3 ms on (64,64,16,16))."""
    x, W, gy = np.ascontiguousarray(x), np.ascontiguousarray(W), np.ascontiguousarray(gy)
    N, C_in, H, Wd = x.shape
    C_out, OH, OW = gy.shape[1:]
    TH, TW = -(-OH // 2), -(-OW // 2)
    Tb = TH * (TW + 1)  # tiles per image, one padding tile per tile row
    ph, pw = padding
    UT = np.ascontiguousarray(transform_weight(W).transpose(0, 2, 1)) if want_gx else None  # (16, C_in, C_out)
    gx = np.empty_like(x) if want_gx else None
    nb = images_per_task(N, Tb, 16 * (2 * C_in + C_out) * x.itemsize * Tb)  # V, Z and Q

    def task(n0, state):  # state: [weight-gradient accumulator, product, bias-gradient sum], None until needed
        n1 = min(N, n0 + nb)
        T = (n1 - n0) * Tb
        Z = PRODUCTS.get_rows_apart((16, C_out, T), x.dtype)
        gy_transform_block(gy, Z, n0, n1, 0, TH, TW, 0)
        Zs = Z[:, :C_out]
        if want_gb:
            part = Zs[5].sum(axis=1, dtype=np.float64)
            state[2] = part if state[2] is None else state[2] + part
        if want_gw:
            V = COLS.get_rows_apart((16, C_in, T), x.dtype)
            input_transform_block(x, V, n0, n1, 0, TH, TW, ph, pw, 0, True)
            accumulate_product(state, Zs, V[:, :C_in].transpose(0, 2, 1))
        if want_gx:
            Q = INPUT_GRADS.get_rows_apart((16, C_in, T), x.dtype)
            np.matmul(UT, Zs, out=Q[:, :C_in])
            input_adjoint_images(Q, gx, n0, n1, TH, TW, ph, pw, 0)

    states = run_tasks(task, range(0, N, nb), lambda: [None, None, None])
    gW = gb = None
    if want_gw:
        S = sum_accumulators(states)
        gW = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)
        over_filters(lambda o0, o1: weight_untransform_raw(S, gW, o0, o1), C_out, C_in)
    if want_gb:
        total = np.zeros(C_out)
        for state in states:  # in thread order: the same sum on every run
            if state[2] is not None:
                total += state[2]
        gb = total.astype(x.dtype)
    return gx, gW, gb
