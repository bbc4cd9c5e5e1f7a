"""The small named pieces of a detection pipeline, on plain arrays outside autograd.

Target assignment (which anchor or proposal learns which ground-truth box) and post-processing
(which boxes a model reports) are decisions, not differentiable maps: they run on NumPy arrays in
the data path, as torchvision's ``models/detection/_utils.py`` and ChainerCV's
``faster_rcnn/utils`` do, and a model composes them.

* :class:`BoxCoder`: R-CNN box deltas over lists of boxes per image (the math is
  :func:`minicnn.functional.encode_boxes` / :func:`~minicnn.functional.decode_boxes`).
* :class:`Matcher`: each prediction's best ground truth by IoU, with torchvision's thresholds and
  low-quality matches.
* :class:`BalancedPositiveNegativeSampler`: a fixed-size minibatch with a positive fraction.
* :func:`postprocess_detections`: score threshold, small-box removal, per-class NMS, top-k.
"""
import math

import numpy as np

from ...functional.boxes import BBOX_XFORM_CLIP, clip_boxes_to_image, decode_boxes, encode_boxes, remove_small_boxes
from ...functional.nms import batched_nms
from ...tensor import to_host

__all__ = ["BoxCoder", "Matcher", "BalancedPositiveNegativeSampler", "batched_nms", "postprocess_detections"]


