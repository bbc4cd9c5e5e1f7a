"""Reference non-maximum suppression: the textbook greedy loop.

Boxes are ``(x1, y1, x2, y2)`` rows, compared in float64 with exactly this IoU (every device
evaluates the same operations in the same order, so decisions agree bit for bit)::

    w = max(min(a.x2, b.x2) − max(a.x1, b.x1), 0),  h likewise
    inter = w·h,  area = (x2 − x1)·(y2 − y1)  (no +1),  union = (area_a + area_b) − inter
    iou = inter / union  if union > 0  else 0

Greedy NMS over boxes sorted by decreasing score (stable: equal scores keep their input order):
walk the sorted list; a box not yet suppressed is kept and suppresses every later box whose IoU
with it is > ``iou_threshold`` (strict).

``minicnn.functional.nms`` first scales all boxes by one power of two (exact; IoU is scale-free),
so that this formula neither overflows nor underflows; the reference takes boxes as given, so
the tests compare it with the op on boxes at pixel scale.
"""
import numpy as np


def box_pair_iou(a, b):
    """IoU of two boxes given as 4 Python floats each (the formula of the module docstring)."""
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = (area_a + area_b) - inter
    return inter / union if union > 0 else 0.0


def nms_sorted(boxes, iou_threshold):
    """Positions (int64, increasing) of the kept boxes of ``boxes`` (already sorted by score)."""
    rows = [[float(v) for v in row] for row in np.asarray(boxes, dtype=np.float64)]
    suppressed = [False] * len(rows)
    keep = []
    for i in range(len(rows)):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in range(i + 1, len(rows)):
            if not suppressed[j] and box_pair_iou(rows[i], rows[j]) > iou_threshold:
                suppressed[j] = True
    return np.array(keep, dtype=np.int64)


def nms(boxes, scores, iou_threshold):
    """Indices (int64) of the kept boxes, in decreasing score order."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return order[nms_sorted(np.asarray(boxes)[order], iou_threshold)].astype(np.int64)
