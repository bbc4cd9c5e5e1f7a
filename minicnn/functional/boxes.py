"""Box utilities for detection: areas, IoU, R-CNN box coding, anchors, clipping.

Boxes are ``(x1, y1, x2, y2)`` rows. Every function accepts Tensors or arrays: given a Tensor it
returns a Tensor (differentiable where it matters: ``box_area``, ``box_iou``, ``encode_boxes``,
``decode_boxes``, ``clip_boxes_to_image`` are composed of differentiable Tensor ops, so losses on
decoded boxes train the regression head); given arrays it returns an array of the same module.

R-CNN box coding (torchvision's ``BoxCoder``), for a reference box ``p`` (anchor/proposal) and a
target ``g``, with widths ``pw = p.x2 − p.x1`` and centres ``px = p.x1 + 0.5·pw`` (likewise y, h)::

    dx = wx·(gx − px)/pw    dy = wy·(gy − py)/ph    dw = ww·log(gw/pw)    dh = wh·log(gh/ph)

``decode_boxes`` inverts it, clamping ``dw/ww`` and ``dh/wh`` at ``log(1000/16)`` so that
``exp`` cannot overflow.
"""
import math

import numpy as np

from ..device import get_device
from ..tensor import Tensor
from .basic import clip, exp, log, maximum, minimum, where
from .shape import reshape, stack

#: torchvision's clamp of the decoded log-size deltas.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _tensor(a, op, name):
    """``(Tensor, was_tensor)`` of a Tensor or an array (float64 arrays stay float64)."""
    if isinstance(a, Tensor):
        return a, True
    arr = a if type(a).__module__.startswith("cupy") else np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{op}: {name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    return Tensor(arr), False


def _out(t, as_tensor):
    return t if as_tensor else t.data


def _check_boxes(t, op, name, allow_inverted=False):
    """The host copy of ``t``; ValueError unless it is ``(N, 4)``, finite, and (unless allowed) not
    inverted."""
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"{op}: {name} must have shape (N, 4) (x1, y1, x2, y2), got {t.shape}")
    host = t.numpy()
    if not np.isfinite(host).all():
        raise ValueError(f"{op}: {name} must be finite, row {int(np.argwhere(~np.isfinite(host))[0][0])} is not")
    if not allow_inverted:
        inverted = (host[:, 2] < host[:, 0]) | (host[:, 3] < host[:, 1])
        if inverted.any():
            bad = int(np.argwhere(inverted)[0][0])
            raise ValueError(f"{op}: {name} must have x1 <= x2 and y1 <= y2, row {bad} is {host[bad].tolist()}")
    return host


def iou_scale_factors(max_abs, dtype):
    """Powers of two whose product ``s`` puts ``max_abs·s`` in ``[2**E, 2**(E+1))``, E = 252 for
    float64 (28 for float32), each factor a normal number of ``dtype``; ``[]`` for 0.

    IoU is invariant under a common scaling of all coordinates, and multiplying by a power of two
    is exact (barring underflow below the smallest normal): scaled so, widths stay below
    ``2**(E+2)``, areas and unions below ``2**(2E+5)`` and the square of a union (in the backward
    of the division) below ``2**(4E+10)``, all far from overflowing, while the areas of boxes
    far smaller than ``max_abs`` stay far from underflowing. Boxes of 1e300 or of 1e-300 then get
    the IoU, bit for bit, of the same boxes at pixel scale.
    """
    if max_abs == 0:
        return []
    info = np.finfo(dtype)
    shift = info.maxexp // 4 - 4 + 1 - int(np.frexp(max_abs)[1])
    limit = info.maxexp - 2  # 2**±limit is a normal number of dtype
    factors = []
    while shift:
        step = max(-limit, min(limit, shift))
        factors.append(2.0 ** step)
        shift -= step
    return factors


def _columns(t):
    """The four coordinate columns of an ``(N, 4)`` Tensor, each ``(N,)``."""
    return t[:, 0], t[:, 1], t[:, 2], t[:, 3]


