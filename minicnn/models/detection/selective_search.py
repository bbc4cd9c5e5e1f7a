"""Selective search (Uijlings et al., IJCV 2013): class-agnostic box proposals by hierarchical grouping.

For each *strategy* (a colour space, a Felzenszwalb scale ``k`` and a similarity combination):

1. initial regions: Felzenszwalb–Huttenlocher segmentation (``kernels/cpu/felzenszwalb.py``) of the
   image in that colour space (values × 255, ``σ = 0.8``); the paper's ``min_size = k`` was set on
   images of about 500 × 375 pixels, so here ``min_size = max(1, round(k · H·W / (500·375)))``
   (``k = 100`` gives 9 pixels on a 128 × 128 canvas);
2. region features: a colour histogram (25 bins per channel over ``[0, 1]``) and a texture
   histogram (per channel, Gaussian derivatives ``σ = 1`` in 8 orientations ``θ = jπ/4``, the
   rectified responses ``max(0, cos θ·∂x + sin θ·∂y)`` scaled by their image maximum, 10 bins each),
   both L1-normalised, the size ``|r|`` in pixels and the bounding box;
3. hierarchical grouping: the similarity of two neighbouring regions (8-connected pixels) is a sum of
     ``s_colour = Σ_k min(c_i^k, c_j^k)``, ``s_texture = Σ_k min(t_i^k, t_j^k)``,
     ``s_size = 1 − (|r_i| + |r_j|)/|im|``, ``s_fill = 1 − (|BB_ij| − |r_i| − |r_j|)/|im|``
   (``BB_ij`` the box around both); the most similar pair (ties: the smallest ``(i, j)``) is merged
   into a new region (size-weighted histograms, the union box), its similarities to its
   neighbours computed, until one region is left. Every region of the hierarchy is a proposal.

Ranking (the paper's): in each strategy the region made last gets position 1, the one before 2,
…; its value is ``position × RND`` with RND uniform in ``[0, 1)`` (a seeded generator); the boxes
of all strategies are sorted by value and duplicates are dropped, the best-ranked copy kept.

Colour spaces: ``"hsv"``, ``"rgi"`` (normalised ``r, g`` and intensity) and ``"i"`` for RGB
images; a grey image has no colour, so its "colour spaces" are ``"i"`` (the intensity) and
``"ig"`` (the intensity and its gradient magnitude scaled to ``[0, 1]``). Presets (grey / RGB):
``"single"``: one strategy (``i``/``hsv``, ``k = 100``, CTSF); ``"fast"`` (the paper's fast mode):
2 colour spaces × ``k ∈ {50, 100}`` × {CTSF, TSF} = 8 strategies; ``"quality"``: 2 (grey) or 3
(RGB) colour spaces × ``k ∈ {50, 100, 150, 300}`` × {CTSF, TSF, F, S}.
"""
import hashlib
import os

import numpy as np
from numba import njit

from ...kernels.cpu.felzenszwalb import felzenszwalb, gaussian_smooth
from ...tensor import to_host

__all__ = ["selective_search", "strategies_for", "region_features", "hierarchical_grouping",
           "cached_proposals", "proposal_recall", "COLOUR_BINS", "TEXTURE_BINS"]

COLOUR_BINS = 25
TEXTURE_BINS = 10
ORIENTATIONS = 8
_SIMILARITIES = {"CTSF": (1, 1, 1, 1), "TSF": (0, 1, 1, 1), "F": (0, 0, 0, 1), "S": (0, 0, 1, 0)}


