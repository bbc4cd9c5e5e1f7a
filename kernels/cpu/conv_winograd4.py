"""Winograd F(4×4, 3×3) transforms on the CPU: a 4×4 block of outputs from a 6×6 input tile.

Lavin & Gray (2016), interpolation points 0, ±1, ±2, ∞::

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

    Bᵀ = [[4,  0, −5,  0, 1, 0],        G = [[ 1/4,     0,    0],      Aᵀ = [[1, 1,  1, 1,  1, 0],
          [0, −4, −4,  1, 1, 0],             [−1/6,  −1/6, −1/6],            [0, 1, −1, 2, −2, 0],
          [0,  4, −4, −1, 1, 0],             [−1/6,   1/6, −1/6],            [0, 1,  1, 4,  4, 0],
          [0, −2, −1,  2, 1, 0],             [1/24,  1/12,  1/6],            [0, 1, −1, 8, −8, 1]]
          [0,  2, −1, −2, 1, 0],             [1/24, −1/12,  1/6],
          [0,  4,  0, −5, 0, 1]]             [   0,     0,    1]]

36 GEMMs of C_out·C_in·(OH·OW/16) multiply-adds, against 16 of C_out·C_in·(OH·OW/4) for
F(2×2, 3×3) (``conv_winograd.py``): 1.78× fewer again, 4× fewer than im2col. The price is
accuracy: the transforms multiply by up to 8 and 1/24, so float32 results carry ~10× the
rounding error of F(2×2) (relative error ~1e-6 of the output's scale instead of ~1e-7,
measured in ``tests/test_conv_variants.py``). The driver is ``conv_winograd.winograd_conv3x3``
(``tile=4``), and ``conv_winograd.winograd_backward_weight3x3(..., tile=4)`` for the weight gradient
(36 GEMMs contracting over the tiles); these are their transforms, in the same padded-tile layout: tile u =
tr·(TW + 1) + tx of a block of tile rows, one zero padding tile ending each tile row, each stage
a unit-stride loop over u with one store (vectorised), on the polyphase planes of the input.
"""
import numpy as np
from numba import njit

from ._jit import no_refcount
from ._winograd_tiles import gather_taps, scatter_taps, zero_padding_tiles

#: G's fractions as multipliers (float64): with divisions the weight transform of 256 × 256 filters
#: took 6× F(2×2)'s (3.7 ms), now 3× (2.3 vs 0.8 ms, one run); results differ from dividing in
#: the last bit of float64 at most
_SIXTH, _TWELFTH, _TWENTYFOURTH = 1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0


@njit(cache=True, nogil=True)
def transform_weight4_raw(W, U, o0, o1, flipped_transposed):
    """U[6a + b, o, c] = (G g Gᵀ)[a, b] for g = W[o, c] (or W[c, o, ::−1, ::−1] when
    ``flipped_transposed``), o in o0…o1, float64 arithmetic; per o, unit-stride loops over c."""
    C_in = U.shape[2]
    g = np.empty((3, 3, C_in))
    h = np.empty((6, 3, C_in))
    for o in range(o0, o1):
        gather_taps(W, o, flipped_transposed, g)
        for j in range(3):  # h = G g, column j
            g0, g1, g2 = g[0, j], g[1, j], g[2, j]
            for c in range(C_in):
                h[0, j, c] = 0.25 * g0[c]
                h[1, j, c] = -_SIXTH * (g0[c] + g1[c] + g2[c])
                h[2, j, c] = -_SIXTH * (g0[c] - g1[c] + g2[c])
                h[3, j, c] = _TWENTYFOURTH * (g0[c] + 2.0 * g1[c] + 4.0 * g2[c])
                h[4, j, c] = _TWENTYFOURTH * (g0[c] - 2.0 * g1[c] + 4.0 * g2[c])
                h[5, j, c] = g2[c]
        for a in range(6):  # U = h Gᵀ, row a
            h0, h1, h2 = h[a, 0], h[a, 1], h[a, 2]
            u = U[6 * a:6 * a + 6, o]
            for c in range(C_in):
                u[0, c] = 0.25 * h0[c]
            for c in range(C_in):
                u[1, c] = -_SIXTH * (h0[c] + h1[c] + h2[c])
            for c in range(C_in):
                u[2, c] = -_SIXTH * (h0[c] - h1[c] + h2[c])
            for c in range(C_in):
                u[3, c] = _TWENTYFOURTH * (h0[c] + 2.0 * h1[c] + 4.0 * h2[c])
            for c in range(C_in):
                u[4, c] = _TWENTYFOURTH * (h0[c] - 2.0 * h1[c] + 4.0 * h2[c])
            for c in range(C_in):
                u[5, c] = h2[c]


