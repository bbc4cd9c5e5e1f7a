"""Evaluation metrics for classification, segmentation and detection (NumPy in, numbers out).

Every function accepts NumPy arrays, anything ``np.asarray`` understands, and
objects with a ``.numpy()`` method (a minicnn or torch Tensor).

Classification: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`,
:func:`precision_recall_f1`. Segmentation: :func:`iou_masks`, :func:`mean_iou`.
Detection: :func:`box_iou_numpy`, :func:`average_precision`,
:func:`average_precision_per_class`, :func:`mean_average_precision`, :func:`coco_map`.

Conventions: a division 0/0 counts as 0 in precision, recall and F1; as "undefined"
(NaN, left out of the mean) in segmentation IoU, where it means a class absent
from both prediction and target. Boxes are ``(x1, y1, x2, y2)``.
"""
import numpy as np


def to_numpy(a):
    """``a.numpy()`` if ``a`` has that method (Tensors), else ``np.asarray(a)``."""
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()
    return np.asarray(a)


def _labels(pred_or_logits, target, name):
    """Class predictions and targets as int arrays; scores ``(N, C, ...)`` become ``argmax`` over axis 1."""
    pred, target = to_numpy(pred_or_logits), to_numpy(target)
    if pred.ndim == target.ndim + 1:
        pred = pred.argmax(axis=1)
    if pred.shape != target.shape:
        raise ValueError(f"{name}: predictions {pred.shape} do not match targets {target.shape} "
                         f"(pass class ids of the target's shape, or scores with classes on axis 1)")
    return pred.astype(np.int64), target.astype(np.int64)


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------


def accuracy(pred_or_logits, target):
    """Fraction of correct predictions, ``mean(pred == target)``.

    ``pred_or_logits`` is class ids with the target's shape, or scores with an
    extra class axis 1 (``(N, C)`` for ``(N,)`` targets, ``(N, C, H, W)`` for
    ``(N, H, W)`` masks), reduced by argmax.
    """
    pred, target = _labels(pred_or_logits, target, "accuracy")
    return float((pred == target).mean()) if target.size else 0.0


def top_k_accuracy(logits, target, k=5):
    """Fraction of samples whose target class is among the ``k`` highest scores.

    Sample ``n`` counts as correct when fewer than ``k`` classes score strictly
    higher than the target: ``#{c : s[n, c] > s[n, t_n]} < k`` (ties go in the
    target's favour). ``k = 1`` is :func:`accuracy` up to ties.
    """
    s, target = to_numpy(logits), to_numpy(target).astype(np.int64)
    if s.ndim != 2 or target.shape != (s.shape[0],):
        raise ValueError(f"top_k_accuracy: expected logits (N, C) and targets (N,), got {s.shape} and {target.shape}")
    if not 1 <= k:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    if len(target) == 0:
        return 0.0
    target_score = s[np.arange(len(s)), target]
    higher = (s > target_score[:, None]).sum(axis=1)
    return float((higher < k).mean())


