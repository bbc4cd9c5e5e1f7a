"""Numba non-maximum suppression over boxes already sorted by score (greedy loop), within categories.

The IoU is evaluated in float64 with the operations of ``kernels/reference/nms.py`` in the same
order (Numba, without ``fastmath``, never contracts ``a*b + c`` into an FMA), so the decisions
equal the reference's and the GPU mask kernel's bit for bit.
"""
import numpy as np
from numba import njit

KERNELS = ("nms_sorted",)


@njit(cache=True)
def _iou(b, i, j):
    w = max(min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]), 0.0)
    h = max(min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]), 0.0)
    inter = w * h
    area_i = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
    area_j = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
    union = (area_i + area_j) - inter
    return inter / union if union > 0.0 else 0.0


@njit(cache=True)
def _nms_sorted(boxes, categories, iou_threshold, keep):
    n = boxes.shape[0]
    suppressed = np.zeros(n, dtype=np.bool_)
    n_keep = 0
    for i in range(n):
        if suppressed[i]:
            continue
        keep[n_keep] = i
        n_keep += 1
        for j in range(i + 1, n):
            if not suppressed[j] and categories[j] == categories[i] and _iou(boxes, i, j) > iou_threshold:
                suppressed[j] = True
    return n_keep


def nms_sorted(boxes, categories, iou_threshold):
    """Positions (int64, increasing) of the boxes kept by greedy NMS; ``boxes`` sorted by score.
    A box only suppresses boxes of its own category (``categories``: int64, one per box)."""
    boxes = np.ascontiguousarray(boxes, dtype=np.float64)
    categories = np.ascontiguousarray(categories, dtype=np.int64)
    keep = np.empty(boxes.shape[0], dtype=np.int64)
    n_keep = _nms_sorted(boxes, categories, float(iou_threshold), keep) if boxes.shape[0] else 0
    return keep[:n_keep].copy()