class BoxCoder:
    """Encode boxes as R-CNN deltas w.r.t. reference boxes, and decode them back.

    For a reference box ``p`` (anchor or proposal, centre ``(px, py)``, size ``(pw, ph)``) and a
    box ``g``: ``(dx, dy, dw, dh) = (wx (gx − px)/pw, wy (gy − py)/ph, ww log(gw/pw), wh log(gh/ph))``;
    decoding inverts it with ``dw/ww`` and ``dh/wh`` clamped at ``bbox_xform_clip``.

    Args:
        weights: ``(wx, wy, ww, wh)``: ``(1, 1, 1, 1)`` for the RPN, ``(10, 10, 5, 5)`` for the
            Fast/Faster R-CNN box head (torchvision's defaults).
        bbox_xform_clip: upper clamp of the decoded log-size deltas, ``log(1000/16)``.

    Arrays in give arrays out; Tensors in give Tensors out (differentiable, see
    :mod:`minicnn.functional.boxes`).
    """

    def __init__(self, weights, bbox_xform_clip=BBOX_XFORM_CLIP):
        if len(weights) != 4 or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
            raise ValueError(f"BoxCoder: weights must be 4 positive numbers (wx, wy, ww, wh), got {weights!r}")
        if not isinstance(bbox_xform_clip, (int, float)) or math.isnan(bbox_xform_clip):
            raise ValueError(f"BoxCoder: bbox_xform_clip must be a number, got {bbox_xform_clip!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def encode_single(self, reference_boxes, proposals):
        """Deltas ``(N, 4)`` of ``reference_boxes`` (targets, ``(N, 4)``) w.r.t. ``proposals`` ``(N, 4)``."""
        return encode_boxes(reference_boxes, proposals, self.weights)

    def encode(self, reference_boxes, proposals):
        """Per image: ``[(N_i, 4)] × [(N_i, 4)] -> tuple of (N_i, 4)`` deltas (torchvision's split form)."""
        if len(reference_boxes) != len(proposals):
            raise ValueError(f"BoxCoder.encode: {len(reference_boxes)} lists of reference boxes for "
                             f"{len(proposals)} lists of proposals")
        return tuple(self.encode_single(g, p) for g, p in zip(reference_boxes, proposals))

    def decode_single(self, rel_codes, boxes):
        """Boxes ``(N, 4·k)`` from deltas ``(N, 4·k)`` (``k`` per reference box) and reference boxes ``(N, 4)``."""
        return decode_boxes(rel_codes, boxes, self.weights, self.bbox_xform_clip)

    def decode(self, rel_codes, boxes):
        """Deltas ``(Σ N_i, 4·k)`` over the concatenated reference boxes ``[(N_i, 4)]`` of the images
        -> boxes ``(Σ N_i, k, 4)`` (torchvision's ``decode``)."""
        total = sum(len(b) for b in boxes)
        if len(rel_codes) != total:
            raise ValueError(f"BoxCoder.decode: rel_codes has {len(rel_codes)} rows for {total} reference boxes")
        if total == 0:
            k = max(rel_codes.shape[1] // 4, 1) if getattr(rel_codes, "ndim", 0) == 2 else 1
            return np.zeros((0, k, 4), dtype=np.float32)
        concat = np.concatenate([to_host(b).reshape(-1, 4) for b in boxes])
        out = self.decode_single(rel_codes, concat)
        return out.reshape(total, -1, 4)


class Matcher:
    """Assign each prediction (column) to its best ground truth (row) of an IoU matrix.

    For ``match_quality_matrix`` ``(G, P)`` (``G`` ground truths, ``P`` predictions), prediction
    ``j`` gets ``i* = argmax_i M[i, j]`` (the first maximum) if ``M[i*, j] >= high_threshold``,
    ``BETWEEN_THRESHOLDS`` (−2) if ``low_threshold <= M[i*, j] < high_threshold`` and
    ``BELOW_LOW_THRESHOLD`` (−1) if ``M[i*, j] < low_threshold``.

    With ``allow_low_quality_matches``, every ground truth ``i`` also keeps the predictions of
    its highest quality ``max_j M[i, j]`` (all of them when tied), each of those getting back its
    own best ground truth ``argmax_i M[i, j]`` (as torchvision: that may be another row that ties
    with ``i``). Faster R-CNN's RPN: ``Matcher(0.7, 0.3, True)``; its box head: ``Matcher(0.5, 0.5)``.

    Returns int64 ``(P,)`` ground-truth indices or −1/−2. An empty matrix raises ValueError, as
    torchvision: the caller decides what an image without boxes means (all negatives).
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        if not low_threshold <= high_threshold:
            raise ValueError(f"Matcher: low_threshold ({low_threshold}) must be <= high_threshold ({high_threshold})")
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, match_quality_matrix):
        m = to_host(match_quality_matrix)
        if m.ndim != 2:
            raise ValueError(f"Matcher: match_quality_matrix must be 2-D (ground truths, predictions), got {m.shape}")
        if m.size == 0:
            which = "ground-truth boxes" if m.shape[0] == 0 else "proposal boxes"
            raise ValueError(f"Matcher: no {which} available for one of the images (matrix shape {m.shape})")
        matches = m.argmax(axis=0).astype(np.int64)
        matched_vals = m[matches, np.arange(m.shape[1])]
        all_matches = matches.copy()
        matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = m.max(axis=1)
            _, preds = np.nonzero(m == best_per_gt[:, None])
            matches[preds] = all_matches[preds]
        return matches


class BalancedPositiveNegativeSampler:
    """Draw at most ``batch_size_per_image`` examples per image, a ``positive_fraction`` of them positive.

    For labels per image (``>= 1`` positive, ``0`` negative, ``< 0`` ignored):
    ``num_pos = min(#positives, int(batch_size_per_image · positive_fraction))``,
    ``num_neg = min(#negatives, batch_size_per_image − num_pos)`` (negatives fill the places the
    positives leave), each drawn uniformly without replacement.

    Args:
        batch_size_per_image: e.g. 256 (RPN) or 512 (box head).
        positive_fraction: e.g. 0.5 (RPN) or 0.25 (box head).
        rng: a ``numpy.random.Generator`` or a seed (same seed => same draws).

    Calling it with a list of label arrays returns ``(pos_masks, neg_masks)``: two lists of bool
    arrays, one per image, with the shape of its labels.
    """

    def __init__(self, batch_size_per_image, positive_fraction, rng=None):
        if int(batch_size_per_image) != batch_size_per_image or batch_size_per_image < 0:
            raise ValueError(f"BalancedPositiveNegativeSampler: batch_size_per_image must be an integer >= 0, "
                             f"got {batch_size_per_image!r}")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"BalancedPositiveNegativeSampler: positive_fraction must lie in [0, 1], "
                             f"got {positive_fraction!r}")
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def __call__(self, matched_idxs):
        pos_masks, neg_masks = [], []
        for labels in matched_idxs:
            labels = to_host(labels)
            positive = np.flatnonzero(labels >= 1)
            negative = np.flatnonzero(labels == 0)
            num_pos = min(len(positive), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(len(negative), self.batch_size_per_image - num_pos)
            pos = positive[self.rng.permutation(len(positive))[:num_pos]]
            neg = negative[self.rng.permutation(len(negative))[:num_neg]]
            pos_mask = np.zeros(labels.shape, dtype=bool)
            neg_mask = np.zeros(labels.shape, dtype=bool)
            pos_mask.reshape(-1)[pos] = True
            neg_mask.reshape(-1)[neg] = True
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks


def postprocess_detections(boxes, scores, labels, image_size=None, score_thresh=0.05, nms_thresh=0.5,
                           detections_per_img=100, min_size=1e-2):
    """The detections one image reports, torchvision's ``RoIHeads.postprocess_detections`` order.

    1. clip boxes to the image (when ``image_size = (H, W)`` is given);
    2. keep ``score > score_thresh`` (strict);
    3. drop boxes narrower or shorter than ``min_size``;
    4. per-class NMS at ``nms_thresh`` (:func:`~minicnn.functional.batched_nms`, strict ``IoU >``);
    5. keep the ``detections_per_img`` highest scores (NMS returns them in decreasing score).

    Args:
        boxes: ``(K, 4)`` candidate boxes ``(x1, y1, x2, y2)``.
        scores: ``(K,)``; labels: ``(K,)`` integer classes.

    Returns:
        ``{"boxes": float32 (D, 4), "scores": float32 (D,), "labels": int64 (D,)}``, decreasing score.
    """
    b = np.asarray(to_host(boxes), dtype=np.float32).reshape(-1, 4)
    s = np.asarray(to_host(scores), dtype=np.float32).reshape(-1)
    lab = np.asarray(to_host(labels)).reshape(-1).astype(np.int64)
    if not len(b) == len(s) == len(lab):
        raise ValueError(f"postprocess_detections: boxes {b.shape}, scores {s.shape} and labels {lab.shape} "
                         f"must have one row per candidate")
    if image_size is not None:
        b = clip_boxes_to_image(b, image_size)
    keep = np.flatnonzero(s > score_thresh)
    b, s, lab = b[keep], s[keep], lab[keep]
    keep = remove_small_boxes(b, min_size)
    b, s, lab = b[keep], s[keep], lab[keep]
    keep = batched_nms(b, s, lab, nms_thresh).numpy()[:detections_per_img]
    return {"boxes": b[keep].astype(np.float32), "scores": s[keep].astype(np.float32),
            "labels": lab[keep].astype(np.int64)}