def confusion_matrix(pred, target, num_classes):
    """``M[t, p]`` = number of samples of true class ``t`` predicted as ``p`` (rows: truth).

    ``pred`` may be scores with a class axis 1 (argmax is taken). Any shape:
    all elements count (so segmentation masks work too). Computed as
    ``bincount(t * K + p)`` reshaped to ``(K, K)``; ids outside ``0..K-1`` raise.
    """
    pred, target = _labels(pred, target, "confusion_matrix")
    pred, target = pred.ravel(), target.ravel()
    for name, a in (("pred", pred), ("target", target)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} has ids outside 0..{num_classes - 1} "
                             f"(min {a.min()}, max {a.max()})")
    return np.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _safe_div(a, b):
    """``a / b`` elementwise with 0/0 (and x/0) defined as 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def precision_recall_f1(pred, target, num_classes, average="macro"):
    """Precision, recall and F1 from the confusion matrix ``M`` (rows truth, columns prediction).

    Per class ``c``: ``TP = M[c, c]``, ``FP = sum_t M[t, c] - TP``, ``FN = sum_p M[c, p] - TP``::

        precision_c = TP / (TP + FP)     recall_c = TP / (TP + FN)
        F1_c = 2 precision_c recall_c / (precision_c + recall_c)

    with every 0/0 defined as 0 (a class never predicted has precision 0, a
    class absent from the targets recall 0; scikit-learn's ``zero_division=0``).

    Args:
        average: ``None`` -> three arrays ``(K,)``, one value per class;
            ``"macro"`` -> the unweighted means over all ``K`` classes (F1 is
            the mean of the per-class F1s, not the F1 of the mean P and R);
            ``"micro"`` -> computed from the summed TP, FP, FN (for single-label
            data all three equal the accuracy).
    Returns:
        ``(precision, recall, f1)``.
    """
    m = confusion_matrix(pred, target, num_classes).astype(np.float64)
    tp = np.diag(m)
    fp, fn = m.sum(axis=0) - tp, m.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision), float(recall), float(f1)
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    raise ValueError(f"precision_recall_f1: average must be 'macro', 'micro' or None, got {average!r}")


# ---------------------------------------------------------------------------
# segmentation
# ---------------------------------------------------------------------------


def iou_masks(pred_mask, target_mask, num_classes, ignore_index=None):
    """Per-class intersection over union of two label masks.

    ``IoU_c = |P_c and T_c| / |P_c or T_c|`` over all pixels, ``P_c`` and
    ``T_c`` the pixels labelled ``c`` in prediction and target. Pixels whose
    target is ``ignore_index`` are left out of both. A class with an empty
    union gets NaN (undefined). ``pred_mask`` may be scores ``(N, C, H, W)``.

    Returns:
        float64 array ``(num_classes,)``.
    """
    pred, target = _labels(pred_mask, target_mask, "iou_masks")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    m = confusion_matrix(pred, target, num_classes).astype(np.float64)
    inter = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def mean_iou(pred_mask, target_mask, num_classes, ignore_index=None):
    """Mean of :func:`iou_masks` over the classes where it is defined (non-empty union); 0.0 if none."""
    iou = iou_masks(pred_mask, target_mask, num_classes, ignore_index)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0


# ---------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------


def box_iou_numpy(a, b):
    """IoU matrix of two sets of boxes ``(N, 4)`` and ``(M, 4)`` -> ``(N, M)``.

    ``area = (x2 - x1)(y2 - y1)``, ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``,
    ``IoU = inter / (area_a + area_b - inter)``, and 0 where that union is 0.
    """
    a = to_numpy(a).astype(np.float64).reshape(-1, 4)
    b = to_numpy(b).astype(np.float64).reshape(-1, 4)
    a, b = _iou_scaled(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    return _safe_div(inter, area_a[:, None] + area_b[None, :] - inter)


def _iou_scaled(a, b):
    """``a`` and ``b`` times one power of two that keeps areas far from overflow and underflow
    (exact; IoU is scale-invariant): see :func:`minicnn.functional.boxes.iou_scale_factors`."""
    from .functional.boxes import iou_scale_factors

    finite = np.concatenate([a.ravel(), b.ravel()])
    finite = np.abs(finite[np.isfinite(finite)])
    for f in iou_scale_factors(float(finite.max()) if finite.size else 0.0, np.float64):
        a, b = a * f, b * f
    return a, b


def average_precision(recall, precision, method="voc"):
    """Area under an interpolated precision-recall curve.

    ``recall``/``precision`` are the values after each detection of the ranked
    list (recall non-decreasing). The interpolated precision is the envelope
    ``p_interp(r) = max_{r' >= r} p(r')``.

    * ``"voc"``: all-point interpolation (PASCAL VOC 2010 and later):
      ``AP = sum_i (r_i - r_{i-1}) p_interp(r_i)`` with ``r_0 = 0``.
    * ``"coco"``: 101-point interpolation (COCO):
      ``AP = (1/101) sum_{r in {0, 0.01, ..., 1}} p_interp(r)``, where
      ``p_interp(r) = 0`` beyond the highest recall reached.
    """
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64)])
    p = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64)])
    p_env = np.maximum.accumulate(p[::-1])[::-1]                 # p_env[i] = max_{j >= i} p[j]
    if method == "voc":
        return float(np.sum((r[1:] - r[:-1]) * p_env[1:]))
    if method == "coco":
        grid = np.linspace(0.0, 1.0, 101)
        # first ranked point with recall >= the grid value (as pycocotools' searchsorted)
        i = np.searchsorted(r[1:], grid, side="left") + 1
        return float(np.mean(np.where(i < len(r), p_env[np.minimum(i, len(r) - 1)], 0.0)))
    raise ValueError(f"average_precision: method must be 'voc' or 'coco', got {method!r}")


def _unpack(item, keys):
    if isinstance(item, dict):
        return tuple(to_numpy(item[k]) for k in keys)
    return tuple(to_numpy(v) for v in item)


def _match_class(dets, gts, cls, iou_threshold):
    """Rank the detections of class ``cls`` over all images and mark them true/false positives.

    Greedy by descending score (stable sort, so ties keep image order): each
    detection is matched to the unmatched ground truth of its image and class
    with the highest IoU, if that IoU >= ``iou_threshold``; each ground truth
    is matched at most once. Returns ``(tp flags in rank order, number of GTs)``.
    """
    scores, image_of, boxes = [], [], []
    gt_boxes = []
    for n, ((db, ds, dl), (gb, gl)) in enumerate(zip(dets, gts)):
        sel = dl == cls
        scores.append(ds[sel]), boxes.append(db[sel].reshape(-1, 4))
        image_of.append(np.full(int(sel.sum()), n))
        gt_boxes.append(gb[gl == cls].reshape(-1, 4))
    num_gt = sum(len(g) for g in gt_boxes)
    scores, image_of, boxes = np.concatenate(scores), np.concatenate(image_of), np.concatenate(boxes)
    order = np.argsort(-scores, kind="stable")
    ious = [box_iou_numpy(boxes[image_of == n], g) for n, g in enumerate(gt_boxes)]
    row_in_image = np.zeros(len(scores), dtype=np.int64)
    for n in range(len(gt_boxes)):
        row_in_image[image_of == n] = np.arange(int((image_of == n).sum()))
    matched = [np.zeros(len(g), dtype=bool) for g in gt_boxes]
    tp = np.zeros(len(order), dtype=bool)
    for rank, d in enumerate(order):
        n = image_of[d]
        if len(gt_boxes[n]) == 0:
            continue
        iou = np.where(matched[n], -1.0, ious[n][row_in_image[d]])
        best = int(np.argmax(iou))
        if iou[best] >= iou_threshold:
            matched[n][best] = True
            tp[rank] = True
    return tp, num_gt


def average_precision_per_class(detections, ground_truths, iou_threshold=0.5, method="voc"):
    """AP of every class that has at least one ground-truth box.

    Args:
        detections: one entry per image, a dict ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}``
            or a tuple ``(boxes, scores, labels)``.
        ground_truths: one entry per image, ``{"boxes": (G, 4), "labels": (G,)}`` or ``(boxes, labels)``.
        iou_threshold: a detection is a true positive when matched with IoU >= this.
        method: ``"voc"`` (all-point) or ``"coco"`` (101-point), see :func:`average_precision`.

    Per class, detections of all images are ranked by score and matched greedily
    (see ``_match_class``); after the ``k``-th detection
    ``precision_k = TP_k / k`` and ``recall_k = TP_k / num_gt``.
    Classes that only appear in detections have no AP (COCO leaves them out too).

    Returns:
        dict ``{class_id: AP}``.
    """
    if len(detections) != len(ground_truths):
        raise ValueError(f"average_precision_per_class: {len(detections)} detection entries "
                         f"for {len(ground_truths)} images of ground truth")
    dets = [_unpack(d, ("boxes", "scores", "labels")) for d in detections]
    gts = [_unpack(g, ("boxes", "labels")) for g in ground_truths]
    classes = np.unique(np.concatenate([g[1].ravel() for g in gts] + [np.zeros(0)])).astype(np.int64)
    result = {}
    for cls in classes:
        tp, num_gt = _match_class(dets, gts, cls, iou_threshold)
        if len(tp) == 0:
            result[int(cls)] = 0.0
            continue
        tp_cum = np.cumsum(tp)
        precision = tp_cum / np.arange(1, len(tp) + 1)
        recall = tp_cum / num_gt
        result[int(cls)] = average_precision(recall, precision, method)
    return result


def mean_average_precision(detections, ground_truths, iou_threshold=0.5, method="voc"):
    """mAP: the mean of :func:`average_precision_per_class` over classes with ground truth.

    Default: PASCAL VOC style, all-point interpolation at one IoU threshold
    (VOC uses 0.5). Matching is COCO's greedy rule (best *unmatched* ground
    truth, IoU >= threshold); the VOC devkit instead takes the best ground
    truth overall, counts a false positive if it is already taken, and uses
    IoU > threshold. No "difficult" boxes. Returns 0.0 when there is no ground truth at all.
    """
    aps = average_precision_per_class(detections, ground_truths, iou_threshold, method)
    return float(np.mean(list(aps.values()))) if aps else 0.0


COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def coco_map(detections, ground_truths):
    """COCO mAP@[.5:.95]: the mean over IoU thresholds ``0.50, 0.55, ..., 0.95`` of
    :func:`mean_average_precision` with 101-point interpolation.

    Unlike pycocotools there is no cap on detections per image (maxDets), no
    area ranges and no crowd regions.
    """
    return float(np.mean([mean_average_precision(detections, ground_truths, t, method="coco")
                          for t in COCO_IOU_THRESHOLDS]))
