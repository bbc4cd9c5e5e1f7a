"""Detection evaluation: PASCAL VOC AP (all-point and 11-point) and COCO mAP for boxes and masks.

Inputs, one entry per image, in the same order:

* detections: ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}`` plus ``"masks": (D, H, W)``
  (binary; float masks are cut at 0.5) for ``iou_type="segm"``;
* ground truths: ``{"boxes": (G, 4), "labels": (G,)}`` plus ``"masks": (G, H, W)``, optional
  ``"area": (G,)`` (COCO's annotation area) and, for VOC, optional ``"difficult": (G,)`` bools.

Boxes are ``(x1, y1, x2, y2)`` in continuous coordinates: IoU without the VOC devkit's +1 of
integer pixel boxes. Which AP each function computes:

* :func:`voc_evaluate` (ChainerCV's ``eval_detection_voc`` / the VOC devkit): per class, the
  detections of all images ranked by score; each takes the ground truth of highest IoU in its
  image (the first on ties); TP if that IoU ``>= iou_threshold`` and the ground truth is not
  taken yet, FP otherwise (a taken one counts FP: no second choice); ``"difficult"`` ground truths
  are neither found nor missed. AP: ``method="voc"`` all-point (VOC 2010+),
  ``"voc07"`` 11-point (VOC 2007).
* :func:`coco_evaluate` (pycocotools' ``COCOeval``, ``iscrowd = 0`` everywhere): per image and
  class at most ``max_dets[-1]`` detections; for each IoU threshold ``0.50:0.05:0.95`` a detection
  takes the *unmatched* ground truth of highest IoU (the last on ties, not-ignored ones first);
  101-point interpolated precision; area ranges all/small/medium/large; the 12 summary numbers
  of ``COCOeval.summarize()`` in ``stats``.
"""
import numpy as np