def _colour_space(image, space):
    """``(H, W, C')`` float64 in ``[0, 1]`` of a ``(C, H, W)`` image in ``space`` (module docstring)."""
    x = np.moveaxis(np.asarray(image, np.float64), 0, -1)
    x = np.clip(x, 0.0, 1.0)
    inten = x.mean(axis=2, keepdims=True)
    if space == "i":
        return inten
    if space == "ig":
        gy, gx = np.gradient(inten[:, :, 0]) if min(inten.shape[:2]) > 1 else (inten[:, :, 0] * 0,) * 2
        mag = np.hypot(gx, gy)
        return np.concatenate([inten, (mag / mag.max() if mag.max() > 0 else mag)[:, :, None]], axis=2)
    if space == "rgi":
        s = x.sum(axis=2, keepdims=True)
        rg = np.where(s > 0, x[:, :, :2] / np.maximum(s, 1e-12), 1.0 / 3.0)
        return np.concatenate([rg, inten], axis=2)
    if space == "hsv":
        mx, mn = x.max(axis=2), x.min(axis=2)
        d = mx - mn
        safe = np.where(d > 0, d, 1.0)
        r, g, b = x[:, :, 0], x[:, :, 1], x[:, :, 2]
        h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
        h = np.where(d > 0, h / 6.0, 0.0)
        s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
        return np.stack([h, s, mx], axis=2)
    raise ValueError(f"selective_search: unknown colour space {space!r}")


def strategies_for(channels, mode="fast"):
    """The ``(colour_space, k, similarity)`` strategies of a preset for ``channels`` (1 or 3)."""
    spaces = ("i", "ig") if channels == 1 else ("hsv", "rgi", "i")
    if mode == "single":
        return [(spaces[0], 100, "CTSF")]
    if mode == "fast":
        return [(s, k, sim) for s in spaces[:2] for k in (50, 100) for sim in ("CTSF", "TSF")]
    if mode == "quality":
        return [(s, k, sim) for s in spaces for k in (50, 100, 150, 300) for sim in ("CTSF", "TSF", "F", "S")]
    raise ValueError(f"selective_search: mode must be 'single', 'fast' or 'quality', got {mode!r}")


def _bin_maps(space_image):
    """Per pixel the colour bin of each channel ``c·25 + b`` and the texture bin of each
    (channel, orientation) ``(c·8 + o)·10 + b``: int64 ``(H·W, C')`` and ``(H·W, 8·C')``."""
    H, W, C = space_image.shape
    colour = np.minimum((space_image * COLOUR_BINS).astype(np.int64), COLOUR_BINS - 1)
    colour = colour + np.arange(C) * COLOUR_BINS
    tex = np.zeros((H, W, C, ORIENTATIONS), np.int64)
    smooth = gaussian_smooth(space_image, 1.0)
    for c in range(C):
        if min(H, W) > 1:
            gy, gx = np.gradient(smooth[:, :, c])
        else:
            gy = gx = np.zeros((H, W))
        for o in range(ORIENTATIONS):
            t = o * np.pi / 4
            r = np.maximum(np.cos(t) * gx + np.sin(t) * gy, 0.0)
            top = r.max()
            r = r / top if top > 0 else r
            tex[:, :, c, o] = np.minimum((r * TEXTURE_BINS).astype(np.int64), TEXTURE_BINS - 1)
    tex = tex + (np.arange(C * ORIENTATIONS) * TEXTURE_BINS).reshape(C, ORIENTATIONS)
    return colour.reshape(H * W, C), tex.reshape(H * W, C * ORIENTATIONS)


@njit(cache=True)
def _accumulate(labels, colour_bins, texture_bins, n, W, colour, texture, sizes, boxes):
    for p in range(labels.shape[0]):
        r = labels[p]
        for m in range(colour_bins.shape[1]):
            colour[r, colour_bins[p, m]] += 1.0
        for m in range(texture_bins.shape[1]):
            texture[r, texture_bins[p, m]] += 1.0
        sizes[r] += 1
        i, j = p // W, p % W
        boxes[r, 0] = min(boxes[r, 0], j)
        boxes[r, 1] = min(boxes[r, 1], i)
        boxes[r, 2] = max(boxes[r, 2], j + 1)
        boxes[r, 3] = max(boxes[r, 3], i + 1)