@njit(cache=True, inline="always")
def _bt_rows(o0, o1, o2, o3, o4, o5, d0, d1, d2, d3, d4, d5):
    """o_r = Σ_i Bᵀ[r, i] d_i for the six rows r of Bᵀ: 1-D unit-stride loops with one store each
    (2-D slices of V, whose inner stride Numba cannot see, kept LLVM from vectorising)."""
    n = o0.shape[0]
    for u in range(n):
        o0[u] = 4.0 * d0[u] - 5.0 * d2[u] + d4[u]
    for u in range(n):
        o1[u] = (d3[u] + d4[u]) - 4.0 * (d1[u] + d2[u])
    for u in range(n):
        o2[u] = (d4[u] - d3[u]) + 4.0 * (d1[u] - d2[u])
    for u in range(n):
        o3[u] = (d4[u] - d2[u]) + 2.0 * (d3[u] - d1[u])
    for u in range(n):
        o4[u] = (d4[u] - d2[u]) - 2.0 * (d3[u] - d1[u])
    for u in range(n):
        o5[u] = 4.0 * d1[u] - 5.0 * d3[u] + d5[u]


@njit(cache=True, inline="always")
def _quarter_row(row, n, shift, pad, Pa, lo, width):
    """Pa[b, lo + m] = pad[4m + b] for b < 4, m < width, after pad[shift : shift + n] = row[:n]: the
    four column phases of a row placed at ``shift`` in ``pad`` (whose other entries stay zero:
    the row's padding)."""
    for i in range(n):
        pad[shift + i] = row[i]
    for b in range(4):
        dst = Pa[b, lo:lo + width]
        for m in range(width):
            dst[m] = pad[4 * m + b]


@no_refcount
def _input_transform4_block_into(x, V, n, tr0, rows, TW, ph, pw, toff, P, R, pad, zero_padding):
    """V[6r + s, c, toff + u] = (Bᵀ d B)[r, s] for the 6×6 input tiles d = xpad[4ty : 4ty + 6, 4tx : 4tx + 6]
    of image n in tile rows tr0…tr0 + rows − 1, u = (ty − tr0)·(TW + 1) + tx (padding tiles tx = TW
    hold 0 with ``zero_padding``, as in ``conv_winograd``; V C-contiguous (36, C, ≥ toff + rows·(TW + 1))).

    Polyphase planes of the zero-padded rows: ``P[a, b][h·(TW + 1) + m] = xpad[4(tr0 + h) + a, 4m + b]``,
    so tile u holds d[i, j] = P[i % 4, j % 4][u + (i // 4)·(TW + 1) + j // 4]. Rows first (Bᵀ d, one
    pass per column phase b, over u…U so that the columns can read one tile to the right), then
    columns ((Bᵀ d) B, the same combinations of e_j = R[r, j % 4][u + j // 4])."""
    C, H = x.shape[1], x.shape[2]
    TWp = TW + 1
    U = rows * TWp
    n_copy = min(x.shape[3], 4 * TWp - pw)
    for c in range(C):
        xp = x[n, c]
        for h in range(rows + 1):
            lo = h * TWp
            for a in range(4):
                ih = 4 * (tr0 + h) + a - ph
                if 0 <= ih < H:
                    _quarter_row(xp[ih], n_copy, pw, pad, P[a], lo, TWp)
                else:
                    for b in range(4):
                        P[a, b, lo:lo + TWp] = 0
        for b in range(4):  # rows: Bᵀ d
            _bt_rows(R[b, 0], R[b, 1], R[b, 2], R[b, 3], R[b, 4], R[b, 5],
                     P[0, b, :U + 1], P[1, b, :U + 1], P[2, b, :U + 1], P[3, b, :U + 1],
                     P[0, b, TWp:TWp + U + 1], P[1, b, TWp:TWp + U + 1])
        for r in range(6):  # columns: (Bᵀ d) B
            k, lo, hi = 6 * r, toff, toff + U
            _bt_rows(V[k, c, lo:hi], V[k + 1, c, lo:hi], V[k + 2, c, lo:hi], V[k + 3, c, lo:hi],
                     V[k + 4, c, lo:hi], V[k + 5, c, lo:hi], R[0, r, :U], R[1, r, :U], R[2, r, :U], R[3, r, :U],
                     R[0, r, 1:U + 1], R[1, r, 1:U + 1])
        if zero_padding:
            zero_padding_tiles(V, c, toff, rows, TW)