from .metrics import box_iou_numpy, to_numpy

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
COCO_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                    "large": (96.0 ** 2, 1e5 ** 2)}
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                   "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _arrays(entry, keys, n, what):
    if not isinstance(entry, dict):
        raise TypeError(f"detection metrics: {what} {n} must be a dict with keys {keys}, got {type(entry)}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"detection metrics: {what} {n} lacks {missing}")
    out = {k: to_numpy(v) for k, v in entry.items()}
    out["boxes"] = np.asarray(out["boxes"], dtype=np.float64).reshape(-1, 4)
    out["labels"] = np.asarray(out["labels"]).reshape(-1).astype(np.int64)
    if len(out["labels"]) != len(out["boxes"]):
        raise ValueError(f"detection metrics: {what} {n}: {len(out['boxes'])} boxes but {len(out['labels'])} labels")
    if "scores" in keys:
        out["scores"] = np.asarray(out["scores"], dtype=np.float64).reshape(-1)
        if len(out["scores"]) != len(out["boxes"]):
            raise ValueError(f"detection metrics: {what} {n}: {len(out['boxes'])} boxes but "
                             f"{len(out['scores'])} scores")
    return out


def _inputs(detections, ground_truths, need_masks=False):
    if len(detections) != len(ground_truths):
        raise ValueError(f"detection metrics: {len(detections)} detection entries for {len(ground_truths)} images")
    keys_d = ["boxes", "scores", "labels"] + (["masks"] if need_masks else [])
    keys_g = ["boxes", "labels"] + (["masks"] if need_masks else [])
    dets = [_arrays(d, keys_d, n, "detections") for n, d in enumerate(detections)]
    gts = [_arrays(g, keys_g, n, "ground truth") for n, g in enumerate(ground_truths)]
    return dets, gts


def mask_iou(masks1, masks2):
    """Pairwise IoU of binary masks ``(N, H, W), (M, H, W) -> (N, M)``: ``|a ∧ b| / |a ∨ b|`` (0 when
    both are empty). Float masks are binarised at ``>= 0.5``."""
    a = np.asarray(to_numpy(masks1))
    b = np.asarray(to_numpy(masks2))
    a = (a >= 0.5) if a.dtype.kind == "f" else a.astype(bool)
    b = (b >= 0.5) if b.dtype.kind == "f" else b.astype(bool)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask_iou: masks must share (H, W), got {a.shape} and {b.shape}")
    a = a.reshape(len(a), int(np.prod(a.shape[1:]))).astype(np.float64)
    b = b.reshape(len(b), int(np.prod(b.shape[1:]))).astype(np.float64)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


# ---------------------------------------------------------------------------
# PASCAL VOC
# ---------------------------------------------------------------------------


def voc_ap(recall, precision, method="voc"):
    """AP of one ranked list from its recall/precision after each detection.

    * ``"voc"`` (all-point, VOC 2010+): with ``r = [0, recall, 1]``, ``p = [0, precision, 0]`` and
      the envelope ``p̂_i = max_{j >= i} p_j``: ``AP = Σ_i (r_i − r_{i−1}) p̂_i``.
    * ``"voc07"`` (11-point, VOC 2007): ``AP = (1/11) Σ_{t = 0, 0.1, …, 1} max{p_i : r_i >= t}``
      (0 when no ``r_i >= t``), with ``t = k/10`` exactly (``np.arange(0, 1.1, 0.1)``, used by
      some ports, gives 0.30000000000000004 and misses a recall of exactly 0.3).
    """
    r = np.asarray(recall, dtype=np.float64).reshape(-1)
    p = np.asarray(precision, dtype=np.float64).reshape(-1)
    if r.shape != p.shape:
        raise ValueError(f"voc_ap: recall {r.shape} and precision {p.shape} must have the same length")
    if method == "voc":
        mrec = np.concatenate([[0.0], r, [1.0]])
        mpre = np.concatenate([[0.0], p, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        return float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))
    if method == "voc07":
        return float(np.mean([p[r >= k / 10].max(initial=0.0) for k in range(11)]))
    raise ValueError(f"voc_ap: method must be 'voc' or 'voc07', got {method!r}")


def voc_evaluate(detections, ground_truths, iou_threshold=0.5, method="voc"):
    """PASCAL VOC detection AP per class and its mean (matching rule in the module docstring).

    Returns:
        ``{"ap": {class: AP}, "map": mean AP, "precision": {class: array}, "recall": {class: array}}``
        over the classes with at least one non-difficult ground truth (precision/recall after each
        ranked detection, difficult matches left out); ``map`` is 0.0 with no such class.
    """
    dets, gts = _inputs(detections, ground_truths)
    for g in gts:
        g["difficult"] = np.asarray(g.get("difficult", np.zeros(len(g["boxes"]))), dtype=bool).reshape(-1)
    classes = np.unique(np.concatenate([g["labels"][~g["difficult"]] for g in gts] + [np.zeros(0, np.int64)]))
    out = {"ap": {}, "precision": {}, "recall": {}}
    for c in classes.tolist():
        gt_c = [(g["boxes"][g["labels"] == c], g["difficult"][g["labels"] == c]) for g in gts]
        npos = sum(int((~diff).sum()) for _, diff in gt_c)
        scores = np.concatenate([d["scores"][d["labels"] == c] for d in dets])
        image = np.concatenate([np.full(int((d["labels"] == c).sum()), n) for n, d in enumerate(dets)])
        boxes = np.concatenate([d["boxes"][d["labels"] == c] for d in dets]).reshape(-1, 4)
        taken = [np.zeros(len(b), dtype=bool) for b, _ in gt_c]
        flags = []                                      # 1 TP, 0 FP, -1 difficult (left out)
        for k in np.argsort(-scores, kind="stable"):
            gb, diff = gt_c[image[k]]
            if len(gb) == 0:
                flags.append(0)
                continue
            iou = box_iou_numpy(boxes[k:k + 1], gb)[0]
            j = int(np.argmax(iou))
            if iou[j] < iou_threshold:
                flags.append(0)
            elif diff[j]:
                flags.append(-1)
            elif not taken[image[k]][j]:
                taken[image[k]][j] = True
                flags.append(1)
            else:
                flags.append(0)
        flags = np.array(flags, dtype=np.int64)
        flags = flags[flags >= 0]
        tp, fp = np.cumsum(flags == 1), np.cumsum(flags == 0)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, 1)
        out["ap"][c], out["precision"][c], out["recall"][c] = voc_ap(recall, precision, method), precision, recall
    out["map"] = float(np.mean(list(out["ap"].values()))) if out["ap"] else 0.0
    return out


# ---------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------