@njit(cache=True)
def _adjacency(labels, H, W, n, adj):
    """``adj[a, b] = True`` (a < b) for regions with 8-neighbouring pixels."""
    for i in range(H):
        for j in range(W):
            a = labels[i * W + j]
            for d in range(4):
                y = i if d == 0 else i + 1
                x = j + 1 if (d == 0 or d == 3) else (j - 1 if d == 1 else j)
                if y < H and 0 <= x < W:
                    b = labels[y * W + x]
                    if a != b:
                        adj[min(a, b), max(a, b)] = True


def region_features(labels, space_image):
    """Features of the regions of ``labels`` ``(H, W)`` (``0..n−1``) in an ``(H, W, C')`` colour space.

    Returns ``(sizes int64 (n,), boxes int64 (n, 4) (x1, y1, x2, y2) pixel edges, colour (n, 25·C'),
    texture (n, 80·C'), pairs int64 (P, 2))``: the histograms L1-normalised (each row sums to 1),
    ``pairs`` the neighbouring regions ``a < b``, sorted."""
    H, W = labels.shape
    n = int(labels.max()) + 1
    cb, tb = _bin_maps(space_image)
    C = space_image.shape[2]
    colour = np.zeros((n, COLOUR_BINS * C))
    texture = np.zeros((n, TEXTURE_BINS * ORIENTATIONS * C))
    sizes = np.zeros(n, np.int64)
    boxes = np.empty((n, 4), np.int64)
    boxes[:, :2], boxes[:, 2:] = max(H, W) + 1, -1
    flat = np.ascontiguousarray(labels.reshape(-1), dtype=np.int64)
    _accumulate(flat, cb, tb, n, W, colour, texture, sizes, boxes)
    colour /= colour.sum(axis=1, keepdims=True)
    texture /= texture.sum(axis=1, keepdims=True)
    adj = np.zeros((n, n), dtype=np.bool_)
    _adjacency(flat, H, W, n, adj)
    return sizes, boxes, colour, texture, np.argwhere(adj).astype(np.int64)


@njit(cache=True)
def _similarity(a, b, sizes, boxes, colour, texture, flags, area):
    s = 0.0
    if flags[0]:
        for m in range(colour.shape[1]):
            s += min(colour[a, m], colour[b, m])
    if flags[1]:
        for m in range(texture.shape[1]):
            s += min(texture[a, m], texture[b, m])
    if flags[2]:
        s += 1.0 - (sizes[a] + sizes[b]) / area
    if flags[3]:
        bw = max(boxes[a, 2], boxes[b, 2]) - min(boxes[a, 0], boxes[b, 0])
        bh = max(boxes[a, 3], boxes[b, 3]) - min(boxes[a, 1], boxes[b, 1])
        s += 1.0 - (bw * bh - sizes[a] - sizes[b]) / area
    return s