@njit(cache=True, nogil=True)
def input_transform4_block(x, V, n0, n1, tr0, rows, TW, ph, pw, toff, zero_padding):
    """:func:`_input_transform4_block_into` with its scratch arrays allocated here, for images
    n0…n1 − 1 (image n0 + i at tile offset toff + i·rows·(TW + 1)), as in ``conv_winograd``."""
    TWp = TW + 1
    U = rows * TWp
    L = (rows + 1) * TWp + 1
    P = np.zeros((4, 4, L), dtype=x.dtype)
    R = np.empty((4, 6, U + 1), dtype=x.dtype)  # R[b, r]: row r of Bᵀ d on column phase b
    pad = np.zeros(4 * TWp, dtype=x.dtype)
    for n in range(n0, n1):
        _input_transform4_block_into(x, V, n, tr0, rows, TW, ph, pw, toff + (n - n0) * U, P, R, pad, zero_padding)


@njit(cache=True, inline="always")
def _at_rows(o0, o1, o2, o3, m0, m1, m2, m3, m4, m5):
    """o_a = Σ_i Aᵀ[a, i] m_i for the four rows a of Aᵀ (1-D loops, one store each)."""
    n = o0.shape[0]
    for u in range(n):
        o0[u] = m0[u] + (m1[u] + m2[u]) + (m3[u] + m4[u])
    for u in range(n):
        o1[u] = (m1[u] - m2[u]) + 2.0 * (m3[u] - m4[u])
    for u in range(n):
        o2[u] = (m1[u] + m2[u]) + 4.0 * (m3[u] + m4[u])
    for u in range(n):
        o3[u] = (m1[u] - m2[u]) + 8.0 * (m3[u] - m4[u]) + m5[u]


@njit(cache=True, inline="always")
def _at_rows_interleaved(out, m0, m1, m2, m3, m4, m5, bias):
    """out[4u + a] = bias + Σ_i Aᵀ[a, i] m_i[u] (the rows of :func:`_at_rows`, stored interleaved:
    one loop, four stores into one array)."""
    for u in range(m0.shape[0]):
        out[4 * u] = m0[u] + (m1[u] + m2[u]) + (m3[u] + m4[u]) + bias
        out[4 * u + 1] = (m1[u] - m2[u]) + 2.0 * (m3[u] - m4[u]) + bias
        out[4 * u + 2] = (m1[u] + m2[u]) + 4.0 * (m3[u] + m4[u]) + bias
        out[4 * u + 3] = (m1[u] - m2[u]) + 8.0 * (m3[u] - m4[u]) + m5[u] + bias


@no_refcount
def _output_transform4_block_into(M, y, bias, n, tr0, rows, TW, toff, S, Y):
    """y[n, co, 4ty + a, 4tx + b] = bias[co] + (Aᵀ m A)[a, b] with m[i, j] = M[6i + j, co, toff + u],
    u = (ty − tr0)·(TW + 1) + tx (cropped at the border; padding tiles skipped). Rows (Aᵀ m, per
    column j), then columns (the same combinations over j), stored with the four column phases b
    interleaved, Y[a, 4u + b], so that output row 4ty + a is the contiguous stretch
    Y[a, 4(ty − tr0)(TW + 1) :][:OW] (interleaving in the copy out instead took longer, as in F(2×2))."""
    C_out, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    TWp = TW + 1
    U = rows * TWp
    for co in range(C_out):
        lo, hi = toff, toff + U
        for j in range(6):
            _at_rows(S[j, 0], S[j, 1], S[j, 2], S[j, 3], M[j, co, lo:hi], M[6 + j, co, lo:hi], M[12 + j, co, lo:hi],
                     M[18 + j, co, lo:hi], M[24 + j, co, lo:hi], M[30 + j, co, lo:hi])
        bc = bias[co]
        for a in range(4):
            _at_rows_interleaved(Y[a], S[0, a], S[1, a], S[2, a], S[3, a], S[4, a], S[5, a], bc)
        yp = y[n, co]
        for tr in range(rows):
            oh, lo = 4 * (tr0 + tr), 4 * tr * TWp
            for a in range(min(4, OH - oh)):
                y_row, src = yp[oh + a], Y[a, lo:lo + OW]
                for w in range(OW):
                    y_row[w] = src[w]


