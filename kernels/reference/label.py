"""Reference connected-component labelling of a 2-D binary mask: two-pass union-find, plain loops.

Foreground = nonzero pixels. Two foreground pixels are connected when they are 4-neighbours
(``connectivity=1``: up, down, left, right) or 8-neighbours (``connectivity=2``: also the four
diagonals), and a component is a maximal connected set.

Pass 1 scans rows top to bottom, columns left to right. A foreground pixel looks at its
neighbours already visited (left and up; with 8-connectivity also up-left and up-right): with
none it opens a new provisional label, otherwise it takes one of theirs and records that all of
them are the same component (``union`` in a disjoint-set forest whose root is always the
smallest label of the set). Pass 2 replaces every provisional label by its root and renumbers
the roots ``1..count`` in the order their components are first met in the scan, so component
``k`` is the ``k``-th one whose first pixel (raster order) is reached (as
``scipy.ndimage.label`` numbers them). Background stays 0.
"""
import numpy as np


def _find(parent, a):
    """Root of ``a``'s set."""
    while parent[a] != a:
        a = parent[a]
    return a


def _union(parent, a, b):
    """Merge the sets of ``a`` and ``b``; the smaller root becomes the root of both."""
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def connected_components(mask, connectivity):
    """``(labels int32 (H, W), count)`` of the nonzero pixels of the 2-D ``mask``."""
    mask = np.asarray(mask) != 0
    H, W = mask.shape
    if connectivity == 1:
        earlier = [(0, -1), (-1, 0)]
    else:
        earlier = [(0, -1), (-1, -1), (-1, 0), (-1, 1)]
    labels = np.zeros((H, W), dtype=np.int32)
    parent = [0]                                    # parent[0] is unused: label 0 is background
    for i in range(H):
        for j in range(W):
            if not mask[i, j]:
                continue
            seen = [int(labels[i + di, j + dj]) for di, dj in earlier
                    if 0 <= i + di < H and 0 <= j + dj < W and mask[i + di, j + dj]]
            if not seen:
                parent.append(len(parent))          # a new set, its own root
                labels[i, j] = len(parent) - 1
                continue
            labels[i, j] = seen[0]
            for other in seen[1:]:
                _union(parent, seen[0], other)
    final = [0] * len(parent)
    count = 0
    for i in range(H):
        for j in range(W):
            if labels[i, j]:
                root = _find(parent, int(labels[i, j]))
                if final[root] == 0:
                    count += 1
                    final[root] = count
                labels[i, j] = final[root]
    return labels, count