@njit(cache=True)
def _group(n, pairs, sizes, boxes, colour, texture, flags, area, merges):
    """Merge until one region (or no neighbours) is left; fills ``merges[t] = (i, j)`` (region
    ``n + t``) and the rows ``n..`` of the feature arrays; returns the number of merges."""
    cap = max(2 * pairs.shape[0] + 16, 16)
    pa, pb = np.empty(cap, np.int64), np.empty(cap, np.int64)
    ps, alive = np.empty(cap), np.zeros(cap, np.bool_)
    P = pairs.shape[0]
    for q in range(P):
        pa[q], pb[q] = pairs[q, 0], pairs[q, 1]
        ps[q] = _similarity(pa[q], pb[q], sizes, boxes, colour, texture, flags, area)
        alive[q] = True
    mark = np.zeros(2 * n, np.bool_)
    t = 0
    while t < n - 1:
        best = -1
        for q in range(P):
            if alive[q] and (best < 0 or ps[q] > ps[best] or (ps[q] == ps[best] and (
                    pa[q] < pa[best] or (pa[q] == pa[best] and pb[q] < pb[best])))):
                best = q
        if best < 0:
            break
        i, j, r = pa[best], pb[best], n + t
        merges[t, 0], merges[t, 1] = i, j
        sizes[r] = sizes[i] + sizes[j]
        for m in range(colour.shape[1]):
            colour[r, m] = (sizes[i] * colour[i, m] + sizes[j] * colour[j, m]) / sizes[r]
        for m in range(texture.shape[1]):
            texture[r, m] = (sizes[i] * texture[i, m] + sizes[j] * texture[j, m]) / sizes[r]
        boxes[r, 0], boxes[r, 1] = min(boxes[i, 0], boxes[j, 0]), min(boxes[i, 1], boxes[j, 1])
        boxes[r, 2], boxes[r, 3] = max(boxes[i, 2], boxes[j, 2]), max(boxes[i, 3], boxes[j, 3])
        for q in range(P):
            if alive[q] and (pa[q] == i or pa[q] == j or pb[q] == i or pb[q] == j):
                alive[q] = False
                other = pb[q] if (pa[q] == i or pa[q] == j) else pa[q]
                if other != i and other != j:
                    mark[other] = True
        count = 0
        for o in range(r):
            count += mark[o]
        if P + count > cap:                          # grow the pair arrays
            cap = 2 * (P + count)
            pa2, pb2 = np.empty(cap, np.int64), np.empty(cap, np.int64)
            ps2, al2 = np.empty(cap), np.zeros(cap, np.bool_)
            pa2[:P], pb2[:P], ps2[:P], al2[:P] = pa[:P], pb[:P], ps[:P], alive[:P]
            pa, pb, ps, alive = pa2, pb2, ps2, al2
        for o in range(r):
            if mark[o]:
                mark[o] = False
                pa[P], pb[P], alive[P] = o, r, True
                ps[P] = _similarity(o, r, sizes, boxes, colour, texture, flags, area)
                P += 1
        t += 1
    return t


def hierarchical_grouping(sizes, boxes, colour, texture, pairs, similarity="CTSF", image_area=None):
    """Uijlings et al.'s grouping of ``n`` initial regions (the outputs of :func:`region_features`).

    Returns ``(boxes int64 (n + M, 4), merges int64 (M, 2))``: rows ``0..n−1`` the initial
    regions, row ``n + t`` the region made by merge ``t`` of ``merges[t] = (i, j)`` (``M = n − 1``
    when the regions are connected)."""
    if similarity not in _SIMILARITIES:
        raise ValueError(f"hierarchical_grouping: similarity must be one of {sorted(_SIMILARITIES)}, "
                         f"got {similarity!r}")
    n = len(sizes)
    total = 2 * n - 1 if n else 0
    S = np.zeros(total, np.float64)
    B = np.zeros((total, 4), np.int64)
    Ch = np.zeros((total, colour.shape[1]))
    Th = np.zeros((total, texture.shape[1]))
    S[:n], B[:n], Ch[:n], Th[:n] = sizes, boxes, colour, texture
    merges = np.zeros((max(n - 1, 0), 2), np.int64)
    area = float(image_area if image_area is not None else sizes.sum())
    flags = np.array(_SIMILARITIES[similarity], np.int64)
    m = _group(n, np.ascontiguousarray(pairs, np.int64).reshape(-1, 2), S, B, Ch, Th, flags, area, merges) if n else 0
    return B[:n + m], merges[:m]