def box_area(boxes):
    """``(x2 − x1)·(y2 − y1)`` of each box (no +1). ``Tensor[N, 4] -> Tensor[N]``."""
    b, as_tensor = _tensor(boxes, "box_area", "boxes")
    _check_boxes(b, "box_area", "boxes")
    x1, y1, x2, y2 = _columns(b)
    return _out((x2 - x1) * (y2 - y1), as_tensor)


def box_iou(boxes1, boxes2):
    """Pairwise IoU ``Tensor[N, 4], Tensor[M, 4] -> Tensor[N, M]``.

    ``inter = max(min(x2) − max(x1), 0) · max(min(y2) − max(y1), 0)``,
    ``iou = inter / (area1 + area2 − inter)``, and 0 where the union is 0 (two empty boxes), as
    in :func:`nms`. Both sets are first scaled by one power of two (exact; see
    :func:`iou_scale_factors`), so coordinates near the float limits neither overflow nor
    underflow the areas.
    """
    op = "box_iou"
    a, as_tensor = _tensor(boxes1, op, "boxes1")
    b, _ = _tensor(boxes2, op, "boxes2")
    max_abs = max(np.abs(_check_boxes(a, op, "boxes1")).max(initial=0.0),
                  np.abs(_check_boxes(b, op, "boxes2")).max(initial=0.0))
    for factor in iou_scale_factors(max_abs, a.dtype):
        a, b = a * factor, b * factor
    N, M = a.shape[0], b.shape[0]
    ax1, ay1, ax2, ay2 = (reshape(c, (N, 1)) for c in _columns(a))
    bx1, by1, bx2, by2 = (reshape(c, (1, M)) for c in _columns(b))
    w = clip(minimum(ax2, bx2) - maximum(ax1, bx1), 0.0)
    h = clip(minimum(ay2, by2) - maximum(ay1, by1), 0.0)
    inter = w * h
    union = ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)) - inter
    positive = union.data > 0
    safe_union = where(positive, union, 1.0)
    iou = where(positive, inter / safe_union, 0.0)
    return _out(iou, as_tensor or isinstance(boxes2, Tensor))


def _centres(t):
    x1, y1, x2, y2 = _columns(t)
    w, h = x2 - x1, y2 - y1
    return x1 + 0.5 * w, y1 + 0.5 * h, w, h


def _check_weights(weights, op):
    if len(weights) != 4 or not all(isinstance(v, (int, float)) and v > 0 for v in weights):
        raise ValueError(f"{op}: weights must be 4 positive numbers (wx, wy, ww, wh), got {weights!r}")
    return tuple(float(v) for v in weights)