def _match_image(ious, gt_ignore, dt_out_of_range, thresholds):
    """pycocotools' ``evaluateImg`` for one image, class and area range, vectorised over thresholds.

    ``ious`` ``(D, G)`` with detections in rank order. Returns ``(dt_matched (T, D), dt_ignore (T, D))``.
    """
    T, (D, G) = len(thresholds), ious.shape
    matched = np.zeros((T, D), dtype=bool)
    ignored = np.zeros((T, D), dtype=bool)
    if G and D:
        order = np.argsort(gt_ignore, kind="stable")          # not-ignored ground truths first
        ious, g_ig = ious[:, order], gt_ignore[order]
        n_kept = int((~g_ig).sum())
        thr = np.minimum(thresholds, 1 - 1e-10)[:, None]
        taken = np.zeros((T, G), dtype=bool)
        rows = np.arange(T)
        for d in range(D):
            cand = ~taken & (ious[d][None, :] >= thr)
            vals = np.where(cand, ious[d][None, :], -1.0)
            pick = np.full(T, -1)
            for lo, hi in ((n_kept, G), (0, n_kept)):      # ignored block first, overwritten by kept
                if hi > lo:
                    block = vals[:, lo:hi]
                    last_max = hi - 1 - np.argmax(block[:, ::-1], axis=1)   # the last of equal maxima
                    pick = np.where(cand[:, lo:hi].any(1), last_max, pick)
            hit = pick >= 0
            matched[hit, d] = True
            ignored[hit, d] = g_ig[pick[hit]]
            taken[rows[hit], pick[hit]] = True
    ignored |= ~matched & dt_out_of_range[None, :]
    return matched, ignored