@njit(cache=True, nogil=True)
def output_transform4_block(M, y, bias, n0, n1, tr0, rows, TW, toff):
    """:func:`_output_transform4_block_into` with its scratch arrays allocated here, for images
    n0…n1 − 1 (image n0 + i at tile offset toff + i·rows·(TW + 1)), as in ``conv_winograd``."""
    TWp = TW + 1
    U = rows * TWp
    S = np.empty((6, 4, U), dtype=y.dtype)  # S[j, a] = (Aᵀ m)[a, j]
    Y = np.empty((4, 4 * U), dtype=y.dtype)  # Y[a, 4u + b]
    for n in range(n0, n1):
        _output_transform4_block_into(M, y, bias, n, tr0, rows, TW, toff + (n - n0) * U, S, Y)


# ---- weight gradient ------------------------------------------------------------------------------
# As for F(2×2) (``conv_winograd.winograd_backward_weight3x3``): Z = A gY Aᵀ (6×6 from a 4×4
# output-gradient tile, A = Aᵀᵀ 6×4), ∂L/∂U[k] = Σ_tiles Z[k] V[k]ᵀ (36 GEMMs), gW = Gᵀ S G.
@njit(cache=True, inline="always")
def _a_rows(o0, o1, o2, o3, o4, o5, g0, g1, g2, g3):
    """o_i = Σ_a A[i, a] g_a for the six rows i of A = Aᵀᵀ: g0, g0 + g1 + g2 + g3, g0 − g1 + g2 − g3,
    g0 + 2g1 + 4g2 + 8g3, g0 − 2g1 + 4g2 − 8g3, g3 (1-D loops, one store each)."""
    n = o0.shape[0]
    for u in range(n):
        o0[u] = g0[u]
    for u in range(n):
        o1[u] = (g0[u] + g2[u]) + (g1[u] + g3[u])
    for u in range(n):
        o2[u] = (g0[u] + g2[u]) - (g1[u] + g3[u])
    for u in range(n):
        o3[u] = (g0[u] + 4.0 * g2[u]) + 2.0 * (g1[u] + 4.0 * g3[u])
    for u in range(n):
        o4[u] = (g0[u] + 4.0 * g2[u]) - 2.0 * (g1[u] + 4.0 * g3[u])
    for u in range(n):
        o5[u] = g3[u]


@no_refcount
def _gy_transform4_block_into(gy, Z, n, tr0, rows, TW, toff, Gp, Hr, pad):
    """Z[6i + j, co, toff + u] = (A g Aᵀ)[i, j] for the 4×4 tiles g = gy[n, co, 4ty : 4ty + 4, 4tx : 4tx + 4]
    (0 outside OH × OW) in tile rows tr0…tr0 + rows − 1, u = (ty − tr0)·(TW + 1) + tx; 0 on the
    padding tiles. Polyphase planes ``Gp[a, b][h·(TW + 1) + m] = gy[4(tr0 + h) + a, 4m + b]`` (their
    padding-tile slots stay 0 from the caller's zeros; ``pad`` is zero beyond OW); rows (A g, per
    column phase b), then columns (the same combinations over b)."""
    C_out, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    TWp = TW + 1
    U = rows * TWp
    for co in range(C_out):
        gp = gy[n, co]
        for h in range(rows):
            lo = h * TWp
            for a in range(4):
                oh = 4 * (tr0 + h) + a
                if oh < OH:
                    _quarter_row(gp[oh], OW, 0, pad, Gp[a], lo, TW)
                else:
                    for b in range(4):
                        for m in range(TW):
                            Gp[a, b, lo + m] = 0
        for b in range(4):  # rows: A g
            _a_rows(Hr[b, 0], Hr[b, 1], Hr[b, 2], Hr[b, 3], Hr[b, 4], Hr[b, 5],
                    Gp[0, b, :U], Gp[1, b, :U], Gp[2, b, :U], Gp[3, b, :U])
        lo, hi = toff, toff + U
        for i in range(6):  # columns: (A g) Aᵀ
            k = 6 * i
            _a_rows(Z[k, co, lo:hi], Z[k + 1, co, lo:hi], Z[k + 2, co, lo:hi], Z[k + 3, co, lo:hi],
                    Z[k + 4, co, lo:hi], Z[k + 5, co, lo:hi], Hr[0, i], Hr[1, i], Hr[2, i], Hr[3, i])


