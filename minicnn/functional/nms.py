"""Non-maximum suppression: ``nms`` and ``batched_nms`` (torchvision's signatures).

Greedy NMS: sort the boxes by decreasing score (a *stable* sort, so equal scores keep their input
order), walk the list, keep a box unless a kept box before it overlaps it with IoU > threshold
(strict). The IoU is computed in float64 with one formula on every device (see
``kernels/reference/nms.py``), so ``cpu``, ``cuda`` and ``cuda-emu`` keep the same indices.
The boxes are first scaled by a power of two (exact, and IoU is scale-free) that puts the largest
coordinate near ``2**252`` (:func:`~minicnn.functional.boxes.iou_scale_factors`), so neither
boxes near 1e308 (areas, even widths, overflowed: identical boxes were not suppressed) nor boxes
near 1e-300 (areas underflowed) change a decision. The suppression itself runs in the device
kernel ``nms_sorted`` (CPU: a Numba greedy loop; GPU: the 64-bit mask kernel plus a host scan),
which only lets a box suppress boxes of its own category (all one category for ``nms``).
Not differentiable: the result is a set of indices.
"""
import math

import numpy as np

from ..device import get_device
from ..tensor import Tensor, to_host
from .boxes import iou_scale_factors


def _device_of(a):
    if isinstance(a, Tensor):
        return a.device
    return get_device("cuda" if type(a).__module__.startswith("cupy") else "cpu")


def _check_boxes_scores(boxes, scores, op):
    """Host float64 copies of ``boxes`` ``(N, 4)`` and ``scores`` ``(N,)``, validated."""
    b, s = to_host(boxes), to_host(scores)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{op}: boxes must have shape (N, 4) (x1, y1, x2, y2), got {b.shape}")
    if s.ndim != 1 or s.shape[0] != b.shape[0]:
        raise ValueError(f"{op}: scores must have shape ({b.shape[0]},) to match boxes, got {s.shape}")
    if b.dtype.kind not in "fiu" or s.dtype.kind not in "fiu":
        raise TypeError(f"{op}: boxes and scores must be numeric, got {b.dtype} and {s.dtype}")
    b, s = b.astype(np.float64), s.astype(np.float64)
    if not np.isfinite(b).all():
        raise ValueError(f"{op}: boxes must be finite, row {int(np.argwhere(~np.isfinite(b))[0][0])} is not")
    if not np.isfinite(s).all():
        raise ValueError(f"{op}: scores must be finite, element {int(np.argwhere(~np.isfinite(s))[0][0])} is not")
    inverted = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if inverted.any():
        bad = int(np.argwhere(inverted)[0][0])
        raise ValueError(f"{op}: boxes must have x1 <= x2 and y1 <= y2, row {bad} is {b[bad].tolist()}")
    return b, s


def _check_threshold(iou_threshold, op):
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: iou_threshold must be a number, got {iou_threshold!r}")
    if math.isnan(iou_threshold) or iou_threshold < 0:
        raise ValueError(f"{op}: iou_threshold must be >= 0, got {iou_threshold!r}")
    return float(iou_threshold)


def _nms_host(b, s, categories, iou_threshold, device):
    """Kept indices (NumPy int64) of validated host boxes/scores/int64 categories, suppression on
    ``device``."""
    if b.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    for factor in iou_scale_factors(np.abs(b).max(), np.float64):
        b = b * factor
    order = np.argsort(-s, kind="stable")
    positions = device.kernels.nms_sorted(device.from_numpy(np.ascontiguousarray(b[order])),
                                          device.from_numpy(np.ascontiguousarray(categories[order])), iou_threshold)
    return order[device.to_numpy(positions)].astype(np.int64)


def nms(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression (torchvision's ``nms``).

    Args:
        boxes: ``Tensor[N, 4]`` (or an array) of ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        scores: ``Tensor[N]``.
        iou_threshold: discard a box whose IoU with a kept higher-scored box is ``> iou_threshold``
            (``>= 0``).

    Returns:
        ``Tensor[M]`` int64 indices of the kept boxes, in decreasing score order (equal scores:
        lower index first), on the device of ``boxes``.

    Example:
        >>> b = mc.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
        >>> F.nms(b, mc.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    op = "nms"
    thr = _check_threshold(iou_threshold, op)
    b, s = _check_boxes_scores(boxes, scores, op)
    device = _device_of(boxes)
    keep = _nms_host(b, s, np.zeros(b.shape[0], dtype=np.int64), thr, device)
    return Tensor._from_array(device.from_numpy(keep), device)


def batched_nms(boxes, scores, idxs, iou_threshold):
    """NMS within each category ``idxs[i]``: boxes of different categories never suppress each other.

    Exactly ``nms`` run per category and the kept boxes merged by decreasing score, in one kernel
    call: the kernel compares categories (torchvision's alternative, shifting each category's
    boxes by ``category · (max + 1)``, overflows for large coordinates and rounds small boxes
    shifted far).

    Args:
        boxes: ``Tensor[N, 4]``; scores: ``Tensor[N]``; idxs: ``Tensor[N]`` integer categories.
        iou_threshold: as :func:`nms`.

    Returns:
        ``Tensor[M]`` int64 indices of the kept boxes, in decreasing score order.

    Example:
        >>> b = mc.tensor([[0., 0, 10, 10], [1, 1, 11, 11]])
        >>> F.batched_nms(b, mc.tensor([0.9, 0.8]), mc.tensor([0, 1]), 0.5).tolist()
        [0, 1]
    """
    op = "batched_nms"
    thr = _check_threshold(iou_threshold, op)
    b, s = _check_boxes_scores(boxes, scores, op)
    ids = to_host(idxs)
    if ids.ndim != 1 or ids.shape[0] != b.shape[0]:
        raise ValueError(f"{op}: idxs must have shape ({b.shape[0]},) to match boxes, got {ids.shape}")
    if ids.size and (ids.dtype.kind not in "iub" and not (np.isfinite(ids).all() and (ids == np.floor(ids)).all())):
        raise ValueError(f"{op}: idxs must hold integer category ids, got dtype {ids.dtype}")
    device = _device_of(boxes)
    _, category = np.unique(ids, return_inverse=True)  # 0..G−1, whatever the ids' dtype
    keep = _nms_host(b, s, category.reshape(-1).astype(np.int64), thr, device)
    return Tensor._from_array(device.from_numpy(keep), device)