def encode_boxes(reference_boxes, proposals, weights=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets (R-CNN deltas) of ``reference_boxes`` (targets) w.r.t. ``proposals``.

    Args:
        reference_boxes: ``Tensor[N, 4]`` ground-truth boxes ``g`` (positive width and height).
        proposals: ``Tensor[N, 4]`` anchors or proposals ``p`` (positive width and height).
        weights: ``(wx, wy, ww, wh)``; Faster R-CNN's box head uses ``(10, 10, 5, 5)``.

    Returns:
        ``Tensor[N, 4]`` deltas ``(dx, dy, dw, dh)`` (formula in the module docstring).
    """
    op = "encode_boxes"
    wx, wy, ww, wh = _check_weights(weights, op)
    g, as_tensor = _tensor(reference_boxes, op, "reference_boxes")
    p, _ = _tensor(proposals, op, "proposals")
    _check_boxes(g, op, "reference_boxes")
    _check_boxes(p, op, "proposals")
    if g.shape != p.shape:
        raise ValueError(f"{op}: reference_boxes {g.shape} and proposals {p.shape} must have the same shape")
    for name, t in (("reference_boxes", g), ("proposals", p)):
        host = t.numpy()
        if ((host[:, 2] - host[:, 0]) <= 0).any() or ((host[:, 3] - host[:, 1]) <= 0).any():
            raise ValueError(f"{op}: {name} must have positive width and height (log of the size ratio)")
    gx, gy, gw, gh = _centres(g)
    px, py, pw, ph = _centres(p)
    deltas = stack([wx * (gx - px) / pw, wy * (gy - py) / ph, ww * log(gw / pw), wh * log(gh / ph)], axis=1)
    return _out(deltas, as_tensor or isinstance(proposals, Tensor))


def decode_boxes(rel_codes, boxes, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=BBOX_XFORM_CLIP):
    """Apply deltas to reference boxes: the inverse of :func:`encode_boxes`.

    ``cx = dx/wx · pw + px``, ``w = exp(min(dw/ww, clip)) · pw`` (likewise y, h), then
    ``(cx − w/2, cy − h/2, cx + w/2, cy + h/2)``.

    Args:
        rel_codes: ``Tensor[N, 4·k]`` deltas (``k`` boxes per reference box, e.g. one per class).
        boxes: ``Tensor[N, 4]`` reference boxes (``x1 <= x2``, ``y1 <= y2``).
        weights: ``(wx, wy, ww, wh)``, as in :func:`encode_boxes`.
        bbox_xform_clip: upper clamp of ``dw/ww`` and ``dh/wh``.

    Returns:
        ``Tensor[N, 4·k]`` decoded boxes.
    """
    op = "decode_boxes"
    wx, wy, ww, wh = _check_weights(weights, op)
    d, as_tensor = _tensor(rel_codes, op, "rel_codes")
    p, _ = _tensor(boxes, op, "boxes")
    _check_boxes(p, op, "boxes")
    N = p.shape[0]
    if d.ndim != 2 or d.shape[0] != N or d.shape[1] % 4 or d.shape[1] == 0:
        raise ValueError(f"{op}: rel_codes must have shape ({N}, 4*k) to match boxes {p.shape}, got {d.shape}")
    if not np.isfinite(d.numpy()).all():
        raise ValueError(f"{op}: rel_codes must be finite")
    k = d.shape[1] // 4
    codes = reshape(d, (N, k, 4))
    px, py, pw, ph = (reshape(c, (N, 1)) for c in _centres(p))
    dx, dy = codes[:, :, 0] / wx, codes[:, :, 1] / wy
    dw = clip(codes[:, :, 2] / ww, None, bbox_xform_clip)
    dh = clip(codes[:, :, 3] / wh, None, bbox_xform_clip)
    cx, cy = dx * pw + px, dy * ph + py
    w, h = exp(dw) * pw, exp(dh) * ph
    out = stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=2)
    return _out(reshape(out, (N, 4 * k)), as_tensor or isinstance(boxes, Tensor))


def clip_boxes_to_image(boxes, size):
    """Clamp x to ``[0, W]`` and y to ``[0, H]``; ``size = (H, W)``. ``Tensor[N, 4] -> Tensor[N, 4]``."""
    op = "clip_boxes_to_image"
    b, as_tensor = _tensor(boxes, op, "boxes")
    _check_boxes(b, op, "boxes", allow_inverted=True)
    if len(size) != 2 or min(size) < 0:
        raise ValueError(f"{op}: size must be (H, W) with H, W >= 0, got {size!r}")
    H, W = float(size[0]), float(size[1])
    x1, y1, x2, y2 = _columns(b)
    out = stack([clip(x1, 0.0, W), clip(y1, 0.0, H), clip(x2, 0.0, W), clip(y2, 0.0, H)], axis=1)
    return _out(out, as_tensor)


def remove_small_boxes(boxes, min_size):
    """Indices (int64) of the boxes whose width and height are both ``>= min_size``."""
    op = "remove_small_boxes"
    b, as_tensor = _tensor(boxes, op, "boxes")
    _check_boxes(b, op, "boxes", allow_inverted=True)
    if not isinstance(min_size, (int, float)) or not math.isfinite(min_size) or min_size < 0:
        raise ValueError(f"{op}: min_size must be a finite number >= 0, got {min_size!r}")
    xp = b.device.xp
    d = b.data
    keep = xp.nonzero(((d[:, 2] - d[:, 0]) >= min_size) & ((d[:, 3] - d[:, 1]) >= min_size))[0].astype(np.int64)
    return Tensor._from_array(keep, b.device) if as_tensor else keep


def _per_map(values, n, name, op):
    """``values`` as ``n`` tuples (a flat tuple of numbers means the same for every map)."""
    if len(values) and not isinstance(values[0], (list, tuple)):
        values = (tuple(values),) * n
    if len(values) != n:
        raise ValueError(f"{op}: {name} must give one tuple per feature map ({n}), got {len(values)}")
    for v in values:
        if len(v) == 0 or not all(isinstance(s, (int, float)) and s > 0 for s in v):
            raise ValueError(f"{op}: {name} must be positive numbers, got {v!r}")
    return values


def cell_anchors(sizes, aspect_ratios, dtype=np.float32):
    """Zero-centred anchors ``(len(ratios)·len(sizes), 4)`` of one feature map, ratios outer.

    ``h_ratio = sqrt(ratio)`` (ratio = height / width), ``w_ratio = 1/h_ratio``; the anchor of
    size ``s`` is ``round((−w_ratio·s, −h_ratio·s, w_ratio·s, h_ratio·s) / 2)``. Note the
    ``round``: as torchvision's AnchorGenerator, base anchors are rounded to integers, half to
    even (``torch.round`` = ``np.round``).
    """
    scales = np.asarray(sizes, dtype=dtype)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, dtype=dtype))
    w_ratios = (1 / h_ratios).astype(dtype)
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / dtype(2)).astype(dtype)


def generate_anchors(feature_sizes, strides, sizes, aspect_ratios, dtype=np.float32, device="cpu"):
    """Anchors over feature maps, torchvision's ``AnchorGenerator`` layout.

    For feature map ``i`` of size ``(H_i, W_i)`` and stride ``(sh, sw)``, every cell ``(r, c)``
    holds the cell anchors of ``sizes[i] × aspect_ratios[i]`` (see :func:`cell_anchors`) shifted
    by ``(c·sw, r·sh, c·sw, r·sh)``; order: maps, then cells row-major, then cell anchors.

    Args:
        feature_sizes: ``[(H_i, W_i)]``.
        strides: ``[s_i]`` or ``[(sh_i, sw_i)]`` (image pixels per feature-map cell).
        sizes: ``[(s, …)]`` per map (a flat tuple: the same for every map).
        aspect_ratios: ``[(r, …)]`` per map (a flat tuple: the same for every map).

    Returns:
        ``Tensor[Σ_i H_i·W_i·A_i, 4]`` (no grad) on ``device``.
    """
    op = "generate_anchors"
    n = len(feature_sizes)
    if len(strides) != n:
        raise ValueError(f"{op}: strides must give one entry per feature map ({n}), got {len(strides)}")
    sizes = _per_map(sizes, n, "sizes", op)
    aspect_ratios = _per_map(aspect_ratios, n, "aspect_ratios", op)
    dtype = np.dtype(dtype).type
    out = []
    for (H, W), stride, s, r in zip(feature_sizes, strides, sizes, aspect_ratios):
        sh, sw = (stride, stride) if not isinstance(stride, (list, tuple)) else stride
        if min(H, W) < 0 or min(sh, sw) <= 0:
            raise ValueError(f"{op}: feature sizes must be >= 0 and strides > 0, got {(H, W)} and {stride!r}")
        base = cell_anchors(s, r, dtype)
        shift_x = np.arange(W, dtype=dtype) * dtype(sw)
        shift_y = np.arange(H, dtype=dtype) * dtype(sh)
        sy, sx = np.meshgrid(shift_y, shift_x, indexing="ij")
        shifts = np.stack([sx.reshape(-1), sy.reshape(-1), sx.reshape(-1), sy.reshape(-1)], axis=1)
        out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    anchors = np.concatenate(out, axis=0) if out else np.zeros((0, 4), dtype=dtype)
    dev = get_device(device)
    return Tensor._from_array(dev.from_numpy(anchors.astype(dtype)), dev)