def _check_image(image):
    x = np.asarray(to_host(image))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3) or min(x.shape[1:]) < 1:
        raise ValueError(f"selective_search: image must be (C, H, W) with C = 1 or 3 (or (H, W)), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"selective_search: image must be a float image in [0, 1], got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("selective_search: image holds NaN or inf values")
    return x


def selective_search(image, mode="fast", strategies=None, sigma=0.8, min_size=None, min_box_size=2, seed=0,
                     return_values=False):
    """Class-agnostic proposals of one image, best ranked first (module docstring).

    Args:
        image: ``(C, H, W)`` (C = 1 or 3) or ``(H, W)`` float in ``[0, 1]`` (Tensor or array).
        mode: preset ``"single"``, ``"fast"`` or ``"quality"`` (:func:`strategies_for`).
        strategies: explicit ``[(colour_space, k, similarity)]`` (overrides ``mode``).
        sigma: Felzenszwalb's pre-smoothing. min_size: Felzenszwalb's smallest component (None:
            the area-scaled ``k`` of the module docstring). min_box_size: drop smaller boxes.
        seed: the seed of the ranking's random factors.
        return_values: also return the ranking values (lower is better).

    Returns:
        float32 ``(R, 4)`` boxes ``(x1, y1, x2, y2)`` in pixel edges, distinct, ranked.
    """
    x = _check_image(image)
    H, W = x.shape[1:]
    strategies = strategies_for(x.shape[0], mode) if strategies is None else list(strategies)
    rng = np.random.default_rng(seed)
    all_boxes, all_values = [], []
    cache = {}
    for space, k, similarity in strategies:
        if (space, k) not in cache:
            space_image = _colour_space(x, space)
            ms = max(1, int(round(k * H * W / (500.0 * 375.0)))) if min_size is None else int(min_size)
            labels = felzenszwalb(space_image * 255.0, float(k), sigma, ms)
            cache[(space, k)] = region_features(labels, space_image)
        sizes, boxes, colour, texture, pairs = cache[(space, k)]
        hb, _ = hierarchical_grouping(sizes, boxes, colour.copy(), texture.copy(), pairs, similarity, H * W)
        position = np.arange(len(hb), 0, -1, dtype=np.float64)       # the last region made: 1
        all_boxes.append(hb)
        all_values.append(position * rng.random(len(hb)))
    boxes = np.concatenate(all_boxes)
    values = np.concatenate(all_values)
    order = np.argsort(values, kind="stable")
    boxes, values = boxes[order], values[order]
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
    boxes, values = boxes[keep], values[keep]
    _, first = np.unique(boxes, axis=0, return_index=True)
    first = np.sort(first)
    boxes, values = boxes[first].astype(np.float32), values[first]
    return (boxes, values) if return_values else boxes


def proposal_recall(proposals, targets, iou_threshold=0.5):
    """Fraction of ground-truth boxes (over all images) with a proposal of IoU ``>= iou_threshold``."""
    from ...functional import box_iou

    hit = total = 0
    for p, t in zip(proposals, targets):
        g = np.asarray(to_host(t["boxes"]), np.float32).reshape(-1, 4)
        total += len(g)
        if len(g) and len(p):
            hit += int((np.asarray(box_iou(g, np.asarray(p, np.float32))).max(axis=1) >= iou_threshold).sum())
    return hit / total if total else float("nan")


def cached_proposals(images, path=None, **options):
    """Selective-search proposals of every image of ``images`` ``(N, C, H, W)``, computed once.

    With ``path`` (an ``.npz``), proposals are loaded from it when it holds the same images
    (a SHA-1 of their bytes and the options) and otherwise computed and written there.
    Returns a list of float32 ``(R_i, 4)`` arrays."""
    images = np.asarray(images, np.float32)
    key = hashlib.sha1(images.tobytes() + repr(sorted(options.items())).encode()).hexdigest()
    if path is not None and os.path.exists(path):
        with np.load(path) as z:
            if str(z["key"]) == key:
                counts = z["counts"]
                return np.split(z["boxes"], np.cumsum(counts)[:-1]) if len(counts) else []
    props = [selective_search(im, **options) for im in images]
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        boxes = np.concatenate(props) if props else np.zeros((0, 4), np.float32)
        np.savez_compressed(path, key=np.array(key), counts=np.array([len(p) for p in props], np.int64), boxes=boxes)
    return props
