"""Non-maximum suppression: ``nms`` and ``batched_nms`` (torchvision's signatures).

Greedy NMS: sort the boxes by decreasing score (a *stable* sort, so equal scores keep their input
order), walk the list, keep a box unless a kept box before it overlaps it with IoU > threshold
(strict). The IoU is computed in float64 with one formula on every device (see
``kernels/reference/nms.py``), so ``cpu``, ``cuda`` and ``cuda-emu`` keep the same indices.
The boxes are first scaled by a power of two (exact, and IoU is scale-free) that puts the largest
coordinate near ``2**252`` (:func:`~minicnn.functional.boxes.iou_scale_factors`), so neither
boxes near 1e308 (areas, even widths, overflowed: identical boxes were not suppressed) nor boxes
near 1e-300 (areas underflowed) change a decision. The suppression itself runs in the device
kernel ``nms_sorted`` (CPU: a Numba greedy loop; GPU: the 64-bit mask kernel plus the keep-scan
in one block), which only lets a box suppress boxes of its own category (all one category for
``nms``). Not differentiable: the result is a set of indices.

On ``cuda`` (and ``cuda-emu``, which runs the same code) everything stays on the device: the
input checks reduce to three integers read back once, before any kernel; the stable sort is a
``lexsort`` on (score descending, index ascending); the scale factors are applied with
``ldexp`` (exact, as the host's multiplications); the only other device→host transfer is the
kernel's 8-byte count of kept boxes. Results are bitwise the CPU's.
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


def _check_shapes(b, s, op):
    """ValueError/TypeError unless boxes ``b`` are numeric ``(N, 4)`` and scores ``s`` numeric ``(N,)``
    (NumPy or CuPy arrays: only shapes and dtypes are read)."""
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{op}: boxes must have shape (N, 4) (x1, y1, x2, y2), got {b.shape}")
    if s.ndim != 1 or s.shape[0] != b.shape[0]:
        raise ValueError(f"{op}: scores must have shape ({b.shape[0]},) to match boxes, got {s.shape}")
    if b.dtype.kind not in "fiu" or s.dtype.kind not in "fiu":
        raise TypeError(f"{op}: boxes and scores must be numeric, got {b.dtype} and {s.dtype}")


def _check_boxes_scores(boxes, scores, op):
    """Host float64 copies of ``boxes`` ``(N, 4)`` and ``scores`` ``(N,)``, validated."""
    b, s = to_host(boxes), to_host(scores)
    _check_shapes(b, s, op)
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


def _first_true(xp, flags):
    """Index of the first True of a device bool vector, −1 if none (stays on the device)."""
    if flags.size == 0:
        return xp.asarray(-1, dtype=np.int64)
    return xp.where(flags.any(), xp.argmax(flags), -1).astype(np.int64)


def _device_arrays(device, boxes, scores, op):
    """Device float64 ``(N, 4)`` boxes and ``(N,)`` scores, shapes and dtypes checked (no transfer)."""
    xp = device.xp
    b, s = (xp.asarray(a.data if isinstance(a, Tensor) else a) for a in (boxes, scores))
    _check_shapes(b, s, op)
    return b.astype(np.float64), s.astype(np.float64)


def _nms_device(device, b, s, ids, iou_threshold, op):
    """Kept indices (a device int64 array) of device boxes/scores; ``ids``: device category ids or
    None. The values are checked first, with one read of three integers."""
    xp = device.xp
    n = b.shape[0]
    checks = [_first_true(xp, ~xp.isfinite(b).all(axis=1)), _first_true(xp, ~xp.isfinite(s)),
              _first_true(xp, (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))]
    if ids is not None and ids.dtype.kind not in "iub":
        checks.append(_first_true(xp, ~(xp.isfinite(ids) & (ids == xp.floor(ids)))))
    bad = device.to_numpy(xp.stack(checks))
    if bad[0] >= 0:
        raise ValueError(f"{op}: boxes must be finite, row {int(bad[0])} is not")
    if bad[1] >= 0:
        raise ValueError(f"{op}: scores must be finite, element {int(bad[1])} is not")
    if bad[2] >= 0:
        raise ValueError(f"{op}: boxes must have x1 <= x2 and y1 <= y2, row {int(bad[2])} is "
                         f"{device.to_numpy(b[int(bad[2])]).tolist()}")
    if len(bad) > 3 and bad[3] >= 0:
        raise ValueError(f"{op}: idxs must hold integer category ids, got dtype {ids.dtype}")
    if n == 0:
        return xp.zeros(0, dtype=np.int64)
    categories = xp.zeros(n, dtype=np.int64) if ids is None else xp.unique(ids, return_inverse=True)[1]
    # iou_scale_factors on the device: at most two steps of at most 2**±1021, applied exactly
    info = np.finfo(np.float64)
    limit = info.maxexp - 2
    max_abs = xp.abs(b).max()
    shift = xp.where(max_abs > 0, info.maxexp // 4 - 4 + 1 - xp.frexp(max_abs)[1].astype(np.int64), 0)
    first = xp.clip(shift, -limit, limit)
    b = xp.ldexp(xp.ldexp(b, first.astype(np.int32)), (shift - first).astype(np.int32))
    # stable sort by decreasing score: lexsort's last key is the primary one, the index breaks ties
    order = xp.lexsort(xp.stack([xp.arange(n, dtype=np.float64), -s]))
    positions = device.kernels.nms_sorted(xp.ascontiguousarray(b[order]),
                                          xp.ascontiguousarray(categories.reshape(-1)[order].astype(np.int64)),
                                          iou_threshold)
    return order[positions].astype(np.int64)


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
    device = _device_of(boxes)
    if device.name != "cpu":
        b, s = _device_arrays(device, boxes, scores, op)
        return Tensor._from_array(_nms_device(device, b, s, None, thr, op), device)
    b, s = _check_boxes_scores(boxes, scores, op)
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
    device = _device_of(boxes)
    if device.name != "cpu":
        b, s = _device_arrays(device, boxes, scores, op)
        ids = device.xp.asarray(idxs.data if isinstance(idxs, Tensor) else idxs)
        if ids.ndim != 1 or ids.shape[0] != b.shape[0]:
            raise ValueError(f"{op}: idxs must have shape ({b.shape[0]},) to match boxes, got {ids.shape}")
        if ids.dtype.kind not in "iubf":
            raise ValueError(f"{op}: idxs must hold integer category ids, got dtype {ids.dtype}")
        return Tensor._from_array(_nms_device(device, b, s, ids, thr, op), device)
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
