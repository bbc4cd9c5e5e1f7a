"""Evaluation metrics for classification, segmentation and detection (NumPy in, numbers out).

Every function accepts NumPy arrays, anything ``np.asarray`` understands, and
objects with a ``.numpy()`` method (a minicnn or torch Tensor).

Classification: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`,
:func:`precision_recall_f1`. Segmentation: :func:`iou_masks`, :func:`mean_iou`,
:func:`dice_per_class`, :func:`pixel_accuracy`, :func:`segmentation_scores`; instances:
:func:`connected_components`, :func:`instances_from_semantic`, :func:`match_instances`,
:func:`instance_f1`, :func:`instance_average_precision`.
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


def coco_map(detections, ground_truths, max_dets=100):
    """COCO mAP@[.5:.95], pycocotools' ``stats[0]``: the mean over IoU thresholds ``0.50, 0.55, ...,
    0.95`` and over classes of the 101-point interpolated AP.

    As pycocotools (and :func:`minicnn.detection_metrics.coco_evaluate`, which computes it): only
    the ``max_dets`` highest-scored detections per image and class count, and a detection whose
    IoU ties between unmatched ground truths takes the last of them (with the first, a later
    detection can lose its match). Area range "all", no crowd regions. 0.0 with no ground truth.
    """
    from .detection_metrics import coco_evaluate

    dets = [dict(zip(("boxes", "scores", "labels"), _unpack(d, ("boxes", "scores", "labels")))) for d in detections]
    gts = [dict(zip(("boxes", "labels"), _unpack(g, ("boxes", "labels")))) for g in ground_truths]
    stats = coco_evaluate(dets, gts, "bbox", max_dets=(max_dets,), area_ranges={"all": (0.0, 1e5 ** 2)})["stats"]
    return max(float(stats[0]), 0.0)


# ---------------------------------------------------------------------------
# segmentation: Dice, pixel accuracy, a summary; instances from masks and their matching
# ---------------------------------------------------------------------------


def _kept_labels(pred, target, num_classes, ignore_index, name):
    """Flat class ids of prediction and target without the ignored pixels, range-checked."""
    pred, target = _labels(pred, target, name)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    pred, target = pred.ravel(), target.ravel()
    if num_classes is not None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"{name}: num_classes must be a positive integer, got {num_classes}")
        for what, a in (("pred", pred), ("target", target)):
            if a.size and (a.min() < 0 or a.max() >= num_classes):
                raise ValueError(f"{name}: {what} has class ids outside 0..{num_classes - 1} "
                                 f"(min {a.min()}, max {a.max()}); pass ignore_index for void pixels")
    return pred, target


def dice_per_class(pred, target, num_classes, ignore_index=None):
    """Per-class Dice coefficient of two label masks.

    ``Dice_c = 2 |P_c and T_c| / (|P_c| + |T_c|)``, ``P_c`` and ``T_c`` the pixels labelled
    ``c`` in prediction and target, over all pixels of all images; NaN where both are empty.
    Pixels whose target is ``ignore_index`` are left out. ``pred`` may be scores
    ``(N, C, H, W)`` (argmax over axis 1). ``Dice_c = 2 IoU_c / (1 + IoU_c)``.

    Returns:
        float64 array ``(num_classes,)``.
    """
    pred, target = _kept_labels(pred, target, num_classes, ignore_index, "dice_per_class")
    m = confusion_matrix(pred, target, num_classes).astype(np.float64)
    total = m.sum(axis=0) + m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * np.diag(m) / np.where(total > 0, total, 1), np.nan)


def pixel_accuracy(pred, target, ignore_index=None):
    """Fraction of pixels whose predicted class equals the target, ``mean(pred == target)``.

    Pixels whose target is ``ignore_index`` are left out; 0.0 when no pixel is left.
    ``pred`` may be scores ``(N, C, H, W)`` (argmax over axis 1).
    """
    pred, target = _kept_labels(pred, target, None, ignore_index, "pixel_accuracy")
    return float((pred == target).mean()) if target.size else 0.0


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else 0.0


def segmentation_scores(pred, target, num_classes, ignore_index=None):
    """The usual semantic-segmentation scores of a prediction, in one dict.

    Keys: ``per_class_iou`` (:func:`iou_masks`), ``mean_iou`` (:func:`mean_iou`),
    ``per_class_dice`` (:func:`dice_per_class`), ``mean_dice`` (mean over the classes where
    Dice is defined, 0.0 if none), ``pixel_accuracy`` (:func:`pixel_accuracy`) and
    ``foreground_iou``: the IoU of "any class >= 1" against background,
    ``|P_fg and T_fg| / |P_fg or T_fg|`` (NaN when both are empty). Pixels whose target is
    ``ignore_index`` are left out of all of them. ``pred`` may be scores ``(N, C, H, W)``.
    """
    pred, target = _labels(pred, target, "segmentation_scores")      # argmax once
    _kept_labels(pred, target, num_classes, ignore_index, "segmentation_scores")
    p, t = pred, target
    if ignore_index is not None:
        keep = target != ignore_index
        p, t = pred[keep], target[keep]
    inter, union = np.sum((p >= 1) & (t >= 1)), np.sum((p >= 1) | (t >= 1))
    dice = dice_per_class(pred, target, num_classes, ignore_index)
    return {
        "per_class_iou": iou_masks(pred, target, num_classes, ignore_index),
        "mean_iou": mean_iou(pred, target, num_classes, ignore_index),
        "per_class_dice": dice,
        "mean_dice": _nanmean(dice),
        "pixel_accuracy": pixel_accuracy(pred, target, ignore_index),
        "foreground_iou": float(inter / union) if union else float("nan"),
    }


def connected_components(mask, connectivity=1):
    """Label the connected components of the nonzero pixels of a 2-D mask.

    Two foreground pixels are connected when they are 4-neighbours (``connectivity=1``) or
    8-neighbours (``connectivity=2``, diagonals too). Two-pass union-find (a Numba kernel,
    ``kernels/cpu/label.py``; the plain-loop version is ``kernels/reference/label.py``).

    Returns:
        ``(labels, count)``: int32 ``(H, W)`` with 0 on background and ``1..count`` on the
        components, numbered in raster order (rows, then columns) of their first pixel, as
        ``scipy.ndimage.label`` does.
    """
    from .kernels.cpu.label import connected_components as label_kernel

    mask = to_numpy(mask)
    if mask.ndim != 2:
        raise ValueError(f"connected_components: mask must be 2-D (H, W), got shape {mask.shape}")
    if connectivity not in (1, 2):
        raise ValueError(f"connected_components: connectivity must be 1 (4-neighbours) or 2 "
                         f"(8-neighbours), got {connectivity}")
    return label_kernel(mask, int(connectivity))


def _remove_small_and_renumber(inst, min_size):
    """Drop the instances of fewer than ``min_size`` pixels, renumber the rest ``1..K`` in order."""
    counts = np.bincount(inst.ravel())
    keep = counts >= min_size
    keep[0] = False
    new_id = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
    return new_id[inst]


def _grow_into(inst, allowed, steps):
    """Up to ``steps`` rounds of 4-neighbour label dilation of ``inst`` into the ``allowed`` pixels.

    In each round every unlabelled allowed pixel with a labelled 4-neighbour (labelled before
    the round) takes the smallest of those neighbours' ids.
    """
    big = np.iinfo(np.int32).max
    for _ in range(steps):
        free = allowed & (inst == 0)
        if not free.any():
            break
        nearest = np.full(inst.shape, big, dtype=np.int32)
        padded = np.pad(inst, 1)
        for nb in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
            nearest = np.where(nb > 0, np.minimum(nearest, nb), nearest)
        take = free & (nearest < big)
        if not take.any():
            break
        inst = np.where(take, nearest, inst).astype(np.int32)
    return inst


def instances_from_semantic(labels, mode="foreground", min_size=1, connectivity=1, grow_steps=3):
    """Instance masks from a predicted semantic mask.

    * ``mode="foreground"`` (2-class prediction): the instances are the connected components
      (:func:`connected_components`) of the pixels of class ``>= 1``.
    * ``mode="interior"`` (3-class prediction, 0 background / 1 interior / 2 boundary, the
      target of :func:`minicnn.data.nuclei_segmentation` with ``classes=3``): the seeds are the
      connected components of the interior class; then ``grow_steps`` rounds of label dilation
      hand each boundary pixel to the nearest seed (4-neighbour steps through boundary pixels;
      a tie goes to the smaller id). Boundary pixels that no seed reaches in ``grow_steps``
      steps, such as an object predicted as boundary only, stay background. Touching objects
      separated by boundary pixels thus come out as separate instances.

    Instances of fewer than ``min_size`` pixels are then dropped and the rest renumbered
    ``1..K`` in raster order of their seed's first pixel.

    Args:
        labels: int ``(H, W)`` or a batch ``(N, H, W)`` of class ids, or scores
            ``(N, C, H, W)`` (argmax over axis 1).
    Returns:
        int32 array of the shape of the label masks: 0 = background, ``1..K`` per image.
    """
    lab = to_numpy(labels)
    if lab.ndim == 4:
        lab = lab.argmax(axis=1)
    if lab.ndim not in (2, 3):
        raise ValueError(f"instances_from_semantic: labels must be (H, W), (N, H, W) or scores "
                         f"(N, C, H, W), got shape {lab.shape}")
    if mode not in ("foreground", "interior"):
        raise ValueError(f"instances_from_semantic: mode must be 'foreground' or 'interior', got {mode!r}")
    if int(min_size) != min_size or min_size < 1 or int(grow_steps) != grow_steps or grow_steps < 0:
        raise ValueError(f"instances_from_semantic: min_size must be an integer >= 1 and grow_steps >= 0, "
                         f"got min_size={min_size}, grow_steps={grow_steps}")
    lab = lab.astype(np.int64)
    if mode == "interior" and lab.size and (lab.min() < 0 or lab.max() > 2):
        raise ValueError(f"instances_from_semantic: mode='interior' expects classes 0 (background), "
                         f"1 (interior), 2 (boundary), got min {lab.min()} and max {lab.max()}")
    if lab.ndim == 3:
        return np.stack([instances_from_semantic(m, mode, min_size, connectivity, grow_steps) for m in lab]) \
            if len(lab) else np.zeros(lab.shape, dtype=np.int32)
    if mode == "foreground":
        inst, _ = connected_components(lab >= 1, connectivity)
    else:
        inst, _ = connected_components(lab == 1, connectivity)
        inst = _grow_into(inst, lab == 2, int(grow_steps))
    return _remove_small_and_renumber(inst, int(min_size))


def _instance_maps(a, name, what):
    a = to_numpy(a)
    if not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
        raise TypeError(f"{name}: {what} must hold integer instance ids, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"{name}: {what} has negative instance ids (min {a.min()})")
    return a


def _check_pair(pred, true, name, batched):
    pred, true = _instance_maps(pred, name, "pred"), _instance_maps(true, name, "true")
    dims = (2, 3) if batched else (2,)
    if pred.shape != true.shape or pred.ndim not in dims:
        want = "(H, W) or (N, H, W)" if batched else "(H, W)"
        raise ValueError(f"{name}: pred and true must be instance masks {want} of one shape, "
                         f"got {pred.shape} and {true.shape}")
    return (pred[None], true[None]) if pred.ndim == 2 else (pred, true)


def match_instances(pred_instances, true_instances, iou_threshold=0.5):
    """Match the predicted instances of one image to the true ones by IoU.

    ``IoU(p, t) = |p and t| / |p or t|`` for every pair of a predicted and a true instance
    (0 = background; ids need not be consecutive). A pair matches when its IoU is
    ``> iou_threshold``. Instances of one mask are disjoint, so with a threshold ``>= 0.5`` an
    instance has at most one partner (two partners would each cover more than half of it) and
    the matching is one-to-one without any assignment step; lower thresholds are refused.

    Returns:
        dict with ``tp`` (matched pairs), ``fp`` (unmatched predictions), ``fn`` (unmatched
        true instances), ``pred_ids`` ``(Kp,)`` and ``true_ids`` ``(Kt,)`` (the ids present,
        sorted), ``iou`` float64 ``(Kp, Kt)`` (rows follow ``pred_ids``, columns ``true_ids``),
        ``matches`` int64 ``(tp, 2)`` of ``(pred_id, true_id)`` and ``matched_iou`` ``(tp,)``.
    """
    if not 0.5 <= iou_threshold <= 1.0:
        raise ValueError(f"match_instances: iou_threshold must lie in [0.5, 1] (the matching is one-to-one "
                         f"only from 0.5), got {iou_threshold}")
    (pred,), (true,) = _check_pair(pred_instances, true_instances, "match_instances", batched=False)
    pred_ids, true_ids = np.unique(pred[pred > 0]), np.unique(true[true > 0])
    p = np.where(pred > 0, np.searchsorted(pred_ids, pred) + 1, 0)      # 0 = background, 1..Kp
    t = np.where(true > 0, np.searchsorted(true_ids, true) + 1, 0)
    kp, kt = len(pred_ids), len(true_ids)
    joint = np.bincount((p * (kt + 1) + t).ravel(), minlength=(kp + 1) * (kt + 1)).reshape(kp + 1, kt + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    iou = inter / np.where(union > 0, union, 1)
    rows, cols = np.nonzero(iou > iou_threshold)
    tp = len(rows)
    return {"tp": tp, "fp": kp - tp, "fn": kt - tp, "pred_ids": pred_ids, "true_ids": true_ids, "iou": iou,
            "matches": np.stack([pred_ids[rows], true_ids[cols]], axis=1).reshape(-1, 2),
            "matched_iou": iou[rows, cols]}


def instance_f1(pred, true, iou_threshold=0.5):
    """Object-level precision, recall and F1 of predicted instances (:func:`match_instances`).

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
    ``f1 = 2 TP / (2 TP + FP + FN)``, each 0/0 counted as 0. ``pred`` and ``true`` are instance
    masks ``(H, W)``, or batches ``(N, H, W)`` whose counts are summed over the images first.

    Returns:
        dict with ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``.
    """
    preds, trues = _check_pair(pred, true, "instance_f1", batched=True)
    tp = fp = fn = 0
    for p, t in zip(preds, trues):
        m = match_instances(p, t, iou_threshold)
        tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
    return {"precision": float(_safe_div(tp, tp + fp)), "recall": float(_safe_div(tp, tp + fn)),
            "f1": float(_safe_div(2 * tp, 2 * tp + fp + fn)), "tp": tp, "fp": fp, "fn": fn}


def instance_average_precision(pred, true, scores=None, iou_threshold=0.5):
    """Average precision of predicted instances at one IoU threshold; which AP depends on ``scores``.

    * ``scores`` given (a confidence per predicted instance): VOC/COCO-style AP, the area under
      the precision-recall curve of the predictions ranked by decreasing score (stable: ties
      keep image, then id order), with all-point interpolation (PASCAL VOC 2010+, see
      :func:`average_precision`): after the ``k``-th prediction ``precision_k = TP_k / k`` and
      ``recall_k = TP_k / (number of true instances)``; a prediction is a true positive when
      :func:`match_instances` matches it. 0.0 when there is no true instance.
    * ``scores=None``: the 2018 Data Science Bowl's per-threshold "AP" of an image,
      ``TP / (TP + FP + FN)`` (0/0 counted as 0); for a batch, its mean over the images, as
      the Bowl averaged it. (The Bowl's score is this averaged over thresholds 0.5..0.95.)

    Args:
        pred, true: instance masks ``(H, W)`` or batches ``(N, H, W)``.
        scores: for one image, an array with ``scores[k - 1]`` the score of instance ``k``
            (length at least the largest id in ``pred``); for a batch, a list of such arrays.
        iou_threshold: in ``[0.5, 1]``.
    """
    single = to_numpy(pred).ndim == 2
    preds, trues = _check_pair(pred, true, "instance_average_precision", batched=True)
    matches = [match_instances(p, t, iou_threshold) for p, t in zip(preds, trues)]
    if scores is None:
        per_image = [float(_safe_div(m["tp"], m["tp"] + m["fp"] + m["fn"])) for m in matches]
        return float(np.mean(per_image)) if per_image else 0.0
    scores = [scores] if single else list(scores)
    if len(scores) != len(preds):
        raise ValueError(f"instance_average_precision: {len(scores)} score arrays for {len(preds)} images")
    ranked_scores, ranked_tp, num_true = [], [], 0
    for n, (m, s) in enumerate(zip(matches, scores)):
        s = to_numpy(s).astype(np.float64).ravel()
        if len(m["pred_ids"]) and len(s) < m["pred_ids"][-1]:
            raise ValueError(f"instance_average_precision: image {n} has instance id {m['pred_ids'][-1]} "
                             f"but only {len(s)} scores (scores[k - 1] is the score of instance k)")
        ranked_scores.append(s[m["pred_ids"] - 1])
        ranked_tp.append(np.isin(m["pred_ids"], m["matches"][:, 0]))
        num_true += len(m["true_ids"])
    order = np.argsort(-np.concatenate(ranked_scores), kind="stable")
    tp = np.concatenate(ranked_tp)[order]
    if num_true == 0 or len(tp) == 0:
        return 0.0
    tp_cum = np.cumsum(tp)
    return average_precision(tp_cum / num_true, tp_cum / np.arange(1, len(tp) + 1), method="voc")
