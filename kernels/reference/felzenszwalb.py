"""Reference graph-based image segmentation (Felzenszwalb & Huttenlocher, IJCV 2004), plain loops.

The image is a graph: one vertex per pixel, one edge per pair of 8-neighbours, weighted by the
Euclidean distance of their (smoothed) colours ``w(p, q) = ‖I(p) − I(q)‖₂``. Every pixel starts
as its own component; the edges are visited by increasing weight (ties: the order in which
:func:`graph_edges` lists them, kept by a stable sort) and an edge joining components ``A ≠ B``
merges them when

    w <= min(Int(A) + k/|A|, Int(B) + k/|B|)

where ``Int(C)`` is the largest edge weight of the minimum spanning tree of ``C`` (0 for one
pixel; since edges arrive sorted, the weight of the edge that built ``C`` last) and ``k`` the
scale: a larger ``k`` prefers larger components. Then a second pass over the same sorted edges
merges every pair of different components of which one has fewer than ``min_size`` pixels.

Components are numbered ``0..n−1`` in raster order (rows, then columns) of their first pixel.
The partition does not depend on which root a union picks, so this version (no ranks, no path
compression) and the Numba one (``kernels/cpu/felzenszwalb.py``) give the same labels.
"""
import math

import numpy as np


def gaussian_kernel1d(sigma):
    """Normalised taps ``exp(−x²/2σ²)`` for ``x = −r..r``, ``r = ⌈4σ⌉`` (``[1.0]`` when ``σ = 0``)."""
    if sigma <= 0:
        return np.ones(1)
    r = int(math.ceil(4.0 * sigma))
    taps = np.array([math.exp(-(x * x) / (2.0 * sigma * sigma)) for x in range(-r, r + 1)])
    return taps / taps.sum()


def gaussian_smooth(image, sigma):
    """Separable Gaussian blur of an ``(H, W, C)`` image, rows then columns, borders replicated."""
    img = np.asarray(image, dtype=np.float64)
    H, W, C = img.shape
    taps = gaussian_kernel1d(sigma)
    r = len(taps) // 2
    tmp = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            for c in range(C):
                s = 0.0
                for t in range(-r, r + 1):
                    s += taps[t + r] * img[i, min(max(j + t, 0), W - 1), c]
                tmp[i, j, c] = s
    out = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            for c in range(C):
                s = 0.0
                for t in range(-r, r + 1):
                    s += taps[t + r] * tmp[min(max(i + t, 0), H - 1), j, c]
                out[i, j, c] = s
    return out


def graph_edges(image):
    """``[(w, p, q)]``: per pixel ``p = i·W + j`` in raster order, its neighbours right, down-left,
    down and down-right (each 8-neighbour pair once), ``w = sqrt(Σ_c (I_p,c − I_q,c)²)``."""
    img = np.asarray(image, dtype=np.float64)
    H, W, C = img.shape
    edges = []
    for i in range(H):
        for j in range(W):
            for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1)):
                y, x = i + di, j + dj
                if 0 <= y < H and 0 <= x < W:
                    s = 0.0
                    for c in range(C):
                        d = img[i, j, c] - img[y, x, c]
                        s += d * d
                    edges.append((math.sqrt(s), i * W + j, y * W + x))
    return edges


def _find(parent, a):
    while parent[a] != a:
        a = parent[a]
    return a


def segment(image, k, min_size):
    """Labels ``int32 (H, W)`` of the components of an already smoothed ``(H, W, C)`` image."""
    img = np.asarray(image, dtype=np.float64)
    H, W, _ = img.shape
    n = H * W
    edges = sorted(graph_edges(img), key=lambda e: e[0])       # stable: ties keep the listing order
    parent = list(range(n))
    size = [1] * n
    threshold = [k / 1.0] * n                                    # Int(C) + k/|C| with Int = 0
    for w, p, q in edges:
        a, b = _find(parent, p), _find(parent, q)
        if a != b and w <= threshold[a] and w <= threshold[b]:
            parent[b] = a
            size[a] += size[b]
            threshold[a] = w + k / size[a]
    for w, p, q in edges:
        a, b = _find(parent, p), _find(parent, q)
        if a != b and (size[a] < min_size or size[b] < min_size):
            parent[b] = a
            size[a] += size[b]
    labels = np.zeros((H, W), dtype=np.int32)
    number = {}
    for i in range(H):
        for j in range(W):
            root = _find(parent, i * W + j)
            if root not in number:
                number[root] = len(number)
            labels[i, j] = number[root]
    return labels


def felzenszwalb(image, scale=1.0, sigma=0.8, min_size=20):
    """Segment an ``(H, W)`` or ``(H, W, C)`` image: :func:`gaussian_smooth` with ``sigma``, then
    :func:`segment` with ``k = scale``. Returns labels ``int32 (H, W)`` numbered ``0..n−1``."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    return segment(gaussian_smooth(img, sigma), float(scale), int(min_size))