def coco_evaluate(detections, ground_truths, iou_type="bbox", max_dets=(1, 10, 100),
                  iou_thresholds=COCO_IOU_THRESHOLDS, area_ranges=None):
    """COCO-style evaluation (pycocotools' ``COCOeval`` evaluate/accumulate/summarize).

    Args:
        iou_type: ``"bbox"`` (box IoU) or ``"segm"`` (mask IoU; masks required).
        max_dets: detections per image and class kept, increasing; the last (100) is COCO's.
        iou_thresholds: default ``0.50, 0.55, …, 0.95``.
        area_ranges: ``{name: (lo, hi)}``; default all/small (< 32²)/medium/large (> 96²). A ground
            truth's area is its ``"area"`` if given, else its mask's pixel count if it has a mask,
            else its box area; a detection's is its box (bbox) or mask (segm) area. Out-of-range
            ground truths are ignored, and so are unmatched out-of-range detections.

    Returns:
        dict: ``stats`` (12,) as ``COCOeval.stats`` (names in ``COCO_STAT_NAMES``; −1 where
        undefined), ``precision`` ``(T, 101, K, A, M)`` and ``recall`` ``(T, K, A, M)`` (−1 where a
        class has no ground truth in the range), ``classes`` (K,), and ``per_class``:
        ``{class: {"AP": AP@[.5:.95], "AP50": AP@.5}}`` (area all, ``max_dets[-1]``).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"coco_evaluate: iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    dets, gts = _inputs(detections, ground_truths, need_masks=iou_type == "segm")
    ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    max_dets = [int(m) for m in max_dets]
    classes = np.unique(np.concatenate([g["labels"] for g in gts] + [np.zeros(0, np.int64)]))
    T, R, K, A, M = len(thresholds), len(COCO_RECALL_THRESHOLDS), len(classes), len(ranges), len(max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k, c in enumerate(classes.tolist()):
        per_image = []                                  # (scores, iou, gt_area, dt_area) per image
        for d, g in zip(dets, gts):
            ds, gs = d["labels"] == c, g["labels"] == c
            if not ds.any() and not gs.any():
                continue
            order = np.argsort(-d["scores"][ds], kind="stable")[:max_dets[-1]]
            idx = np.flatnonzero(ds)[order]
            if iou_type == "bbox":
                iou = box_iou_numpy(d["boxes"][idx], g["boxes"][gs])
                b = d["boxes"][idx]
                dt_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            else:
                iou = mask_iou(d["masks"][idx], g["masks"][gs])
                m = np.asarray(d["masks"][idx])
                m = (m >= 0.5) if m.dtype.kind == "f" else m.astype(bool)
                dt_area = m.reshape(len(idx), int(np.prod(m.shape[1:]))).sum(1).astype(np.float64)
            if "area" in g:
                gt_area = np.asarray(g["area"], dtype=np.float64).reshape(-1)[gs]
            elif "masks" in g:
                gm = np.asarray(g["masks"])[gs].astype(bool)
                gt_area = gm.reshape(len(gm), int(np.prod(gm.shape[1:]))).sum(1).astype(np.float64)
            else:
                gb = g["boxes"][gs]
                gt_area = (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
            per_image.append((d["scores"][idx], iou.reshape(len(idx), int(gs.sum())), gt_area, dt_area))
        for a, (lo, hi) in enumerate(ranges.values()):
            evals = []
            for scores, iou, gt_area, dt_area in per_image:
                gt_ignore = (gt_area < lo) | (gt_area > hi)
                matched, ignored = _match_image(iou, gt_ignore, (dt_area < lo) | (dt_area > hi), thresholds)
                evals.append((scores, matched, ignored, gt_ignore))
            npig = sum(int((~e[3]).sum()) for e in evals)
            if npig == 0:
                continue
            for mi, m in enumerate(max_dets):
                scores = np.concatenate([e[0][:m] for e in evals])
                order = np.argsort(-scores, kind="stable")
                matched = np.concatenate([e[1][:, :m] for e in evals], axis=1)[:, order]
                ignored = np.concatenate([e[2][:, :m] for e in evals], axis=1)[:, order]
                tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
                fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
                for t in range(T):
                    rc = tp[t] / npig
                    pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
                    recall[t, k, a, mi] = rc[-1] if len(rc) else 0.0
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
                    inds = np.searchsorted(rc, COCO_RECALL_THRESHOLDS, side="left")
                    precision[t, :, k, a, mi] = np.where(inds < len(pr), pr[np.minimum(inds, len(pr) - 1)]
                                                         if len(pr) else 0.0, 0.0)
    stats = _summarize(precision, recall, thresholds, list(ranges), max_dets)
    a_all = list(ranges).index("all") if "all" in ranges else 0
    per_class = {}
    for k, c in enumerate(classes.tolist()):
        p = precision[:, :, k, a_all, -1]
        t50 = np.flatnonzero(np.isclose(thresholds, 0.5))
        per_class[c] = {"AP": _mean_defined(p),
                        "AP50": _mean_defined(p[t50]) if len(t50) else -1.0}
    return {"stats": stats, "precision": precision, "recall": recall, "classes": classes, "per_class": per_class}


def _mean_defined(values):
    v = values[values > -1]
    return float(v.mean()) if v.size else -1.0


def _summarize(precision, recall, thresholds, area_names, max_dets):
    """The 12 numbers of ``COCOeval.summarize()`` (−1 where undefined)."""
    def area(name):
        return area_names.index(name) if name in area_names else None

    def t_index(v):
        hit = np.flatnonzero(np.isclose(thresholds, v))
        return hit if len(hit) else None

    def ap(t=None, a="all", m=-1):
        ai, ti = area(a), (slice(None) if t is None else t_index(t))
        if ai is None or ti is None:
            return -1.0
        return _mean_defined(precision[ti, :, :, ai, m])

    def ar(a="all", m=-1):
        ai = area(a)
        return -1.0 if ai is None else _mean_defined(recall[:, :, ai, m])

    m_last = len(max_dets) - 1
    return np.array([ap(), ap(0.5), ap(0.75), ap(a="small"), ap(a="medium"), ap(a="large"),
                     ar(m=0), ar(m=min(1, m_last)), ar(m=min(2, m_last)),
                     ar("small"), ar("medium"), ar("large")])


def format_coco_stats(stats):
    """The 12 COCO numbers as lines like pycocotools' summary (``AP  @[IoU=0.50:0.95] …``)."""
    return "\n".join(f"{name:<10} {value:7.4f}" for name, value in zip(COCO_STAT_NAMES, stats))


def detection_scores(detections, ground_truths, masks=False):
    """The summary a training loop reports: VOC mAP@0.5 (all-point), COCO box mAP@[.5:.95] and
    AP50, and the mask ones when ``masks``. A dict of floats."""
    out = {"map50": voc_evaluate(detections, ground_truths, 0.5)["map"]}
    s = coco_evaluate(detections, ground_truths, "bbox")["stats"]
    out.update(coco_map=float(s[0]), coco_ap50=float(s[1]))
    if masks:
        s = coco_evaluate(detections, ground_truths, "segm")["stats"]
        out.update(mask_coco_map=float(s[0]), mask_ap50=float(s[1]))
    return out
