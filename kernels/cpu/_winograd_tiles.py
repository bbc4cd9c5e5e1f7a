"""What both Winograd variants share (``conv_winograd.py``, ``conv_winograd4.py``): the padded-tile
layout, and the filters read as rows of taps for the weight transforms.

The tiles of a block of ``rows`` tile rows are numbered u = tr·(TW + 1) + tx: each tile row ends
with ONE PADDING TILE (tx = TW), so each stage of a transform is a long unit-stride loop over u
(see the comment above the transforms in ``conv_winograd.py``). The padding tiles must hold 0
in the transformed inputs: their GEMM columns are computed and then never read.
"""
from numba import njit


@njit(cache=True, inline="always")
def zero_padding_tiles(V, c, toff, rows, TW):
    """V[k, c, toff + tr·(TW + 1) + TW] = 0 for every k and tile row tr (finite, whatever the
    neighbouring data the transform's loops read into those slots)."""
    for tr in range(rows):
        for k in range(V.shape[0]):
            V[k, c, toff + tr * (TW + 1) + TW] = 0


@njit(cache=True, inline="always")
def gather_taps(W, o, flipped_transposed, g):
    """g[i, j, c] = W[o, c, i, j] (or W[c, o, 2 − i, 2 − j] when ``flipped_transposed``, the input
    gradient's filter read in place): the 9 taps of output channel o as rows over c, so that the
    weight transforms run unit-stride loops over c (the tap-by-tap form took 4.6 ms for 256 × 256
    filters)."""
    for c in range(g.shape[2]):
        for i in range(3):
            for j in range(3):
                g[i, j, c] = W[c, o, 2 - i, 2 - j] if flipped_transposed else W[o, c, i, j]


@njit(cache=True, inline="always")
def scatter_taps(g, gw):
    """gw[c, i, j] = g[3i + j, c]: the 9 rows over c of a weight untransform written as the filters
    of one output channel (gw (C_in, 3, 3), C-contiguous)."""
    for c in range(gw.shape[0]):
        for i in range(3):
            for j in range(3):
                gw[c, i, j] = g[3 * i + j, c]