@njit(cache=True, nogil=True)
def gy_transform4_block(gy, Z, n0, n1, tr0, rows, TW, toff):
    """:func:`_gy_transform4_block_into` with its scratch arrays allocated here, for images
    n0…n1 − 1 (image n0 + i at tile offset toff + i·rows·(TW + 1)), as in ``conv_winograd``."""
    TWp = TW + 1
    U = rows * TWp
    Gp = np.zeros((4, 4, U), dtype=gy.dtype)  # Gp[a, b, tr·TWp + TW] stays 0: the padding tiles
    Hr = np.empty((4, 6, U), dtype=gy.dtype)  # Hr[b, i]: row i of A g on column phase b
    pad = np.zeros(4 * TW, dtype=gy.dtype)
    for n in range(n0, n1):
        _gy_transform4_block_into(gy, Z, n, tr0, rows, TW, toff + (n - n0) * U, Gp, Hr, pad)


@njit(cache=True, inline="always")
def _gt_rows(o0, o1, o2, m0, m1, m2, m3, m4, m5):
    """o_a = Σ_i Gᵀ[a, i] m_i for the three rows a of Gᵀ, in float64 (1-D loops, one store each)."""
    for c in range(o0.shape[0]):
        o0[c] = (0.25 * np.float64(m0[c]) - _SIXTH * (np.float64(m1[c]) + np.float64(m2[c]))
                 + _TWENTYFOURTH * (np.float64(m3[c]) + np.float64(m4[c])))
    for c in range(o0.shape[0]):
        o1[c] = _SIXTH * (np.float64(m2[c]) - np.float64(m1[c])) + _TWELFTH * (np.float64(m3[c]) - np.float64(m4[c]))
    for c in range(o0.shape[0]):
        o2[c] = (_SIXTH * (np.float64(m3[c]) + np.float64(m4[c]) - np.float64(m1[c]) - np.float64(m2[c]))
                 + np.float64(m5[c]))


@no_refcount
def _weight_untransform4_into(S, gW, o0, o1, t, g):
    """gW[o, c] = Gᵀ s G (3×3) with s[i, j] = S[6i + j, o, c], for o in o0…o1 (float64 arithmetic);
    the rows of Gᵀ: (¼, −⅙, −⅙, 1/24, 1/24, 0), (0, −⅙, ⅙, 1/12, −1/12, 0), (0, −⅙, −⅙, ⅙, ⅙, 1).
    As the F(2×2) untransform: t[a, j] = (Gᵀ s)[a, j] and g[3a + b] = (t G)[a, b] as rows over c
    (unit-stride loops, one store each), then scattered into gW[o]."""
    for o in range(o0, o1):
        for j in range(6):  # t = Gᵀ s, column j
            s0, s1, s2 = S[j, o], S[6 + j, o], S[12 + j, o]
            s3, s4, s5 = S[18 + j, o], S[24 + j, o], S[30 + j, o]
            _gt_rows(t[0, j], t[1, j], t[2, j], s0, s1, s2, s3, s4, s5)
        for a in range(3):  # g = t G, row a
            _gt_rows(g[3 * a], g[3 * a + 1], g[3 * a + 2], t[a, 0], t[a, 1], t[a, 2], t[a, 3], t[a, 4], t[a, 5])
        scatter_taps(g, gW[o])


@njit(cache=True, nogil=True)
def weight_untransform4_raw(S, gW, o0, o1):
    """:func:`_weight_untransform4_into` with its scratch arrays allocated here."""
    C_in = S.shape[2]
    _weight_untransform4_into(S, gW, o0, o1, np.empty((3, 6, C_in)), np.empty((9, C_in)))
