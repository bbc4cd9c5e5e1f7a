"""Numba connected-component labelling of a 2-D binary mask: two-pass union-find.

The algorithm and the numbering are those of ``kernels/reference/label.py`` (components
numbered ``1..count`` in raster order of their first pixel, background 0); this version adds
path halving to ``find`` and runs compiled, about a millisecond for 512 x 512.

Not a device op (it has no CUDA twin and no ``KERNELS`` entry): metrics call it on NumPy arrays.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]               # path halving: point at the grandparent
        a = parent[a]
    return a


@njit(cache=True)
def _join(parent, current, other):
    """``other`` if the pixel has no label yet, else merge both sets; returns a label of the set."""
    if current == 0:
        return other
    ra, rb = _find(parent, current), _find(parent, other)
    if ra < rb:
        parent[rb] = ra
        return ra
    parent[ra] = rb
    return rb


@njit(cache=True)
def _label(mask, eight, labels, parent):
    H, W = mask.shape
    n = 0
    for i in range(H):
        for j in range(W):
            if not mask[i, j]:
                continue
            cur = 0
            if j > 0 and mask[i, j - 1]:
                cur = labels[i, j - 1]
            if i > 0:
                if eight and j > 0 and mask[i - 1, j - 1]:
                    cur = _join(parent, cur, labels[i - 1, j - 1])
                if mask[i - 1, j]:
                    cur = _join(parent, cur, labels[i - 1, j])
                if eight and j + 1 < W and mask[i - 1, j + 1]:
                    cur = _join(parent, cur, labels[i - 1, j + 1])
            if cur == 0:
                n += 1
                parent[n] = n
                cur = n
            labels[i, j] = cur
    final = np.zeros(n + 1, dtype=np.int32)
    count = 0
    for i in range(H):
        for j in range(W):
            if labels[i, j] != 0:
                root = _find(parent, labels[i, j])
                if final[root] == 0:
                    count += 1
                    final[root] = count
                labels[i, j] = final[root]
    return count


def connected_components(mask, connectivity):
    """``(labels int32 (H, W), count)`` of the nonzero pixels of the 2-D ``mask``;
    ``connectivity`` 1 (4-neighbours) or 2 (8-neighbours)."""
    mask = np.ascontiguousarray(np.asarray(mask) != 0)
    labels = np.zeros(mask.shape, dtype=np.int32)
    parent = np.zeros(mask.size + 1, dtype=np.int32)
    count = _label(mask, connectivity == 2, labels, parent) if mask.size else 0
    return labels, int(count)
