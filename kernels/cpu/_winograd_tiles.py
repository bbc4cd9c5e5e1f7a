"""The padded-tile layout both Winograd variants share (``conv_winograd.py``, ``conv_winograd4.py``).

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
