"""Exact Euclidean distance transforms in Numba (the math, by brute force, is in
``kernels/reference/distance.py``).

Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions" (2012): the squared
Euclidean distance transform of a feature set is separable,

    D(y, x) = min over x' of [ (x − x')² + G(y, x') ],   G(y, x') = min over features (y', x') of (y − y')²

1. columns: ``G`` from two sweeps per column (the nearest feature above, then below);
2. rows: ``D`` is the lower envelope of the parabolas ``q ↦ (q − x')² + G(y, x')``, one per
   column ``x'`` with a finite ``G``. The envelope is built left to right keeping the sites ``v``
   and the boundaries ``z`` between neighbouring parabolas (a new parabola removes those it hides:
   their boundary lies right of its intersection ``s`` with the previous one), then read off at
   every integer ``q``. ``O(W)`` per row.

All distances are integers, so the results are exact: at an integer boundary both parabolas
have the same value there.

These are data-path helpers (the U-Net weight map), not device kernels: the module has no
``KERNELS`` tuple, so the device registries skip it.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _column_pass(dense, index, c0, c1, g):
    """``g[:, c0..c1]`` = squared vertical distance to the nearest pixel with ``dense == index``
    in the same column (inf when the column has none). Other columns are not touched."""
    H = dense.shape[0]
    for x in range(c0, c1 + 1):
        last = -1
        for y in range(H):
            if dense[y, x] == index:
                last = y
            g[y, x] = np.inf if last < 0 else float((y - last) * (y - last))
        last = -1
        for y in range(H - 1, -1, -1):
            if dense[y, x] == index:
                last = y
            if last >= 0:
                d = float((last - y) * (last - y))
                if d < g[y, x]:
                    g[y, x] = d


@njit(cache=True)
def _row_envelope(f, c0, c1, out, v, z):
    """``out[q] = min over sites p in [c0, c1] with finite f[p] of (q − p)² + f[p]`` for every
    ``q`` (inf when no site is finite). ``v`` (int, ≥ W) and ``z`` (float, ≥ W + 1) are scratch."""
    k = -1
    for q in range(c0, c1 + 1):
        fq = f[q]
        if fq == np.inf:
            continue
        if k < 0:
            k = 0
            v[0] = q
            z[0] = -np.inf
            z[1] = np.inf
            continue
        while True:  # z[0] = −inf, so this stops at k = 0 at the latest
            p = v[k]
            s = ((fq + q * q) - (f[p] + p * p)) / (2.0 * (q - p))
            if s <= z[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = np.inf
    W = out.shape[0]
    if k < 0:
        for q in range(W):
            out[q] = np.inf
        return
    k = 0
    for q in range(W):
        while z[k + 1] < q:
            k += 1
        p = v[k]
        out[q] = (q - p) * (q - p) + f[p]


@njit(cache=True)
def _boxes(dense, count):
    """Bounding boxes ``(r0, r1, c0, c1)`` (inclusive) of the pixels with ``dense == i``, i < count."""
    boxes = np.empty((count, 4), dtype=np.int64)
    H, W = dense.shape
    for i in range(count):
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = H, -1, W, -1
    for y in range(H):
        for x in range(W):
            i = dense[y, x]
            if i >= 0:
                boxes[i, 0] = min(boxes[i, 0], y)
                boxes[i, 1] = max(boxes[i, 1], y)
                boxes[i, 2] = min(boxes[i, 2], x)
                boxes[i, 3] = max(boxes[i, 3], x)
    return boxes


@njit(cache=True)
def _two_nearest(dense, count, d1, d2):
    """Squared distances to the nearest (``d1``) and second-nearest (``d2``) object, objects being
    the pixel sets ``dense == i`` for ``i < count``; ``d1``, ``d2`` start at inf."""
    H, W = dense.shape
    boxes = _boxes(dense, count)
    g = np.empty((H, W))
    row = np.empty(W)
    v = np.empty(W, dtype=np.int64)
    z = np.empty(W + 1)
    for i in range(count):
        c0, c1 = boxes[i, 2], boxes[i, 3]
        if c1 < 0:
            continue  # an index with no pixel
        _column_pass(dense, i, c0, c1, g)
        for y in range(H):
            _row_envelope(g[y], c0, c1, row, v, z)
            for x in range(W):
                d = row[x]
                if d < d1[y, x]:
                    d2[y, x] = d1[y, x]
                    d1[y, x] = d
                elif d < d2[y, x]:
                    d2[y, x] = d


def _dense_objects(instances):
    """``(dense, count)``: object ids renumbered ``0..count−1`` (int64), background (≤ 0) as −1."""
    labels, inverse = np.unique(instances, return_inverse=True)
    inverse = inverse.reshape(instances.shape).astype(np.int64)
    n_background = int(np.count_nonzero(labels <= 0))
    return inverse - n_background if n_background else inverse, labels.size - n_background


def squared_edt(features):
    """Squared Euclidean distance from every pixel to the nearest ``True`` pixel of ``features``.

    Args:
        features: boolean (or 0/1) array ``(H, W)``.

    Returns:
        float64 ``(H, W)``: ``min over feature pixels (fy, fx) of (y − fy)² + (x − fx)²``; 0 on the
        features, inf everywhere when there is no feature pixel.
    """
    features = np.asarray(features, dtype=bool)
    dense = np.where(features, 0, -1).astype(np.int64)
    d1 = np.full(features.shape, np.inf)
    d2 = np.full(features.shape, np.inf)
    _two_nearest(dense, 1, d1, d2)
    return d1


def two_nearest_instance_distances(instances):
    """Euclidean distances from every pixel to the nearest and second-nearest object.

    Args:
        instances: integer ``(H, W)``; 0 (or negative) = background, each positive id one object
            (its pixels need not be connected).

    Returns:
        ``(d1, d2)``, float64 ``(H, W)`` each, ``d1 <= d2``: the distance to an object is the distance
        to its closest pixel (0 inside it); inf where the mask holds fewer objects.
    """
    instances = np.asarray(instances)
    dense, count = _dense_objects(instances)
    d1 = np.full(instances.shape, np.inf)
    d2 = np.full(instances.shape, np.inf)
    _two_nearest(np.ascontiguousarray(dense), count, d1, d2)
    return np.sqrt(d1), np.sqrt(d2)
